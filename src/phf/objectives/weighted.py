"""Reward-weighted (RWR) and advantage-weighted regression (AWR) (docs/method.md, objectives 5 and 6).

R_j = -score_j is the reward of the segment token j belongs to.
    RWR: L = mean_j -log p(x_j | x_<j) * min(exp(R_j / beta), max_weight)
    AWR: A_j = R_j - V_j (V detached from the weight),
         L = alpha * mean_j -log p(x_j | x_<j) * min(exp(A_j / beta), max_weight)
             + (1 - alpha) * mean_j (V_j - R_j)^2
RWR is AWR with alpha = 1 and no value head (V = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from phf.settings import Section

if TYPE_CHECKING:  # (tensor methods only: the config reads these settings without loading torch)
    from torch import Tensor


class RWRConfig(Section):
    name: Literal["rwr"] = Field(description="Token NLL weighted by exp(-score / beta).")
    beta: float = Field(10.0, gt=0, description="Temperature of the weights exp(R / beta) (paper: 10).")
    max_weight: float = Field(1000.0, gt=0, description="Weights are clipped above at this value.")


class AWRConfig(Section):
    name: Literal["awr"] = Field(description="NLL weighted by exp(advantage / beta), plus (1 - alpha) x a value loss.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the policy "
                         "loss against the value loss (paper: 0.5; PEP8: 0.05).")
    beta: float = Field(1.0, gt=0, description="Temperature of the weights "
                        "exp(A / beta) (paper: toxicity 10, PII 0.1, PEP8 1).")
    max_weight: float = Field(1000.0, gt=0, description="Weights are clipped above at this value.")


@dataclass(frozen=True)
class AWR:
    alpha: float = 0.5
    beta: float = 1.0
    max_weight: float = 1000.0
    uses_values: bool = True

    def __call__(self, nll: Tensor, scores: Tensor, values: Tensor | None = None):
        reward = -scores.float()
        if self.uses_values and values is None:
            raise ValueError("AWR needs the value head's predictions (a model with a value head)")
        advantage = reward - values.float().detach() if self.uses_values else reward
        weights = (advantage / self.beta).exp().clamp(max=self.max_weight)
        policy_loss = (nll * weights).mean()
        metrics = {"nll": nll.mean().detach(), "weight_mean": weights.mean().detach(),
                   "weight_max": weights.max().detach(), "advantage_mean": advantage.mean().detach()}
        if not self.uses_values:
            return policy_loss, metrics
        value_loss = ((values.float() - reward) ** 2).mean()
        metrics["value_loss"] = value_loss.detach()
        metrics["value_reward_corr"] = _correlation(values.float().detach().flatten(), reward.flatten())
        return self.alpha * policy_loss + (1 - self.alpha) * value_loss, metrics


def RWR(beta: float = 1.0, max_weight: float = 1000.0) -> AWR:
    return AWR(alpha=1.0, beta=beta, max_weight=max_weight, uses_values=False)


def _correlation(x: Tensor, y: Tensor) -> Tensor:
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / (x.norm() * y.norm()).clamp(min=1e-12)
