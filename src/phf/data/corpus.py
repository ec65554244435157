"""Documents to score: the embedded default (the standard library's Python source), a user's files,
or a Hugging Face dataset.

A local corpus is a file or a folder of files. Each file is read by its suffix:
    .jsonl            one record per line          doc id  <file>:<line>
    .json             a list of records            doc id  <file>#<index>
    .csv              one record per row            doc id  <file>:<line>
    .parquet          one record per row            doc id  <file>#<row>
    anything else     the whole file is a document  doc id  <file>
A record's text is its `text_field`. A record that already holds the paper's scored format
(`texts` and `scores`, e.g. the paper's own datasets) is taken as it is, not scored again.
`stdlib` is the embedded PEP8 corpus; `builtin:toxicity` and `builtin:pii` are the corpora phf ships for the
text tasks (phf.corpora). A name that is not a local path is loaded with
`datasets.load_dataset(..., streaming=True)`, shard by shard: document `<name>#<shard>:<row>`.

Every text file may start with a UTF-8 byte-order mark (some editors and spreadsheets write one): it is
dropped, not read as part of the first column name or record.

Reading streams: nothing holds the whole corpus in memory. A malformed record (bad JSON, JSON nested deeper
than Python can parse, no text field, not UTF-8) becomes a `Record` with an `error` naming its file and line,
which scoring skips and reports, or stops at, as the user chose. The train / held-out split is a hash of the
document id, so it does not depend on the order or number of documents.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from phf.corpora import builtin_path
from phf.errors import PHFError

SPLITS = ("train", "heldout")
RECORD_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
EMBEDDED = "stdlib"
HUB_NAME = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


class CorpusError(PHFError):
    """The corpus cannot be read as asked."""


@dataclass(frozen=True)
class Record:
    """One document: `text` to score, or `texts` and `scores` already scored, or an `error` saying why it is
    malformed."""

    doc_id: str
    text: str | None = None
    texts: list[str] | None = None
    scores: list[float] | None = None
    error: str | None = None


def stdlib_root() -> Path:
    """The running interpreter's standard library (where `os.py` lives)."""
    return Path(sysconfig.get_paths()["stdlib"])


def split_of(doc_id: str, heldout_fraction: float) -> str:
    """Deterministic split by a hash of the id: the same document is always on the same side."""
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") / 2**64
    return "heldout" if bucket < heldout_fraction else "train"


def record_from(doc_id: str, row, text_field: str) -> Record:
    """A record from one parsed JSON object or table row."""
    if not isinstance(row, dict):
        return Record(doc_id, error=f"expected an object with a {text_field!r} field, got {type(row).__name__}")
    if row.get("texts") is not None and row.get("scores") is not None:
        return _prescored(doc_id, row["texts"], row["scores"])
    text = row.get(text_field)
    if not isinstance(text, str):
        if text_field not in row:
            return Record(doc_id, error=f"no {text_field!r} field (fields: {', '.join(map(str, row)) or 'none'}; "
                                        "choose one with data.text_field)")
        return Record(doc_id, error=f"field {text_field!r} is {type(text).__name__}, not text")
    if SURROGATE.search(text):
        return Record(doc_id, error="text holds a lone surrogate (an escape like \\udc80): not encodable as UTF-8")
    return Record(doc_id, text=text)


def _prescored(doc_id: str, texts, scores) -> Record:
    ok = (isinstance(texts, list) and isinstance(scores, list) and texts and len(texts) == len(scores)
          and all(isinstance(t, str) and not SURROGATE.search(t) for t in texts)
          and all(isinstance(s, (int, float)) and not isinstance(s, bool) and s == s for s in scores))
    if not ok:
        return Record(doc_id, error="'texts' and 'scores' must be non-empty lists of strings and numbers of the "
                                    "same length")
    return Record(doc_id, texts=texts, scores=[float(s) for s in scores])


# Bytes that are not UTF-8 are read as lone surrogates (errors="surrogateescape"), which no valid UTF-8 text
# holds: one bad byte costs the record that holds it, found by this pattern, and the rest of the file is read.
NOT_UTF8 = re.compile("[\udc80-\udcff]")
SURROGATE = re.compile("[\ud800-\udfff]")  # also what a JSON escape like "\\udc80" gives: not encodable text
# json's parser recurses once per level of nesting: a record nested thousands deep raises RecursionError.
TOO_DEEP = "nested too deep to parse (deeper than Python's recursion limit)"


def _open(path: Path, newline: str | None = None):
    # utf-8-sig: a leading byte-order mark is dropped, not read into the first column name or record
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


def read_jsonl(path: Path, name: str, text_field: str) -> Iterator[Record]:
    with _open(path) as f:
        for line_number, line in enumerate(f, 1):
            doc_id = f"{name}:{line_number}"
            if NOT_UTF8.search(line):
                yield Record(doc_id, error="not UTF-8")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield Record(doc_id, error=f"not valid JSON ({e.msg} at column {e.colno})")
                continue
            except RecursionError:
                yield Record(doc_id, error=TOO_DEEP)
                continue
            yield record_from(doc_id, row, text_field)


def read_json(path: Path, name: str, text_field: str) -> Iterator[Record]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:  # one record: the whole file
        yield Record(name, error=f"not a valid UTF-8 JSON file ({e}); for one record per line use .jsonl")
        return
    except RecursionError:
        yield Record(name, error=f"{TOO_DEEP}; for one record per line use .jsonl")
        return
    if not isinstance(rows, list):
        yield Record(name, error=f"expected a JSON list of records, got {type(rows).__name__}")
        return
    for i, row in enumerate(rows):
        yield record_from(f"{name}#{i}", row, text_field)


def read_csv(path: Path, name: str, text_field: str) -> Iterator[Record]:
    csv.field_size_limit(2**31 - 1)  # a document may be longer than the csv module's 131,072-character default
    with _open(path, newline="") as f:
        reader = csv.DictReader(f)
        try:
            fields = reader.fieldnames
        except csv.Error as e:
            fields, problem = None, f"unreadable CSV header ({e})"
        else:
            problem = None if fields is not None and text_field in fields else \
                f"no column {text_field!r} (columns: {', '.join(fields or [])}); choose one with data.text_field"
        if problem:
            yield Record(name, error=problem)
            return
        start = 2
        while True:
            doc_id = f"{name}:{start}"
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:  # a malformed row: the reader goes on at the next line
                yield Record(doc_id, error=f"unreadable CSV row ({e})")
                start = reader.line_num + 1
                continue
            start = reader.line_num + 1
            if None in row:  # more cells than the header
                yield Record(doc_id, error=f"{len(row[None])} more cells than the header's {len(fields)}")
            elif row[text_field] is None:
                yield Record(doc_id, error=f"fewer cells than the header; no {text_field!r}")
            elif NOT_UTF8.search(row[text_field]):
                yield Record(doc_id, error="not UTF-8")
            else:
                yield Record(doc_id, text=row[text_field])


def read_parquet(path: Path, name: str, text_field: str) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        yield Record(name, error=f"not a readable Parquet file ({e})")
        return
    fields = file.schema_arrow.names
    columns = ["texts", "scores"] if {"texts", "scores"} <= set(fields) else [text_field]
    if columns == [text_field] and text_field not in fields:
        yield Record(name, error=f"no column {text_field!r} (columns: {', '.join(fields)}); "
                                 "choose one with data.text_field")
        return
    row_number = 0
    try:
        for batch in file.iter_batches(1024, columns=columns):
            for row in batch.to_pylist():
                yield record_from(f"{name}#{row_number}", row, text_field)
                row_number += 1
    except (pa.ArrowException, OSError) as e:
        yield Record(f"{name}#{row_number}", error=f"unreadable Parquet ({e}); the rest of the file is skipped")


def read_document(path: Path, name: str) -> Iterator[Record]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # newline="" keeps "\r\n" as it is
            yield Record(name, text=f.read())
    except UnicodeDecodeError:
        yield Record(name, error="not UTF-8")


READERS = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv, ".parquet": read_parquet}


def read_hub(name: str, split: str, subset: str | None, text_field: str,
             part: tuple[int, int] = (0, 1)) -> Iterator[Record]:
    """A Hugging Face dataset, streamed (nothing downloaded ahead, so any size works) shard by shard (its files):
    document `name#j:k` is row k of shard j. Part i of N reads shards i, i + N, ... only, so that N tasks each
    read their own files."""
    import datasets

    index, parts = part
    try:
        stream = datasets.load_dataset(name, subset, split=split, streaming=True)
        shards = stream.num_shards
        for j in range(index, shards, parts):
            for k, row in enumerate(stream.shard(num_shards=shards, index=j)):
                yield record_from(f"{name}#{j}:{k}", row, text_field)
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as e:
        raise CorpusError(f"{name!r} is no local file or folder, and cannot be loaded as a Hugging Face dataset "
                          f"(split {split!r}): {e}. Offline, pass a local file or folder as the corpus.") from e


@dataclass
class Corpus:
    """A corpus source and how to read it; `records()` streams its documents."""

    source: str = EMBEDDED  # the standard library's .py files
    text_field: str = "text"
    suffixes: tuple[str, ...] = (".py",)
    hub_split: str = "train"
    hub_subset: str | None = None

    @classmethod
    def from_config(cls, data) -> Corpus:
        if data.corpus is None:
            raise CorpusError("no corpus given: pass --corpus (a .jsonl/.json/.csv/.parquet/.txt file or folder, a "
                              "Hugging Face dataset name, stdlib, builtin:toxicity or builtin:pii) or set data.corpus")
        corpus = cls(data.corpus, data.text_field, tuple(data.suffixes), data.hub_split, data.hub_subset)
        if not corpus.is_hub and not corpus.root.exists():
            raise CorpusError(f"corpus not found: {corpus.source} is no file or folder (from {Path.cwd()})")
        return corpus

    @property
    def is_hub(self) -> bool:
        """A name, or owner/name, that is no local path and does not look like one: a relative path whose
        first folder exists here, or one starting with . or ~, or with a file suffix, is a missing path."""
        path = Path(self.source)
        if self.source == EMBEDDED or path.exists() or not HUB_NAME.match(self.source):
            return False
        looks_local = (self.source.startswith((".", "~")) or path.suffix in (*RECORD_SUFFIXES, *self.suffixes, ".txt")
                       or (len(path.parts) > 1 and Path(path.parts[0]).is_dir()))
        return not looks_local

    @property
    def root(self) -> Path:
        return stdlib_root() if self.source == EMBEDDED else builtin_path(self.source) or Path(self.source)

    def describe(self) -> str:
        """What a resumed scoring run must match (a built-in corpus by its name: the same wherever phf is installed)."""
        if self.is_hub:
            return f"hf:{self.source}:{self.hub_subset}:{self.hub_split}"
        return self.source if builtin_path(self.source) else str(self.root.resolve())

    def fingerprint(self) -> str | None:
        """Names, sizes and modification times of the local files: a resumed scoring run must see the same corpus.
        A built-in corpus: its file's contents, so that parts scored on other machines merge."""
        if self.is_hub:
            return None
        if builtin_path(self.source):
            return hashlib.sha256(self.root.read_bytes()).hexdigest()
        digest = hashlib.sha256()
        for path in self.files():
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def files(self) -> list[Path]:
        root = self.root
        if root.is_file():
            return [root]
        # The embedded default leaves out site-packages, which lives under the stdlib folder on most installs.
        excluded = {"__pycache__", ".git"} | ({"site-packages", "dist-packages"} if self.source == EMBEDDED else set())
        found = [p for p in root.rglob("*") if p.suffix in self.suffixes and p.is_file()
                 and not excluded.intersection(p.relative_to(root).parts)]
        if not found:
            raise CorpusError(f"corpus {root} has no {' / '.join(self.suffixes)} files (data.suffixes)")
        return sorted(found)

    def count(self) -> int | None:
        """Documents in the corpus, without parsing them: a Parquet file's row count, a JSONL file's
        non-blank lines, a CSV file's lines less its header (more than its rows where a field spans lines), a JSON
        file's records, one per other file; a hub dataset's count from its card (None where the card gives none)."""
        if self.is_hub:
            import datasets

            try:
                splits = datasets.load_dataset_builder(self.source, self.hub_subset).info.splits or {}
            except (ConnectionError, OSError, ValueError):
                return None
            found = splits.get(self.hub_split)
            return found.num_examples if found and found.num_examples else None
        import pyarrow.parquet as pq

        total = 0
        for path in self.files():
            if path.suffix == ".parquet":
                total += pq.ParquetFile(path).metadata.num_rows
            elif path.suffix in (".jsonl", ".csv"):
                with path.open("rb") as f:
                    lines = sum(1 for line in f if line.strip())
                total += lines - (path.suffix == ".csv")
            elif path.suffix == ".json":
                total += sum(1 for _ in read_json(path, path.name, self.text_field))
            else:
                total += 1
        return total

    def records(self, part: tuple[int, int] = (0, 1)) -> Iterator[Record]:
        """The documents; of a hub dataset, those of its shards that part i of N reads (local files: all)."""
        if self.is_hub:
            yield from read_hub(self.source, self.hub_split, self.hub_subset, self.text_field, part)
            return
        for path in self.files():
            yield from self._file_records(path)

    def _file_records(self, path: Path) -> Iterator[Record]:
        root = self.root
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        reader = READERS.get(path.suffix)
        try:
            for record in reader(path, name, self.text_field) if reader else read_document(path, name):
                if reader and record.doc_id == name and root.is_file():  # the whole corpus is unreadable
                    raise CorpusError(f"{path}: {record.error}")
                yield record
        except OSError as e:  # e.g. no permission: this file is skipped, named, and the others read
            yield Record(name, error=f"unreadable ({e.strerror or e})")

    def sample(self, n: int) -> list[Record]:
        """About n documents from across the corpus, without reading it all: the first of each of n evenly spaced
        files of a folder of more than n, else the first n documents."""
        if self.is_hub or len(files := self.files()) <= n:
            return list(itertools.islice(self.records(), n))
        step = len(files) / n
        return [record for i in range(n) for record in itertools.islice(self._file_records(files[int(i * step)]), 1)]
