"""Capability as KL from a reference LM (Korbak et al. 2023, "KL from GPT-3"; docs/method.md, Evaluation): a Monte Carlo
estimate of KL(p_ref || p_model) = E_{x ~ p_ref}[log p_ref(x) - log p_model(x)] from texts sampled from the reference.

Each model scores the text itself (re-tokenising it), so the two tokenisers may differ; that is also why the headline
figure is per character, the one unit both models share. A conditional phf model is scored after `<|aligned|>`, as in
the paper (`LanguageModel.log_likelihood`). The reference's samples and log-probabilities are cached: later evaluations
pay only for the model's side, and every model scored against the same cache sees the same samples, so differences
between the arms of an experiment are paired. Units are nats."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from phf.evaluation.metrics import sem
from phf.files import is_built_from, write_atomic, write_built_from
from phf.jsonl import output_records
from phf.lm.base import LanguageModel, TextLogProb
from phf.model_folder import model_fingerprint

CACHE_VERSION = 1  # bump when the cache's contents change meaning


def reference_samples(reference: LanguageModel, cache_dir: Path, num_samples: int, max_new_tokens: int,
                      temperature: float, top_p: float, seed: int) -> list[dict]:
    """`num_samples` unconditional samples of the reference with its log-probability of each (absent for an empty
    sample), from `cache_dir/<key>/reference.jsonl`, or drawn, scored and written there."""
    key = {"version": CACHE_VERSION, "reference": reference.name, "fingerprint": model_fingerprint(reference.name),
           "num_samples": num_samples, "max_new_tokens": max_new_tokens, "temperature": temperature,
           "top_p": top_p, "seed": seed}
    folder = Path(cache_dir) / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = folder / "reference.jsonl"
    if is_built_from(folder, key):
        return output_records(path)
    texts = reference.generate([""] * num_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                               top_p=top_p, seed=seed)
    nonempty = [i for i, t in enumerate(texts) if t]
    scored = dict(zip(nonempty, reference.log_likelihood([texts[i] for i in nonempty]), strict=True))
    records = [{"text": t, **asdict(scored[i])} if i in scored else {"text": t} for i, t in enumerate(texts)]
    folder.mkdir(parents=True, exist_ok=True)
    # whole files only, the record last: a killed run, or two arms finishing at once, leave no half cache
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    write_built_from(folder, key)
    return records


def mean_se(x: list[float]) -> tuple[float, float | None]:
    """Mean and its standard error s / sqrt(n) (None for a single value)."""
    values = np.asarray(x, dtype=float)
    return float(values.mean()), sem(values)


def ratio_se(num: list[float], den: list[float]) -> tuple[float, float | None]:
    """Ratio estimator R = sum(num) / sum(den) and its delta-method standard error
    se(R) = sqrt(sum_i (num_i - R den_i)^2 / ((n - 1) n)) / mean(den)   (None for a single pair)."""
    n, ratio = len(num), sum(num) / sum(den)
    if n < 2:
        return ratio, None
    residuals = [a - ratio * b for a, b in zip(num, den, strict=True)]
    return ratio, math.sqrt(sum(r * r for r in residuals) / (n - 1) / n) / (sum(den) / n)


def kl_from_reference(model: LanguageModel, reference: LanguageModel, num_samples: int, cache_dir: Path,
                      max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                      deployed: Callable[[list[str]], list[TextLogProb]] | None = None) -> dict:
    """KL(reference || model) in nats per character (the headline), per sample and, when both models cut every
    sample into the same number of tokens, per token; each with its standard error. With `deployed` (the model's
    log-likelihood of texts as it is sampled, e.g. a conditional model's with its tags before every segment),
    also `kl_per_char_deployed` on the same samples.

    Sampling stays at temperature 1 and top-p 1 by default: the Monte Carlo average of log p_ref - log p_model is
    unbiased for the KL only when x is drawn from p_ref itself. Samples drawn at temperature 0.7 (the misalignment
    evaluation's setting) would average the log-ratio over a sharpened distribution: some other number, not the KL."""
    records = reference_samples(reference, cache_dir, num_samples, max_new_tokens, temperature, top_p, seed)
    # An empty sample has no characters to normalise by (and log p = 0 under both): dropped, and counted.
    kept = [r for r in records if r["text"]]
    out = {"kl_reference": reference.name, "kl_samples": len(kept), "kl_empty_samples": len(records) - len(kept)}
    if not kept:
        return out | dict.fromkeys(["kl_per_char", "kl_per_char_se", "kl_per_sample", "kl_per_sample_se",
                                    "kl_per_token", "kl_per_token_se",
                                    *(["kl_per_char_deployed", "kl_per_char_deployed_se"] if deployed else [])])
    ref = [TextLogProb(r["logprob"], r["tokens"], r["chars"]) for r in kept]
    own = model.log_likelihood([r["text"] for r in kept])
    d = [a.logprob - b.logprob for a, b in zip(ref, own, strict=True)]
    # Per character: the ratio estimator sum d_i / sum chars_i, i.e. E[d] / E[chars], weights every character of
    # reference text alike, as bits-per-character does over a corpus. The mean of per-sample ratios d_i / chars_i
    # would weigh a 3-character sample like a 500-character one, letting short, noisy samples dominate. The ratio's
    # O(1/n) bias is negligible against its standard error at the hundreds of samples used.
    out["kl_per_char"], out["kl_per_char_se"] = ratio_se(d, [r.chars for r in ref])
    out["kl_per_sample"], out["kl_per_sample_se"] = mean_se(d)
    # Per token only with a common denominator: equal token counts on every sample (a different tokeniser almost
    # surely splits some sample differently).
    same_tokens = all(a.tokens == b.tokens for a, b in zip(ref, own, strict=True))
    out["kl_per_token"], out["kl_per_token_se"] = ratio_se(d, [r.tokens for r in ref]) if same_tokens else (None, None)
    if deployed is not None:
        d = [a.logprob - b.logprob for a, b in zip(ref, deployed([r["text"] for r in kept]), strict=True)]
        out["kl_per_char_deployed"], out["kl_per_char_deployed_se"] = ratio_se(d, [r.chars for r in ref])
    return out
