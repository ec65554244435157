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

import torch
from torch import Tensor


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
        baseline = values.float().detach() if self.uses_values else torch.zeros_like(reward)
        advantage = reward - baseline
        weights = torch.exp(advantage / self.beta).clamp(max=self.max_weight)
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
