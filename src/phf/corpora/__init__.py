"""Corpora that ship with phf, so the toxicity and PII tasks run offline as the PEP8 task does on the standard
library (`data.corpus: builtin:pii`, `builtin:toxicity`), and the last-word sets from their held-out splits
(`--downstream lambada=builtin:pii-lastword`). How they are built and what they hold: `build.py` and
docs/results.md (The built-in toxicity and PII corpora)."""

from __future__ import annotations

from pathlib import Path

from phf.errors import PHFError

HERE = Path(__file__).resolve().parent
PREFIX = "builtin:"
FILES = {"toxicity": "toxicity.parquet", "pii": "pii.parquet",
         "toxicity-lastword": "toxicity-lastword.jsonl", "pii-lastword": "pii-lastword.jsonl"}


def builtin_path(source: str) -> Path | None:
    """The shipped file of a `builtin:NAME` source; None for any other source."""
    if not source.startswith(PREFIX):
        return None
    name = source[len(PREFIX):]
    if name not in FILES:
        raise PHFError(f"nothing built in is called {source!r}; built in: {', '.join(PREFIX + n for n in FILES)}")
    return HERE / FILES[name]
