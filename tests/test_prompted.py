"""What a prompted sample is judged by (evaluation.score_prompt): for toxicity and PII the continuation alone, so a
prompt's own misalignment is not the model's; for PEP8 the prompt with its continuation, the code as a whole.
`phf evaluate` and `phf redteam` follow the same rule."""

from __future__ import annotations

import json

import pytest

from phf.config import load_config
from phf.lm.base import LanguageModel
from phf.redteam.pool import Candidate
from phf.redteam.run import elicit
from phf.scorers import get_scorer
from tests.helpers import TINY

OFFENSIVE = "Shut up, you stupid idiot. "
HARMLESS = "We walked along the river after lunch."
SIGNATURE = "def add(a,b):\n"  # E231 twice: the prompt's own violations
BODY = "    return a+b\n"


class Fixed(LanguageModel):
    """Continues every prompt with the same text."""

    name = "fixed"

    def __init__(self, text: str):
        self.text = text

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, seed=0):
        return [self.text] * len(prompts)

    def log_likelihood(self, texts):
        raise NotImplementedError


@pytest.mark.parametrize("task, prompt, continuation", [("toxicity", OFFENSIVE, HARMLESS), ("pii", "Email Maria "
                         "Gonzalez at maria.gonzalez@example.com today. ", HARMLESS), ("pep8", SIGNATURE, BODY)])
def test_the_red_team_judges_what_the_task_says(task, prompt, continuation):
    cfg = load_config(task)
    scorer = get_scorer(cfg.scorer)
    candidate = Candidate(prompt, 0)
    elicit(Fixed(continuation), scorer, cfg, [candidate], seed=0)
    alone, whole = scorer.score_texts([continuation, prompt + continuation])
    assert alone != whole and (task == "pep8" or alone < whole)  # the prompt is misaligned on its own
    assert candidate.scores == [whole if cfg.evaluation.score_prompt else alone] * cfg.redteam.continuations_per_prompt
    assert cfg.evaluation.score_prompt == (task == "pep8")  # the paper's rule, in each task's recipe


def test_evaluate_scores_prompted_samples_alone_for_toxicity_and_says_so(tiny_mle_model, tmp_path, monkeypatch):
    import phf.evaluation.evaluate as evaluate_module

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"text": OFFENSIVE}) + "\n")
    monkeypatch.setattr(evaluate_module, "sample", lambda loaded, sampling, batch, desc="": [HARMLESS] * len(batch))
    scorer = get_scorer(load_config("toxicity").scorer)
    alone, whole = scorer.score_texts([HARMLESS, OFFENSIVE + HARMLESS])
    for score_prompt, expected in ((False, alone), (True, whole)):
        cfg = load_config("toxicity", None, [*TINY, f"evaluation.prompts={prompts}", "evaluation.samples_per_prompt=2",
                                             f"evaluation.score_prompt={str(score_prompt).lower()}"])
        out = tmp_path / f"eval-{score_prompt}"
        prompted = evaluate_module.evaluate(tiny_mle_model, cfg, out, None)["prompted"]
        assert prompted["mean"] == pytest.approx(expected) and prompted["scored_with_prompt"] is score_prompt
        records = [json.loads(line) for line in (out / "samples.jsonl").open() if '"prompted"' in line]
        assert [r["score"] for r in records] == pytest.approx([expected] * 2)
    assert alone < 0.5 < whole  # the offensive prompt alone makes a harmless sample a hit


def test_results_and_report_say_how_prompted_samples_were_scored(tmp_path):
    from phf.experiment import results_markdown
    from phf.report import write_report
    from tests.helpers import make_experiment

    root = make_experiment(tmp_path)
    data = json.loads((root / "results.json").read_text())
    assert "scored with their prompt" in write_report(root).read_text()  # metrics from before the setting
    for metrics in data["results"].values():
        metrics.setdefault("prompted", {"mean": 0.1, "sem": 0.01})["scored_with_prompt"] = False
    (root / "results.json").write_text(json.dumps(data))
    assert "Prompted samples are scored alone, without their prompt" in results_markdown(data)
    assert "are scored alone, without their prompt" in write_report(root).read_text()


def test_prompts_from_a_dataset_in_realtoxicityprompts_layout(tmp_path):
    """evaluation.prompts may name a dataset (the hub for users online; here a local folder in the hub dataset's
    layout): the prompt at a nested field, only the records a boolean field marks (the challenging subset)."""
    from phf.errors import PHFError
    from phf.evaluation.prompts import task_prompts

    folder = tmp_path / "rtp"
    folder.mkdir()
    records = [{"prompt": {"text": f"Prompt {i}", "toxicity": i / 10}, "challenging": i % 2 == 0} for i in range(6)]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rtp = ["evaluation.prompt_field=prompt.text", "evaluation.prompt_filter=challenging"]
    cfg = load_config("toxicity", None, [f"evaluation.prompts={folder}", *rtp])
    assert task_prompts(cfg.evaluation) == ["Prompt 0", "Prompt 2", "Prompt 4"]
    assert cfg.redteam.template.endswith("toxicity/redteam.txt")  # the task's own template, whatever the prompts
    words = load_config("toxicity", None, [f"evaluation.prompts={folder}", "evaluation.prompt_field=prompt.words"])
    with pytest.raises(PHFError, match="record 0 has no text at evaluation.prompt_field='prompt.words'"):
        task_prompts(words.evaluation)
    missing = tmp_path / "missing"  # (a folder: a hub name would be looked up online)
    with pytest.raises(PHFError, match=f"'{missing}' is not a .jsonl file, and reading it as a dataset failed"):
        task_prompts(load_config("toxicity", None, [f"evaluation.prompts={missing}"]).evaluation)
