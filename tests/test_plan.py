"""The paper's full-scale presets and `--dry-run`: the presets load and validate for every method of every task,
with the paper's settings; a plan counts what `phf train` then does (parameters, steps, batches) and writes
nothing."""

from __future__ import annotations

import json

import pytest
import torch

from phf.cli import main
from phf.config import ConfigError, load_config, methods_of
from phf.training.plan import ACTIVATION_BYTES, STATE_BYTES, plan_training, with_throughput
from phf.training.train import train
from tests.helpers import error_of, tiny_config

GPT2_SMALL = 124_439_808  # GPT-2 small's parameters (vocabulary 50257, embeddings tied)


@pytest.mark.parametrize("task", ["pep8", "toxicity", "pii"])
def test_the_paper_preset_validates_for_every_method_and_plans_its_steps(task):
    for method in methods_of(task):
        cfg = load_config(task, method, preset="paper")
        assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.block_size) == (12, 768, 1024)
        assert cfg.training.num_tokens == 3_300_000_000 and cfg.evaluation.num_samples == 4096
        plan = with_throughput(cfg, plan_training(cfg), 100_000.0)
        assert plan.steps == 3_300_000_000 // (cfg.training.batch_size * 1024)
        assert plan.micro_batch * plan.accumulation == cfg.training.batch_size
        assert plan.hours == pytest.approx(plan.tokens / 100_000 / 3600)


def test_the_paper_settings_differ_by_objective_as_the_paper_ran_them():
    tox = {m: load_config("toxicity", m, preset="paper") for m in ("mle", "conditional", "rwr", "awr")}
    assert tox["conditional"].objective.threshold == 5.6e-4 and tox["conditional"].objective.drop_token_fraction == 0.01
    assert (tox["mle"].training.learning_rate, tox["mle"].training.batch_size) == (5e-4, 64)
    assert (tox["awr"].training.learning_rate, tox["awr"].training.batch_size) == (1e-3, 1024)
    assert tox["rwr"].training.batch_size == 1024 and tox["awr"].objective.beta == 10
    pep8 = load_config("pep8", "conditional", preset="paper")
    assert pep8.training.learning_rate == 8e-4 and pep8.objective.drop_token_fraction == 0.1
    assert load_config("pii", "awr", preset="paper").objective.beta == 0.1
    assert load_config("toxicity", "mle", preset="paper").data.corpus == "tomekkorbak/pile-detoxify"


def test_gpt2_small_has_its_parameters_and_the_two_control_tokens():
    plan = plan_training(load_config("toxicity", "conditional", preset="paper"))
    assert plan.vocab_size == 50257 + 2  # gpt2's, and the two control tokens
    assert plan.parameters == GPT2_SMALL + 2 * 768


def test_a_recipe_that_extends_another_keeps_what_it_changes_under_a_preset():
    graded = load_config("toxicity", "conditional-graded", preset="paper").objective
    assert graded.threshold == "p25" and graded.num_levels == 4  # the recipe's own, not the paper's 5.6e-4
    assert graded.drop_token_fraction == 0.01
    assert load_config("toxicity", "conditional-guided-w3", preset="paper").sampling.guidance == 3


def test_a_preset_is_named_or_refused_with_what_exists(tmp_path):
    with pytest.raises(ConfigError, match="no preset 'big' for task 'pep8'; available: paper"):
        load_config("pep8", "mle", preset="big")
    bad = tmp_path / "bad.yaml"
    bad.write_text("objectives:\n  ppo: {training: {learning_rate: 1.0}}\n")
    with pytest.raises(ConfigError, match=r"objectives must map objective names .* got \['ppo'\]"):
        load_config("pep8", "mle", preset=str(bad))
    mine = tmp_path / "mine.yaml"
    mine.write_text("training: {num_tokens: 5000}\nobjectives:\n  awr: {training: {learning_rate: 0.5}}\n")
    assert load_config("pep8", "awr", preset=str(mine)).training.learning_rate == 0.5
    assert load_config("pep8", "mle", preset=str(mine)).training.num_tokens == 5000


def test_the_plan_counts_what_training_does(data_dir, tmp_path):
    cfg = tiny_config("conditional")
    plan = with_throughput(cfg, plan_training(cfg), None)  # measured here: a few steps of the tiny model
    model_dir = train(cfg, data_dir, tmp_path / "run")
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(model_dir)
    assert plan.vocab_size == trained.config.vocab_size  # the BPE's 300 tokens, control tokens among them
    assert plan.parameters == sum(p.numel() for p in trained.parameters())
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert plan.steps == max(steps) and plan.tokens == json.loads((model_dir / "phf.json").read_text())["tokens_seen"]
    assert plan.throughput > 0 and plan.device == "cpu"


def test_gpt2_smalls_memory_against_hand_computed_figures():
    """16 bytes a parameter of weights, gradients and AdamW state; bf16 copies; 34 bytes per token, layer and unit
    of width of activations (Korthikanti et al. 2022, flash attention); the LM head's gradient over its budget, so
    one chunk's logits. Planned for a GPU from this CPU: bf16 there whatever this machine computes."""
    cfg = load_config("toxicity", "mle", preset="paper")
    plan = plan_training(cfg, device="cuda")
    n = GPT2_SMALL + 2 * 768
    assert plan.bf16 and plan.micro_batch == 16
    assert plan.memory == {"weights, gradients and AdamW": 16 * n, "bf16 copies of the weights": 2 * n,
                           "activations": 34 * 16 * 1024 * 768 * 12, "LM head": 3 * 4 * 512 * 50259}
    assert STATE_BYTES == 16 and ACTIVATION_BYTES == 34
    fp32 = plan_training(load_config("toxicity", "mle", ["training.bf16=false"], preset="paper"), device="cuda")
    assert fp32.memory["activations"] == 2 * plan.memory["activations"]
    assert not fp32.memory["bf16 copies of the weights"]
    # 6N + 6 L T C, N without the position embedding (a lookup; the tied token embedding is the LM head's matmul)
    assert plan.flops_per_token == 6 * (n - 1024 * 768) + 6 * 12 * 1024 * 768


def test_dry_runs_print_the_plan_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--task", "toxicity", "--method", "awr", "--preset", "paper", "--dry-run", "--processes", "8",
          "--throughput", "1e6", "--output", str(out)])
    text = capsys.readouterr().out
    assert "3,147 (3,299,868,672 tokens)" in text and "8 process(es) x 16 sequences x 8 accumulation steps" in text
    assert "124.4M parameters" in text and "55.0 minutes of training at 1,000,000 tokens/s, as given" in text
    main(["experiment", "--task", "pii", "--preset", "paper", "--dry-run", "--throughput", "2e5", "--output",
          str(tmp_path / "exp"), "--kl-reference", "longer-mle", "--methods", "mle", "conditional",
          "conditional-guided-w3", "training.seed=3"])
    text = capsys.readouterr().out
    assert "| mle | mle | 50,354 | 64 | 0.0005 |" in text and "evaluates conditional's model" in text
    assert "| reference-mle-2x | mle | 100,708 |" in text  # the longer MLE, trained first, on twice the budget
    assert "Training: 18.3 hours in all, one arm at a time" in text
    assert not out.exists() and not (tmp_path / "exp").exists()
    assert "is neither a local model folder nor in the local cache" in error_of(
        ["train", "--dry-run", "--throughput", "1", "--init-from", "no-such/model"])
    assert "needs an even head width (model.n_embd / model.n_head = 36 / 4 = 9)" in error_of(
        ["train", "--dry-run", "--throughput", "1", "model.architecture=llama", "model.n_embd=36", "model.n_head=4"])
    if not torch.cuda.is_available():
        assert "a throughput cannot be measured here; give --throughput" in error_of(
            ["train", "--dry-run", "--device", "cuda"])
    for flag, value in (("--processes", "0"), ("--throughput", "-5"), ("--throughput", "0")):
        with pytest.raises(SystemExit):
            main(["train", "--dry-run", flag, value])
        assert f"expected a positive {'int' if flag == '--processes' else 'float'}, got '{value}'" in \
            capsys.readouterr().err


def test_a_preset_is_refused_where_a_model_brings_its_own_config(tiny_mle_model):
    assert "--preset lays a preset over a recipe" in error_of(
        ["sample", "--model", str(tiny_mle_model), "--preset", "paper"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a GPU measures the plan's memory estimate")
def test_the_memory_estimate_is_near_the_measured_peak_on_a_gpu():
    cfg = load_config("toxicity", "mle", ["training.micro_batch_size=8"], preset="paper")
    plan = with_throughput(cfg, plan_training(cfg), None)
    assert 0.5 < plan.measured_memory / sum(plan.memory.values()) < 2
