"""Classifier-free guidance between control tokens (Ho & Salimans 2022; for LMs, Sanchez et al. 2023).

A conditional model gives two next-token distributions: after the aligned tokens, and after the worst
level of every attribute. Guidance moves further away from the second:
    l = l_aligned + w (l_aligned - l_misaligned),    l = log-probabilities,
which is transformers' `guidance_scale = 1 + w`. transformers' own processor for it
(`UnbatchedClassifierFreeGuidanceLogitsProcessor`) runs the second context without position ids, so
rows shifted by left padding would be read at the wrong positions; this one passes them.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


class MisalignedGuidance(LogitsProcessor):
    """Must come first in the processor list: it takes the model's raw logits for the aligned context.
    Holds its own KV cache for the misaligned context, which is fed the tokens sampled after the aligned one."""

    def __init__(self, model, weight: float, misaligned_ids: torch.Tensor, attention_mask: torch.Tensor):
        self.model, self.weight = model, weight
        self.input_ids, self.attention_mask = misaligned_ids, attention_mask
        self.cache = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.cache is None:  # first token: the whole misaligned context
            ids, mask = self.input_ids, self.attention_mask
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
        else:  # then the token just sampled, at the next position of each row
            ids = input_ids[:, -1:]
            mask = torch.cat([self.attention_mask, torch.ones_like(ids)], dim=1)
            positions = mask.sum(-1, keepdim=True) - 1
        self.attention_mask = mask
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=self.cache,
                         use_cache=True)
        self.cache = out.past_key_values
        aligned = scores.float().log_softmax(-1)
        misaligned = out.logits[:, -1].float().log_softmax(-1)
        return aligned + self.weight * (aligned - misaligned)
