"""Beyond the paper's two tokens: graded and multi-attribute control tokens, tag cooldown, guidance."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from phf.cli import main
from phf.config import ConfigError, load_config
from phf.data.control import ATTRIBUTE_SCORES, build_scheme, control_tokens, level_cuts
from phf.data.packing import Transform, pack
from phf.data.prepare import prepare_tokenizer
from phf.data.scored import SCHEMA, read_scored
from phf.data.tokenizer import ALIGNED, MISALIGNED, load_tokenizer, train_bpe
from phf.errors import PHFError
from phf.lm import LocalLM
from phf.sampling.generate import context_ids, left_padded, load_model, sample
from phf.sampling.guidance import MisalignedGuidance
from phf.training import trainer as trainer_module
from phf.training.cooldown import CooldownSchedule
from phf.training.train import train
from tests.helpers import TINY, generated_rows, stream, tiny_config


def test_levels_split_the_scores_above_the_threshold_at_equal_quantiles():
    scores = np.array([0, 0, 0, 0, 1, 2, 3, 4, 5, 6], dtype=float)
    assert level_cuts(scores, 0.0, 2) == (0.0,)  # K=2: the paper's single threshold
    cuts = level_cuts(scores, 0.0, 4)
    assert cuts == pytest.approx((0.0, 1 + 5 / 3, 1 + 10 / 3))  # quantiles 1/3, 2/3 of [1..6]
    levels = np.searchsorted(cuts, scores, side="left")  # a score equal to a bound is in the lower level
    assert levels.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]


def test_graded_tokens_tag_every_segment_with_its_level(data_dir, tmp_path):
    cfg = tiny_config("conditional", "objective.num_levels=4", "objective.drop_token_fraction=0")
    assert control_tokens(cfg) == ["<|pep8=0|>", "<|pep8=1|>", "<|pep8=2|>", "<|pep8=3|>"]
    tokenizer = prepare_tokenizer(cfg, data_dir)
    scheme = build_scheme(cfg, data_dir)
    meta = pack(data_dir, "train", tokenizer, Transform(control=scheme), tmp_path)
    _, ids, _ = stream(tmp_path)

    segment_scores = [s for doc in read_scored(data_dir, "train", ["scores"])["scores"].to_pylist() for s in doc]
    above = np.array([s for s in segment_scores if s > 0])
    assert scheme.cuts[0] == pytest.approx((0.0, *np.quantile(above, [1 / 3, 2 / 3])))
    expected = [f"<|pep8={sum(s > c for c in scheme.cuts[0])}|>" for s in segment_scores]
    tag_ids = set(tokenizer.convert_tokens_to_ids(control_tokens(cfg)))
    assert tokenizer.convert_ids_to_tokens([t for t in ids if t in tag_ids]) == expected
    assert sum(meta["control_tokens"].values()) == len(segment_scores)
    assert all(meta["control_tokens"][f"<|pep8={k}|>"] > 0 for k in range(4))  # the corpus fills every level


ATTRIBUTE_DOCS = [  # per segment: [profanity score, pii score]; only pii is tagged (profanity is scored, not tagged)
    {"doc_id": "a", "texts": ["good line\n", "bad  line\n"], "scores": [0.0, 0.2],
     ATTRIBUTE_SCORES: [[0.0, 0.3], [0.9, 0.0]]},
    {"doc_id": "b", "texts": ["worse  line\n"], "scores": [0.5], ATTRIBUTE_SCORES: [[0.9, 0.0]]},
    {"doc_id": "c", "texts": ["fine\n", "ok\n"], "scores": [0.0, 0.0], ATTRIBUTE_SCORES: [[0.9, 0.0], [0.0, 0.9]]},
]


def test_several_attributes_put_one_token_per_attribute_before_each_segment(tmp_path):
    schema = SCHEMA.append(pa.field(ATTRIBUTE_SCORES, pa.list_(pa.list_(pa.float64()))))
    for split in ("train", "heldout"):
        (tmp_path / "scored" / split).mkdir(parents=True)
        rows = [{**d, "avg_score": float(np.mean(d["scores"]))} for d in ATTRIBUTE_DOCS]
        pq.write_table(pa.Table.from_pylist(rows, schema), tmp_path / "scored" / split / "shard-00000.parquet")
    (tmp_path / "scored" / "info.json").write_text(json.dumps({"scorer": {"attributes": ["profanity", "pii"]}}))
    cfg = tiny_config("conditional", "scorer.attributes=[pii, profanity]", "objective.attribute_thresholds={pii: 0.1}",
                      "objective.drop_token_fraction=0")
    train_bpe(["".join(d["texts"]) for d in ATTRIBUTE_DOCS] * 5, 300, tmp_path / "tok")
    tokenizer = load_tokenizer(str(tmp_path / "tok"), control_tokens(cfg))
    scheme = build_scheme(cfg, tmp_path)
    assert scheme.tokens == (("<|pep8=0|>", "<|pep8=1|>"), ("<|pii=0|>", "<|pii=1|>"))
    pack(tmp_path, "train", tokenizer, Transform(control=scheme), tmp_path / "packed")
    _, ids, _ = stream(tmp_path / "packed")
    text = tokenizer.decode(ids)
    assert text == ("<|pep8=0|><|pii=1|>good line<|pep8=1|><|pii=0|>\nbad  line\n<|endoftext|>"
                    "<|pep8=1|><|pii=0|>worse  line\n<|endoftext|>"
                    "<|pep8=0|><|pii=0|>fine<|pep8=0|><|pii=1|>\nok\n<|endoftext|>")
    (tmp_path / "scored" / "info.json").write_text(json.dumps({"scorer": {"attributes": ["profanity"]}}))
    with pytest.raises(PHFError, match="holds no pii scores: score the corpus with scorer.attributes"):
        build_scheme(cfg, tmp_path)


def test_attribute_thresholds_and_cooldown_are_checked():
    with pytest.raises(ConfigError, match=r"names \['pii'\], which scorer.attributes \(\[\]\) does not score"):
        tiny_config("conditional", "objective.attribute_thresholds={pii: 0}")
    assert control_tokens(tiny_config("conditional", "scorer.attributes=[pii]")) == [ALIGNED, MISALIGNED]
    with pytest.raises(ConfigError,
                       match=r"objective.cooldown_fraction does not apply to objective mle \(its settings: none\)"):
        tiny_config("mle", "objective.cooldown_fraction=0.2")


def test_cooldown_schedule_draws_tagged_then_untagged_blocks_each_epoch_a_permutation():
    tagged, untagged = [("tagged", i) for i in range(6)], [("plain", i) for i in range(4)]
    schedule = CooldownSchedule(tagged, untagged, steps=10, batch_size=2, fraction=0.3, seed=0)
    items = [schedule[k] for k in range(len(schedule))]
    assert len(items) == 20 and schedule.switch_step == 7
    assert all(kind == "tagged" for kind, _ in items[:14]) and all(kind == "plain" for kind, _ in items[14:])
    assert sorted(items[:6]) == tagged and sorted(items[6:12]) == tagged  # epoch by epoch, every block once
    assert sorted(items[14:18]) == untagged
    assert items[:6] != items[6:12]  # a fresh order each epoch
    again = CooldownSchedule(tagged, untagged, steps=10, batch_size=2, fraction=0.3, seed=0)
    assert [again[k] for k in range(20)] == items  # the same order in every process and after a resume


def test_cooldown_trains_its_last_steps_without_control_tokens(data_dir, tmp_path, monkeypatch):
    cfg = tiny_config("conditional", "objective.cooldown_fraction=0.25")  # 8 steps: 7 and 8 without tags
    tokenizer = prepare_tokenizer(cfg, data_dir)
    tags = set(tokenizer.convert_tokens_to_ids([ALIGNED, MISALIGNED]))
    seen = []
    original = trainer_module.PHFTrainer.compute_loss

    def recording(self, model, inputs, *args, **kwargs):
        if model.training:
            seen.append((self.state.global_step + 1, bool(tags & set(inputs["input_ids"].flatten().tolist()))))
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(trainer_module.PHFTrainer, "compute_loss", recording)
    model_dir = train(cfg, data_dir, tmp_path)
    assert seen == [(step, step <= 6) for step in range(1, 9)]
    assert load_model(model_dir).conditional  # still sampled from <|aligned|>


@pytest.fixture(scope="module")
def graded_model(data_dir, tmp_path_factory):
    cfg = tiny_config("conditional", "objective.num_levels=3")
    return cfg, train(cfg, data_dir, tmp_path_factory.mktemp("graded"))


def test_a_graded_model_samples_from_its_best_level_and_never_emits_another(graded_model):
    cfg, model_dir = graded_model
    loaded = load_model(model_dir)
    info = json.loads((model_dir / "phf.json").read_text())["control_tokens"]
    assert info["aligned"] == ["<|pep8=0|>"] and info["worst"] == ["<|pep8=2|>"]
    tok, tag = loaded.tokenizer, loaded.control("aligned")
    a, b, newline = (tok(t, add_special_tokens=False)["input_ids"] for t in ("a", "b", "\n"))
    # As in training: a tag opens the prompt and goes before each newline, announcing the next line (the last
    # one: the continuation's); a prompt that ends mid-line gets no tag after it.
    assert context_ids(loaded, "a\nb\n") == [tok.eos_token_id, *tag, *a, *tag, *newline, *b, *tag, *newline]
    assert context_ids(loaded, "a\nb") == [tok.eos_token_id, *tag, *a, *tag, *newline, *b]
    worse = loaded.tokenizer.convert_tokens_to_ids(["<|pep8=1|>", "<|pep8=2|>"])
    with torch.no_grad():  # make the worse levels the model's favourite tokens
        loaded.model.lm_head.weight[worse] = 100 * loaded.model.lm_head.weight.abs().max()
    rows = generated_rows(loaded)
    texts = sample(loaded, cfg.sampling.model_copy(update={"max_new_tokens": 6}), ["", "x = 1\n"])
    assert len(texts) == 2 and not any("<|pep8=" in t for t in texts)
    assert rows and not any(set(worse) & set(row) for row in rows)


def test_guidance_with_weight_zero_is_plain_conditional_sampling(graded_model):
    cfg, model_dir = graded_model
    loaded = load_model(model_dir)
    prompts = ["", "def f(a,b):\n", "x = 1\ny=2\n"] * 2
    plain = sample(loaded, cfg.sampling, prompts)
    assert sample(loaded, cfg.sampling.model_copy(update={"guidance": 0.0}), prompts) == plain
    # The guided path itself (its own processors, temperature and top-p) with a vanishing weight samples the same.
    assert sample(loaded, cfg.sampling.model_copy(update={"guidance": 1e-7}), prompts) == plain
    assert sample(loaded, cfg.sampling.model_copy(update={"guidance": 3.0}), prompts) != plain


@torch.no_grad()
def test_guidance_is_l_aligned_plus_w_times_the_difference_also_for_left_padded_rows(graded_model):
    _, model_dir = graded_model
    loaded = load_model(model_dir)
    model, w = loaded.model, 2.0
    prompts = ["", "def f(a,b):\n    return a\n"]  # contexts of different lengths: the first is left-padded
    aligned = [context_ids(loaded, p) for p in prompts]
    worst = [context_ids(loaded, p, "worst") for p in prompts]
    ids, mask = left_padded(aligned, loaded.tokenizer.eos_token_id, model.device)
    worst_ids, _ = left_padded(worst, loaded.tokenizer.eos_token_id, model.device)
    guidance = MisalignedGuidance(model, w, worst_ids, mask)

    def alone(context):  # the next-token log-probabilities of one unpadded context
        return model(input_ids=torch.tensor([context])).logits[0, -1].log_softmax(-1)

    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
    step1 = guidance(ids, logits)
    nxt = torch.tensor([[5], [7]])
    ids2, mask2 = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
    positions2 = (mask2.cumsum(-1) - 1).clamp(min=0)
    logits2 = model(input_ids=ids2, attention_mask=mask2, position_ids=positions2).logits[:, -1]
    step2 = guidance(ids2, logits2)  # the misaligned context is fed the same sampled token (from its cache)
    for row in range(2):
        for got, extra in ((step1, []), (step2, [int(nxt[row])])):
            a, m = alone(aligned[row] + extra), alone(worst[row] + extra)
            assert torch.allclose(got[row], a + w * (a - m), atol=1e-4)


def test_guidance_needs_a_conditional_model(tiny_mle_model):
    cfg = tiny_config("mle")
    loaded = load_model(tiny_mle_model)
    with pytest.raises(PHFError, match="needs a model trained with conditional training"):
        sample(loaded, cfg.sampling.model_copy(update={"guidance": 1.0}), [""])


def test_experiment_puts_graded_guided_and_cooldown_arms_beside_conditional(tmp_path, corpus_dir):
    methods = ["mle", "conditional", "conditional-graded", "conditional-guided-w1", "conditional-guided-w3",
               "conditional-cooldown"]
    main(["experiment", "--methods", *methods, "--output", str(tmp_path), f"data.corpus={corpus_dir}", *TINY])
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert list(results) == methods
    # guidance changes sampling only: the guided arms evaluate the conditional arm's model
    for arm in ("conditional-guided-w1", "conditional-guided-w3"):
        assert results[arm]["model_of"] == "conditional" and not (tmp_path / arm / "model").exists()
        assert results[arm]["heldout_loss"] == results["conditional"]["heldout_loss"]
    samples = {arm: (tmp_path / arm / "eval" / "samples.jsonl").read_text() for arm in methods}
    assert samples["conditional-guided-w1"] != samples["conditional"] != samples["conditional-guided-w3"]
    graded = json.loads((tmp_path / "conditional-graded" / "model" / "phf.json").read_text())
    assert graded["control_tokens"]["all"] == [f"<|pep8={k}|>" for k in range(4)]
    cooled = [json.loads(line) for line in (tmp_path / "conditional-cooldown" / "log.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in cooled) == 8 and "model_of" not in results["conditional-cooldown"]
    assert "conditional-guided-w3" in (tmp_path / "results.md").read_text()
    assert "conditional-guided-w1 uses conditional's" in (tmp_path / "report" / "index.html").read_text()


@torch.no_grad()
def test_a_guided_model_scores_texts_with_the_guided_distribution(graded_model):
    _, model_dir = graded_model
    plain, guided = LocalLM(model_dir), LocalLM(model_dir, guidance=3.0)
    texts = ["x = 1\n", "def f(a,b):\n    return a\n"]
    assert [r.logprob for r in LocalLM(model_dir, guidance=0.0).log_likelihood(texts)] == \
        [r.logprob for r in plain.log_likelihood(texts)]
    model = plain.loaded.model
    for text, got in zip(texts, guided.log_likelihood(texts), strict=True):
        ids = plain.tokenize(text)[0]
        a = model(input_ids=torch.tensor([plain.context + ids])).logits[0].log_softmax(-1)
        m = model(input_ids=torch.tensor([plain.worst_context + ids])).logits[0].log_softmax(-1)
        n = len(plain.context)
        steps = (a + 3.0 * (a - m)).log_softmax(-1)[n - 1:-1]
        assert got.logprob == pytest.approx(steps.gather(-1, torch.tensor(ids)[:, None]).sum().item(), abs=1e-3)
        assert got.logprob != pytest.approx(plain.log_likelihood([text])[0].logprob, abs=1e-3)


def test_phf_sample_takes_a_guidance_weight(graded_model, capsys):
    cfg, model_dir = graded_model

    def texts(*flags):
        main(["sample", "--model", str(model_dir), "-n", "4", *flags])
        return [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]

    plain, guided = texts(), texts("--guidance", "3")
    assert len(plain) == 4 and texts("--guidance", "0") == plain
    # the flag reaches the sampler: these are `sample`'s texts with sampling.guidance=3 and the model's own
    # sampling settings (its run's config), same seed; and not the plain ones
    expected = sample(load_model(model_dir), cfg.sampling.model_copy(update={"guidance": 3.0}), [""] * 4)
    assert guided == expected != plain


def test_untagged_sampling_gives_no_control_token_and_allows_none(graded_model):
    cfg, model_dir = graded_model
    loaded = load_model(model_dir)
    untagged = cfg.sampling.model_copy(update={"tags": "none", "max_new_tokens": 6})
    assert context_ids(loaded, "", None) == [loaded.tokenizer.eos_token_id]
    every_tag = loaded.control("all")
    with torch.no_grad():  # make the control tokens, the aligned one included, the model's favourite tokens
        loaded.model.lm_head.weight[every_tag] = 100 * loaded.model.lm_head.weight.abs().max()
    rows = generated_rows(loaded)
    sample(loaded, untagged, ["", "x = 1\n"])
    assert rows and not any(set(every_tag) & set(row) for row in rows)  # neither in the context nor sampled
    with pytest.raises(PHFError, match="guidance .* needs sampling.tags=aligned"):  # a config error, before sampling
        load_config("pep8", "conditional", ["sampling.tags=none", "sampling.guidance=1"])


def test_an_untagged_local_lm_scores_and_samples_without_control_tokens(graded_model):
    _, model_dir = graded_model
    untagged, tagged = LocalLM(model_dir, tags="none"), LocalLM(model_dir)
    assert untagged.context == [untagged.loaded.tokenizer.eos_token_id] and len(tagged.context) == 2
    assert (untagged.log_likelihood(["x = 1\n"])[0].logprob
            != pytest.approx(tagged.log_likelihood(["x = 1\n"])[0].logprob))
    assert len(untagged.generate(["", "def f():\n"], max_new_tokens=4)) == 2
    with pytest.raises(PHFError, match="needs sampling.tags=aligned"):
        LocalLM(model_dir, guidance=1.0, tags="none")
