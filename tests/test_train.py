"""Training end to end on a tiny model: parameters move, resume is exact, control tokens are initialised."""

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, set_seed

import phf.training.train as train_module
from phf.data.tokenizer import ALIGNED, MISALIGNED, load_tokenizer
from phf.evaluation.evaluate import evaluate
from phf.sampling.generate import load_model, sample
from phf.training.model import build_model
from phf.training.train import train
from tests.conftest import tiny_config


def losses(run_dir):
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if "loss" in r}


@pytest.mark.parametrize("method", ["mle", "filtering", "conditional"])
def test_every_objective_trains_every_parameter(method, data_dir, tmp_path):
    cfg = tiny_config(method, "objective.filter_threshold=p75")
    model_dir = train(cfg, data_dir, tmp_path)
    set_seed(cfg.training.seed)  # train() initialises the model right after the same call
    initial = build_model(cfg.model, load_tokenizer(str(model_dir)))
    trained = AutoModelForCausalLM.from_pretrained(model_dir)
    for (name, before), after in zip(initial.named_parameters(), trained.parameters()):
        assert not torch.equal(before, after), f"{method}: {name} did not change"
        assert torch.isfinite(after).all()
    assert all(map(lambda l: l == l, losses(tmp_path).values()))  # no NaN
    info = json.loads((model_dir / "phf.json").read_text())
    assert info["objective"] == method and info["tokens_seen"] == 1024


def test_resume_reproduces_an_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    cfg = tiny_config("mle", "training.num_tokens=1024", "training.save_steps=4")  # 8 steps, checkpoint at 4
    train(cfg, data_dir, tmp_path / "straight")

    class Crash(train_module.JsonlLogger):
        def on_save(self, args, state, control, **kwargs):
            raise KeyboardInterrupt  # killed right after the checkpoint of step 4

    monkeypatch.setattr(train_module, "JsonlLogger", Crash)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data_dir, tmp_path / "resumed")
    monkeypatch.undo()
    assert (tmp_path / "resumed" / "checkpoint-4").exists()
    train(cfg, data_dir, tmp_path / "resumed", resume=True)
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert sorted(resumed) == sorted(straight) == list(range(1, 9))
    for step in range(5, 9):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-5)


def test_conditional_model_samples_and_evaluates(data_dir, tmp_path):
    cfg = tiny_config("conditional", f"evaluation.prompts={tmp_path / 'prompts.jsonl'}")
    (tmp_path / "prompts.jsonl").write_text('{"text": "def f(a,b):\\n"}\n')
    model_dir = train(cfg, data_dir, tmp_path / "run")
    loaded = load_model(model_dir)
    assert loaded.conditional and not loaded.model.training
    texts = sample(loaded, cfg.sampling, ["", "x = 1\n"])
    assert len(texts) == 2 and not any(ALIGNED in t or MISALIGNED in t for t in texts)
    metrics = evaluate(model_dir, cfg, tmp_path / "eval", data_dir)
    assert metrics["unconditional"]["num_samples"] == 4 and metrics["prompted"]["num_samples"] == 1
    assert metrics["heldout_loss"] > 0
    records = [json.loads(l) for l in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    assert [r["scenario"] for r in records] == ["unconditional"] * 4 + ["prompted"]
    assert records[-1]["prompt"] == "def f(a,b):\n"


def test_misaligned_token_is_never_sampled(data_dir, tmp_path):
    cfg = tiny_config("conditional")
    loaded = load_model(train(cfg, data_dir, tmp_path))
    misaligned = loaded.tokenizer.convert_tokens_to_ids(MISALIGNED)
    with torch.no_grad():  # make <|misaligned|> the model's favourite token
        loaded.model.lm_head.weight[misaligned] = 100 * loaded.model.lm_head.weight.abs().max()
    original_decode = loaded.tokenizer.decode
    seen = []
    loaded.tokenizer.decode = lambda ids, **kw: seen.append(list(ids)) or original_decode(ids, **kw)
    sample(loaded, cfg.sampling, [""] * 4)
    assert seen and all(misaligned not in ids for ids in seen)


def test_control_tokens_added_to_a_pretrained_model_start_at_the_mean(tmp_path):
    # a local "pretrained" tokenizer and model that know nothing of control tokens
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(["def f(x):\n    return x\n"] * 20, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(tmp_path)
    base = GPT2LMHeadModel(GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=16, n_layer=1, n_head=2))
    base.save_pretrained(tmp_path)

    tokenizer = load_tokenizer(str(tmp_path))
    assert len(tokenizer) == tok.get_vocab_size() + 2
    model = build_model(tiny_config().model.model_copy(update={"init_from": str(tmp_path)}), tokenizer)
    emb = model.get_input_embeddings().weight
    old, new = emb[:-2], emb[-2:]
    assert emb.shape[0] == len(tokenizer)
    assert torch.allclose(new, old.mean(0).expand_as(new), atol=1e-3)
    assert not torch.equal(new[0], new[1])  # small noise, not identical copies
