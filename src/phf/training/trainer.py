"""`PHFTrainer`: transformers' Trainer with the loss replaced by a PHF objective.

The Trainer keeps everything else: gradient accumulation, the optimiser and schedule,
mixed precision, checkpoints and exact resume, distribution through accelerate, trackers.
Its training logs add the objective's statistics and the throughput: tokens/s, model FLOPs/s and, on a GPU whose
peak is known, model FLOP utilisation (MFU, PaLM: Chowdhery et al. 2022, appendix B).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback

from phf.errors import PHFError
from phf.objectives import Objective
from phf.objectives.nll import model_token_nll
from phf.training.run_folder import checkpoints, is_complete, step_of

# Nominal dense bf16 peaks (FLOP/s) by a part of torch.cuda.get_device_name(), from NVIDIA's data sheets: SXM
# parts only (an H100 SXM reports itself as "H100 80GB HBM3"; PCIe and NVL parts have lower peaks).
NOMINAL_BF16_PEAKS = {"H200": 989e12, "H100 80GB HBM3": 989e12, "H100 SXM": 989e12, "A100": 312e12}


def nominal_peak(device: torch.device, bf16: bool) -> float | None:
    """The nominal dense peak (FLOP/s) of `device` in the training precision, where known: bf16 on a GPU of the
    table. None elsewhere (a CPU's peak depends on its cores and clock: benchmarks/peak_flops.py measures it)."""
    if device.type != "cuda" or not bf16:
        return None
    name = torch.cuda.get_device_name(device)
    if "pcie" in name.lower() or "NVL" in name:
        return None
    return next((peak for part, peak in NOMINAL_BF16_PEAKS.items() if part in name), None)


class Diverged(PHFError):
    """The loss or a gradient is not finite: training stopped before the update."""


class PHFTrainer(Trainer):
    def __init__(self, *args, objective: Objective, tokens_per_step: int, flops_per_token: float,
                 tokens_already: int = 0, **kwargs):
        """`flops_per_token`: the model's training FLOPs per token (`phf.training.plan.flops_per_token`)."""
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.tokens_per_step = tokens_per_step
        self.flops_per_token = flops_per_token
        self.tokens_already = tokens_already  # seen by the checkpoint this run started from
        # MFU's denominator: every process's device at its nominal peak, where known
        peak = nominal_peak(self.args.device, self.args.bf16)
        self.peak_flops = peak * self.args.world_size if peak else None
        # Our objectives return a mean over the micro-batch, so the Trainer must divide by the
        # accumulation steps itself (it skips that for models that take `num_items_in_batch`).
        self.model_accepts_loss_kwargs = False
        # The objective's statistics of each micro-batch since the last log, kept on the device: reading one
        # (float()) would wait for the GPU at every micro-batch; they are read once, when the Trainer logs.
        self._metrics: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._clock: tuple[float, int] | None = None
        self._finite: torch.Tensor | None = None  # every loss of this optimiser step finite (kept on the device)
        self.add_callback(StopWhenNotFinite(self))

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        finite = torch.isfinite(loss)  # no host sync here: read once per optimiser step, by StopWhenNotFinite
        self._finite = finite if self._finite is None else self._finite & finite
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        input_ids, scores = inputs["input_ids"], inputs["scores"]
        # The LM head runs in bf16 under mixed precision (the autocast of accelerate wraps only the model's
        # forward); under FSDP or ZeRO-3 its weight is sharded outside the forward, so the model computes the logits.
        dtype = torch.bfloat16 if self.args.bf16 else None
        sharded = self.is_fsdp_enabled or self.is_deepspeed_enabled
        nll, outputs = model_token_nll(model, input_ids, dtype, linear_head=not sharded)
        values = outputs.get("value_predictions")
        # Shift once, here (docs/method.md): position j-1 predicts token j (model_token_nll gives the NLL of tokens
        # 1..T-1), weighted by token j's segment score; the value predicting token j's reward is the value
        # head's output at position j-1.
        loss, metrics = self.objective(nll, scores[:, 1:], None if values is None else values[:, :-1])
        if model.training:
            for name, value in metrics.items():
                self._metrics[name].append(value.detach())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log: add the objective's statistics and throughput
            means = mean_metrics(self._metrics)
            self._metrics.clear()
            if means and self.args.world_size > 1:
                # Each process saw its own share of the batch; every process logs here at the same
                # step (the Trainer has just gathered the loss), so the collective cannot hang.
                mean = self.accelerator.reduce(torch.tensor(list(means.values()), device=self.args.device), "mean")
                means = dict(zip(means, mean.tolist(), strict=True))
            logs.update(means)
            step, now = self.state.global_step, time.perf_counter()
            logs["num_tokens"] = self.tokens_already + step * self.tokens_per_step
            if self._clock is not None and step > self._clock[1]:
                logs["tokens_per_second"] = (step - self._clock[1]) * self.tokens_per_step / (now - self._clock[0])
                logs["model_flops_per_second"] = self.flops_per_token * logs["tokens_per_second"]
                if self.peak_flops:
                    logs["mfu"] = logs["model_flops_per_second"] / self.peak_flops
            self._clock = (now, step)
        super().log(logs, start_time)


def mean_metrics(metrics: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """Each statistic's mean over its micro-batches, read from the device at once: every value as a Python float
    (float64, exact for float32 and bf16), summed in order, as float() of each would give."""
    if not metrics:
        return {}
    values = torch.cat([torch.stack(v).double() for v in metrics.values()]).tolist()  # the one host sync
    means, start = {}, 0
    for name, v in metrics.items():
        means[name] = sum(values[start:start + len(v)]) / len(v)
        start += len(v)
    return means


class StopWhenNotFinite(TrainerCallback):
    """Stops training at the first optimiser step whose loss or gradient is NaN or inf, before the update: a
    diverged run is never saved as a model, and its checkpoints all hold finite weights."""

    def __init__(self, trainer: PHFTrainer):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        trainer = self.trainer
        finite = trainer._finite if trainer._finite is not None else torch.tensor(True, device=args.device)
        trainer._finite = None
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:  # the total norm is finite exactly when every gradient is (or it overflows: divergence too)
            finite = finite & torch.nn.utils.get_total_norm(grads).isfinite()
        if args.world_size > 1:  # (sharded gradients differ between processes: all stop, or none)
            finite = trainer.accelerator.reduce((~finite).float(), "sum") == 0
        if not finite:
            raise Diverged(f"training diverged at step {state.global_step + 1}: the loss or a gradient is NaN or inf. "
                           f"Stopped before that update; {_kept(args.output_dir, state.global_step)}. Lower "
                           "training.learning_rate (or raise training.warmup_fraction, lower training.max_grad_norm), "
                           "then start over with --overwrite")


def _kept(run_dir: str, step: int) -> str:
    """What a diverged run keeps: its checkpoints, all finite; but one saved at `step`, just before the step that
    diverged, holds the weights that gave the NaN (their outputs may be, though they are finite)."""
    complete = [c for c in checkpoints(run_dir) if is_complete(c)]
    if not complete:
        return "no checkpoint was saved before"
    if step_of(complete[-1]) < step:
        return f"{complete[-1]} is the last checkpoint"
    before = f"; {complete[-2]} is the one before" if len(complete) > 1 else ""
    return f"{complete[-1]}, the last checkpoint, holds the weights that gave it{before}"


class JsonlLogger(TrainerCallback):
    """Every log record of the main process as one JSON line (with step and epoch)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")


class TokenProgress(ProgressCallback):
    """The Trainer's progress bar, with loss and tokens/s in its postfix instead of printed dicts."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            postfix = {"loss": f"{logs['loss']:.3f}", "tokens": f"{logs.get('num_tokens', 0) / 1e6:.2f}M"}
            if "tokens_per_second" in logs:
                postfix["tok/s"] = f"{logs['tokens_per_second']:.0f}"
            if "mfu" in logs:
                postfix["MFU"] = f"{logs['mfu']:.0%}"
            self.training_bar.set_postfix(postfix)
