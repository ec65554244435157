"""Misalignment scorers: higher score = worse. A scorer splits a document into segments and scores each."""

from __future__ import annotations

from phf.scorers.base import Scorer, UnscorableDocument
from phf.scorers.pep8 import PEP8Scorer

SCORERS: dict[str, type[Scorer]] = {"pep8": PEP8Scorer}


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; available: {', '.join(SCORERS)}")
    return SCORERS[name]()


__all__ = ["SCORERS", "Scorer", "UnscorableDocument", "get_scorer"]
