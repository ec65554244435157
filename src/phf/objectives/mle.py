"""Maximum likelihood: L = mean_j -log p(x_j | x_<j) (docs/method.md, objective 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from phf.settings import Section

if TYPE_CHECKING:
    from torch import Tensor


class MLEConfig(Section):
    name: Literal["mle"] = Field("mle", description="Maximum likelihood on the whole corpus: the baseline.")


def mle(nll: Tensor, scores: Tensor, values: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    loss = nll.mean()
    return loss, {"nll": loss.detach()}
