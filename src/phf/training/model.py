"""The model: a fresh GPT-2 of the configured size, or a pretrained causal LM whose vocabulary
is grown to hold the control tokens."""

from __future__ import annotations

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from phf.config import ModelConfig
from phf.errors import PHFError
from phf.training.value_head import GPT2WithValueHead


def build_model(cfg: ModelConfig, tokenizer, value_head: bool = False) -> PreTrainedModel:
    """A fresh GPT-2 or `cfg.init_from`; with `value_head`, GPT-2 with the value head AWR needs."""
    eos = tokenizer.eos_token_id
    if cfg.init_from:
        try:
            model = (GPT2WithValueHead if value_head else AutoModelForCausalLM).from_pretrained(cfg.init_from)
        except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # no weights, cut-off weights, ...
            raise PHFError(f"cannot load model {cfg.init_from!r}: {str(e).splitlines()[0]}") from None
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            # New rows (the control tokens) start at the mean of the old embeddings plus tiny noise
            # (transformers' mean_resizing: N(mean, 1e-9 * covariance)), not at random scale
            # (docs/method.md, objective 3).
            model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        return model
    if cfg.n_embd % cfg.n_head:
        raise PHFError(f"model.n_embd ({cfg.n_embd}) must be a multiple of model.n_head ({cfg.n_head})")
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
        bos_token_id=eos, eos_token_id=eos,  # no pad_token_id: packed blocks have no padding
        # GPT-2's tanh-approximated GELU (`gelu_new`) as one fused kernel: the same function, 2x faster fwd+bwd on
        # a CPU (benchmarks/README.md), and a name every transformers release loads.
        activation_function="gelu_pytorch_tanh",
    )
    return (GPT2WithValueHead if value_head else GPT2LMHeadModel)(config)


EAGER_ATTENTION_MAX_BLOCK = 512


def use_fast_attention(model: PreTrainedModel, device: torch.device, bf16: bool, block_size: int) -> None:
    """The attention kernel for training here. In bf16 on a CPU, plain matmul attention (`eager`) beats PyTorch's
    CPU flash kernel up to blocks of 512 (fwd+bwd of 2 layers, 256 wide, 2048 tokens: 85 against 105 ms at T=256,
    104 against 115 at T=512, but 206 against 125 at T=1024; benchmarks/README.md); on GPUs SDPA's flash kernel
    stays. The same function up to bf16 rounding, and not saved with the model (transformers does not serialise
    the attention implementation): a saved model loads with the default."""
    if device.type == "cpu" and bf16 and block_size <= EAGER_ATTENTION_MAX_BLOCK:
        model.set_attn_implementation("eager")


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is faster than fp32 here: CUDA with bf16, or a CPU with AVX-512 BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False
