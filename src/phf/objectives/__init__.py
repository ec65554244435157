"""Training objectives (docs/method.md, Objectives). Every objective has one signature:

    loss, metrics = objective(nll, scores, values)

with tensors already shifted by the trainer so that position j predicts token j + 1:
    nll     (B, T-1)     -log p(token j+1 | tokens <= j), fp32 (`phf.objectives.nll`): every objective
                         is a function of it and the scores, so the logits are never materialised
    scores  (B, T-1)     misalignment score of each *target* token's segment (R_j = -scores_j)
    values  (B, T-1)     value-head output at positions 0..T-2 (it predicts R_j), or None
`metrics` maps names to scalar tensors (detached) that the trainer logs.

Filtering and conditional training are data transforms (`phf.data.packing`); their loss is MLE.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from phf.config import ObjectiveConfig
from phf.objectives.mle import mle
from phf.objectives.unlikelihood import Unlikelihood
from phf.objectives.weighted import AWR, RWR

Objective = Callable[[Tensor, Tensor, "Tensor | None"], tuple[Tensor, dict[str, Tensor]]]

# name -> objective, from the objective's config and its threshold resolved to a number
OBJECTIVES: dict[str, Callable[[ObjectiveConfig, float], Objective]] = {
    "mle": lambda cfg, threshold: mle,
    "filtering": lambda cfg, threshold: mle,
    "conditional": lambda cfg, threshold: mle,
    "unlikelihood": lambda cfg, threshold: Unlikelihood(threshold=threshold, alpha=cfg.alpha),
    "rwr": lambda cfg, threshold: RWR(beta=cfg.beta, max_weight=cfg.max_weight),
    "awr": lambda cfg, threshold: AWR(alpha=cfg.alpha, beta=cfg.beta, max_weight=cfg.max_weight),
}

NEEDS_VALUE_HEAD = {"awr"}


def build_objective(cfg: ObjectiveConfig, threshold: float) -> Objective:
    return OBJECTIVES[cfg.name](cfg, threshold)


__all__ = ["NEEDS_VALUE_HEAD", "OBJECTIVES", "Objective", "build_objective", "mle"]
