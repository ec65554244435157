"""Unlikelihood training (docs/method.md, objective 4; Welleck et al. 2019).

Tokens of aligned segments (score <= threshold) get -log p(x_j | x_<j); tokens of misaligned
ones get -alpha * log(1 - p(x_j | x_<j)), pushing their probability down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MIN_ONE_MINUS_P = 1e-5  # log(1 - p) is -inf when p reaches 1


@dataclass(frozen=True)
class Unlikelihood:
    threshold: float
    alpha: float = 1.0

    def __call__(self, nll: Tensor, scores: Tensor, values: Tensor | None = None):
        aligned = scores <= self.threshold  # 0 is a real threshold (the reference code skipped it)
        # log(1 - p) = log(-expm1(-nll)): exact for small p, where 1 - exp(-nll) would round to 1.
        one_minus_p = (-torch.expm1(-nll)).clamp(min=MIN_ONE_MINUS_P)
        unlikelihood = -self.alpha * torch.log(one_minus_p)
        loss = torch.where(aligned, nll, unlikelihood).mean()
        return loss, {
            "aligned_share": aligned.float().mean().detach(),
            "nll_aligned": _masked_mean(nll, aligned),
            "unlikelihood": _masked_mean(unlikelihood, ~aligned),
        }


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum().detach() / mask.sum().clamp(min=1)
