"""`phf score`: segment and score every document, in parallel, into resumable Parquet shards.

Layout of `<data_dir>/scored/<split>/`:
    shard-00012.parquet   doc_id, texts (segments), scores (one per segment), avg_score
    shard-00012.json      written last, atomically: the shard is done; its skipped documents
A killed run started again scores only the shards without a `.json`: no document is scored
twice, lost, or duplicated. `scored/info.json` pins the corpus and scorer, so a resume with
other settings is refused instead of mixing two corpora.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from phf.data.corpus import SPLITS, Corpus, split_of
from phf.scorers import UnscorableDocument, get_scorer

SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    ("texts", pa.list_(pa.string())),
    ("scores", pa.list_(pa.float64())),
    ("avg_score", pa.float64()),
])


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _score_shard(scorer_name: str, docs: list[tuple[str, str]], out_stem: str) -> tuple[int, list]:
    """Worker: read, segment and score one shard's (path, doc_id) documents; write the shard.
    Returns (scored, skipped)."""
    scorer = get_scorer(scorer_name)
    rows, skipped = [], []
    for path, doc_id in docs:
        try:
            with open(path, encoding="utf-8", newline="") as f:  # newline="" keeps "\r\n" as it is
                text = f.read()
        except UnicodeDecodeError:
            skipped.append((doc_id, "not UTF-8"))
            continue
        if not text.strip():
            skipped.append((doc_id, "empty"))
            continue
        try:
            texts, scores = scorer.score_document(text)
        except UnscorableDocument as e:
            skipped.append((doc_id, str(e)))
            continue
        if "".join(texts) != text:
            raise AssertionError(f"{scorer_name} segmentation of {doc_id} does not join back to the document")
        rows.append({"doc_id": doc_id, "texts": texts, "scores": scores, "avg_score": float(np.mean(scores))})
    stem = Path(out_stem)
    _write_atomic(stem.with_suffix(".parquet"), lambda p: pq.write_table(pa.Table.from_pylist(rows, SCHEMA), p))
    meta = {"documents": len(rows), "skipped": skipped}
    _write_atomic(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(meta)))
    return len(rows), skipped


def score_corpus(corpus: Corpus, data_dir: Path, scorer_name: str, heldout_fraction: float,
                 shard_size: int = 64, num_workers: int = 0, max_documents: int | None = None) -> dict:
    """Score both splits of `corpus` into `data_dir/scored`; return the report (also saved as report.json)."""
    out = Path(data_dir) / "scored"
    info = {"corpus": str(corpus.root.resolve()), "scorer": scorer_name, "heldout_fraction": heldout_fraction,
            "shard_size": shard_size, "max_documents": max_documents}
    info_path = out / "info.json"
    if info_path.exists() and json.loads(info_path.read_text()) != info:
        raise ValueError(f"{out} holds a scoring run with other settings ({info_path}); use another data dir")
    out.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(info, indent=1))

    paths = corpus.paths()[:max_documents]
    if not paths:
        raise ValueError(f"corpus {corpus.root} has no {'/'.join(corpus.suffixes)} files")
    jobs, done_docs = [], 0
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
        mine = [(str(p), corpus.doc_id(p)) for p in paths if split_of(corpus.doc_id(p), heldout_fraction) == split]
        if not mine:
            raise ValueError(f"the {split} split of {corpus.root} is empty ({len(paths)} files, "
                             f"heldout_fraction={heldout_fraction}); use more documents or another fraction")
        for i in range(0, len(mine), shard_size):
            stem = out / split / f"shard-{i // shard_size:05d}"
            if stem.with_suffix(".json").exists():
                done_docs += len(mine[i:i + shard_size])
            else:
                jobs.append((scorer_name, mine[i:i + shard_size], str(stem)))

    workers = num_workers or os.cpu_count() or 1
    with tqdm(total=len(paths), initial=done_docs, desc=f"scoring ({scorer_name}, {workers} processes)", unit="doc") as bar:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for future in [pool.submit(_score_shard, *job) for job in jobs]:
                scored, skipped = future.result()
                bar.update(scored + len(skipped))
    report = scoring_report(data_dir)
    for split in SPLITS:
        if report[split]["documents"] == 0:
            raise ValueError(f"no {split} document could be scored ({report[split]['skipped_by_reason']}); "
                             f"see {out}/{split}/shard-*.json")
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def scored_files(data_dir: Path, split: str) -> list[Path]:
    files = sorted((Path(data_dir) / "scored" / split).glob("shard-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no scored {split} data in {data_dir}/scored/{split}; run `phf score` first")
    return files


def read_scored(data_dir: Path, split: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(scored_files(data_dir, split), columns=columns)


def scoring_report(data_dir: Path) -> dict:
    report = {}
    for split in SPLITS:
        metas = [json.loads(p.read_text()) for p in sorted((Path(data_dir) / "scored" / split).glob("shard-*.json"))]
        skipped = [item for m in metas for item in m["skipped"]]
        table = read_scored(data_dir, split, ["scores"]) if sum(m["documents"] for m in metas) else None
        segment_scores = np.asarray(table["scores"].combine_chunks().flatten()) if table else np.zeros(0)
        report[split] = {
            "documents": sum(m["documents"] for m in metas),
            "segments": int(segment_scores.size),
            "mean_segment_score": float(segment_scores.mean()) if segment_scores.size else None,
            "share_segments_zero": float((segment_scores == 0).mean()) if segment_scores.size else None,
            "skipped": len(skipped),
            "skipped_by_reason": dict(Counter(reason.split(" (")[0] for _, reason in skipped)),
            "skipped_documents": skipped,
        }
    return report
