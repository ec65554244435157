"""`phf score`: segment and score every document, in parallel, into resumable Parquet shards (the format:
`phf.data.scored`).

A shard's `.json` is written last, atomically, so a killed run started again scores only the shards without
one: no document is scored twice, lost, or duplicated. `scored/info.json` pins the corpus and scorer, so a
resume with other settings is refused instead of mixing two corpora.

Across machines: `phf score --shard i/N` scores the documents a hash of their id gives to part i
(shards named `shard-pIIIofNNN-*`, done marker `parts/IofN.json`); `phf score --merge PART_DIR...`
checks that the N parts were scored with the same settings and are all complete, and gathers them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from phf.data.corpus import SPLITS, Corpus, CorpusError, Record, split_of
from phf.data.scored import ATTRIBUTE_SCHEMA, ATTRIBUTE_SCORES, SCHEMA, scoring_report
from phf.errors import PHFError
from phf.files import output_folder, owned, write_atomic
from phf.processes import exit_with_parent
from phf.scorers import Scorer, ScorerFailed, UnscorableDocument, accelerated, get_attribute_scorers, get_scorer


class EmptySplit(CorpusError):
    """A split has no scored document: the corpus and settings cannot give training and held-out data."""


def _read_info(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def _finished_shards(out: Path) -> list[Path]:
    return [p for split in SPLITS for p in (out / split).glob("shard-*.json")]



@dataclass
class ShardScorer:
    """Scores shards of records with the task's scorer and its attribute scorers, and writes them. A worker
    process builds one when it starts (`_init_worker`), so models are loaded once, not once per shard."""

    scorer: Scorer
    attribute_scorers: dict[str, Scorer] = field(default_factory=dict)

    def score(self, records: list[Record], out_stem: str) -> tuple[int, list]:
        """Score one shard's documents and write it. Returns (written, skipped)."""
        try:
            return self._score_and_write(records, out_stem)
        except (ScorerFailed, AssertionError, OSError):  # (OSError: writing the shard, a full disk: not the scorer)
            raise
        except Exception as e:  # in the scorer's code: one line naming it and the documents, not a worker traceback
            raise ScorerFailed(f"scorer {self.scorer.name!r} failed on the documents {records[0].doc_id} to "
                               f"{records[-1].doc_id}: {type(e).__name__}: {e}") from None

    def _score_and_write(self, records: list[Record], out_stem: str) -> tuple[int, list]:
        skipped, to_score = [], [r for r in records if r.text is not None and r.text.strip()]
        results = dict(zip((r.doc_id for r in to_score), self.scorer.score_documents([r.text for r in to_score]),
                           strict=True))
        rows = []
        for r in records:
            if r.error is not None:
                skipped.append((r.doc_id, r.error))
                continue
            if r.texts is not None and self.attribute_scorers:
                skipped.append((r.doc_id, "already scored: no attribute scores (scorer.attributes needs its text)"))
                continue
            if r.texts is not None:  # already scored: kept as it is
                texts, scores = r.texts, r.scores
            elif not r.text.strip():
                skipped.append((r.doc_id, "empty"))
                continue
            elif isinstance(result := results[r.doc_id], UnscorableDocument):
                skipped.append((r.doc_id, str(result)))
                continue
            else:
                texts, scores = result
                if "".join(texts) != r.text:
                    raise AssertionError(f"{self.scorer.name} segmentation of {r.doc_id} does not join back to the "
                                         "document")
                if any(s != s for s in scores):
                    skipped.append((r.doc_id, f"{self.scorer.name} returned NaN"))
                    continue
            rows.append({"doc_id": r.doc_id, "texts": texts, "scores": scores, "avg_score": float(np.mean(scores))})
        if self.attribute_scorers:
            rows = self._add_attribute_scores(rows, skipped)
        schema = ATTRIBUTE_SCHEMA if self.attribute_scorers else SCHEMA
        stem = Path(out_stem)
        write_atomic(stem.with_suffix(".parquet"), lambda p: pq.write_table(pa.Table.from_pylist(rows, schema), p))
        prescored = 0 if self.attribute_scorers else sum(r.texts is not None for r in records)  # kept as they are
        meta = {"documents": len(rows), "prescored": prescored, "skipped": skipped}
        write_atomic(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(meta)))
        return len(rows), skipped

    def _add_attribute_scores(self, rows: list[dict], skipped: list) -> list[dict]:
        """Score the rows' segments with each attribute scorer, all segments of the shard in one batch per
        scorer; a document with a segment an attribute cannot score (None or NaN) is skipped, never kept
        with a made-up score. Returns the rows kept."""
        segments = [text for row in rows for text in row["texts"]]
        columns = []
        for name, scorer in self.attribute_scorers.items():
            scores = scorer.score_texts(segments)
            if len(scores) != len(segments):
                raise RuntimeError(f"attribute {name!r} returned {len(scores)} scores for {len(segments)} segments")
            columns.append(scores)
        per_segment = list(zip(*columns, strict=True))  # one tuple of attribute scores per segment
        kept, start = [], 0
        for row in rows:
            scores, start = per_segment[start:start + len(row["texts"])], start + len(row["texts"])
            unscored = next((name for i, name in enumerate(self.attribute_scorers)
                             if any(s[i] is None or s[i] != s[i] for s in scores)), None)
            if unscored is not None:
                skipped.append((row["doc_id"], f"attribute {unscored} gave no score (NaN or None)"))
                continue
            kept.append({**row, ATTRIBUTE_SCORES: [[float(s) for s in segment] for segment in scores]})
        return kept


# A worker process's own ShardScorer: the one state a process pool's initializer can hand to its tasks.
_worker: ShardScorer | None = None


def _init_worker(scorer_config, threads: int, parent: int, gpus=None) -> None:
    global _worker
    exit_with_parent(parent)
    # Each process gets its share of the cores (set before torch, spaCy or scikit-learn start their pools), and a
    # scorer on GPUs one GPU, in turn (set before torch starts CUDA).
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()
        scorer_config = scorer_config.model_copy(update={"device": "cuda"})  # its one GPU
    _worker = ShardScorer(get_scorer(scorer_config), get_attribute_scorers(scorer_config))


def _score_in_worker(records: list[Record], out_stem: str) -> tuple[int, list]:
    return _worker.score(records, out_stem)


def worker_count(scorer) -> int:
    """The processes `phf score` runs here: scorer.num_workers, else one per GPU for a scorer on GPUs, else one per
    core."""
    return scorer.num_workers or len(scoring_gpus(scorer)) or os.cpu_count() or 1


def scoring_gpus(scorer) -> list[str]:
    """The GPUs (as CUDA_VISIBLE_DEVICES names them) that the scorer's processes take one each, in turn: every GPU
    here (scorer.device auto or cuda), the one named (cuda:1), or none (a scorer on the CPU)."""
    if not (accelerated(scorer) and (scorer.device == "auto" or scorer.device.startswith("cuda"))):
        return []
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    count = torch.cuda.device_count()
    gpus = visible.split(",")[:count] if visible else [str(i) for i in range(count)]
    _, _, index = scorer.device.partition(":")
    if not index:
        return gpus
    if not index.isdigit() or int(index) >= len(gpus):
        raise PHFError(f"scorer.device={scorer.device}: this machine has {len(gpus)} visible GPUs")
    return [gpus[int(index)]]


def part_of(doc_id: str, parts: int) -> int:
    """The machine (of `parts`) that scores a document: a hash of its id, independent of the split's hash."""
    return int.from_bytes(hashlib.sha256(f"part:{doc_id}".encode()).digest()[:8], "big") % parts


def _shards(corpus: Corpus, data, shard_size: int,
            part: tuple[int, int] = (0, 1)) -> Iterator[tuple[str, int, list[Record]]]:
    """(split, shard index, records) of this part, in a deterministic order, so a resumed run cuts the same shards."""
    buffers, counts = {s: [] for s in SPLITS}, dict.fromkeys(SPLITS, 0)
    index, parts = part
    # A hub dataset's part reads its own shards; a local corpus (or the first data.max_documents of any), read
    # whole by every part, is cut by a hash of the documents' ids.
    by_shard = corpus.is_hub and data.max_documents is None
    for n, record in enumerate(corpus.records(part if by_shard else (0, 1))):
        if data.max_documents is not None and n >= data.max_documents:
            break
        if parts > 1 and not by_shard and part_of(record.doc_id, parts) != index:
            continue
        if record.error is not None and data.on_error == "fail":
            raise CorpusError(f"{record.doc_id}: {record.error} "
                              "(data.on_error=skip skips such records and reports them)")
        split = split_of(record.doc_id, data.heldout_fraction)
        buffers[split].append(record)
        if len(buffers[split]) == shard_size:
            yield split, counts[split], buffers[split]
            buffers[split], counts[split] = [], counts[split] + 1
    for split in SPLITS:
        if buffers[split]:
            yield split, counts[split], buffers[split]
        elif counts[split] == 0 and parts == 1:  # a part may lack a split; the merge checks the whole
            raise EmptySplit(f"the {split} split of {corpus.describe()} is empty (heldout_fraction="
                              f"{data.heldout_fraction}); use more documents or another fraction")


def score_corpus(cfg, data_dir: Path, part: tuple[int, int] = (0, 1), in_process: bool = False) -> dict:
    """Score both splits of the configured corpus (or part `i` of `N`) into `data_dir/scored`; return the
    report (also saved as report.json). The corpus is streamed and at most two shards per worker are in
    flight, so memory does not grow with the corpus. `in_process`: in this process, no pool (a task of an engine,
    which runs the processes itself: phf.data.engine)."""
    data, scorer = cfg.data, cfg.scorer
    index, parts = part
    if not 0 <= index < parts:
        raise PHFError(f"--shard {index}/{parts}: expected i/N with 0 <= i < N")
    corpus = Corpus.from_config(data)
    out = output_folder(data_dir, "--data") / "scored"
    with owned(out, "--data"):  # one scoring run at a time into a folder
        return _score_corpus(corpus, data, scorer, out, part, in_process)


def _score_corpus(corpus: Corpus, data, scorer, out: Path, part: tuple[int, int], in_process: bool) -> dict:
    index, parts = part
    info = {"corpus": corpus.describe(), "fingerprint": corpus.fingerprint(),
            **data.model_dump(include={"text_field", "suffixes", "heldout_fraction", "max_documents"}),
            "scorer": scorer.deciding(), "parts": parts,
            **({"doc_ids": "<name>#<shard>:<row>"} if corpus.is_hub else {})}
    info_path, failed = out / "info.json", out / "failed.json"
    if info_path.exists() and _read_info(info_path) != info:
        if failed.exists():  # kept to be read; a corrected run replaces it
            print(f"{out} holds a failed scoring run ({json.loads(failed.read_text())['error']}): replaced")
            shutil.rmtree(out)
        elif _finished_shards(out):  # (a run that failed before finishing a shard left nothing to protect)
            raise PHFError(f"{out} holds a scoring run of another corpus or with other settings ({info_path}); "
                           "use another data folder or delete it")
    # A scorer that cannot load fails here, with its own message, not in a worker. Scoring in this process, it is
    # the one that scores; for workers, it is loaded on the CPU (the GPUs are theirs) and their device checked.
    here = ShardScorer(get_scorer(scorer), get_attribute_scorers(scorer)) if in_process else None
    if not in_process:
        on_cpu = scorer.model_copy(update={"device": "cpu"})
        get_scorer(on_cpu)
        get_attribute_scorers(on_cpu)
        if accelerated(scorer):
            from phf.scorers.toxicity import placement

            placement(scorer.device, scorer.dtype)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(info_path, lambda p: p.write_text(json.dumps(info, indent=1)))
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
    try:
        return _score_shards(corpus, data, scorer, out, part, here)
    except EmptySplit as e:  # these settings can never give a usable folder: say so, so that a retry may change them
        write_atomic(failed, json.dumps({"error": str(e)}))
        raise


def _pool(scorer, here: ShardScorer | None):
    """(submit(records, stem) -> Future, the pool to close, its size): a process per core or GPU, or this process
    with `here`."""
    if here is not None:
        return partial(_done_now, here.score), nullcontext(), 1
    gpus = scoring_gpus(scorer)
    workers = worker_count(scorer)
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = get_context("spawn")
    given = None
    if gpus:
        given = context.Queue()
        for i in range(workers):
            given.put(gpus[i % len(gpus)])
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(scorer, threads, os.getpid(), given))
    return partial(pool.submit, _score_in_worker), pool, workers


def _done_now(score, records: list[Record], stem: str) -> Future:
    done = Future()
    done.set_result(score(records, stem))
    return done


def _score_shards(corpus: Corpus, data, scorer, out: Path, part: tuple[int, int], here: ShardScorer | None) -> dict:
    index, parts = part
    submit, pool, workers = _pool(scorer, here)
    pending = deque()
    with tqdm(desc=f"scoring ({scorer.name}, {workers} processes)", unit="doc", dynamic_ncols=True) as bar:
        def collect(future):
            written, skipped = future.result()
            bar.update(written + len(skipped))

        with pool:
            prefix = "shard-" if parts == 1 else f"shard-p{index:03d}of{parts:03d}-"
            for split, number, records in _shards(corpus, data, scorer.shard_size, part):
                stem = out / split / f"{prefix}{number:05d}"
                if stem.with_suffix(".json").exists():  # done by an earlier run
                    bar.update(len(records))
                    continue
                pending.append(submit(records, str(stem)))
                while len(pending) >= 2 * workers:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
    (out / "parts").mkdir(exist_ok=True)
    write_atomic(out / "parts" / f"{index}of{parts}.json", json.dumps({"part": index, "parts": parts}))
    return _finish(out.parent, check_splits=parts == 1)






def _finish(data_dir: Path, check_splits: bool) -> dict:
    report = scoring_report(data_dir)
    out = Path(data_dir) / "scored"
    for split in SPLITS:
        if check_splits and report[split]["documents"] == 0:
            raise EmptySplit(f"no {split} document could be scored ({report[split]['skipped_by_reason']}); "
                             f"see {out}/{split}/shard-*.json")
    write_atomic(out / "report.json", json.dumps(report, indent=1))
    return report


def merge_scored(part_dirs: list[Path], data_dir: Path) -> dict:
    """Gather the parts of a corpus scored on several machines (`--shard i/N`) into `data_dir`: every part
    must come from the same settings, and parts 0..N-1 must all be complete."""
    infos = {}
    for d in map(Path, part_dirs):
        info_path = d / "scored" / "info.json"
        if not info_path.exists():
            raise PHFError(f"{d} holds no scored data ({info_path} missing)")
        infos[d] = json.loads(info_path.read_text())
    first = next(iter(infos.values()))
    if any(info != first for info in infos.values()):
        raise PHFError("the parts were scored with different corpora or settings: "
                       + ", ".join(f"{d}/scored/info.json" for d in infos))
    parts = first["parts"]
    done = {p.name for d in infos for p in (d / "scored" / "parts").glob("*of*.json")}
    missing = [i for i in range(parts) if f"{i}of{parts}.json" not in done]
    if missing:
        raise PHFError(f"parts {missing} of {parts} are missing or unfinished; score them with --shard i/{parts}")
    out = output_folder(data_dir, "--data") / "scored"
    with owned(out, "--data"):
        return _merge(infos, first, out)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the filesystem allows (a part's files are never rewritten), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _merge(infos: dict[Path, dict], first: dict, out: Path) -> dict:
    if (out / "info.json").exists() and json.loads((out / "info.json").read_text()) != first:
        raise PHFError(f"{out} holds a scoring run with other settings; merge into another folder")
    for sub in (*SPLITS, "parts"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for d in infos:
        for split in (*SPLITS, "parts"):
            for path in (d / "scored" / split).glob("*"):
                if path.suffix in (".parquet", ".json") and not (out / split / path.name).exists():
                    _link_or_copy(path, out / split / path.name)
    write_atomic(out / "info.json", json.dumps(first, indent=1))
    return _finish(out.parent, check_splits=True)









