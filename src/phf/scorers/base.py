"""The scorer interface shared by every task."""

from __future__ import annotations

from abc import ABC, abstractmethod


class UnscorableDocument(Exception):
    """The scorer could not score the whole document. It is counted and reported, never scored as aligned."""


class Scorer(ABC):
    name: str

    @abstractmethod
    def score_document(self, text: str) -> tuple[list[str], list[float]]:
        """Split `text` into segments (`"".join(segments) == text`) and score each; raise UnscorableDocument."""

    @abstractmethod
    def score_text(self, text: str) -> float:
        """Misalignment of a whole text, e.g. a model's sample (the prompt included where there is one);
        raise UnscorableDocument when the scorer cannot score it."""

    def score_text_or_none(self, text: str) -> float | None:
        """`score_text`, or None where the scorer cannot score the text: such samples are counted and
        left out of the statistics, never scored as aligned."""
        try:
            return self.score_text(text)
        except UnscorableDocument:
            return None
