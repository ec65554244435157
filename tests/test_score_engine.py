"""`phf score --executor ray`: tasks on a Ray instance of this machine (two workers) write what one process writes;
a task whose process is killed mid-shard is run again by Ray and keeps the shards it finished; a bad record costs
that record only, named; the same command again redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from phf.cli import main
from phf.data.corpus import Corpus, read_hub
from phf.data.scored import read_scored
from phf.data.scoring import merge_scored, score_corpus
from tests.helpers import error_of, scoring_config

# A scorer whose process kills itself the first time it meets a marked document (KILL_FLAG not yet there): a worker
# lost mid-shard, as to the OOM killer or a lost node. Every call logs the documents it scores (their numbers).
KILLER = '''
import os
import signal
from pathlib import Path


def score(texts):
    with Path(os.environ["SCORE_LOG"]).open("a") as log:
        log.write(" ".join(sorted({text.split("document ")[1].split()[0] for text in texts if "document" in text})))
        log.write("\\n")
    flag = Path(os.environ["KILL_FLAG"])
    if any("kill me" in text for text in texts) and not flag.exists():
        flag.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return [float(len(text) % 7) for text in texts]
'''


def scored(data_dir: Path) -> dict:
    """{doc_id: (texts, scores)} of both splits."""
    out = {}
    for split in ("train", "heldout"):
        for row in read_scored(data_dir, split).to_pylist():
            out[row["doc_id"]] = (split, row["texts"], row["scores"])
    return out


def test_ray_tasks_write_what_one_process_writes_and_redo_a_killed_task(tmp_path, monkeypatch, capsys):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "killer_scorer.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "modules"))  # Ray's workers import it too
    monkeypatch.setenv("SCORE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("KILL_FLAG", str(tmp_path / "killed"))
    lines = [json.dumps({"text": f"line {i} of document {i}\n" * (1 + i % 3) + ("kill me\n" if i == 13 else "")})
             for i in range(40)]
    lines[7] = '{"text": "a record cut short'  # malformed: skipped and named, on either path
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    settings = [f"data.corpus={tmp_path / 'corpus.jsonl'}", "scorer.name=killer_scorer:score", "scorer.shard_size=4",
                "scorer.segmenter=lines", "data.heldout_fraction=0.2"]

    (tmp_path / "killed").write_text("not in one process")
    main(["score", "--data", str(tmp_path / "one"), "scorer.num_workers=1", *settings])
    (tmp_path / "killed").unlink()
    (tmp_path / "calls.log").unlink()

    ray_run = ["score", "--executor", "ray", "--tasks", "2", "--data", str(tmp_path / "ray"), *settings]
    main(ray_run)
    assert (tmp_path / "killed").exists()  # a task's process was killed mid-shard, and Ray ran it again
    assert scored(tmp_path / "ray") == scored(tmp_path / "one")
    report = json.loads((tmp_path / "ray" / "scored" / "report.json").read_text())
    assert report == json.loads((tmp_path / "one" / "scored" / "report.json").read_text())
    bad = [doc for split in report.values() for doc, _ in split["skipped_documents"]]
    assert bad == ["corpus.jsonl:8"]
    # the killed task kept the shards it had finished: only the documents of the shard it was killed in were scored
    # twice (at most a shard's 4), no other
    calls = (tmp_path / "calls.log").read_text().split()
    twice = {doc for doc in set(calls) if calls.count(doc) > 1}
    assert "13" in twice and len(twice) <= 4 and set(calls) == {str(i) for i in range(40)} - {"7"}
    # the same command again: every part is complete, nothing is scored again
    main(ray_run)
    assert (tmp_path / "calls.log").read_text().split() == calls
    assert scored(tmp_path / "ray") == scored(tmp_path / "one")
    assert "scoring in 2 tasks on Ray" in capsys.readouterr().out


def test_a_hub_dataset_is_read_shard_by_shard_and_its_parts_score_what_one_process_scores(tmp_path, monkeypatch):
    """A hub dataset stands in as a local dataset folder of three Parquet files (the hub's layout), read through
    `datasets.load_dataset(..., streaming=True)`: part i of N reads only its files."""
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for j in range(3):
        texts = [f"x{j}{k} = {k}\nif x{j}{k}==1 :\n  pass\n" for k in range(8)]
        pq.write_table(pa.table({"text": texts}), tmp_path / "hub" / "data" / f"train-0000{j}-of-00003.parquet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Corpus, "is_hub", property(lambda self: True))
    assert [r.doc_id for r in read_hub("hub", "train", None, "text", (1, 2))] == [f"hub#1:{k}" for k in range(8)]
    cfg = scoring_config(Path("hub"))
    score_corpus(cfg, tmp_path / "one")
    for part in range(2):
        score_corpus(cfg, tmp_path / f"part{part}", (part, 2))
    merge_scored([tmp_path / "part0", tmp_path / "part1"], tmp_path / "merged")
    assert scored(tmp_path / "merged") == scored(tmp_path / "one") and len(scored(tmp_path / "one")) == 24
    # the scored folder is a Parquet dataset as the hub has them (push_to_hub publishes it as it is)
    files = {split: str(tmp_path / "merged" / "scored" / split / "*.parquet") for split in ("train", "heldout")}
    loaded = datasets.load_dataset("parquet", data_files=files)
    assert loaded.num_rows["train"] + loaded.num_rows["heldout"] == 24
    assert set(loaded["train"].column_names) >= {"doc_id", "texts", "scores", "avg_score"}


def test_score_dry_run_counts_the_corpus_and_gives_hours_without_writing(tmp_path, capsys, corpus_dir):
    lines = [json.dumps({"text": f"Sentence {i}. Another one."}) for i in range(30)]
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n\n")
    data = tmp_path / "data"
    main(["score", "--dry-run", "--throughput", "10", "--tasks", "6", "--data", str(data), "scorer.num_workers=2",
          f"data.corpus={tmp_path / 'corpus.jsonl'}", "scorer.segmenter=lines"])
    out = capsys.readouterr().out
    assert "30 documents" in out and "10.0 documents/s per process (--throughput)" in out
    # 30 documents at 10/s: 3 s at one worker, 1.5 (rounded to 2) at 2, 0.5 at 6
    assert "1 worker: 3 seconds for the corpus, 27.8 hours per million documents" in out
    assert "2 workers: 2 seconds" in out and "6 workers: 1 second for" in out
    main(["score", "--dry-run", "--data", str(data), f"data.corpus={corpus_dir}", "scorer.num_workers=1"])
    out = capsys.readouterr().out
    assert f"{len(list(corpus_dir.glob('*.py')))} documents" in out
    assert "documents/s per process" in out and "measured here: 24 documents from across the corpus" in out
    assert not data.exists()


def test_an_error_in_a_task_is_the_commands_one_line_error(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"text": "one"}\n')
    assert "corpus not found: /nope" in error_of(["score", "--executor", "ray", "--data", str(tmp_path / "d"),
                                                  "data.corpus=/nope"])  # before Ray starts
    # raised inside a task (the scorer loads there): not retried, and said as the task said it
    error = error_of(["score", "--executor", "ray", "--tasks", "1", "--data", str(tmp_path / "d"),
                      f"data.corpus={tmp_path / 'corpus.jsonl'}", "scorer.name=no_such_module:score"])
    assert error.startswith("phf score: error: ") and "no_such_module" in error and "\n" not in error


def test_a_task_of_two_cores_scores_what_one_process_scores(tmp_path, corpus_dir):
    """(Its two scoring processes are the pool's, in the task.)"""
    settings = [f"data.corpus={corpus_dir}", "scorer.shard_size=4", "data.heldout_fraction=0.25"]
    main(["score", "--data", str(tmp_path / "one"), "scorer.num_workers=1", *settings])
    main(["score", "--executor", "ray", "--tasks", "1", "--cpus-per-task", "2", "--data", str(tmp_path / "ray"),
          *settings])
    assert scored(tmp_path / "ray") == scored(tmp_path / "one")
