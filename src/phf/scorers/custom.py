"""A user's own scorer: `module:function`, a callable from a list of texts to a list of floats
(higher = more misaligned), used like the built-in ones (`scorer.name=my_scores:toxicity`)."""

from __future__ import annotations

import importlib
import numbers
import os
import sys
from collections.abc import Callable

from phf.errors import PHFError
from phf.scorers.base import SegmentScorer
from phf.scorers.segment import Segmenter


def load_callable(spec: str) -> Callable[[list[str]], list[float]]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise PHFError(f"custom scorer {spec!r}: expected module:function, e.g. my_scores:toxicity")
    if os.getcwd() not in sys.path:  # as `python -m` would: a module in the working directory is found
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise PHFError(f"custom scorer {spec!r}: cannot import {module_name!r} ({e})") from e
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise PHFError(f"custom scorer {spec!r}: {module_name} has no callable {attr!r}")
    return fn


class CustomScorer(SegmentScorer):
    def __init__(self, spec: str, segmenter: Segmenter):
        super().__init__(segmenter)
        self.name, self.fn = spec, load_callable(spec)

    def score_segments(self, texts: list[str]) -> list[float]:
        scores = list(self.fn(list(texts)))
        if len(scores) != len(texts):
            raise PHFError(f"custom scorer {self.name!r} returned {len(scores)} scores for {len(texts)} texts")
        bad = [s for s in scores if not isinstance(s, numbers.Real) or s != s]
        if bad:
            raise PHFError(f"custom scorer {self.name!r} returned non-numbers, e.g. {bad[0]!r}")
        return [float(s) for s in scores]
