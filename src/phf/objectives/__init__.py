"""Training objectives (docs/method.md, Objectives): what makes each one, in one table (`METHODS`).

Every loss has one signature:

    loss, metrics = objective(nll, scores, values)

with tensors already shifted by the trainer so that position j predicts token j + 1:
    nll     (B, T-1)     -log p(token j+1 | tokens <= j), fp32 (`phf.objectives.nll`): every objective
                         is a function of it and the scores, so the logits are never materialised
    scores  (B, T-1)     misalignment score of each *target* token's segment (R_j = -scores_j)
    values  (B, T-1)     value-head output at positions 0..T-2 (it predicts R_j), or None
`metrics` maps names to scalar tensors (detached) that the trainer logs.

Filtering and conditional training transform the data before packing (`phf.data.packing.Transform`);
their loss is MLE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from phf.config import (
    OBJECTIVE_CONFIGS,
    AWRConfig,
    ConditionalConfig,
    Config,
    FilteringConfig,
    RWRConfig,
    UnlikelihoodConfig,
)
from phf.data.control import build_scheme
from phf.data.packing import Transform, resolve_threshold
from phf.objectives.mle import mle
from phf.objectives.unlikelihood import Unlikelihood
from phf.objectives.weighted import AWR, RWR

Objective = Callable[[Tensor, Tensor, "Tensor | None"], tuple[Tensor, dict[str, Tensor]]]


@dataclass(frozen=True)
class Method:
    """One objective: its settings (`objective.*`, a class of phf.config), its loss built from them and the
    scored data (where a threshold given as a percentile is resolved), its transform of the training split,
    whether the model gets a value head, and whether it is conditional (trained with control tokens, sampled
    from the aligned ones)."""

    config: type
    loss: Callable[[object, Path], Objective] = lambda settings, data_dir: mle
    transform: Callable[[Config, Path], Transform] = lambda cfg, data_dir: Transform()
    value_head: bool = False

    @property
    def conditional(self) -> bool:
        return self.config is ConditionalConfig  # the settings of control tokens are conditional training's


def _filtered(cfg: Config, data_dir: Path) -> Transform:
    """Documents with avg_score above the threshold are dropped."""
    return Transform(filter_threshold=resolve_threshold(cfg.objective.filter_threshold, data_dir, "avg_score"))


def _tagged(cfg: Config, data_dir: Path) -> Transform:
    """A control token before each segment, but for a random drop_token_fraction of them."""
    return Transform(control=build_scheme(cfg, data_dir), drop_token_fraction=cfg.objective.drop_token_fraction,
                     seed=cfg.training.seed)


def _unlikelihood(settings: UnlikelihoodConfig, data_dir: Path) -> Objective:
    return Unlikelihood(threshold=resolve_threshold(settings.threshold, data_dir, "scores"), alpha=settings.alpha)


METHODS: dict[str, Method] = {
    "mle": Method(OBJECTIVE_CONFIGS["mle"]),
    "filtering": Method(FilteringConfig, transform=_filtered),
    "conditional": Method(ConditionalConfig, transform=_tagged),
    "unlikelihood": Method(UnlikelihoodConfig, loss=_unlikelihood),
    "rwr": Method(RWRConfig, loss=lambda s, data_dir: RWR(beta=s.beta, max_weight=s.max_weight)),
    "awr": Method(AWRConfig, loss=lambda s, data_dir: AWR(alpha=s.alpha, beta=s.beta, max_weight=s.max_weight),
                  value_head=True),
}
assert METHODS.keys() == OBJECTIVE_CONFIGS.keys() and all(METHODS[n].config is c for n, c in OBJECTIVE_CONFIGS.items())


def method_of(cfg: Config) -> Method:
    return METHODS[cfg.objective.name]


def build_objective(settings, data_dir: Path | None = None) -> Objective:
    """The loss of an objective's settings (`cfg.objective`); `data_dir` resolves a percentile threshold."""
    return METHODS[settings.name].loss(settings, data_dir)


__all__ = ["METHODS", "Method", "Objective", "build_objective", "method_of", "mle"]
