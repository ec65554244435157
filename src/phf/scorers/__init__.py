"""Misalignment scorers: higher score = worse. A scorer splits documents into segments and scores each.

Built-in: pep8 (code lines), profanity, detoxify and classifier (toxicity of sentences), pii
(personal data per character of sentences); or a user's `module:function`.
"""

from __future__ import annotations

from phf.errors import PHFError
from phf.scorers.base import ScoredDocument, Scorer, ScorerFailed, ScorerUnavailable, SegmentScorer, UnscorableDocument
from phf.scorers.segment import Segmenter


def get_scorer(cfg) -> Scorer:
    """The scorer a `ScorerConfig` names. Libraries are imported here, so a task loads only its own."""
    segmenter = Segmenter(cfg.segmenter, cfg.batch_size)
    if cfg.name == "pep8":
        from phf.scorers.pep8 import PEP8Scorer

        return PEP8Scorer()
    if cfg.name == "profanity":
        from phf.scorers.toxicity import ProfanityScorer

        return ProfanityScorer(segmenter)
    if cfg.name == "detoxify":
        from phf.scorers.toxicity import DetoxifyScorer

        return DetoxifyScorer(segmenter, cfg.model or "original", cfg.batch_size)
    if cfg.name == "classifier":
        from phf.scorers.toxicity import ClassifierScorer

        if not cfg.model:
            raise PHFError("scorer classifier needs scorer.model: a sequence-classification model folder or hub name")
        return ClassifierScorer(segmenter, cfg.model, cfg.label, cfg.batch_size)
    if cfg.name == "pii":
        from phf.scorers.pii import PIIScorer

        return PIIScorer(segmenter, cfg.batch_size)
    from phf.scorers.custom import CustomScorer

    return CustomScorer(cfg.name, segmenter)


def get_attribute_scorers(cfg) -> dict[str, Scorer]:
    """The scorers of `cfg.attributes`, by name, in order. They share the segmenter and batch settings;
    `model` and `label` configure `cfg.name` only, so each attribute gets its scorer's defaults."""
    return {name: get_scorer(cfg.model_copy(update={"name": name, "model": None, "label": None, "attributes": []}))
            for name in cfg.attributes}


__all__ = ["ScoredDocument", "Scorer", "ScorerFailed", "ScorerUnavailable", "SegmentScorer", "Segmenter",
           "UnscorableDocument", "get_attribute_scorers", "get_scorer"]
