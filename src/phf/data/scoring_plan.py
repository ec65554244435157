"""`phf score --dry-run`: what scoring the corpus will cost, before any of it is written. The scorer's rate is
measured here on documents from across the corpus (`Corpus.sample`), in one process on this machine's device (or
taken from --throughput), and the corpus's size is counted without parsing it (`Corpus.count`)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass

from phf.data.corpus import Corpus
from phf.errors import PHFError
from phf.training.plan import duration

SAMPLE = 256  # documents measured: enough to pass the scorer's first batches, few enough to take seconds


@dataclass(frozen=True)
class ScoringPlan:
    documents: int | None  # in the corpus; None where it cannot be counted without reading it (a hub card without)
    rate: float  # documents per second of one process
    rate_note: str  # how the rate was found
    characters_per_second: float | None = None


def plan_scoring(cfg, throughput: float | None = None) -> ScoringPlan:
    corpus = Corpus.from_config(cfg.data)
    documents = corpus.count()
    if cfg.data.max_documents is not None:
        documents = min(documents, cfg.data.max_documents) if documents is not None else cfg.data.max_documents
    if throughput:
        return ScoringPlan(documents, throughput, "--throughput")
    from phf.data.scoring import ShardScorer, worker_count
    from phf.scorers import accelerated, get_attribute_scorers, get_scorer

    # the scorer and its attributes, as a scoring process holds them (with its share of the cores), loaded before
    # the clock starts
    if "torch" in sys.modules or accelerated(cfg.scorer):
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // worker_count(cfg.scorer)))
    scorer = ShardScorer(get_scorer(cfg.scorer), get_attribute_scorers(cfg.scorer))
    records = [r for r in corpus.sample(SAMPLE) if r.text is not None and r.text.strip()]
    if not records:
        raise PHFError(f"the {SAMPLE} records sampled from {corpus.describe()} hold no text to score")
    size = cfg.scorer.shard_size
    with tempfile.TemporaryDirectory() as folder:  # scored and written a shard at a time, as a scoring process does
        scorer.score(records[:1], os.path.join(folder, "warm-up"))  # what loads on first use (spaCy's NER) untimed
        start = time.perf_counter()
        for i in range(0, len(records), size):
            scorer.score(records[i:i + size], os.path.join(folder, f"shard-{i}"))
        seconds = time.perf_counter() - start
    note = f"measured here: {len(records)} documents from across the corpus in {seconds:.1f} s by one process"
    return ScoringPlan(documents, len(records) / seconds, note, sum(len(r.text) for r in records) / seconds)


def format_scoring_plan(cfg, plan: ScoringPlan, workers: list[int]) -> str:
    """The plan, with the hours at each number of workers (processes, GPUs or tasks, each as fast as one here)."""
    count = f"{plan.documents:,} documents" if plan.documents is not None else "documents not counted (the hub " \
        "dataset's card gives no count)"
    chars = f", {plan.characters_per_second:,.0f} characters/s" if plan.characters_per_second else ""
    lines = [f"corpus      {cfg.data.corpus}: {count}",
             f"scorer      {cfg.scorer.name}: {plan.rate:,.1f} documents/s per process{chars} ({plan.rate_note})"]
    for n in workers:
        per_million = 1e6 / (plan.rate * n) / 3600
        whole = f"{duration(plan.documents / (plan.rate * n) / 3600)} for the corpus, " if plan.documents else ""
        lines.append(f"time        {n:,} {'worker' if n == 1 else 'workers'}: {whole}{duration(per_million)} per "
                     "million documents")
    return "\n".join(lines)
