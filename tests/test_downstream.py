"""Downstream capability offline, on tiny models and tiny local data: HumanEval, a LAMBADA-format zero-shot task
through lm-evaluation-harness, a two-class GLUE-format task, and the aligned prefix of conditional models."""

import json

import pytest

from phf.evaluation.humaneval import execute, pass_at_k, read_problems, truncate
from phf.sampling.generate import context_ids, load_model
from phf.training.train import train
from tests.helpers import copied_run, error_of, tiny_config


@pytest.fixture(scope="module")
def models(data_dir, tmp_path_factory, tiny_mle_model):
    out = tmp_path_factory.mktemp("downstream")
    # a copy: `phf evaluate` without --output writes into the model's run folder
    return {"mle": copied_run(tiny_mle_model, out / "mle"),
            "conditional": train(tiny_config("conditional"), data_dir, out / "conditional")}


@pytest.fixture(scope="module")
def three_problems(tmp_path_factory):
    path = tmp_path_factory.mktemp("humaneval") / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in read_problems()[:3]))
    return path


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(10, 3, 10) == 1.0 and pass_at_k(5, 0, 1) == 0.0


def test_completions_stop_at_the_next_top_level_statement():
    assert truncate("    return x\n\ndef other():\n    pass") == "    return x\n"
    assert truncate("    return x\nif __name__ == '__main__':") == "    return x"
    assert truncate("    return x") == "    return x"


def test_the_harness_passes_canonical_solutions_and_fails_wrong_ones(three_problems):
    problems = read_problems(three_problems)
    assert len(read_problems()) == 164 and len(problems) == 3
    verdicts = execute(problems, [[p["canonical_solution"], "    return None\n", "    while True:\n        pass\n"]
                                  for p in problems], timeout=1.0)
    for canonical, wrong, looping in verdicts:
        assert canonical == "passed" and wrong.startswith("failed") and looping == "timed out"


def test_humaneval_samples_executes_and_estimates(models, three_problems, tmp_path):
    from phf.evaluation.humaneval import humaneval

    cfg = tiny_config("mle")
    result = humaneval(load_model(models["mle"]), cfg.sampling, 2, [1, 2], read_problems(three_problems), tmp_path)
    assert set(result) >= {"pass@1", "pass@2", "problems", "samples_per_problem"} and result["problems"] == 3
    assert 0 <= result["pass@1"] <= result["pass@2"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "humaneval.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["result"] == "passed" or r["result"].startswith(("failed", "timed")) for r in rows)


def lambada_file(path):
    passages = ["The cat sat on the mat and looked at the cat", "def f(x): return x and then we call f",
                "import os and then import sys", "one two three four five six seven eight",
                "class Point holds x and y of a Point", "a b c d e f g"]
    path.write_text("".join(json.dumps({"text": p}) + "\n" for p in passages))
    return path


def test_lambada_format_task_runs_zero_shot_from_a_local_file(models, tmp_path):
    from phf.evaluation.zeroshot import zero_shot

    result = zero_shot(load_model(models["mle"]), {"lambada": lambada_file(tmp_path / "lambada.jsonl")})["lambada"]
    assert 0 <= result["acc"] <= 1 and result["perplexity"] > 1 and "acc_stderr" in result


def test_a_conditional_model_sees_every_request_as_its_sampler_would(models, tmp_path):
    """The ids reaching the model start with EOS and the aligned tags, then the context, exactly as
    phf's sampler builds a context from the same prompt; rolling perplexity is prefixed too."""
    from phf.evaluation.zeroshot import PHFLM

    loaded = load_model(models["conditional"])
    assert loaded.conditional
    seen = []
    loaded.model.register_forward_pre_hook(lambda module, args, kwargs: seen.extend(
        (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]).tolist()), with_kwargs=True)
    lm = PHFLM(loaded, batch_size=1)
    context, continuation = "The cat sat on the", " mat"
    lm._loglikelihood_tokens([(None, *lm._encode_pair(context, continuation))])
    expected = context_ids(loaded, context + continuation, "aligned")
    assert seen[0][:len(expected) - 1] == expected[:-1]  # the last target is not fed
    assert expected[:2] == [loaded.tokenizer.eos_token_id, *loaded.control("aligned")]

    class Request:
        args = ("x = 1\n" * 200,)  # longer than the context: several windows

    seen.clear()
    lm.loglikelihood_rolling([Request()])
    prefix = [loaded.tokenizer.eos_token_id, *loaded.control("aligned")]
    assert len(seen) > 1 and all(row[:len(prefix)] == prefix for row in seen)
    assert max(map(len, seen)) <= loaded.model.config.n_positions


def glue_folder(folder, n=96):
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("validation", 32)):
        rows = [{"sentence": f"item {i} is {'good' if i % 2 else 'bad'}", "label": i % 2} for i in range(count)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_a_glue_format_task_is_learned_by_a_new_head(models, tmp_path):
    from phf.evaluation.glue import finetune_glue

    loaded = load_model(models["conditional"])  # with its aligned tags before each input
    result = finetune_glue(loaded, models["conditional"], "sst2", glue_folder(tmp_path / "sst2"), epochs=8,
                           learning_rate=3e-3, batch_size=16, train_examples=None, seed=0)
    assert result["accuracy"] >= 0.9 and result["score"] == result["accuracy"]
    assert result["train_examples"] == 96 and result["validation_examples"] == 32


def test_evaluate_reports_downstream_tasks_from_local_files(models, three_problems, tmp_path, capsys):
    from phf.cli import main

    main(["evaluate", "--model", str(models["mle"]), "--output", str(tmp_path / "eval"),
          "--data", str(tmp_path / "none"), "--downstream", f"humaneval={three_problems}",
          f"lambada={lambada_file(tmp_path / 'l.jsonl')}", f"sst2={glue_folder(tmp_path / 'sst2')}",
          "evaluation.humaneval_samples=2", "evaluation.humaneval_k=[1]", "evaluation.glue_epochs=1"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["downstream"]
    assert set(metrics) == {"humaneval", "lambada", "sst2"}
    assert {"pass@1"} <= set(metrics["humaneval"]) and "acc" in metrics["lambada"] and "accuracy" in metrics["sst2"]
    assert "a HumanEval problem needs ['entry_point', 'prompt', 'task_id', 'test']" in error_of(
        ["evaluate", "--model", str(models["mle"]), "--downstream",
         f"humaneval={lambada_file(tmp_path / 'bad.jsonl')}"])
    assert "humaneval_k [10] exceeds" in error_of(["evaluate", "--model", str(models["mle"]), "--downstream",
                                                   "humaneval", "evaluation.humaneval_samples=2",
                                                   "evaluation.humaneval_k=[10]"])


def test_downstream_figures_reach_the_table_and_a_pareto_plot_per_task(tmp_path):
    from phf.experiment import results_table
    from phf.metrics_table import downstream_scores
    from phf.report import write_report
    from tests.helpers import make_experiment

    root = make_experiment(tmp_path)
    data = json.loads((root / "results.json").read_text())
    figures = {"mle": (0.10, 0.31), "conditional": (0.05, 0.34), "unlikelihood": (0.0, 0.30)}
    for arm, (passed, acc) in figures.items():
        data["results"][arm]["downstream"] = {
            "humaneval": {"pass@1": passed, "pass@10": 2 * passed, "problems": 164},
            "lambada": {"acc": acc, "acc_stderr": 0.01, "perplexity": 900.0},
            # an alignment benchmark (lower is better): a column of its own, no capability axis
            "phf_toxicity_profanity": {"sample_len": 8, "expected_max_toxicity": acc / 2,
                                       "expected_max_toxicity_stderr": 0.02, "toxicity_probability": 0.1}}
    (root / "results.json").write_text(json.dumps(data))
    assert downstream_scores(data["results"]["mle"]) == {"humaneval": ("pass@1", 0.10), "lambada": ("acc", 0.31)}
    table = results_table(data["results"])
    assert ("| humaneval pass@1 | lambada acc | phf_toxicity_profanity expected max toxicity ± s.e. (lower is better) |"
            in table.splitlines()[0]) and "| 0.050 | 0.340 | 0.1700 ± 0.0200 |" in table
    index = write_report(root)
    for task in ("humaneval", "lambada"):
        assert (index.parent / f"pareto_{task}.png").read_bytes().startswith(b"\x89PNG")
        assert f'id="pareto-{task}-plot"' in index.read_text()
    assert not (index.parent / "pareto_phf_toxicity_profanity.png").exists()


def test_a_problems_file_with_a_bad_line_is_named_at_that_line(three_problems, tmp_path):
    from phf.errors import PHFError

    bad = tmp_path / "problems.jsonl"
    bad.write_bytes(three_problems.read_bytes().rstrip(b"\n") + b"\n{\"task_id\": \"x\xff\"}\n")
    with pytest.raises(PHFError, match=r"problems.jsonl:4: not UTF-8"):
        read_problems(bad)
    assert len(read_problems(three_problems)) == 3
