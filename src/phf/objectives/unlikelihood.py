"""Unlikelihood training (docs/method.md, objective 4; Welleck et al. 2019).

Tokens of aligned segments (score <= threshold) get -log p(x_j | x_<j); tokens of misaligned
ones get -alpha * log(1 - p(x_j | x_<j)), pushing their probability down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from phf.settings import THRESHOLD, Section, Threshold

if TYPE_CHECKING:  # (tensor methods only: the config reads these settings without loading torch)
    from torch import Tensor

MIN_ONE_MINUS_P = 1e-5  # log(1 - p) is -inf when p reaches 1


class UnlikelihoodConfig(Section):
    name: Literal["unlikelihood"] = Field(description="MLE on aligned segments, -alpha log(1 - p) on the others.")
    threshold: Threshold = Field(0.0, description=THRESHOLD)
    alpha: float = Field(1.0, ge=0, description="Weight of the unlikelihood term (paper: 1; PEP8: 0.01).")


@dataclass(frozen=True)
class Unlikelihood:
    threshold: float
    alpha: float = 1.0

    def __call__(self, nll: Tensor, scores: Tensor, values: Tensor | None = None):
        aligned = scores <= self.threshold  # 0 is a real threshold (the reference code skipped it)
        # log(1 - p) = log(-expm1(-nll)): exact for small p, where 1 - exp(-nll) would round to 1.
        one_minus_p = (-(-nll).expm1()).clamp(min=MIN_ONE_MINUS_P)
        unlikelihood = -self.alpha * one_minus_p.log()
        loss = nll.where(aligned, unlikelihood).mean()
        return loss, {
            "aligned_share": aligned.float().mean().detach(),
            "nll_aligned": _masked_mean(nll, aligned),
            "unlikelihood": _masked_mean(unlikelihood, ~aligned),
        }


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum().detach() / mask.sum().clamp(min=1)


def unlikelihood(cfg, data_dir) -> Unlikelihood:
    """The loss of `cfg.objective`, its threshold resolved on the scored data when a percentile."""
    from phf.data.packing import resolve_threshold

    return Unlikelihood(threshold=resolve_threshold(cfg.objective.threshold, data_dir, "scores"),
                        alpha=cfg.objective.alpha)
