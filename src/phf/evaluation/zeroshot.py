"""Zero-shot benchmarks through lm-evaluation-harness, with phf models evaluated as they are deployed.

The paper's text tasks use LAMBADA (last-word accuracy and perplexity). Any lm-eval task runs by name for
users online, and so do phf's own (`phf.evaluation.lm_eval_tasks`: RealToxicityPrompts judged by phf's scorers);
offline, a task whose test split is a local JSONL file in the task's own fields (e.g. LAMBADA's `{"text": ...}`)
runs from that file. A conditional model sees every request start as its samples do: EOS, then its aligned
control tokens, and generates as it is sampled. lm-eval's `system_instruction` cannot do that (it adds text, no
EOS, and leaves rolling-perplexity requests alone), hence `PHFLM`. (Imported only when a zero-shot task runs.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import yaml

from phf.errors import PHFError
from phf.evaluation.lm_eval_tasks import FOLDER
from phf.extras import needs
from phf.sampling.generate import context_ids, context_window, left_padded

with needs("eval", "zero-shot benchmarks"):
    from lm_eval import simple_evaluate, utils
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

LAMBADA = "lambada_openai"  # the harness's LAMBADA, OpenAI's detokenized test split (last word, 5,153 passages)


class PHFLM(HFLM):
    """lm-eval's HF model for a loaded phf model, every request prefixed with EOS and the aligned tags."""

    def __init__(self, loaded, batch_size: int = 16):
        super().__init__(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=batch_size,
                         max_length=context_window(loaded.model.config), device=str(loaded.model.device))
        self.loaded = loaded
        self.prefix = [loaded.tokenizer.eos_token_id, *loaded.control("aligned")]
        self.suppress = sorted(set(loaded.control("all")) - set(loaded.control("aligned")))

    def _with_prefix(self, context: list[int], continuation_length: int) -> list[int]:
        """The prefix, then as much of the context (less a leading EOS, which the prefix holds) as fits."""
        body = context[1:] if context[:1] == [self.eot_token_id] else context
        room = self.max_length + 1 - len(self.prefix) - continuation_length
        return self.prefix + body[max(len(body) - room, 0):]

    def _loglikelihood_tokens(self, requests, disable_tqdm=False, override_bs=None):
        requests = [(key, self._with_prefix(context, len(cont)), cont) for key, context, cont in requests]
        return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        """Disjoint windows short enough that each, after the prefix, fits the model's context."""
        size = self.max_length - len(self.prefix) + 1
        totals = []
        for (text,) in (r.args for r in requests):
            windows = [(None, *utils.make_disjoint_window(w)) for w in utils.get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.eot_token_id, max_seq_len=size, context_len=1)]
            totals.append(sum(ll for ll, _ in self._loglikelihood_tokens(windows, disable_tqdm=True)))
        return totals

    def tok_batch_encode(self, strings, padding_side="left", left_truncate_len=None, truncation=False):
        """Generation contexts as phf's sampler builds them (`context_ids`: EOS, the aligned tags, the prompt), left
        padded; one longer than `left_truncate_len` keeps the prefix and the prompt's end."""
        rows = []
        for text in strings:
            body = context_ids(self.loaded, text, "aligned")[len(self.prefix):]
            room = len(body) if left_truncate_len is None else left_truncate_len - len(self.prefix)
            rows.append(self.prefix + body[max(len(body) - room, 0):])
        return left_padded(rows, self.eot_token_id, torch.device("cpu"))  # (lm-eval moves them to the model)

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        """As phf samples: a conditional model never draws another level's control tokens."""
        if self.suppress:
            generation_kwargs["suppress_tokens"] = self.suppress
        return super()._model_generate(context, max_length, stop, **generation_kwargs)


def task_config(name: str, path: str | Path | None, folder: Path, manager: TaskManager) -> str:
    """A task for `simple_evaluate`: its name (read from the hub), or with `path`, a task YAML written to `folder`
    that includes the task's own (of `manager`'s index) and reads the test split from that local JSONL file."""
    name = LAMBADA if name == "lambada" else name
    if path is None:
        return name
    path = Path(path)
    if not path.is_file():
        raise PHFError(f"test file of {name} not found: {path}")
    entry = manager.task_index.get(name)
    if entry is None or entry.yaml_path is None:
        raise PHFError(f"{name!r} is not a task of lm-evaluation-harness defined by a YAML file")
    local = {"include": str(entry.yaml_path), "task": f"{name}_local", "tag": [], "dataset_path": "json",
             "dataset_name": None, "dataset_kwargs": {"data_files": {"test": str(path.resolve())}},
             "test_split": "test"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_local.yaml").write_text(yaml.safe_dump(local, sort_keys=False))
    return str(folder / f"{name}_local.yaml")


def zero_shot(loaded, tasks: dict[str, str | None], limit: int | None = None, batch_size: int = 16) -> dict:
    """{task: {metric: value}} of lm-eval tasks (name -> local test file or None), zero-shot, with the
    harness's standard errors."""
    manager = TaskManager(include_path=str(FOLDER))  # the harness's tasks and phf's
    with tempfile.TemporaryDirectory() as folder:
        configs = {name: task_config(name, path, Path(folder), manager) for name, path in tasks.items()}
        out = simple_evaluate(model=PHFLM(loaded, batch_size), tasks=list(configs.values()), num_fewshot=0,
                              limit=limit, bootstrap_iters=1000, log_samples=False, task_manager=manager)
    results = {}
    for name, config in configs.items():
        found = out["results"][Path(config).stem if config.endswith(".yaml") else config]
        results[name] = {key.replace(",none", ""): value for key, value in found.items()
                         if key != "alias" and isinstance(value, (int, float))}
    return results
