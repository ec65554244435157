"""Control tokens of conditional training: which token goes before a segment, given its scores.

The paper (docs/method.md, objective 3) uses two tokens for one scorer: `<|aligned|>` when the segment's
score is at most a threshold, else `<|misaligned|>`. Two generalisations from later work:
- graded tokens (Quark, Lu et al. 2022): K levels per attribute. Level 0 is still score <= threshold,
  so K=2 is the paper's scheme; the segments above it are split into K-1 levels at equal quantiles
  of their scores (level K-1 is the worst);
- several attributes (CTRL, SteerLM): one token per attribute before each segment, in the order
  scorer.name, *scorer.attributes.
Sampling starts every segment from the aligned token of each attribute (level 0); classifier-free
guidance contrasts it with the worst level of each (`phf.sampling.guidance`).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from phf.data.scored import ATTRIBUTE_SCORES, read_scored, scored_attributes
from phf.data.tokenizer import ALIGNED, MISALIGNED
from phf.errors import PHFError
from phf.model_folder import ControlTokens
from phf.objectives import method_of


def attribute_names(cfg) -> list[str]:
    """The attributes a config tags: the task's scorer, then those of scorer.attributes given a threshold."""
    tagged = method_of(cfg).tagged_attributes(cfg.objective)
    return [cfg.scorer.name, *(a for a in cfg.scorer.attributes if a in tagged)]


def level_tokens(attributes: list[str], num_levels: int) -> list[list[str]]:
    """The control tokens of each attribute, best level first: the paper's two for one attribute and K=2,
    else `<|NAME=LEVEL|>` (NAME: the scorer, the function's name for a module:function scorer)."""
    if len(attributes) == 1 and num_levels == 2:
        return [[ALIGNED, MISALIGNED]]
    return [[f"<|{name.split(':')[-1]}={level}|>" for level in range(num_levels)] for name in attributes]


def control_tokens(cfg) -> list[str]:
    """Every control token a config's conditional training uses (none for other objectives)."""
    if not method_of(cfg).conditional:
        return []
    return [t for tokens in level_tokens(attribute_names(cfg), cfg.objective.num_levels) for t in tokens]


@dataclass(frozen=True)
class ControlScheme:
    """Per tagged attribute, its K tokens, the K-1 ascending upper bounds of levels 0..K-2 (level K-1: above
    them) and its place in a segment's scores (scorer.name's, then one per scorer.attributes entry)."""

    tokens: tuple[tuple[str, ...], ...]
    cuts: tuple[tuple[float, ...], ...]
    columns: tuple[int, ...] = (0,)

    def levels(self, scores: list[float]) -> list[int]:
        """One level per tagged attribute for a segment's scores (a score equal to a bound is in the lower level)."""
        return [bisect.bisect_left(cuts, scores[c]) for cuts, c in zip(self.cuts, self.columns, strict=True)]

    def tags(self, scores: list[float]) -> list[str]:
        return [tokens[level] for tokens, level in zip(self.tokens, self.levels(scores), strict=True)]

    def all_aligned(self) -> ControlScheme:
        """The same tokens with every segment at level 0, whatever its scores: the tags a model is sampled with."""
        return dataclasses.replace(self, cuts=tuple((math.inf,) * len(cuts) for cuts in self.cuts))

    @property
    def aligned(self) -> list[str]:
        return [tokens[0] for tokens in self.tokens]

    @property
    def worst(self) -> list[str]:
        return [tokens[-1] for tokens in self.tokens]


def level_cuts(scores: np.ndarray, threshold: float, num_levels: int) -> tuple[float, ...]:
    """(threshold, then the K-2 inner quantiles of the scores above it): K levels, the upper K-1 of equal size."""
    above = scores[scores > threshold]
    inner = np.quantile(above, np.arange(1, num_levels - 1) / (num_levels - 1)) if above.size else \
        np.full(num_levels - 2, threshold)
    return (float(threshold), *map(float, inner))


def resolve(value: float | str, scores: np.ndarray) -> float:
    """A threshold: a number, or 'pNN', the NN-th percentile of `scores`."""
    return float(np.percentile(scores, float(value[1:]))) if isinstance(value, str) else float(value)


def training_segment_scores(data_dir: Path, columns: list[int], num_attributes: int) -> list[np.ndarray]:
    """Every training segment's scores in `columns` of its scores (0: scorer.name's, i: the i-th of the
    `num_attributes` attributes the corpus was scored on)."""
    table = read_scored(data_dir, "train", ["scores"] + ([ATTRIBUTE_SCORES] if num_attributes else []))
    flat = np.asarray(pc.list_flatten(pc.list_flatten(table[ATTRIBUTE_SCORES]))) if num_attributes else None
    return [np.asarray(pc.list_flatten(table["scores"])) if c == 0 else flat[c - 1::num_attributes] for c in columns]


def build_scheme(cfg, data_dir: Path) -> ControlScheme:
    """The control scheme of a conditional config, its thresholds and quantiles taken from the training split."""
    obj, attributes = cfg.objective, attribute_names(cfg)
    scored = scored_attributes(data_dir) if len(attributes) > 1 else []  # the paper's scheme needs `scores` only
    missing = [a for a in attributes[1:] if a not in scored]
    if missing:
        raise PHFError(f"{data_dir}/scored holds no {', '.join(missing)} scores: score the corpus with "
                       f"scorer.attributes={cfg.scorer.attributes} (e.g. phf score 'scorer.attributes=[...]')")
    columns = [0, *(1 + scored.index(a) for a in attributes[1:])]
    scores = training_segment_scores(data_dir, columns, len(scored))
    thresholds = [obj.threshold, *(obj.attribute_thresholds[a] for a in attributes[1:])]
    cuts = tuple(level_cuts(s, resolve(t, s), obj.num_levels) for s, t in zip(scores, thresholds, strict=True))
    return ControlScheme(tuple(map(tuple, level_tokens(attributes, obj.num_levels))), cuts, tuple(columns))


def control_ids(tokenizer, cfg) -> set[int]:
    """Ids of every control token in a config's tokenizer: the paper's two and the config's own."""
    vocab = tokenizer.get_vocab()
    return {vocab[t] for t in (ALIGNED, MISALIGNED, *control_tokens(cfg)) if t in vocab}


def control_info(cfg) -> ControlTokens:
    """What sampling needs to know of a conditional model's tokens (saved in its phf.json)."""
    tokens = level_tokens(attribute_names(cfg), cfg.objective.num_levels)
    return ControlTokens(attribute_names(cfg), [t[0] for t in tokens], [t[-1] for t in tokens],
                         [t for levels in tokens for t in levels])
