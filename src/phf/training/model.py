"""The model: a fresh GPT-2 or Llama-style model of the configured size, or a pretrained causal LM whose
vocabulary is grown to hold the control tokens."""

from __future__ import annotations

import math

import torch
from safetensors import SafetensorError
from transformers import (
    MODEL_FOR_CAUSAL_LM_MAPPING,
    AutoConfig,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
)

from phf.config import ModelConfig
from phf.errors import PHFError
from phf.training.value_head import with_value_head


def build_model(cfg: ModelConfig, tokenizer, value_head: bool = False) -> PreTrainedModel:
    """A fresh model of `cfg.architecture`, or `cfg.init_from`; with `value_head`, the same model with the value
    head AWR needs."""
    if cfg.init_from:
        try:
            model_class = model_class_of(AutoConfig.from_pretrained(cfg.init_from))
            model = (with_value_head(model_class) if value_head else model_class).from_pretrained(cfg.init_from)
        except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # no weights, cut-off weights, ...
            raise PHFError(f"cannot load model {cfg.init_from!r}: {str(e).splitlines()[0]}") from None
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            # New rows (the control tokens) start at the mean of the old embeddings plus tiny noise
            # (transformers' mean_resizing: N(mean, 1e-9 * covariance)), not at random scale
            # (docs/method.md, objective 3).
            model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        return model
    check_shape(cfg)
    config = ARCHITECTURES[cfg.architecture](cfg, len(tokenizer), tokenizer.eos_token_id)
    model_class = model_class_of(config)
    return (with_value_head(model_class) if value_head else model_class)(config)


def check_shape(cfg: ModelConfig) -> None:
    if cfg.n_embd % cfg.n_head:
        raise PHFError(f"model.n_embd ({cfg.n_embd}) must be a multiple of model.n_head ({cfg.n_head})")
    if cfg.architecture == "llama" and cfg.n_embd // cfg.n_head % 2:  # rotary positions turn pairs of dimensions
        raise PHFError(f"model.architecture=llama needs an even head width (model.n_embd / model.n_head = "
                       f"{cfg.n_embd} / {cfg.n_head} = {cfg.n_embd // cfg.n_head})")


def model_class_of(config: PretrainedConfig) -> type[PreTrainedModel]:
    """The causal LM class of a transformers config (what AutoModelForCausalLM would build)."""
    try:
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except KeyError:
        raise PHFError(f"a {type(config).__name__} model is not a causal LM") from None


def gpt2(cfg: ModelConfig, vocab_size: int, eos: int) -> GPT2Config:
    """The paper's architecture (GPT-2 small is 12 x 768 with 12 heads)."""
    return GPT2Config(
        vocab_size=vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
        bos_token_id=eos, eos_token_id=eos,  # no pad_token_id: packed blocks have no padding
        # GPT-2's tanh-approximated GELU (`gelu_new`) as one fused kernel instead of a chain of elementwise ops: the
        # same function, faster fwd+bwd (benchmarks/README.md, Training throughput), and a name every transformers
        # release loads.
        activation_function="gelu_pytorch_tanh",
    )


def llama(cfg: ModelConfig, vocab_size: int, eos: int) -> LlamaConfig:
    """Llama's block (Touvron et al. 2023): rotary positions, SwiGLU, RMSNorm, no biases, as transformers builds it.
    The SwiGLU hidden width is 8/3 of the residual stream, rounded up to a multiple of 64 (Llama's own rounds to 256,
    too coarse for small models), so that its three matrices hold about the parameters of GPT-2's two 4x ones. The
    embeddings are tied, as GPT-2's are and as small Llama-style models' are (Llama 3.2 1B, SmolLM): at this scale
    an untied head would add a third of the parameters."""
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=cfg.n_embd, intermediate_size=64 * math.ceil(8 * cfg.n_embd / 3 / 64),
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_head,
        max_position_embeddings=cfg.block_size, attention_dropout=cfg.dropout, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos,
    )


ARCHITECTURES = {"gpt2": gpt2, "llama": llama}


EAGER_ATTENTION_MAX_BLOCK = 512


def use_fast_attention(model: PreTrainedModel, device: torch.device, bf16: bool, block_size: int) -> None:
    """The attention kernel for training here. In bf16 on a CPU, plain matmul attention (`eager`) beats PyTorch's
    CPU flash kernel up to blocks of 512 and loses to it beyond (eager materialises each block's T x T attention
    matrix, which grows with the square of the block; the figures: benchmarks/README.md, Training throughput); on
    GPUs SDPA's flash kernel stays. The same function up to bf16 rounding, and not saved with the model
    (transformers does not serialise the attention implementation): a saved model loads with the default."""
    if device.type == "cpu" and bf16 and block_size <= EAGER_ATTENTION_MAX_BLOCK:
        model.set_attn_implementation("eager")


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is faster than fp32 here: CUDA with bf16, or a CPU with AVX-512 BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False
