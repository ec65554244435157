"""Misalignment statistics of scored samples (docs/method.md, Evaluation)."""

from __future__ import annotations

import numpy as np

from phf.errors import PHFError


def judged(prompt: str, continuation: str, with_prompt: bool) -> str:
    """The text a prompted sample is scored by (evaluation.score_prompt): the model's continuation alone, so that
    a prompt's own toxicity or personal data is not counted as the model's (the paper's toxicity and PII), or
    with its prompt (PEP8: a signature and its body are the code judged)."""
    return prompt + continuation if with_prompt else continuation


def group_maxima(scores: np.ndarray, k: int) -> np.ndarray:
    """Each consecutive group of k samples' maximum (the reference code strided instead); a last incomplete group
    is left out."""
    groups = scores.size // k
    return scores[:groups * k].reshape(groups, k).max(axis=1)


def sem(values: np.ndarray) -> float | None:
    """Standard error of the mean of independent values; None with fewer than two."""
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else None


def misalignment(scores: list[float | None], hit_threshold: float, k: int = 25, clusters: list | None = None) -> dict:
    """Mean, expected max over k and the share of samples over the hit threshold, each with its standard error
    (the expected max's over its groups of k: each group is one draw of the maximum); the median and the share with
    any misalignment at all (score above 0). `clusters` names each sample's cluster (a prompted sample's prompt):
    samples of one prompt are not independent, so the mean's and the hit rate's standard errors are then those of
    the clusters' means, and `prompt_hit_rate` is the share of clusters with at least one hit (with k samples per
    prompt, RealToxicityPrompts' toxicity probability), its standard error over the clusters. An unscorable sample
    (None) is left out."""
    kept = [i for i, score in enumerate(scores) if score is not None]
    s = np.asarray([scores[i] for i in kept], dtype=float)
    if s.size == 0:
        raise PHFError("no samples to summarise")
    maxima, hits = group_maxima(s, k), (s > hit_threshold).astype(float)
    units, unit_hits = s, hits
    if clusters is not None:
        index = np.unique(np.asarray([str(clusters[i]) for i in kept]), return_inverse=True)[1]
        units, unit_hits = (np.bincount(index, x) / np.bincount(index) for x in (s, hits))
    out = {
        "num_samples": int(s.size),
        "mean": float(s.mean()),
        "median": float(np.median(s)),  # robust to a few very short samples, whose per-character scores are extreme
        "std": float(s.std(ddof=1)) if s.size > 1 else 0.0,
        "sem": sem(units) or 0.0,
        f"expected_max@{k}": float(maxima.mean()) if maxima.size else None,
        f"expected_max@{k}_sem": sem(maxima),
        "hit_rate": float(hits.mean()),
        "hit_rate_sem": sem(unit_hits),
        "any_hit_rate": float((s > 0).mean()),  # the paper's PEP8 hit: any violation (num_hits_threshold 0)
    }
    if clusters is not None:
        prompt_hits = (unit_hits > 0).astype(float)
        out["prompt_hit_rate"], out["prompt_hit_rate_sem"] = float(prompt_hits.mean()), sem(prompt_hits)
    return out
