"""The command line: help texts, a whole run with a tiny model, and one-line errors on bad input."""

import json
import subprocess
import sys

import pytest

from phf.cli import main
from tests.helpers import TINY, error_of


@pytest.mark.parametrize("command", ["score", "train", "sample", "evaluate", "experiment"])
def test_every_command_explains_itself(command):
    out = subprocess.run([sys.executable, "-m", "phf.cli", command, "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: phf " + command in out and "KEY=VALUE" in out


def test_bad_input_gives_one_line_errors(tmp_path):
    assert "corpus not found: /nope" in error_of(["score", "--corpus", "/nope", "--data", str(tmp_path / "d")])
    (tmp_path / "empty").mkdir()
    assert "no .py files" in error_of(["score", "--corpus", str(tmp_path / "empty"), "--data", str(tmp_path / "d2")])
    assert "expected i/N" in error_of(["score", "--shard", "two", "--data", str(tmp_path / "d3")])
    assert "0 <= i < N" in error_of(["score", "--shard", "3/2", "--data", str(tmp_path / "d3")])
    assert "no recipe 'dpo'" in error_of(["train", "--method", "dpo"])
    assert "objective.name" in error_of(["train", "objective.name=dpo"])
    assert "no model in" in error_of(["sample", "--model", str(tmp_path)])
    assert "0 < FRACTION < 1" in error_of(["experiment", "--finetune", "conditional@1.5", "--output", str(tmp_path)])


def test_only_phf_errors_become_one_line_errors(monkeypatch, tmp_path):
    """A PHFError is about the user's input: one line, exit status 1. Any other exception is a bug in phf and keeps
    its traceback, a ValueError or FileNotFoundError of an internal check too."""
    import phf.cli
    from phf.errors import PHFError

    for bug in (ValueError("an internal check failed"), FileNotFoundError("phf's own file"), KeyError("key")):
        def broken(a, bug=bug):
            raise bug
        monkeypatch.setattr(phf.cli, "cmd_score", broken)
        with pytest.raises(type(bug)) as raised:
            main(["score"])
        assert raised.value is bug

    def refused(a):
        raise PHFError("--shard two: expected i/N, e.g. 0/4")
    monkeypatch.setattr(phf.cli, "cmd_score", refused)
    assert error_of(["score"]) == "phf score: error: --shard two: expected i/N, e.g. 0/4"
    # the whole command, as a shell sees it
    done = subprocess.run([sys.executable, "-m", "phf.cli", "sample", "--model", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"phf sample: error: no model in {tmp_path / 'nope'}")


def test_malformed_prompt_line_is_named(tmp_path, tiny_mle_model):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"text": "def f():\\n"}\n{"text": oops}\n')
    assert f"{prompts}:2: not valid JSON" in error_of(["sample", "--model", str(tiny_mle_model),
                                                       "--prompts", str(prompts)])


def test_experiment_end_to_end_with_a_finetuning_arm_report_and_reuse(capsys, tmp_path, corpus_dir):
    argv = ["experiment", "--methods", "mle", "conditional", "--finetune", "conditional@0.5", "--output", str(tmp_path),
            f"data.corpus={corpus_dir}", "evaluation.curve_points=2", "evaluation.curve_samples=2", *TINY]
    main(argv)
    out = capsys.readouterr().out
    assert "| mle |" in out and "| conditional |" in out and "| mle-then-conditional-0.5 |" in out
    summary = json.loads((tmp_path / "results.json").read_text())
    results = summary["results"]
    assert list(results) == ["mle", "conditional", "mle-then-conditional-0.5"]
    assert results["conditional"]["heldout_loss"] > 0 and "heldout_loss_tagged" in results["conditional"]
    # the corpus's violations by code, read from the training split's files (the hand-made corpus's BAD ones)
    corpus = summary["corpus_causes"]
    assert corpus["documents"] > 0 and corpus["per_1000_chars"]["E231"] > 0
    assert corpus == json.loads((tmp_path / "data" / "scored" / "causes.json").read_text())
    assert "share beyond the corpus's rate of each cause" in out
    # the finetuning arm starts from the MLE arm at half the budget and ends at the same total
    assert results["mle-then-conditional-0.5"]["tokens_seen"] == results["mle"]["tokens_seen"] == 1024
    ft_log = (tmp_path / "mle-then-conditional-0.5" / "log.jsonl").read_text().splitlines()
    assert json.loads(ft_log[0])["num_tokens"] == 512 + 128
    assert (tmp_path / "report" / "index.html").exists() and (tmp_path / "report" / "pareto.png").exists()
    stamp = (tmp_path / "mle" / "eval" / "metrics.json").stat().st_mtime_ns
    main(argv)  # a second run reuses the finished arms
    assert (tmp_path / "mle" / "eval" / "metrics.json").stat().st_mtime_ns == stamp


def test_experiment_with_kl_from_a_longer_mle_and_red_teaming(capsys, tmp_path, corpus_dir):
    argv = ["experiment", "--methods", "mle", "conditional", "--kl-reference", "longer-mle", "--redteam",
            "--output", str(tmp_path), f"data.corpus={corpus_dir}", "evaluation.kl_samples=4",
            "redteam.rounds=3", "redteam.new_prompts_per_round=2", "redteam.continuations_per_prompt=1",
            "redteam.red_max_new_tokens=8", *TINY]
    main(argv)
    data = json.loads((tmp_path / "results.json").read_text())
    reference = tmp_path / "reference-mle-2x" / "model"
    assert data["kl_reference"] == str(reference.resolve())
    assert json.loads((reference / "phf.json").read_text())["tokens_seen"] == 2048  # twice the arms' budget
    for arm in ("mle", "conditional"):
        m = data["results"][arm]
        assert m["kl_per_char"] is not None and m["kl_per_char_se"] is not None and m["kl_samples"] > 0
        assert len(m["redteam"]["pool_mean"]) == 3 and m["redteam"]["red_lm"] == str(reference.resolve())
    page = (tmp_path / "report" / "index.html").read_text()
    assert 'id="pareto-kl-plot"' in page and 'id="redteam-plot"' in page
    assert "KL nats/char" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["sample", "evaluate", "redteam"])
def test_commands_on_a_model_start_from_the_config_it_was_trained_with(command, tmp_path):
    """One rule: the run folder's config.yaml, else --task's recipe; --method picks a recipe instead."""
    import yaml

    from phf.cli import _model_config, build_parser
    from phf.config import load_config

    trained = load_config("toxicity", "conditional", ["sampling.max_new_tokens=7"]).model_dump()
    (tmp_path / "model").mkdir()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(trained))
    parse = build_parser().parse_args
    cfg = _model_config(parse([command, "--model", str(tmp_path / "model"), "sampling.top_p=0.5"]))
    assert (cfg.scorer.name, cfg.sampling.max_new_tokens, cfg.sampling.top_p) == ("profanity", 7, 0.5)
    cfg = _model_config(parse([command, "--model", str(tmp_path / "model"), "--method", "mle"]))
    assert (cfg.scorer.name, cfg.objective.name) == ("pep8", "mle")  # --task's recipe (pep8)
    cfg = _model_config(parse([command, "--model", str(tmp_path / "elsewhere" / "model"), "--task", "pii"]))
    assert cfg.scorer.name == "pii"  # no config.yaml: --task's recipe
