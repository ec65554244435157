"""The per-token negative log-likelihood every objective is a function of: -log p(x_j | x_<j).

The LM head and the log-softmax are computed together, a chunk of positions at a time, so the
(B, T, V) logits are never materialised in fp32 and never sliced: each chunk's fp32 logits live only
inside the loop; backward gets their gradient kept in the compute dtype or recomputes it (`_LinearNLL`).

Why not `torch.nn.functional.linear_cross_entropy` (torch 2.13), which does the same: with
`reduction="none"` its chunked path returns the per-token loss in the input's dtype, so under bf16 every
token's NLL is rounded to bf16; and on a CPU its fp32-accumulating policy runs the weight-gradient matmul
in fp32, slower than the plain logits path (its bf16 policies are fast but accumulate the log-sum-exp in
bf16). Here the matmuls run in the compute dtype and the log-softmax in fp32, which is as exact as fp32
cross-entropy on bf16-autocast logits. The figures: benchmarks/README.md, Training throughput.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

# Positions per chunk: a (512, V) fp32 buffer, small beside the model's activations; each chunk's matmul is still
# large enough to run at the matmul rate, so a smaller or larger chunk changes memory, not speed.
CHUNK_TOKENS = 512
KEEP_GRADIENT_BYTES = 256 * 2**20  # e.g. 8 x 256 tokens x 8192 in bf16 is 32 MiB; 8 x 1024 x 50257 is 785

# Causal LMs whose logits are exactly `get_output_embeddings()(final hidden state)`: no bias, soft-capping or
# scaling (Gemma's soft-capping or Cohere's logit scale would be skipped). Others take the plain logits path.
LINEAR_HEAD_MODELS = {"gpt2", "gpt_neox", "llama", "mistral", "qwen2"}


class _LinearNLL(torch.autograd.Function):
    """nll[n] = logsumexp(h[n] W^T) - h[n] . W[t[n]], for hidden h (N, C), head W (V, C), targets t (N,).

    The gradient of nll[n] with respect to its logits is softmax - onehot(t[n]). When it fits in
    KEEP_GRADIENT_BYTES (in the compute dtype), forward keeps it, computed in fp32 and rounded once (a confident
    target's p - 1 is tiny: rounding p first would lose it), which saves backward a matmul and a softmax per
    chunk (benchmarks/README.md, Training throughput, has the time it saves); otherwise backward recomputes it a
    chunk at a time, so that memory stays one chunk's (the paper's vocabulary of 50k on a GPU)."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, dtype: torch.dtype, grad: bool) -> Tensor:
        h, w = hidden.to(dtype), weight.to(dtype)
        nll = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
        keep = grad and h.shape[0] * w.shape[0] * h.element_size() <= KEEP_GRADIENT_BYTES
        kept = torch.empty(h.shape[0], w.shape[0], dtype=dtype, device=h.device) if keep else None
        with torch.autocast(h.device.type, enabled=False):  # the dtype is chosen here, not by a caller's autocast
            for s in range(0, h.shape[0], CHUNK_TOKENS):
                tc = targets[s:s + CHUNK_TOKENS]
                logp = (h[s:s + CHUNK_TOKENS] @ w.T).float().log_softmax(-1)  # (chunk, V): matmul in `dtype`
                nll[s:s + CHUNK_TOKENS] = -logp.gather(1, tc[:, None])[:, 0]
                if keep:
                    kept[s:s + CHUNK_TOKENS] = _minus_onehot(logp.exp_(), tc)
        ctx.save_for_backward(h, w, targets, kept)
        ctx.dtypes = hidden.dtype, weight.dtype
        return nll

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_nll: Tensor):
        h, w, targets, kept = ctx.saved_tensors
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device)  # accumulated over chunks in fp32
        with torch.autocast(h.device.type, enabled=False):
            for s in range(0, h.shape[0], CHUNK_TOKENS):
                hc, tc, g = h[s:s + CHUNK_TOKENS], targets[s:s + CHUNK_TOKENS], grad_nll[s:s + CHUNK_TOKENS, None]
                if kept is None:
                    grad_logits = _minus_onehot(torch.softmax((hc @ w.T).float(), dim=-1), tc).mul_(g).to(h.dtype)
                else:  # the chain rule scales row n by grad_nll[n]: in place (used once), rounded once from fp32
                    grad_logits = kept[s:s + CHUNK_TOKENS].mul_(g)
                grad_h[s:s + CHUNK_TOKENS] = grad_logits @ w
                grad_w += (grad_logits.T @ hc).float()
        return grad_h.to(ctx.dtypes[0]), grad_w.to(ctx.dtypes[1]), None, None, None


def _minus_onehot(probs: Tensor, targets: Tensor) -> Tensor:
    """softmax - onehot(target), in place: d nll / d logits of each row."""
    probs[torch.arange(len(targets), device=targets.device), targets] -= 1
    return probs


def linear_token_nll(hidden: Tensor, weight: Tensor, targets: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """-log p(target) per position from the final hidden states (B, T, C) and the LM head's weight (V, C):
    (B, T) in fp32, with the head's matmuls in `dtype` (default: the hidden states' dtype)."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)  # nothing kept in eval
    return _LinearNLL.apply(flat, weight, targets.reshape(-1), dtype or hidden.dtype, grad).view_as(targets)


def logits_token_nll(logits: Tensor, targets: Tensor) -> Tensor:
    """-log p(target) per position from logits (B, T, V): (B, T), in fp32 (bf16 log-softmax is too coarse)."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)


def model_token_nll(model, input_ids: Tensor, dtype: torch.dtype | None = None,
                    linear_head: bool = True) -> tuple[Tensor, dict]:
    """Position j predicts token j + 1: the NLL of tokens 1..T-1, (B, T-1), and the model's outputs.

    `model` may be wrapped (DDP): its own forward runs, so gradient synchronisation sees every parameter.
    `dtype` is the compute dtype of the LM head (bf16 in mixed precision, whose autocast covers only the
    model's forward). Models outside LINEAR_HEAD_MODELS, or `linear_head=False` (FSDP, whose sharded head
    weight exists only inside its forward), take the plain logits path."""
    inner = getattr(model, "module", model)
    linear_head = linear_head and inner.config.model_type in LINEAR_HEAD_MODELS
    targets = input_ids[:, 1:]
    if not linear_head:
        outputs = model(input_ids=input_ids, use_cache=False)
        return logits_token_nll(outputs.logits[:, :-1], targets), outputs
    # logits_to_keep=1: the model's own head runs on the last position only, whose logits predict nothing here
    outputs = model(input_ids=input_ids, use_cache=False, output_hidden_states=True, logits_to_keep=1)
    hidden = outputs.hidden_states[-1][:, :-1]  # (B, T-1, C), after the final norm
    return linear_token_nll(hidden, inner.get_output_embeddings().weight, targets, dtype), outputs
