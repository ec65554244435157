"""JSONL files phf reads: a user's input (prompts, HumanEval problems) strictly, a bad line being an error that
names it; phf's own outputs (samples.jsonl, log.jsonl, curve.jsonl, the KL cache) as a run killed while writing
leaves them. Corpora have their own readers (`phf.data.corpus`)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

from phf.errors import PHFError


def jsonl_records(path: Path, data: bytes) -> Iterator[tuple[int, object]]:
    """(line number, value) of each non-blank line of a JSONL file's bytes; a line that is not UTF-8 or not JSON
    is an error naming it (a file of prompts or problems is read whole, or not at all). A leading UTF-8 byte-order
    mark (some editors write one) is dropped, not read as part of the first line."""
    for number, raw in enumerate(data.removeprefix(codecs.BOM_UTF8).split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PHFError(f"{path}:{number}: not UTF-8 ({e.reason} at byte {e.start})") from None
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            raise PHFError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        except RecursionError:  # json's parser recurses once per level of nesting
            raise PHFError(f"{path}:{number}: nested too deep to parse (deeper than Python's recursion "
                           "limit)") from None


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a JSONL file, one {"text": ...} per line; a bad line is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise PHFError(f"prompt file not found: {path}")
    prompts = []
    for number, record in jsonl_records(path, path.read_bytes()):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise PHFError(f'{path}:{number}: expected an object with a string "text" field')
        prompts.append(record["text"])
    if not prompts:
        raise PHFError(f"{path}: no prompts")
    return prompts


def output_records(path: Path) -> list[dict]:
    """The records of a JSONL file phf wrote, one JSON object a line, blank lines skipped. A last line that is not
    JSON is dropped: a run killed while appending a record (log.jsonl, curve.jsonl) leaves it cut off, and a
    reader polling a running arm's log may see it half written. Any other bad line is an error naming it."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):
                break
            raise PHFError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    return records
