"""Scoring throughput (documents/s) of each scorer: `phf score` (batched, every core) against the
straightforward use of the same library, one document per call on one core, measured in the same run.

    python benchmarks/scoring_throughput.py [--scorers pep8 profanity pii] [--documents 2000]

pep8 scores the embedded corpus (standard library files); the sentence scorers score the toxicity
corpus phf ships (`builtin:toxicity`: documentation prose and a tenth of tweets). The
baseline scores a sample of the same documents; the script checks it gives identical scores.
phf's rate is marginal: it scores a quarter of the documents and all of them, and divides the
difference in documents by the difference in time, so the fixed start-up (spawning the workers,
loading a model in each) is left out as the baseline's loading is; the start-up is printed apart.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

from phf.config import load_config
from phf.data.corpus import Corpus
from phf.data.scored import read_scored
from phf.data.scoring import score_corpus
from phf.scorers import get_scorer


def documents_for(task: str, n: int, folder: Path) -> tuple[list, Path]:
    """(records, corpus file) of the first n documents of the task's benchmark corpus."""
    if task == "pep8":
        records = list(itertools.islice((r for r in Corpus().records() if r.text and r.text.strip()), n))
    else:
        records = list(itertools.islice(Corpus("builtin:toxicity").records(), n))
    random.Random(0).shuffle(records)  # a quarter of them then has the mix of lengths of the whole
    path = folder / f"{task}.jsonl"
    path.write_text("".join(json.dumps({"text": r.text}) + "\n" for r in records))
    return records, path


def measure(name: str, n: int, baseline_n: int, extra: list[str]) -> dict:
    task = "pep8" if name == "pep8" else "toxicity"
    with tempfile.TemporaryDirectory() as tmp:
        records, corpus = documents_for(task, n, Path(tmp))
        overrides = [f"data.corpus={corpus}", f"scorer.name={name}", "data.suffixes=[.jsonl]", *extra]
        # An untimed first run pays the process's one-time costs (imports, caches), which would
        # otherwise land on the smaller timed run and can make a fast scorer's difference negative.
        score_corpus(load_config(task, None, [*overrides, "data.max_documents=64"]), Path(tmp) / "warm-up")
        seconds = {}
        for size in (len(records) // 4, len(records)):
            cfg = load_config(task, None, [*overrides, f"data.max_documents={size}"])
            start = time.perf_counter()
            score_corpus(cfg, Path(tmp) / f"data{size}")
            seconds[size] = time.perf_counter() - start
        (small, t_small), (big, t_big) = seconds.items()
        phf_rate = (big - small) / (t_big - t_small)
        data = Path(tmp) / f"data{big}"
        rows = {r["doc_id"]: r for split in ("train", "heldout") for r in read_scored(data, split).to_pylist()}

        # Baseline: one document per call, one process (the scorer loaded once, outside the timing).
        scorer = get_scorer(cfg.scorer)
        scorer.score_documents([records[0].text])
        sample = records[:baseline_n]
        start = time.perf_counter()
        baseline = [scorer.score_documents([r.text])[0] for r in sample]
        baseline_seconds = time.perf_counter() - start
    doc_ids = [f"{task}.jsonl:{i + 1}" for i in range(len(sample))]
    compared = [(rows[d]["scores"], list(b[1])) for d, b in zip(doc_ids, baseline, strict=True) if isinstance(b, tuple)]
    same = bool(compared) and all(x == y for x, y in compared)
    baseline_rate = len(sample) / baseline_seconds
    return {"scorer": name, "documents": len(records), "phf_docs_per_s": phf_rate,
            "startup_s": t_small - small / phf_rate, "baseline_docs_per_s": baseline_rate,
            "ratio": phf_rate / baseline_rate, "identical_scores": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scorers", nargs="+", default=["pep8", "profanity", "pii"])
    parser.add_argument("--documents", type=int, default=2000, help="documents scored by phf per scorer")
    parser.add_argument("--baseline-documents", type=int, default=300, help="documents scored one at a time")
    parser.add_argument("--classifier", help="a sequence-classification model folder, to add the classifier scorer")
    args = parser.parse_args()
    runs = [(name, []) for name in args.scorers]
    if args.classifier:
        runs.append(("classifier", [f"scorer.model={args.classifier}"]))
    print(f"# scoring throughput: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| scorer | documents | phf docs/s | phf start-up s | one-at-a-time docs/s | ratio | identical scores |")
    print("|---|---|---|---|---|---|---|")
    for name, extra in runs:
        r = measure(name, args.documents, args.baseline_documents, extra)
        print(f"| {r['scorer']} | {r['documents']} | {r['phf_docs_per_s']:.0f} | {r['startup_s']:.1f} | "
              f"{r['baseline_docs_per_s']:.0f} | "
              f"{r['ratio']:.1f}x | {r['identical_scores']} |", flush=True)


if __name__ == "__main__":
    main()
