"""Maximum likelihood: L = mean_j -log p(x_j | x_<j) (PHF.md, objective 1)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def token_nll(logits: Tensor, targets: Tensor) -> Tensor:
    """-log p(target) per position, (B, T). In fp32: bf16 log-softmax over a large vocabulary is too coarse."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)


def mle(logits: Tensor, targets: Tensor, scores: Tensor, values: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    loss = token_nll(logits, targets).mean()
    return loss, {"nll": loss.detach()}
