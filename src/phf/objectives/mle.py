"""Maximum likelihood: L = mean_j -log p(x_j | x_<j) (docs/method.md, objective 1)."""

from __future__ import annotations

from torch import Tensor


def mle(nll: Tensor, scores: Tensor, values: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    loss = nll.mean()
    return loss, {"nll": loss.detach()}
