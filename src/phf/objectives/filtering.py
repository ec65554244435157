"""Filtering (docs/method.md, objective 2): MLE on the documents whose average score is at most a threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from phf.settings import Section, Threshold


class FilteringConfig(Section):
    name: Literal["filtering"] = Field(description="MLE on the documents scored at most filter_threshold.")
    filter_threshold: Threshold = Field("p90", description="Drop documents with avg_score > threshold. "
                                        "A number, or 'pNN' = NN-th percentile of documents' avg_score.")


def filtered(cfg, data_dir: Path):
    """The training split less the documents whose avg_score is above the threshold."""
    from phf.data.packing import Transform, resolve_threshold

    return Transform(filter_threshold=resolve_threshold(cfg.objective.filter_threshold, data_dir, "avg_score"))
