"""Nucleus sampling (Holtzman et al. 2020) as one logits processor, without sorting the vocabulary.

transformers samples top-p with `TemperatureLogitsWarper`, `TopPLogitsWarper` (a sort of every row's whole
vocabulary) and `torch.multinomial` (an exponential drawn per vocabulary entry); on a CPU these cost more than
the model itself (benchmarks/README.md, "Sampling throughput"). `NucleusSampler` finds the same nucleus among
each row's most probable tokens (`torch.topk`), falling back to `TopPLogitsWarper` for the rows whose nucleus
is wider, and draws the token with one uniform number per row. It returns scores whose argmax is the drawn
token, so generation runs greedy (`do_sample=False`) and the rest of it (cache, EOS, padding, the other
processors, which must come before it) stays transformers'.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, TopPLogitsWarper

from phf.errors import PHFError


def draw(mass: torch.Tensor, size: torch.Tensor | None = None) -> torch.Tensor:
    """One draw per row from the cumulative probabilities `mass` of its first `size` entries (default: all), by
    inverse transform sampling: the first entry whose cumulative mass reaches U * total, U uniform on (0, 1]
    from torch's global generator (so a seed fixes the draws). U > 0: never an entry of probability 0."""
    total = mass[:, -1:] if size is None else mass.gather(-1, size - 1)
    return torch.searchsorted(mass, (1 - torch.rand_like(total)) * total)[:, 0]


class NucleusSampler(LogitsProcessor):
    """Temperature, then top-p, then a draw, as `TemperatureLogitsWarper`, `TopPLogitsWarper` (with its default
    `min_tokens_to_keep=1`) and `multinomial` do; top_p=1 samples the whole distribution.

    `candidates`: the top-k prefilters tried in turn on the rows whose nucleus is wider than the last. A small k
    is cheap (topk's partial sort) and holds most nuclei; the full sort is left for the rows wider than the
    largest. Of the sampling benchmark's nuclei (vocabulary 8192, temperature 0.7, top-p 0.9), 59% fit in 64
    tokens and 99.8% in 1536."""

    def __init__(self, temperature: float, top_p: float, candidates: tuple[int, ...] = (64, 1536)):
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature} and {top_p}")
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates
        self.full_sort = TopPLogitsWarper(top_p)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        try:
            return self._sample(input_ids, scores)
        except RuntimeError:  # checked only on failure: no cost to a sound model
            # (-inf is a token ruled out by another processor; NaN, +inf or a row of -inf is no distribution)
            if scores.isnan().any() or scores.isposinf().any() or scores.isneginf().all(-1).any():
                raise PHFError("the model's next-token scores are NaN or inf: its weights are broken (a training "
                               "run that diverged?)") from None
            raise

    def _sample(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores / self.temperature
        probs = scores.softmax(-1)
        if self.top_p == 1:
            return self.choose(scores, draw(probs.double().cumsum(-1)))
        rows = torch.arange(len(scores), device=scores.device)
        token = torch.empty_like(rows)
        for k in self.candidates:
            part = (scores, probs) if len(rows) == len(scores) else (scores[rows], probs[rows])  # all rows: no copy
            index, mass, size, wide = self.nucleus(*part, k)
            token[rows] = index.gather(-1, draw(mass, size)[:, None])[:, 0]
            rows = rows[wide]
            if not len(rows):
                return self.choose(scores, token)
        nucleus = self.full_sort(input_ids[rows], scores[rows]) > float("-inf")
        token[rows] = draw((probs[rows] * nucleus).double().cumsum(-1))
        return self.choose(scores, token)

    def nucleus(self, scores: torch.Tensor, probs: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        """Each row's k most probable tokens (most probable first), their cumulative probabilities, and how many
        of them are its nucleus; and the rows whose nucleus that may not be, which need more candidates."""
        top, index = scores.topk(min(k, scores.shape[-1]))
        p = probs.gather(-1, index)
        mass = p.double().cumsum(-1)
        # TopPLogitsWarper drops a token when it and all less probable ones hold at most 1 - top_p: it keeps a
        # token iff the more probable ones hold less than top_p (so the most probable is always kept).
        size = (mass - p < self.top_p).sum(-1, keepdim=True)
        # The nucleus is all there iff it ends within the candidates (the first token after them is dropped) and
        # its last token ties with no dropped one: which of tied tokens TopPLogitsWarper keeps depends on its sort
        # (a token after the candidates can tie with the last candidate only).
        last, after = top.gather(-1, size - 1), top.gather(-1, size.clamp(max=top.shape[-1] - 1))
        exact = (mass[:, -1] >= self.top_p) & (last > after)[:, 0]
        return index, mass, size, (~exact).nonzero()[:, 0]

    @staticmethod
    def choose(scores: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Scores that greedy decoding turns into `token`: 0 there, -inf elsewhere."""
        return torch.full_like(scores, float("-inf")).scatter_(-1, token[:, None], 0.0)
