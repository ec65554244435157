"""Misalignment scorers: higher score = worse. A scorer splits documents into segments and scores each.

Every built-in scorer is one row of `SCORERS`: how it is built, what it does (config help), what its score
means (reports), and the segments it scores. Or a user's `module:function`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from phf.errors import PHFError
from phf.extras import needs
from phf.scorers.base import ScoredDocument, Scorer, ScorerFailed, ScorerUnavailable, SegmentScorer, UnscorableDocument
from phf.scorers.segment import Segmenter


@dataclass(frozen=True)
class ScorerSpec:
    """A built-in scorer. `build(settings, segmenter)` imports its libraries, so a task loads only its own."""

    description: str  # what it scores, for `scorer.name`'s help
    meaning: str  # what a score means, for reports' axes and captions
    build: Callable[[object, Segmenter], Scorer]
    segments: str | None = None  # a segmentation of its own ("lines"), else `scorer.segmenter`
    accelerated: bool = False  # runs on a GPU where scorer.device says (one scoring process per GPU)


def _pep8(settings, segmenter: Segmenter) -> Scorer:
    from phf.scorers.pep8 import PEP8Scorer

    return PEP8Scorer()


def _profanity(settings, segmenter: Segmenter) -> Scorer:
    with needs("text", "scorer profanity"):
        from phf.scorers.toxicity import ProfanityScorer

        return ProfanityScorer(segmenter)


def _detoxify(settings, segmenter: Segmenter) -> Scorer:
    from phf.scorers.toxicity import DetoxifyScorer

    return DetoxifyScorer(segmenter, settings.model or "original", settings.batch_size, settings.device,
                          settings.dtype)


def _classifier(settings, segmenter: Segmenter) -> Scorer:
    from phf.scorers.toxicity import ClassifierScorer

    if not settings.model:
        raise PHFError("scorer classifier needs scorer.model: a sequence-classification model folder or hub name")
    return ClassifierScorer(segmenter, settings.model, settings.label, settings.batch_size, settings.device,
                            settings.dtype)


def _pii(settings, segmenter: Segmenter) -> Scorer:
    with needs("text", "scorer pii"):
        from phf.scorers.pii import PIIScorer

        return PIIScorer(segmenter, settings.batch_size)


SCORERS: dict[str, ScorerSpec] = {
    "pep8": ScorerSpec("pycodestyle violations per character of each line (code)",
                       "PEP8 violations per character", _pep8, segments="lines"),
    "profanity": ScorerSpec("alt-profanity-check's probability that a sentence is offensive (model ships in the "
                            "package; offline)", "probability of offensive language (alt-profanity-check)",
                            _profanity),
    "detoxify": ScorerSpec("Detoxify's toxicity probability per sentence, the paper's scorer (scorer.model: original "
                           "or unbiased, or a local checkpoint; downloads its weights once)",
                           "probability of toxicity (Detoxify)", _detoxify, accelerated=True),
    "classifier": ScorerSpec("a Hugging Face sequence-classification model's probability of scorer.label per "
                             "sentence (scorer.model: a local folder or hub name)",
                             "the classifier's probability of its misaligned label", _classifier, accelerated=True),
    "pii": ScorerSpec("personal data items found per character of each sentence (scrubadub detectors + spaCy NER)",
                      "personal data items per character", _pii),
}


def segmenter_of(settings) -> Segmenter:
    """The segments a `ScorerConfig`'s scorer scores: its own (PEP8: lines), else `scorer.segmenter`."""
    spec = SCORERS.get(settings.name)
    return Segmenter((spec and spec.segments) or settings.segmenter, settings.batch_size)


def accelerated(settings) -> bool:
    """Whether a `ScorerConfig`'s scorer runs where scorer.device says (a GPU), not on the CPU alone."""
    spec = SCORERS.get(settings.name)
    return bool(spec and spec.accelerated)


def score_meaning(name: str | None) -> str:
    """What a score of scorer `name` means (a user's module:function scorer: its own scale)."""
    spec = SCORERS.get(name or "pep8")
    return spec.meaning if spec else f"score of {name}"


def get_scorer(settings) -> Scorer:
    """The scorer a `ScorerConfig` names."""
    if spec := SCORERS.get(settings.name):
        return spec.build(settings, segmenter_of(settings))
    from phf.scorers.custom import CustomScorer

    return CustomScorer(settings.name, segmenter_of(settings))


def get_attribute_scorers(settings) -> dict[str, Scorer]:
    """The scorers of `settings.attributes`, by name, in order. They share the segmenter and batch settings;
    `model` and `label` configure `settings.name` only, so each attribute gets its scorer's defaults."""
    return {name: get_scorer(settings.model_copy(update={"name": name, "model": None, "label": None,
                                                         "attributes": []}))
            for name in settings.attributes}


__all__ = ["SCORERS", "ScoredDocument", "Scorer", "ScorerFailed", "ScorerSpec", "ScorerUnavailable", "SegmentScorer",
           "Segmenter", "UnscorableDocument", "accelerated", "get_attribute_scorers", "get_scorer", "score_meaning",
           "segmenter_of"]
