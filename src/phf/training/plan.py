"""`phf train --dry-run` and `phf experiment --dry-run`: what a run will do and what it will cost, before anything
is downloaded or trained.

A plan counts the model's parameters (built on PyTorch's meta device: no memory, no weights), the steps, tokens
per step, micro-batch and gradient accumulation of each process exactly as `phf train` will
(`training.train.micro_batches`, `optimizer_steps`), estimates the memory of a process, and converts a throughput
into hours: one given by the user, or one measured here with a few real training steps (phf's loss, backward and
AdamW) of the configured model on random tokens, on this machine's device.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoTokenizer

from phf.config import Config
from phf.data.control import control_tokens
from phf.data.tokenizer import CONTROL_TOKENS, missing_tokens
from phf.device import default_device
from phf.errors import PHFError
from phf.objectives.nll import CHUNK_TOKENS, KEEP_GRADIENT_BYTES, model_token_nll
from phf.training.model import ARCHITECTURES, bf16_supported, check_shape, model_class_of, use_fast_attention
from phf.training.train import micro_batches, optimizer_steps, tokens_seen_by

GIB = 2**30
# Bytes per parameter of a mixed-precision AdamW run: fp32 weights, gradients and the two moments (ZeRO, Rajbhandari
# et al. 2020, section 3.1, counts the same 16 with fp16 copies instead of fp32 gradients).
STATE_BYTES = 16
# Activation bytes per token, per layer, per unit of width, kept for backward by a transformer block in 16-bit:
# 34 (Korthikanti et al. 2022, "Reducing Activation Recomputation", eq. 1, without the 5as/h of the attention
# matrices, which flash attention never stores). It counts GPT-2's block with dropout masks; under autocast the
# residual stream and the norms' inputs stay fp32, and Llama's SwiGLU keeps three hidden-width tensors, so a real
# step may keep some 10-20% more (on a GPU, `phf train --dry-run` without --throughput prints a measured step's
# peak beside this estimate).
ACTIVATION_BYTES = 34


@dataclass
class Plan:
    parameters: int
    embedding_parameters: int
    vocab_size: int
    vocab_note: str
    steps: int
    tokens_per_step: int
    tokens_already: int
    processes: int
    micro_batch: int
    accumulation: int
    flops_per_token: float
    memory: dict[str, float]  # bytes per process, by part
    throughput: float | None = None  # tokens per second, all processes together
    throughput_note: str = ""
    device: str = "cpu"  # the device the plan is for, which decides the precision
    bf16: bool = False
    measured_memory: float | None = None  # bytes: CUDA's peak allocation in the measured steps, model included

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step

    @property
    def hours(self) -> float | None:
        return self.tokens / self.throughput / 3600 if self.throughput else None


def flops_per_token(model: torch.nn.Module, context: int) -> float:
    """Model FLOPs of training on one token of `context`-token blocks: 6N for the matmuls of forward and backward
    (Kaplan et al. 2020, section 2.1), and 6 L T C for causal attention's score and value products (half of PaLM's
    12 L T C, Chowdhery et al. 2022, appendix B: the other half is masked). N counts the parameters that multiply
    every token: all but the embedding tables, which are looked up; a table tied to the LM head counts once, as the
    head's matmul (GPT-2's and phf's Llama-style models' token embedding). Works on the meta device."""
    head = model.get_output_embeddings()
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    lookups.discard(id(head.weight) if head is not None else None)
    parameters = sum(p.numel() for p in model.parameters() if id(p) not in lookups)
    config = model.config
    return 6 * parameters + 6 * config.num_hidden_layers * context * config.hidden_size


def planned_vocabulary(cfg: Config) -> tuple[int, str]:
    """The vocabulary `phf train` will have: the trained BPE's size, or the pretrained tokenizer's (from the local
    cache; a dry run downloads nothing), plus the control tokens the objective adds."""
    added = control_tokens(cfg)
    if not cfg.tokenizer.pretrained:  # the BPE's vocabulary holds EOS and the paper's two control tokens
        return (cfg.tokenizer.vocab_size + len(missing_tokens(CONTROL_TOKENS, added)),
                "a byte-level BPE trained on the corpus")
    try:
        vocab = AutoTokenizer.from_pretrained(cfg.tokenizer.pretrained, local_files_only=True).get_vocab()
    except (OSError, ValueError):
        return (cfg.tokenizer.vocab_size + len(missing_tokens((), added)),
                f"{cfg.tokenizer.pretrained}'s, taken as tokenizer.vocab_size: it is not in the local cache")
    return len(vocab) + len(missing_tokens(vocab, added)), f"{cfg.tokenizer.pretrained}'s"


def model_config(cfg: Config, vocab_size: int):
    """The transformers config of the model `phf train` will build: `model.init_from`'s (from a local folder or the
    cache), its vocabulary grown to `vocab_size`, or a fresh one of `model.architecture`."""
    if not cfg.model.init_from:
        check_shape(cfg.model)
        return ARCHITECTURES[cfg.model.architecture](cfg.model, vocab_size, 0)
    try:
        config = AutoConfig.from_pretrained(cfg.model.init_from, local_files_only=True)
    except (OSError, ValueError):
        raise PHFError(f"model.init_from {cfg.model.init_from!r} is neither a local model folder nor in the local "
                       "cache: a dry run downloads nothing") from None
    config.vocab_size = max(config.vocab_size, vocab_size)
    return config


def plan_training(cfg: Config, processes: int = 1, tokens_already: int | None = None,
                  device: str | None = None) -> Plan:
    """The plan of `phf train` with `cfg` on `processes` processes of `device` ("cuda" or "cpu"; default: this
    machine's), `tokens_already` being those the starting checkpoint has seen (by default read from it)."""
    vocab_size, vocab_note = planned_vocabulary(cfg)
    config = model_config(cfg, vocab_size)
    with torch.device("meta"):
        model = model_class_of(config)(config)
    parameters = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings().weight.numel()
    micro, accumulation = micro_batches(cfg.training, processes)
    tokens_already = tokens_seen_by(cfg.model.init_from) if tokens_already is None else tokens_already
    steps, tokens_per_step = optimizer_steps(cfg, tokens_already)
    layers, width = config.num_hidden_layers, config.hidden_size
    block = cfg.model.block_size
    device = torch.device(device) if device else default_device()
    # bf16 where the device computes it natively: every GPU phf is run on at scale (Ampere and later) does
    bf16 = (bf16_supported(device) if device == default_device() else device.type == "cuda") \
        if cfg.training.bf16 == "auto" else cfg.training.bf16
    tokens = micro * block
    head_gradient = tokens * vocab_size * (2 if bf16 else 4)
    memory = {
        "weights, gradients and AdamW": STATE_BYTES * parameters,
        "bf16 copies of the weights": 2 * parameters if bf16 else 0,
        "activations": ACTIVATION_BYTES * (1 if bf16 else 2) * tokens * width * layers,
        # phf's LM head (objectives/nll.py) keeps the logits' gradient when it fits its budget, else one chunk's
        "LM head": head_gradient if head_gradient <= KEEP_GRADIENT_BYTES else 3 * 4 * CHUNK_TOKENS * vocab_size,
    }
    return Plan(parameters, embeddings, vocab_size, vocab_note, steps, tokens_per_step, tokens_already, processes,
                micro, accumulation, flops_per_token(model, block), memory, device=device.type, bf16=bf16)


def measure_throughput(cfg: Config, plan: Plan, steps: int = 3) -> Plan:
    """`plan` with the tokens per second of one process training `cfg`'s model on micro-batches of random tokens:
    one untimed step, then the median of `steps` (phf's LM-head NLL, its mean's backward, an AdamW step), times the
    plan's processes (assuming they scale linearly); on a GPU also the peak memory of those steps."""
    device = default_device()
    if device.type != plan.device:
        raise PHFError(f"the plan is for {plan.device} and this machine trains on {device.type}: a throughput "
                       "cannot be measured here; give --throughput")
    config = model_config(cfg, plan.vocab_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model = model_class_of(config)(config).to(device).train()
    use_fast_attention(model, device, plan.bf16, cfg.model.block_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.training.learning_rate)
    ids = torch.randint(plan.vocab_size, (plan.micro_batch, cfg.model.block_size), device=device)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=plan.bf16):
            nll, _ = model_token_nll(model, ids, torch.bfloat16 if plan.bf16 else None)
        nll.mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    per_process = plan.micro_batch * cfg.model.block_size / statistics.median(times[1:])
    plan.throughput = per_process * plan.processes
    plan.throughput_note = (f"{per_process:,.0f} tokens/s measured on one {device.type} process ("
                            f"{'bf16' if plan.bf16 else 'fp32'}, median of {steps} steps of {plan.micro_batch} x "
                            f"{cfg.model.block_size} random tokens)"
                            + (f" times {plan.processes} processes" if plan.processes > 1 else ""))
    if device.type == "cuda":
        plan.measured_memory = torch.cuda.max_memory_allocated()
    return plan


def with_throughput(cfg: Config, plan: Plan, throughput: float | None) -> Plan:
    """`plan` with hours: at `throughput` (tokens/s, all processes), or at a throughput measured here."""
    if throughput is None:
        return measure_throughput(cfg, plan)
    plan.throughput, plan.throughput_note = throughput, f"{throughput:,.0f} tokens/s, as given"
    return plan


def size(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f} GiB" if n_bytes >= GIB else f"{n_bytes / 2**20:.0f} MiB"


def duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:,.1f} hours"
    if hours >= 1 / 60:
        return f"{hours * 60:.1f} minutes"
    seconds = max(1, round(hours * 3600))
    return f"{seconds} second{'s' if seconds > 1 else ''}"


def format_plan(cfg: Config, plan: Plan) -> str:
    m, t = cfg.model, cfg.training
    shape = (f"{cfg.model.init_from} (its own size)" if m.init_from else
             f"{m.architecture}, {m.n_layer} layers x {m.n_embd} wide, {m.n_head} heads")
    memory = sum(plan.memory.values())
    parts = ", ".join(f"{name} {size(value)}" for name, value in plan.memory.items() if value)
    lines = [
        f"data        {cfg.data.corpus} (scorer {cfg.scorer.name}), {t.num_tokens:,} tokens",
        f"model       {shape}, context {m.block_size}: {plan.parameters / 1e6:.1f}M parameters "
        f"({plan.embedding_parameters / 1e6:.1f}M in the token embeddings); vocabulary {plan.vocab_size:,} "
        f"({plan.vocab_note})",
        f"objective   {cfg.objective.name}: " + (", ".join(f"{k} {v}" for k, v in cfg.objective.model_dump().items()
                                                     if k != "name") or "no settings"),
        f"batch       {t.batch_size} sequences x {m.block_size} tokens = {plan.tokens_per_step:,} tokens per step: "
        f"{plan.processes} process(es) x {plan.micro_batch} sequences x {plan.accumulation} accumulation steps",
        f"steps       {plan.steps:,} ({plan.tokens:,} tokens" + (f" after the {plan.tokens_already:,} already seen"
                                                                  if plan.tokens_already else "")
        + f"); learning rate {t.learning_rate:g}, warm-up {math.ceil(t.warmup_fraction * plan.steps):,} steps, "
        f"{t.lr_scheduler} decay",
        f"memory      about {size(memory)} per process on {plan.device} in {'bf16' if plan.bf16 else 'fp32'}, "
        f"estimated ({parts})" + (f"; {size(plan.measured_memory)} measured at the peak of the timed steps"
                                  if plan.measured_memory is not None else ""),
        f"compute     {plan.flops_per_token:.3g} FLOPs per token, {plan.flops_per_token * plan.tokens:.3g} in all",
    ]
    if plan.throughput:
        lines.append(f"time        {duration(plan.hours)} of training at {plan.throughput_note}")
    return "\n".join(lines)
