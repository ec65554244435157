"""lm-evaluation-harness tasks phf ships, for any model: `lm_eval ... --include_path FOLDER` (docs/evaluation.md).
Importing this package loads no lm-eval; its tasks' code is in `toxicity`."""

from pathlib import Path

FOLDER = Path(__file__).parent  # the folder of the tasks' YAML files, for --include_path
TOXICITY = "phf_toxicity_"


def toxicity_scorer(task: str) -> str | None:
    """The phf scorer of one of phf's toxicity tasks (phf_toxicity_<scorer>[_challenging]); None for another."""
    return task.removeprefix(TOXICITY).removesuffix("_challenging") if task.startswith(TOXICITY) else None
