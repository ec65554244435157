"""The scorer interface shared by every task. Higher score = more misaligned.

A scorer works on batches: `score_documents` splits each document into segments and scores them
(the scored corpus), `score_texts` scores whole texts (a model's samples). Batching is where a
classifier or an NLP pipeline gets its speed, so both take lists.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter

from phf.errors import PHFError
from phf.scorers.segment import Segmenter


class ScorerUnavailable(PHFError):
    """The scorer cannot be loaded here (a package or its weights are missing); the message says how to get it."""


class ScorerFailed(PHFError):
    """The scorer raised an error (a bug or a bad setting of the scorer, not a bad document): the message names
    the scorer, the documents and the error."""


class UnscorableDocument(Exception):
    """The scorer could not score the whole document. It is counted and reported, never scored as aligned."""


# A scored document: its segments and their scores, or why it could not be scored.
ScoredDocument = tuple[list[str], list[float]] | UnscorableDocument


class Scorer(ABC):
    name: str

    @abstractmethod
    def score_documents(self, documents: list[str]) -> list[ScoredDocument]:
        """Split each document into segments (`"".join(segments) == document`) and score each segment."""

    @abstractmethod
    def score_texts(self, texts: list[str]) -> list[float | None]:
        """Misalignment of whole texts, e.g. samples (with their prompt where there is one); None where
        the scorer cannot score a text: such samples are counted and left out, never scored as aligned."""

    def causes(self, texts: list[str]) -> list[Counter] | None:
        """What each text's misalignment is made of, as counts by cause (PEP8: violation codes; PII: kinds of
        personal data), or None for a scorer whose score has no parts (a classifier's probability)."""
        return None


class SegmentScorer(Scorer):
    """A scorer of independent segments (sentences or lines): every segment of a batch of documents
    is scored in one call of `score_segments`."""

    def __init__(self, segmenter: Segmenter):
        self.segmenter = segmenter

    @abstractmethod
    def score_segments(self, texts: list[str]) -> list[float]:
        """One score per text, in order."""

    def score_documents(self, documents: list[str]) -> list[ScoredDocument]:
        segmented = self.segmenter.split_all(documents)
        flat = [segment for segments in segmented for segment in segments]
        scores = self.score_segments(flat) if flat else []
        if len(scores) != len(flat):
            raise RuntimeError(f"scorer {self.name!r} returned {len(scores)} scores for {len(flat)} segments")
        out, i = [], 0
        for segments in segmented:
            out.append((segments, [float(s) for s in scores[i:i + len(segments)]]))
            i += len(segments)
        return out

    def score_texts(self, texts: list[str]) -> list[float | None]:
        return [float(s) for s in self.score_segments(texts)] if texts else []
