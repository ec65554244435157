"""Training objectives (docs/method.md, Objectives): each is one row of `METHODS`, which decides everything phf
does by the objective: its settings (`objective.*`, the config's union of them is read from this table), its
loss, its transform of the training split, the packed streams it trains and is evaluated on, whether it is
conditional, its cooldown and the attributes it tags.

Every loss has one signature:

    loss, metrics = objective(nll, scores, values)

with tensors already shifted by the trainer so that position j predicts token j + 1:
    nll     (B, T-1)     -log p(token j+1 | tokens <= j), fp32 (`phf.objectives.nll`): every objective
                         is a function of it and the scores, so the logits are never materialised
    scores  (B, T-1)     misalignment score of each *target* token's segment (R_j = -scores_j)
    values  (B, T-1)     value-head output at positions 0..T-2 (it predicts R_j), or None
`metrics` maps names to scalar tensors (detached) that the trainer logs.

Filtering and conditional training transform the data before packing (`phf.data.packing.Transform`);
their loss is MLE. The settings and losses are written with tensor methods only, so reading a config (and
`phf --help`) does not load torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from phf.objectives.conditional import ConditionalConfig, tagged
from phf.objectives.filtering import FilteringConfig, filtered
from phf.objectives.mle import MLEConfig, mle
from phf.objectives.unlikelihood import UnlikelihoodConfig, unlikelihood
from phf.objectives.weighted import AWR, RWR, AWRConfig, RWRConfig

if TYPE_CHECKING:
    from torch import Tensor

    from phf.config import Config
    from phf.data.packing import Transform

Objective = Callable[["Tensor", "Tensor", "Tensor | None"], tuple["Tensor", dict[str, "Tensor"]]]


def _as_it_is(cfg: Config, data_dir: Path) -> Transform:
    from phf.data.packing import Transform

    return Transform()


@dataclass(frozen=True)
class Method:
    """One objective. `loss` and `transform` take the config and the scored data folder (where a threshold given
    as a percentile is resolved); a conditional one is trained with control tokens and sampled from the aligned
    ones, and may train its last `cooldown` share without them."""

    settings: type
    loss: Callable[[Config, Path | None], Objective] = lambda cfg, data_dir: mle
    transform: Callable[[Config, Path], Transform] = _as_it_is
    value_head: bool = False
    conditional: bool = False
    cooldown: Callable[[object], float] = lambda settings: 0.0  # share of the budget trained untagged, at the end
    tagged_attributes: Callable[[object], dict] = lambda settings: {}  # scorer.attributes tagged, with thresholds

    def streams(self, cfg: Config, train: Transform) -> dict[str, tuple[str, Transform]]:
        """The packed streams of a run, by name: (split, transform) (`phf.data.prepare.prepare_packed`)."""
        from phf.data.packing import Transform

        wanted = {"train": ("train", train), "heldout": ("heldout", Transform())}
        if self.conditional:
            wanted["heldout_tagged"] = ("heldout", Transform(control=train.control))
            wanted["heldout_deployed"] = ("heldout", Transform(control=train.control.all_aligned()))
        if self.cooldown(cfg.objective):
            wanted["train_untagged"] = ("train", Transform())
        return wanted


METHODS: dict[str, Method] = {
    "mle": Method(MLEConfig),
    "filtering": Method(FilteringConfig, transform=filtered),
    "conditional": Method(ConditionalConfig, transform=tagged, conditional=True,
                          cooldown=lambda s: s.cooldown_fraction, tagged_attributes=lambda s: s.attribute_thresholds),
    "unlikelihood": Method(UnlikelihoodConfig, loss=unlikelihood),
    "rwr": Method(RWRConfig, loss=lambda cfg, data_dir: RWR(beta=cfg.objective.beta,
                                                            max_weight=cfg.objective.max_weight)),
    "awr": Method(AWRConfig, loss=lambda cfg, data_dir: AWR(alpha=cfg.objective.alpha, beta=cfg.objective.beta,
                                                            max_weight=cfg.objective.max_weight),
                  value_head=True),
}


def method_of(cfg: Config) -> Method:
    return METHODS[cfg.objective.name]


def build_objective(cfg: Config, data_dir: Path | None = None) -> Objective:
    """The loss of the config's objective; `data_dir` resolves a percentile threshold."""
    return method_of(cfg).loss(cfg, data_dir)


def cooldown_fraction(cfg: Config) -> float:
    """The share of the budget trained without control tokens at the end (conditional training only)."""
    return method_of(cfg).cooldown(cfg.objective)


__all__ = ["METHODS", "Method", "Objective", "build_objective", "cooldown_fraction", "method_of", "mle"]
