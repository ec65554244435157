"""The scored-data format: what `phf score` writes and training, evaluation and the report read.

Layout of `<data_dir>/scored/`:
    info.json                  the corpus and scorer settings it was scored from and with
    report.json                counts, segment-score statistics and skipped documents of both splits
    <split>/shard-00012.parquet  doc_id, texts (segments), scores (one per segment), avg_score; with
                               scorer.attributes, also attribute_scores: per segment, one score per
                               attribute in the order of scorer.attributes (list<list<float64>>)
    <split>/shard-00012.json   the shard is done: its document count and skipped documents
with <split> `train` or `heldout`. Joining a document's texts gives it back exactly (docs/method.md, Tasks).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phf.data.corpus import SPLITS
from phf.errors import PHFError

SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    ("texts", pa.list_(pa.string())),
    ("scores", pa.list_(pa.float64())),
    ("avg_score", pa.float64()),
])
# Only with scorer.attributes, so data scored without them keeps the paper's columns.
ATTRIBUTE_SCORES = "attribute_scores"  # per segment, one score per scorer.attributes entry
ATTRIBUTE_SCHEMA = SCHEMA.append(pa.field(ATTRIBUTE_SCORES, pa.list_(pa.list_(pa.float64()))))


def scored_files(data_dir: Path, split: str) -> list[Path]:
    files = sorted((Path(data_dir) / "scored" / split).glob("shard-*.parquet"))
    if not files:
        raise PHFError(f"no scored {split} data in {data_dir}/scored/{split}; run `phf score` first")
    return files


def read_scored(data_dir: Path, split: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(scored_files(data_dir, split), columns=columns)


def scored_info(data_dir: Path) -> dict:
    """The corpus and scorer settings a scored folder was scored with."""
    path = Path(data_dir) / "scored" / "info.json"
    if not path.exists():
        raise PHFError(f"no scored data in {data_dir} ({path} missing); run `phf score` first")
    return json.loads(path.read_text())


def scored_attributes(data_dir: Path) -> list[str]:
    """The attributes of a scored folder, in the order of its `attribute_scores` (none: no such column)."""
    return scored_info(data_dir)["scorer"].get("attributes", [])  # scored before attributes existed: none


def scoring_report(data_dir: Path) -> dict:
    """Counts and segment-score statistics of both splits, and of each attribute, read one shard at a time
    (memory stays flat)."""
    report = {}
    attributes = scored_attributes(data_dir)
    for split in SPLITS:
        metas = [json.loads(p.read_text()) for p in sorted((Path(data_dir) / "scored" / split).glob("shard-*.json"))]
        skipped = [item for m in metas for item in m["skipped"]]
        segments = 0
        totals, zeros = np.zeros(1 + len(attributes)), np.zeros(1 + len(attributes))  # the primary, then each attribute
        for path in sorted((Path(data_dir) / "scored" / split).glob("shard-*.parquet")):
            table = pq.read_table(path, columns=["scores", ATTRIBUTE_SCORES] if attributes else ["scores"])
            scores = np.asarray(table["scores"].combine_chunks().flatten())[:, None]
            if attributes:
                per_segment = np.asarray(table[ATTRIBUTE_SCORES].combine_chunks().flatten().flatten())
                scores = np.hstack([scores, per_segment.reshape(-1, len(attributes))])
            segments, totals, zeros = segments + len(scores), totals + scores.sum(0), zeros + (scores == 0).sum(0)
        stats = [{"mean_segment_score": float(total / segments) if segments else None,
                  "share_segments_zero": float(zero / segments) if segments else None}
                 for total, zero in zip(totals, zeros, strict=True)]
        report[split] = {
            "documents": sum(m["documents"] for m in metas),
            "segments": int(segments),
            **stats[0],
            "prescored": sum(m.get("prescored", 0) for m in metas),
            "skipped": len(skipped),
            "skipped_by_reason": dict(Counter(reason.split(" (")[0] for _, reason in skipped)),
            "skipped_documents": skipped,
        }
        if attributes:
            report[split]["attributes"] = dict(zip(attributes, stats[1:], strict=True))
    return report
