"""Training objectives (PHF.md, Objectives). Every objective has one signature:

    loss, metrics = objective(logits, targets, scores, values)

with tensors already shifted by the trainer so that position j predicts `targets[:, j]`:
    logits  (B, T-1, V)  the model's output at positions 0..T-2
    targets (B, T-1)     tokens 1..T-1
    scores  (B, T-1)     misalignment score of each *target* token's segment (R_j = -scores_j)
    values  (B, T-1)     value-head output at positions 0..T-2, or None
`metrics` maps names to scalar tensors (detached) that the trainer logs.

Filtering and conditional training are data transforms (`phf.data.packing`); their loss is MLE.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from phf.objectives.mle import mle

Objective = Callable[[Tensor, Tensor, Tensor, "Tensor | None"], tuple[Tensor, dict[str, Tensor]]]

OBJECTIVES: dict[str, Objective] = {
    "mle": mle,
    "filtering": mle,
    "conditional": mle,
}

__all__ = ["OBJECTIVES", "Objective", "mle"]
