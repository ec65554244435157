"""The nucleus sampler: transformers' top-p nucleus without its full sort, one uniform number per draw."""

import copy
import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, TopPLogitsWarper

from phf.config import SamplingConfig
from phf.model_folder import ModelInfo
from phf.sampling.generate import LoadedModel, sample
from phf.sampling.nucleus import NucleusSampler

INF = float("inf")


def ids(rows: int) -> torch.Tensor:  # the sequences so far: only TopPLogitsWarper's signature needs them
    return torch.zeros(rows, 1, dtype=torch.long)


def hf_nucleus(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    return TopPLogitsWarper(top_p)(ids(len(scores)), scores) > -INF


def exact_nucleus(logits: np.ndarray, temperature: float, top_p: float) -> np.ndarray:
    """The nucleus distribution, computed on its own: sort, keep the smallest most probable set holding top_p."""
    z = logits / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    above = np.cumsum(p[order]) - p[order]  # mass of the more probable tokens
    q = np.zeros_like(p)
    q[order[above < top_p]] = p[order[above < top_p]]
    return q / q.sum()


def draws(sampler: NucleusSampler, logits: torch.Tensor, n: int, chunk: int = 5000) -> np.ndarray:
    """Counts of n tokens drawn from one row of logits, through the processor as generate calls it."""
    counts = np.zeros(logits.shape[-1], dtype=np.int64)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        scores = sampler(ids(rows), logits.expand(rows, -1).clone())
        assert scores.amax(-1).eq(0).all() and scores.isneginf().sum(-1).eq(logits.shape[-1] - 1).all()
        counts += np.bincount(scores.argmax(-1).numpy(), minlength=logits.shape[-1])
    return counts


def tv_bound(q: np.ndarray, n: int, delta: float = 1e-6) -> float:
    """What the total variation of n draws of q from q may reach: its mean is at most sum sqrt(q (1 - q) / n) / 2
    (Jensen, E|X - nq| <= sd X), and one draw moves it by at most 1/n, so it exceeds that mean by t with
    probability at most exp(-2 n t^2) (McDiarmid)."""
    return float(np.sqrt(q * (1 - q) / n).sum() / 2 + math.sqrt(math.log(1 / delta) / (2 * n)))


def test_draws_follow_the_exact_nucleus_distribution_and_never_leave_it():
    torch.manual_seed(0)
    vocab, n = 500, 20_000
    peaked = torch.randn(vocab)
    peaked[:16] += torch.linspace(7, 5, 16)
    suppressed = peaked.clone()
    suppressed[[0, 2, 5]] = -INF  # as SuppressTokensLogitsProcessor leaves them, among the most probable
    suppressed[100:400] = -INF
    one_left = torch.full((vocab,), -INF)
    one_left[7] = 0.0
    rows = {"peaked": peaked, "flat": 0.5 * torch.randn(vocab), "suppressed": suppressed, "one left": one_left}
    sampler = NucleusSampler(0.7, 0.9, candidates=(10, 64))
    sizes = {}
    for name, logits in rows.items():
        scores = logits[None] / 0.7
        sizes[name] = int(hf_nucleus(scores, 0.9).sum())
        for k in (10, 64):
            assert len(sampler.nucleus(scores, scores.softmax(-1), k)[3]) == (sizes[name] >= k), name
        q = exact_nucleus(logits.double().numpy(), 0.7, 0.9)
        counts = draws(sampler, logits, n)
        assert counts[q == 0].sum() == 0, name
        tv = np.abs(counts / n - q).sum() / 2
        assert tv <= tv_bound(q, n), (name, tv, tv_bound(q, n))
    # Every stage runs: the suppressed row's nucleus fits in the first prefilter, the peaked row's in the second,
    # the flat row's in neither (the full sort).
    assert sizes["suppressed"] < 10 < sizes["peaked"] == 11 and sizes["flat"] > 300 and sizes["one left"] == 1


def test_top_p_one_samples_the_whole_distribution():
    torch.manual_seed(1)
    logits, n = 2 * torch.randn(1000), 20_000
    logits[:10] = -INF
    q = exact_nucleus(logits.double().numpy(), 1.3, 1.0)
    counts = draws(NucleusSampler(1.3, 1.0), logits, n)
    assert counts[:10].sum() == 0 and (q > 0).sum() == 990
    assert np.abs(counts / n - q).sum() / 2 <= tv_bound(q, n)


def test_the_nucleus_is_transformers_and_the_full_sort_runs_exactly_when_it_is_wider_than_the_candidates():
    torch.manual_seed(2)
    scale = torch.tensor([0.5, 2, 3, 4, 8])[torch.arange(400) % 5, None]  # nuclei of 1 to 3,600 tokens
    scores = scale * torch.randn(400, 4096)
    scores[::7, 100:200] = -INF
    for top_p in (0.5, 0.9, 0.95):
        sampler = NucleusSampler(1.0, top_p)
        expected = hf_nucleus(scores, top_p)
        for k in (64, 1024):
            index, _, size, wide = sampler.nucleus(scores, scores.softmax(-1), k)
            is_wide = torch.zeros(400, dtype=torch.bool)
            is_wide[wide] = True
            assert torch.equal(is_wide, expected.sum(-1) >= k)
            assert is_wide.any() and not is_wide.all()
            mine = torch.zeros_like(expected).scatter_(-1, index, torch.arange(k) < size)
            assert torch.equal(mine[~is_wide], expected[~is_wide])
        tokens = sampler(ids(400), scores).argmax(-1)  # the rows of every stage
        assert expected.gather(-1, tokens[:, None]).all()


def test_a_tie_at_the_edge_of_the_nucleus_is_left_to_transformers():
    scores = torch.full((2, 300), -10.0)
    scores[:, 0] = 3.0
    scores[0, 1:4] = 2.0  # p = 0.48, 0.17, 0.17, 0.17: top-p 0.8 keeps two of the three tied tokens
    scores[1, 1:4] = torch.tensor([2.0, 2.0, 1.0])  # p = 0.53, 0.2, 0.2, 0.07: a tie inside the nucleus only
    sampler = NucleusSampler(1.0, 0.8)
    index, _, size, wide = sampler.nucleus(scores, scores.softmax(-1), 64)
    assert wide.tolist() == [0] and sorted(index[1, :size[1]].tolist()) == [0, 1, 2]
    torch.manual_seed(3)
    tokens = sampler(ids(400), scores.repeat(200, 1)).argmax(-1)
    assert hf_nucleus(scores, 0.8).repeat(200, 1).gather(-1, tokens[:, None]).all()


def test_the_same_seed_gives_the_same_draws():
    scores = torch.randn(64, 500) * torch.tensor([1.0, 4.0]).repeat(32)[:, None]
    sampler = NucleusSampler(0.7, 0.9, candidates=(8, 32))
    torch.manual_seed(4)
    first = sampler(ids(64), scores)
    torch.manual_seed(4)
    assert torch.equal(sampler(ids(64), scores), first)


@pytest.fixture(scope="module")
def tiny_lm() -> LoadedModel:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(["def f(x):\n    return x\n"] * 20, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=16, n_layer=1,
                                       n_head=2, bos_token_id=tokenizer.eos_token_id,
                                       eos_token_id=tokenizer.eos_token_id)).eval()
    return LoadedModel(model, tokenizer, ModelInfo())


def test_sample_draws_with_the_seed_and_ignores_the_model_generation_config(tiny_lm):
    cfg = SamplingConfig(max_new_tokens=8, batch_size=4)
    texts = sample(tiny_lm, cfg, ["", "def f(x):\n"] * 3)
    assert len(texts) == 6 and len(set(texts)) > 1
    assert sample(tiny_lm, cfg, ["", "def f(x):\n"] * 3) == texts
    assert sample(tiny_lm, cfg.model_copy(update={"seed": 1}), ["", "def f(x):\n"] * 3) != texts
    original = tiny_lm.model.generation_config
    tiny_lm.model.generation_config = copy.deepcopy(original)
    tiny_lm.model.generation_config.update(do_sample=True, temperature=5.0, top_k=1, top_p=0.1)
    try:  # generation is greedy over the sampler's scores: no warper of the model's own is added
        assert sample(tiny_lm, cfg, ["", "def f(x):\n"] * 3) == texts
    finally:
        tiny_lm.model.generation_config = original


def test_no_sample_ends_before_min_new_tokens(tiny_lm):
    from tests.helpers import generated_rows

    eos = tiny_lm.tokenizer.eos_token_id
    with torch.no_grad():  # a model that writes EOS first, given the chance
        tiny_lm.model.lm_head.weight[eos] = 50 * tiny_lm.model.transformer.wte.weight.mean(0).sign()
    rows = generated_rows(tiny_lm)
    cfg = SamplingConfig(max_new_tokens=8, min_new_tokens=0, batch_size=4)
    assert sample(tiny_lm, cfg, [""] * 4) == [""] * 4  # the paper's empty samples, without a minimum
    rows.clear()
    texts = sample(tiny_lm, cfg.model_copy(update={"min_new_tokens": 5}), [""] * 4)
    assert all(eos not in row[1:6] for row in rows) and all(texts)  # row[0]: the EOS that starts a document
    rows.clear()
    sample(tiny_lm, cfg.model_copy(update={"min_new_tokens": 20}), [""])  # at most max_new_tokens: all 8 tokens
    assert len(rows[0]) == 1 + 8 and eos not in rows[0][1:]
