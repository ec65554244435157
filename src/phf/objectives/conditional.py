"""Conditional training (docs/method.md, objective 3): a control token before every segment, by its score; the
model is sampled from the aligned tokens. The control tokens themselves: `phf.data.control`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from phf.settings import THRESHOLD, Section, Threshold


class ConditionalConfig(Section):
    name: Literal["conditional"] = Field(description="A control token before every "
                                         "segment; sampled from the aligned one.")
    threshold: Threshold = Field(0.0, description=THRESHOLD)
    drop_token_fraction: float = Field(0.0, ge=0, le=1, description="Share of segments given no control token.")
    num_levels: int = Field(2, ge=2, le=100, description="Control tokens per attribute, K. Level 0 (aligned) "
                            "is score <= threshold; the other segments are split into K-1 levels at equal "
                            "quantiles of their scores (Quark's quantile tokens; threshold pNN with NN = "
                            "100/K gives K equal bins). K=2 is the paper's <|aligned|> / <|misaligned|>.")
    attribute_thresholds: dict[str, Threshold] = Field({}, description="Also tag these scorer.attributes, "
                                                       "each with its aligned threshold (a number or 'pNN'), "
                                                       "as threshold is for scorer.name; e.g. {pii: 0}.")
    cooldown_fraction: float = Field(0.0, ge=0, lt=1, description="Train the last share of the token budget "
                                     "without control tokens (MeCo's cooldown), to measure what conditioning "
                                     "costs and keeps; sampling still starts from the aligned tokens.")


def tagged(cfg, data_dir: Path):
    """The training split with a control token before each segment, but for a random drop_token_fraction."""
    from phf.data.control import build_scheme
    from phf.data.packing import Transform

    return Transform(control=build_scheme(cfg, data_dir), drop_token_fraction=cfg.objective.drop_token_fraction,
                     seed=cfg.training.seed)
