"""Scoring on Ray against phf's process pool (documents/s), on 1 and 2 workers of this machine, in one run:
`phf score --executor ray --tasks N` (N tasks of one core each on a Ray instance started here) against
`phf score` with `scorer.num_workers=N`, over the same documents; the scored folders are checked to be the same.

    python benchmarks/scoring_engine.py [--scorers pep8 pii] [--documents 2000]

pep8 scores the standard library's first documents (the embedded corpus); pii the PII corpus phf ships. Ray's
start-up (ray.init, a few seconds) is timed apart and left out of its rate, as a cluster is started once for many
corpora; the pool's start-up (its processes loading the scorer) is inside its time, as it is paid per run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import ray

from phf.config import load_config
from phf.data.corpus import Corpus
from phf.data.engine import Engine, score_on_engine
from phf.data.scored import read_scored
from phf.data.scoring import score_corpus


def corpus_file(scorer: str, n: int, folder: Path) -> Path:
    source = Corpus() if scorer == "pep8" else Corpus("builtin:pii")
    records = itertools.islice((r for r in source.records() if r.text and r.text.strip()), n)
    path = folder / f"{scorer}.jsonl"
    path.write_text("".join(json.dumps({"text": r.text}) + "\n" for r in records))
    return path


def contents(data_dir: Path) -> dict:
    return {row["doc_id"]: row["scores"] for split in ("train", "heldout")
            for row in read_scored(data_dir, split).to_pylist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scorers", nargs="+", default=["pep8", "pii"])
    parser.add_argument("--documents", type=int, default=2000)
    args = parser.parse_args()
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    print(f"# scoring on Ray against the pool: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}; Ray started in {ray_start:.1f} s (not in its rates)")
    print("| scorer | documents | workers | pool docs/s | Ray docs/s | Ray / pool | same scores |")
    print("|---|---|---|---|---|---|---|")
    for scorer in args.scorers:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = corpus_file(scorer, args.documents, Path(tmp))
            task = "pep8" if scorer == "pep8" else "pii"
            for workers in (1, 2):
                overrides = [f"data.corpus={corpus}", f"scorer.num_workers={workers}", "data.suffixes=[.jsonl]"]
                cfg = load_config(task, None, overrides)
                start = time.perf_counter()
                score_corpus(cfg, Path(tmp) / f"pool{workers}")
                pool_s = time.perf_counter() - start
                start = time.perf_counter()
                score_on_engine(cfg, Path(tmp) / f"ray{workers}", Engine(tasks=workers))
                ray_s = time.perf_counter() - start
                same = contents(Path(tmp) / f"pool{workers}") == contents(Path(tmp) / f"ray{workers}")
                n = len(contents(Path(tmp) / f"pool{workers}"))
                print(f"| {scorer} | {n} | {workers} | {n / pool_s:.0f} | {n / ray_s:.0f} | {pool_s / ray_s:.2f}x | "
                      f"{same} |", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
