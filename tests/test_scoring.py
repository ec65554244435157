"""`phf score` on files: counts, failures reported, and a killed run resumed without loss or duplicates."""

import json

import pyarrow.parquet as pq
import pytest

from phf.data.corpus import split_of
from phf.data.scored import read_scored
from phf.data.scoring import merge_scored, score_corpus
from phf.errors import PHFError
from tests.helpers import scoring_config, write_corpus


def test_failures_are_counted_never_scored_as_aligned(tmp_path):
    root = write_corpus(tmp_path / "c", 12)
    (root / "latin1.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    (root / "broken.py").write_text("x = '''never closed\n")
    (root / "empty.py").write_text("")
    report = score_corpus(scoring_config(root, "scorer.num_workers=2"), tmp_path / "d")
    reasons = {doc: why for split in report.values() for doc, why in split["skipped_documents"]}
    assert reasons["latin1.py"] == "not UTF-8" and reasons["empty.py"] == "empty"
    assert reasons["broken.py"].startswith("pycodestyle cannot tokenize it")
    scored = {d for split in ("train", "heldout") for d in read_scored(tmp_path / "d", split)["doc_id"].to_pylist()}
    assert scored == {f"mod{i:02d}.py" for i in range(12)}


def test_split_is_a_stable_hash_of_the_path():
    # Pinned: the same path falls on the same side in every process and release (Python's hash() of a str is
    # salted per process), so a resumed or merged scoring run, or one of another release, splits as the first did.
    sides = "".join("h" if split_of(f"f{i}.py", 0.5) == "heldout" else "t" for i in range(24))
    assert sides == "hhhhthtthttttttthththhtt"
    shares = [split_of(f"f{i}.py", 0.1) == "heldout" for i in range(2000)]
    assert 0.07 < sum(shares) / len(shares) < 0.13


def test_killed_run_resumes_without_rescoring_losing_or_duplicating(tmp_path):
    root = write_corpus(tmp_path / "c", 24)
    out = tmp_path / "d"
    score_corpus(scoring_config(root), out)
    full = {s: read_scored(out, s).to_pylist() for s in ("train", "heldout")}
    # a run killed half-way: the last shards never finished (no .json), one left a partial file
    shards = sorted((out / "scored" / "train").glob("shard-*.json"))
    for meta in shards[len(shards) // 2:]:
        meta.unlink()
    shards[-1].with_suffix(".parquet").write_bytes(b"partial")
    kept = {p: p.stat().st_mtime_ns for p in shards[:len(shards) // 2]}
    score_corpus(scoring_config(root), out)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished shards were not rescored
    again = {s: read_scored(out, s).to_pylist() for s in ("train", "heldout")}
    assert again == full
    ids = [r["doc_id"] for s in again.values() for r in s]
    assert len(ids) == len(set(ids)) == 24


def test_resume_with_other_settings_is_refused(tmp_path):
    root = write_corpus(tmp_path / "c", 8)
    score_corpus(scoring_config(root), tmp_path / "d")
    with pytest.raises(PHFError, match="other settings"):
        score_corpus(scoring_config(root, "data.heldout_fraction=0.5"), tmp_path / "d")


def test_scored_dataset_has_the_paper_columns(data_dir):
    table = pq.read_table(sorted((data_dir / "scored" / "train").glob("*.parquet"))[0])
    assert {"texts", "scores", "avg_score"} <= set(table.column_names)
    row = table.to_pylist()[0]
    assert len(row["texts"]) == len(row["scores"])
    assert row["avg_score"] == pytest.approx(sum(row["scores"]) / len(row["scores"]))
    assert json.loads((data_dir / "scored" / "info.json").read_text())["scorer"]["name"] == "pep8"


def test_parts_scored_apart_and_merged_equal_one_run(tmp_path):
    root = write_corpus(tmp_path / "c", 24)
    whole = score_corpus(scoring_config(root), tmp_path / "whole")
    for i in range(3):
        score_corpus(scoring_config(root), tmp_path / f"part{i}", part=(i, 3))
    with pytest.raises(PHFError, match=r"parts \[2\] of 3 are missing"):
        merge_scored([tmp_path / "part0", tmp_path / "part1"], tmp_path / "incomplete")
    merged = merge_scored([tmp_path / f"part{i}" for i in range(3)], tmp_path / "merged")
    def rows(data_dir, split):
        return sorted(read_scored(data_dir, split).to_pylist(), key=lambda r: r["doc_id"])

    for split in ("train", "heldout"):
        assert merged[split]["documents"] == whole[split]["documents"]
        assert rows(tmp_path / "merged", split) == rows(tmp_path / "whole", split)
    with pytest.raises(PHFError, match="other settings"):  # an unsharded run cannot mix into merged parts
        score_corpus(scoring_config(root), tmp_path / "merged")


def test_signature_prompts_are_distinct_dedented_defs_of_the_heldout_split(tmp_path):
    from phf.evaluation.prompts import heldout_signatures

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(16):
        (corpus / f"m{i}.py").write_text(f"@decorator\ndef top{i}(a,\n         b):\n    pass\n\n\nclass C:\n"
                                         f"    async def method{i}(self):  # note\n        pass\n")
    score_corpus(scoring_config(corpus, "data.heldout_fraction=0.5"), tmp_path / "data")
    prompts = heldout_signatures(tmp_path / "data", 4, seed=0)
    assert len(set(prompts)) == 4 and heldout_signatures(tmp_path / "data", 4, seed=0) == prompts
    assert all(p.startswith(("def top", "async def method")) for p in prompts)
    assert all(p.endswith("(a,\n         b):\n") for p in prompts if p.startswith("def"))  # whole statements
    with pytest.raises(PHFError, match="holds .* function signatures"):
        heldout_signatures(tmp_path / "data", 1000)


def test_the_gpus_a_scorer_shares_out_among_its_processes(monkeypatch):
    import torch

    from phf.config import ScorerConfig
    from phf.data.scoring import scoring_gpus

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert scoring_gpus(ScorerConfig(name="classifier", model="m")) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the processes' GPUs are among those the user gave
    assert scoring_gpus(ScorerConfig(name="detoxify")) == ["3", "5"]
    assert scoring_gpus(ScorerConfig(name="classifier", model="m", device="cpu")) == []
    assert scoring_gpus(ScorerConfig(name="classifier", model="m", device="cuda:1")) == ["5"]
    assert scoring_gpus(ScorerConfig(name="pep8")) == []  # a CPU scorer
