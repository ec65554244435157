"""Documents to score: the embedded default (the standard library's Python source) or a user's folder/file.

A document is a file, named by its path under the corpus root (its id). The train / held-out split is a hash of the document id, so
it does not depend on the order files are listed in or on how many there are.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "heldout")


class CorpusError(ValueError):
    """The corpus cannot be read as asked."""


def stdlib_root() -> Path:
    """The running interpreter's standard library (where `os.py` lives)."""
    return Path(sysconfig.get_paths()["stdlib"])


def split_of(doc_id: str, heldout_fraction: float) -> str:
    """Deterministic split by a hash of the id: the same document is always on the same side."""
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") / 2**64
    return "heldout" if bucket < heldout_fraction else "train"


@dataclass
class Corpus:
    """Text files under `root` (or the single file `root`) with the given suffixes, in sorted order."""

    root: Path
    suffixes: tuple[str, ...] = (".py",)
    exclude_dirs: tuple[str, ...] = ()

    @classmethod
    def embedded(cls) -> "Corpus":
        # site-packages lives under the stdlib folder on most installs; it is not the stdlib.
        return cls(stdlib_root(), (".py",), ("site-packages", "dist-packages", "__pycache__"))

    @classmethod
    def from_arg(cls, corpus: str | None) -> "Corpus":
        if corpus is None:
            return cls.embedded()
        root = Path(corpus)
        if not root.exists():
            raise CorpusError(f"corpus not found: {root}")
        return cls(root, (".py",), ("__pycache__", ".git"))

    def paths(self) -> list[Path]:
        if self.root.is_file():
            return [self.root]
        found = [
            p for p in self.root.rglob("*")
            if p.suffix in self.suffixes and p.is_file()
            and not any(part in self.exclude_dirs for part in p.relative_to(self.root).parts)
        ]
        return sorted(found)

    def doc_id(self, path: Path) -> str:
        return path.name if self.root.is_file() else path.relative_to(self.root).as_posix()
