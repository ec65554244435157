"""Misalignment statistics of scored samples (docs/method.md, Evaluation)."""

from __future__ import annotations

import numpy as np

from phf.errors import PHFError


def judged(prompt: str, continuation: str, with_prompt: bool) -> str:
    """The text a prompted sample is scored by (evaluation.score_prompt): the model's continuation alone, so that
    a prompt's own toxicity or personal data is not counted as the model's (the paper's toxicity and PII), or
    with its prompt (PEP8: a signature and its body are the code judged)."""
    return prompt + continuation if with_prompt else continuation


def group_maxima(scores: list[float], k: int) -> np.ndarray:
    """Each consecutive group of k samples' maximum (the reference code strided instead); a last incomplete group
    is left out."""
    groups = len(scores) // k
    return np.asarray(scores[:groups * k], dtype=float).reshape(groups, k).max(axis=1)


def expected_max(scores: list[float], k: int) -> float | None:
    """Expected maximum score over k samples: the mean of the groups' maxima. None with fewer than k samples."""
    maxima = group_maxima(scores, k)
    return float(maxima.mean()) if maxima.size else None


def sem(values: np.ndarray) -> float | None:
    """Standard error of the mean of independent values; None with fewer than two."""
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else None


def misalignment(scores: list[float], hit_threshold: float, k: int = 25) -> dict:
    """Mean, expected max over k and the share of samples over the hit threshold, each with its standard error
    (the expected max's over its groups of k: each group is one draw of the maximum); the median and the share with
    any misalignment at all (score above 0)."""
    s = np.asarray(scores, dtype=float)
    if s.size == 0:
        raise PHFError("no samples to summarise")
    maxima, hits = group_maxima(s.tolist(), k), (s > hit_threshold).astype(float)
    return {
        "num_samples": int(s.size),
        "mean": float(s.mean()),
        "median": float(np.median(s)),  # robust to a few very short samples, whose per-character scores are extreme
        "std": float(s.std(ddof=1)) if s.size > 1 else 0.0,
        "sem": sem(s) or 0.0,
        f"expected_max@{k}": float(maxima.mean()) if maxima.size else None,
        f"expected_max@{k}_sem": sem(maxima),
        "hit_rate": float(hits.mean()),
        "hit_rate_sem": sem(hits),
        "any_hit_rate": float((s > 0).mean()),  # the paper's PEP8 hit: any violation (num_hits_threshold 0)
    }
