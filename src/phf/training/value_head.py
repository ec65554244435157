"""A causal LM with a value head, for AWR (docs/method.md, objective 6).

The value head is a linear layer on the final hidden states, squashed to [-1, 0] with -sigmoid
as in the paper: rewards are negated misalignment scores, so they are at most 0. The saved
config names the plain architecture (GPT2LMHeadModel, LlamaForCausalLM, ...), so
`AutoModelForCausalLM.from_pretrained` loads a phf AWR model for sampling as an ordinary causal LM
(the value head's weights are left out).
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from transformers import PreTrainedModel


@functools.cache
def with_value_head(base: type[PreTrainedModel]) -> type[PreTrainedModel]:
    """`base` (a transformers causal LM class) with a value head; cached, so one class per base."""

    class WithValueHead(base):
        def __init__(self, config):
            super().__init__(config)
            self.value_head = nn.Linear(config.hidden_size, 1)
            self.post_init()

        def forward(self, input_ids=None, output_hidden_states=False, **kwargs):
            out = super().forward(input_ids, output_hidden_states=True, **kwargs)
            hidden = out.hidden_states[-1]  # (B, T, C), after the final norm
            out["value_predictions"] = -torch.sigmoid(self.value_head(hidden)).squeeze(-1)  # (B, T) in [-1, 0]
            if not output_hidden_states:
                out.hidden_states = None  # not kept unless asked: B x T x C per layer
            return out

        def save_pretrained(self, *args, **kwargs):
            self.config.architectures = [base.__name__]
            return super().save_pretrained(*args, **kwargs)

    WithValueHead.__name__ = WithValueHead.__qualname__ = f"{base.__name__}WithValueHead"
    return WithValueHead
