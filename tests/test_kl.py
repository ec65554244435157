"""KL from a reference LM: the estimator against hand-computed numbers, its standard error against simulation,
the cache of the reference's side, and (with tiny trained models) the whole path through `phf evaluate`."""

import json
import math
import random
from pathlib import Path

import pytest
import torch

from phf.cli import main
from phf.data.tokenizer import ALIGNED
from phf.evaluation.kl import kl_from_reference, ratio_se
from phf.lm import LanguageModel, LocalLM, TextLogProb
from phf.scorers.segment import lines
from phf.training.train import train
from tests.helpers import tiny_config


class FakeLM(LanguageModel):
    """Generates fixed texts; log p(text) and its token count come from a table (text -> (logprob, tokens))."""

    def __init__(self, name, texts, table):
        self.name, self.texts, self.table = name, texts, table
        self.calls = {"generate": 0, "log_likelihood": 0}

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, seed=0):
        assert prompts == [""] * len(prompts) and temperature == 1.0 and top_p == 1.0  # unconditional, unbiased
        self.calls["generate"] += 1
        return self.texts[:len(prompts)]

    def log_likelihood(self, texts):
        self.calls["log_likelihood"] += 1
        assert all(texts), "empty texts must not be scored"
        return [TextLogProb(self.table[t][0], self.table[t][1], len(t)) for t in texts]


TEXTS = ["ab", "", "abcd", "abcdef"]
REF = {"ab": (-2.0, 1), "abcd": (-5.0, 2), "abcdef": (-9.0, 3)}
MODEL = {"ab": (-3.0, 1), "abcd": (-7.0, 2), "abcdef": (-10.0, 3)}  # d = 1, 2, 1 nats


def kl(model, reference, cache_dir, num_samples=4, **kw):
    return kl_from_reference(model, reference, num_samples, cache_dir, max_new_tokens=8, **kw)


def test_kl_of_a_model_from_itself_is_exactly_zero(tmp_path):
    lm = FakeLM("self", TEXTS, REF)
    out = kl(lm, lm, tmp_path)
    for unit in ("per_char", "per_sample", "per_token"):
        assert out[f"kl_{unit}"] == 0 and out[f"kl_{unit}_se"] == 0


def test_estimator_against_hand_computed_numbers(tmp_path):
    out = kl(FakeLM("model", [], MODEL), FakeLM("ref", TEXTS, REF), tmp_path)
    assert out["kl_reference"] == "ref" and out["kl_samples"] == 3 and out["kl_empty_samples"] == 1
    # per sample: mean of d = (1, 2, 1) = 4/3; s^2 = (1/9 + 4/9 + 1/9) / 2 = 1/3; se = sqrt(1/3 / 3) = 1/3
    assert out["kl_per_sample"] == pytest.approx(4 / 3) and out["kl_per_sample_se"] == pytest.approx(1 / 3)
    # per char: R = 4 / 12; residuals d - R chars = (1/3, 2/3, -1); se = sqrt((14/9) / (2 * 3)) / mean(chars) = / 4
    assert out["kl_per_char"] == pytest.approx(1 / 3)
    assert out["kl_per_char_se"] == pytest.approx(math.sqrt(7 / 27) / 4)
    # per token (tokens 1, 2, 3 under both): R = 4 / 6, same residuals, mean(tokens) = 2
    assert out["kl_per_token"] == pytest.approx(2 / 3)
    assert out["kl_per_token_se"] == pytest.approx(math.sqrt(7 / 27) / 2)


def test_ratio_standard_error_matches_the_spread_over_repeated_experiments():
    rng = random.Random(0)

    def experiment(n=100):
        chars = [rng.randint(5, 200) for _ in range(n)]
        return [0.3 * c + rng.gauss(0, 0.2 * c) for c in chars], chars

    estimates, ses = zip(*(ratio_se(*experiment()) for _ in range(1000)), strict=True)
    mean = sum(estimates) / len(estimates)
    spread = math.sqrt(sum((e - mean) ** 2 for e in estimates) / (len(estimates) - 1))
    assert mean == pytest.approx(0.3, abs=0.01)
    assert sum(ses) / len(ses) == pytest.approx(spread, rel=0.1)


def test_different_tokenisers_give_no_per_token_figure(tmp_path):
    char_level = {t: (lp, len(t)) for t, (lp, _) in MODEL.items()}
    out = kl(FakeLM("model", [], char_level), FakeLM("ref", TEXTS, REF), tmp_path)
    assert out["kl_per_token"] is None and out["kl_per_token_se"] is None
    assert out["kl_per_char"] == pytest.approx(1 / 3)


def test_only_empty_samples_give_no_figures(tmp_path):
    out = kl(FakeLM("model", [], MODEL), FakeLM("ref", ["", ""], REF), tmp_path, num_samples=2)
    assert out["kl_samples"] == 0 and out["kl_empty_samples"] == 2 and out["kl_per_char"] is None


def test_the_cache_spares_the_reference_and_gives_identical_numbers(tmp_path):
    model = FakeLM("model", [], MODEL)
    first = FakeLM("ref", TEXTS, REF)
    out = kl(model, first, tmp_path)
    assert first.calls == {"generate": 1, "log_likelihood": 1}
    [folder] = tmp_path.iterdir()
    assert (folder / "reference.jsonl").exists() and (folder / "built_from.json").exists()
    again = FakeLM("ref", TEXTS, REF)
    assert kl(model, again, tmp_path) == out
    assert again.calls == {"generate": 0, "log_likelihood": 0}
    # another seed (or sample count, length, temperature, reference) is another cache entry
    kl(model, again, tmp_path, seed=1)
    assert again.calls["generate"] == 1 and len(list(tmp_path.iterdir())) == 2


def test_a_retrained_local_reference_misses_the_cache(tmp_path):
    folder = tmp_path / "reference-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    model, reference = FakeLM("model", [], MODEL), FakeLM(str(folder), TEXTS, REF)
    kl(model, reference, tmp_path / "cache")
    kl(model, reference, tmp_path / "cache")
    assert reference.calls["generate"] == 1
    (folder / "model.safetensors").write_bytes(b"retrained weights")
    kl(model, reference, tmp_path / "cache")
    assert reference.calls["generate"] == 2


@pytest.fixture(scope="module")
def models(tmp_path_factory, data_dir):
    """Tiny phf models: MLE for 512 and 2048 tokens (the longer one is the reference), and a conditional one."""
    root = tmp_path_factory.mktemp("kl-models")
    return {"short": train(tiny_config("mle", "training.num_tokens=512"), data_dir, root / "short"),
            "long": train(tiny_config("mle", "training.num_tokens=2048"), data_dir, root / "long"),
            "conditional": train(tiny_config("conditional"), data_dir, root / "conditional")}


def local_kl(model, reference, cache_dir):
    return kl_from_reference(model, reference, 16, cache_dir, max_new_tokens=16)


def test_kl_of_a_local_model_from_itself_is_exactly_zero(models, tmp_path):
    out = local_kl(LocalLM(models["short"]), LocalLM(models["short"]), tmp_path)
    assert out["kl_samples"] > 0 and out["kl_per_char"] == out["kl_per_sample"] == out["kl_per_token"] == 0


def test_kl_from_an_mle_model_trained_longer(models, tmp_path):
    out = local_kl(LocalLM(models["short"]), LocalLM(models["long"]), tmp_path)
    assert out["kl_reference"] == str(models["long"]) and out["kl_samples"] + out["kl_empty_samples"] == 16
    assert 0 < out["kl_per_char"] < math.inf and out["kl_per_char_se"] > 0
    assert out["kl_per_token"] is not None  # models of one run share the tokenizer


def test_a_conditional_model_is_scored_after_the_aligned_token(models, tmp_path):
    reference, conditional, plain = (LocalLM(models[name]) for name in ("long", "conditional", "conditional"))
    assert conditional.context[-1] == conditional.loaded.tokenizer.convert_tokens_to_ids(ALIGNED)
    plain.context = plain.context[:-1]  # the same model scoring without `<|aligned|>`
    aligned, without = local_kl(conditional, reference, tmp_path), local_kl(plain, reference, tmp_path)
    assert aligned["kl_per_char"] != without["kl_per_char"]


def test_phf_evaluate_with_a_kl_reference_writes_kl_metrics(models, tmp_path):
    out = tmp_path / "eval"
    main(["evaluate", "--model", str(models["short"]), "--data", str(tmp_path / "no-data"), "--output", str(out),
          "--kl-reference", str(models["long"]), "--kl-samples", "8"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kl_reference"] == str(models["long"]) and metrics["kl_samples"] + metrics["kl_empty_samples"] == 8
    assert metrics["kl_per_char"] > 0 and "kl_per_token" in metrics
    assert len(list((out / "kl-cache").glob("*/reference.jsonl"))) == 1


def test_the_deployed_kl_scores_tags_before_every_line_but_counts_only_the_text(models, tmp_path):
    conditional = LocalLM(models["conditional"])
    texts = ["import os\ndef f():\n", "x = 1"]
    segmented = [["import os\n", "def f():\n"], ["x = 1"]]
    deployed = conditional.deployed_log_likelihood(segmented)
    # By hand: <|endoftext|> <|aligned|> import os <|aligned|> \n def f(): \n, tag positions left out (the last
    # line announces no next one).
    tok, tag = conditional.loaded.tokenizer, conditional.loaded.control("aligned")
    ids = [tok.eos_token_id, *tag, *conditional.tokenize("import os")[0], *tag, *conditional.tokenize("\n")[0],
           *conditional.tokenize("def f():\n")[0]]
    with torch.no_grad():
        logprobs = conditional.loaded.model(torch.tensor([ids])).logits.float().log_softmax(-1)[0]
    by_hand = sum(float(logprobs[p - 1, ids[p]]) for p in range(1, len(ids)) if ids[p] not in tag)
    assert deployed[0].logprob == pytest.approx(by_hand, abs=1e-4)
    assert deployed[0].chars == len(texts[0]) and deployed[0].tokens == len(ids) - 1 - 2
    out = kl_from_reference(conditional, LocalLM(models["long"]), 16, tmp_path, max_new_tokens=16,
                            deployed=lambda t: conditional.deployed_log_likelihood([lines(x) for x in t]))
    assert out["kl_per_char_deployed"] != out["kl_per_char"] and out["kl_per_char_deployed_se"] > 0
    with pytest.raises(ValueError, match="conditional model"):
        LocalLM(models["short"]).deployed_log_likelihood(segmented)


def test_kl_scores_the_model_already_loaded(tiny_mle_model, tmp_path, monkeypatch):
    """`phf evaluate` loads the evaluated model's weights once, also when it measures KL from a reference."""
    from transformers import AutoModelForCausalLM

    from phf.evaluation.evaluate import evaluate

    loads = []
    load = AutoModelForCausalLM.from_pretrained.__func__

    def counted(cls, path, *args, **kwargs):
        loads.append(Path(path).resolve())
        return load(cls, path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(counted))
    cfg = tiny_config("mle", f"evaluation.kl_reference={tiny_mle_model}", "evaluation.kl_samples=4")
    metrics = evaluate(tiny_mle_model, cfg, tmp_path / "eval", kl_cache_dir=tmp_path / "kl-cache")
    assert metrics["kl_per_char"] == 0  # the reference is the model itself
    assert loads == [tiny_mle_model.resolve()] * 2  # the evaluated model, then the reference
