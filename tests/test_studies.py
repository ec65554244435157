"""The studies' set-up runs from the repository alone: the corpus builder of `make toxicity`, `make pii` and
`make attributes`, copied with its data into an empty folder, builds both corpora."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_corpus_builder_needs_nothing_outside_the_repository(tmp_path):
    copy = tmp_path / "clone" / "benchmarks"  # nothing beside it: no workspace folders above a clone
    shutil.copytree(ROOT / "benchmarks" / "data", copy / "data")
    shutil.copy(ROOT / "benchmarks" / "corpora.py", copy / "corpora.py")
    out = subprocess.run([sys.executable, str(copy / "corpora.py"), "--out", str(tmp_path / "corpora")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    labels = [json.loads(line)["label"] for line in (tmp_path / "corpora" / "toxicity.jsonl").open()]
    assert sum(label != "prose" for label in labels) == 24_783  # every Davidson tweet
    assert sum(1 for _ in (tmp_path / "corpora" / "pii.jsonl").open()) == labels.count("prose")
