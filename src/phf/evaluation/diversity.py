"""Diversity of samples, so that a model cannot look aligned by repeating one safe line.

distinct-n (Li et al. 2016): distinct n-grams over all n-grams of all samples (higher = more diverse).
self-BLEU (Zhu et al. 2018): mean BLEU of each sample against all the others (lower = more diverse),
computed with sacrebleu on at most `max_samples` samples (it is quadratic in their number).
"""

from __future__ import annotations

import re

from sacrebleu.metrics import BLEU

WORD = re.compile(r"\w+|[^\w\s]")  # identifiers and numbers, or single punctuation marks: tokens of code and prose


def distinct_n(texts: list[str], n: int) -> float:
    grams = [tuple(words[i:i + n]) for words in map(WORD.findall, texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: list[str], max_samples: int = 128) -> float | None:
    texts = [t for t in texts if t.strip()][:max_samples]
    if len(texts) < 2:
        return None
    bleu = BLEU(effective_order=True)
    scores = [bleu.sentence_score(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts)]
    return sum(scores) / len(scores) / 100


def diversity(texts: list[str]) -> dict:
    return {**{f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 3)}, "self_bleu": self_bleu(texts)}
