"""Misalignment by cause: which violations (PEP8 codes, kinds of PII) a model's samples hold, per 1,000
characters, beside the same rates in the training corpus.

A cause the corpus never shows cannot have been imitated from it: a small model writes it out of incompetence
(for PEP8: unexpected indentation E113, a file that does not tokenize E901). Conditional training and the other
objectives can only remove what the corpus labels, so the split tells what an objective could change at all.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from phf.data.scored import read_scored
from phf.evaluation.heldout import evenly_spread

CORPUS_DOCUMENTS = 400  # training documents the corpus rates are measured on, spread evenly over the split


def cause_rates(scorer, texts: list[str]) -> dict | None:
    """{"chars", "count", "per_1000_chars": {cause: rate}} over `texts`, or None for a scorer without causes."""
    counts = scorer.causes(texts)
    if counts is None:
        return None
    total, chars = sum(counts, Counter()), sum(map(len, texts))
    rates = {cause: 1000 * n / max(chars, 1) for cause, n in total.most_common()}
    return {"chars": chars, "count": sum(total.values()), "per_1000_chars": rates}


def corpus_cause_rates(scorer, data_dir: Path, max_documents: int = CORPUS_DOCUMENTS) -> dict | None:
    """`cause_rates` of training documents (at most `max_documents`), cached in data_dir/scored/causes.json."""
    cache = Path(data_dir) / "scored" / "causes.json"
    if cache.exists():
        return json.loads(cache.read_text())
    if scorer.causes([]) is None:  # a scorer without causes: nothing to read the corpus for
        return None
    texts = read_scored(data_dir, "train", ["texts"])["texts"]
    picked = evenly_spread(len(texts), max_documents)
    rates = cause_rates(scorer, ["".join(segments) for segments in texts.take(picked).to_pylist()])
    if rates is not None:
        rates["documents"] = len(picked)
        cache.write_text(json.dumps(rates, indent=1))
    return rates


def corpus_share(sample_rates: dict, corpus_rates: dict) -> float:
    """Share of the samples' misalignment from causes that occur in the corpus (the rest: causes it never shows)."""
    total = sum(sample_rates["per_1000_chars"].values())
    seen = sum(r for cause, r in sample_rates["per_1000_chars"].items() if cause in corpus_rates["per_1000_chars"])
    return seen / total if total else 0.0


def excess_share(sample_rates: dict, corpus_rates: dict) -> float:
    """Share of the samples' misalignment beyond the corpus's rate of each cause: what imitating the corpus
    exactly would not have written (a cause the corpus shows rarely, written often, is mostly excess)."""
    total = sum(sample_rates["per_1000_chars"].values())
    corpus = corpus_rates["per_1000_chars"]
    excess = sum(max(r - corpus.get(cause, 0.0), 0.0) for cause, r in sample_rates["per_1000_chars"].items())
    return excess / total if total else 0.0


def causes_table(results: dict[str, dict], corpus_rates: dict | None,
                 top: int = 15) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the unconditional samples' causes: one row per cause (the `top` most frequent over the
    arms, then the rest summed), one column per arm and one for the corpus, in violations per 1,000 characters;
    then each arm's share from causes the corpus shows, and beyond the corpus's rates. Empty when no arm has causes."""
    arms = {arm: m["unconditional"]["causes"] for arm, m in results.items() if "causes" in m.get("unconditional", {})}
    if not arms:
        return [], []
    total = Counter()
    for rates in arms.values():
        total.update(rates["per_1000_chars"])
    ranked = [cause for cause, _ in total.most_common()]
    corpus = (corpus_rates or {}).get("per_1000_chars", {})
    header = ["cause", *arms, *(["corpus"] if corpus_rates else [])]

    def row(name: str, causes: list[str]) -> list[str]:
        cells = [sum(rates["per_1000_chars"].get(c, 0.0) for c in causes) for rates in arms.values()]
        return [name, *(f"{v:.2f}" for v in cells), *([f"{sum(corpus.get(c, 0.0) for c in causes):.3f}"]
                                                     if corpus_rates else [])]

    rows = [row(cause, [cause]) for cause in ranked[:top]]
    if len(ranked) > top:
        rows.append(row(f"{len(ranked) - top} others", ranked[top:]))
    rows.append(row("all", ranked))
    if corpus_rates:
        rows.append(["share from causes the corpus shows",
                     *(f"{corpus_share(rates, corpus_rates):.0%}" for rates in arms.values()), ""])
        rows.append(["share beyond the corpus's rate of each cause",
                     *(f"{excess_share(rates, corpus_rates):.0%}" for rates in arms.values()), ""])
    return header, rows
