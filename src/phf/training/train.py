"""`phf train`: pack the scored corpus for the objective, then train with `PHFTrainer`."""

from __future__ import annotations

import math
import os
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml
from transformers import TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import ProgressCallback

from phf.config import Config, TrainingConfig
from phf.data.control import control_info
from phf.data.packing import PackedBlocks
from phf.data.prepare import prepare_packed, prepare_tokenizer
from phf.device import default_device
from phf.errors import PHFError
from phf.evaluation.curve import MisalignmentCurve
from phf.extras import needs
from phf.files import owned, write_atomic
from phf.model_card import write_card
from phf.model_folder import MODEL_DIR, ModelInfo, has_model
from phf.objectives import build_objective, cooldown_fraction, method_of
from phf.training import run_folder
from phf.training.cooldown import CooldownSchedule
from phf.training.model import bf16_supported, build_model, use_fast_attention
from phf.training.trainer import JsonlLogger, PHFTrainer, TokenProgress


def tokens_seen_by(checkpoint: str | None) -> int:
    """Tokens a phf model or checkpoint has been trained on (0 for a fresh or non-phf model)."""
    return (ModelInfo.read(checkpoint).tokens_seen or 0) if checkpoint else 0


def micro_batches(t: TrainingConfig, world: int) -> tuple[int, int]:
    """Sequences per forward pass and accumulation steps of each of `world` processes, such that
    micro-batch x accumulation x processes = training.batch_size: the effective batch whatever their number."""
    if t.batch_size % world:
        raise PHFError(f"training.batch_size ({t.batch_size}) must be a multiple of the number of processes "
                       f"({world}): each process takes an equal share of every batch")
    share = t.batch_size // world
    # micro_batch_size is what fits one device; with more processes a share may be smaller than that
    micro = min(t.micro_batch_size, share)
    if share % micro:
        raise PHFError(f"training.micro_batch_size ({micro}) must divide each process's share of a batch "
                       f"(training.batch_size / processes = {t.batch_size} / {world} = {share})")
    return micro, share // micro


def optimizer_steps(cfg: Config, tokens_already: int = 0) -> tuple[int, int]:
    """Optimiser steps left of the token budget after `tokens_already`, and the tokens of one step."""
    tokens_per_step = cfg.training.batch_size * cfg.model.block_size
    steps = (cfg.training.num_tokens - tokens_already) // tokens_per_step
    if steps < 1:
        raise PHFError(f"training.num_tokens ({cfg.training.num_tokens}) leaves less than one step "
                       f"({tokens_per_step} tokens) after the {tokens_already} tokens {cfg.model.init_from} was "
                       "trained on")
    return steps, tokens_per_step


def snapshot_step(fraction: float, steps: int) -> int:
    """The optimiser step at which the snapshot of `fraction` of `steps` is taken (at least the first)."""
    return max(1, round(fraction * steps))


def training_arguments(cfg: Config, run_dir: Path, tokens_already: int = 0) -> tuple[TrainingArguments, int]:
    """TrainingArguments for what is left of the token budget; returns them and the tokens per optimiser step."""
    t = cfg.training
    # WORLD_SIZE: the processes started by torchrun or accelerate launch
    micro, accumulation = micro_batches(t, int(os.environ.get("WORLD_SIZE", 1)))
    max_steps, tokens_per_step = optimizer_steps(cfg, tokens_already)
    device = default_device()
    bf16 = bf16_supported(device) if t.bf16 == "auto" else t.bf16
    if "tensorboard" in t.report_to:
        with needs("tensorboard", "training.report_to=[tensorboard]"):
            import tensorboard  # noqa: F401
    args = TrainingArguments(
        output_dir=str(run_dir),
        max_steps=max_steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=math.ceil(t.warmup_fraction * max_steps),
        lr_scheduler_type=t.lr_scheduler,
        max_grad_norm=t.max_grad_norm,
        bf16=bf16,
        use_cpu=device.type == "cpu",
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        report_to=t.report_to,
        seed=t.seed,
        remove_unused_columns=False,  # keep "scores" in the batch
        # A cooldown run's dataset is its whole schedule, in order (training/cooldown.py)
        train_sampling_strategy="sequential" if cooldown_fraction(cfg) else "random",
        dataloader_drop_last=True,
        ddp_find_unused_parameters=False,  # every objective trains every parameter: skip DDP's graph traversal
        logging_nan_inf_filter=False,  # (a non-finite loss stops the run: trainer.StopWhenNotFinite)
        torch_compile=t.compile,  # accelerate compiles the model (inductor); the saved model is the plain one
    )
    return args, tokens_per_step


def whole_batches(blocks: PackedBlocks, batch_size: int) -> torch.utils.data.Dataset:
    """The first blocks, in a whole number of effective batches. Each epoch then splits into full optimiser
    steps, also at its end, and into equal shares for the processes; so N processes (the Trainer's sampler
    hands rank r the micro-batches r, r+N, ... of one shuffled order) train on the same batches as one."""
    usable = len(blocks) // batch_size * batch_size
    if usable == 0:
        raise PHFError(f"{blocks.dir} holds {len(blocks)} blocks: fewer than one batch "
                       f"(training.batch_size={batch_size})")
    return torch.utils.data.Subset(blocks, range(usable))


class InfoWriter(TrainerCallback):
    """Writes the tokenizer, the model card and phf.json (last: it marks the folder complete) beside the weights
    of every checkpoint, snapshot and the final model: each is a model folder, to sample, evaluate or finetune from
    (`model.init_from`) knowing its objective and how many tokens it has seen."""

    def __init__(self, info: ModelInfo, tokenizer, tokens_already: int, tokens_per_step: int, sampling):
        self.info, self.tokenizer = info, tokenizer
        self.tokens_already, self.tokens_per_step = tokens_already, tokens_per_step
        self.sampling = sampling  # how the card says to sample the model

    def write(self, folder: Path, step: int) -> None:
        # Saved here, not by the Trainer: given the tokenizer, it would set pad_token_id = EOS in the
        # model config, and GPT-2 then warns about padding in every packed block that holds an EOS.
        self.tokenizer.save_pretrained(folder)
        info = self.info.seen(self.tokens_already + step * self.tokens_per_step)
        write_card(folder, info, self.sampling)
        info.write(folder)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)


class Snapshots(TrainerCallback):
    """Saves the model, its tokenizer and phf.json at given fractions of the steps, as `snapshot-<fraction>/`,
    out of reach of checkpoint rotation: the paper's finetuning arms start from the MLE run at 50% or 90%."""

    def __init__(self, trainer: PHFTrainer, fractions: list[float], info: InfoWriter):
        self.trainer, self.fractions, self.info = trainer, fractions, info

    def on_step_end(self, args, state, control, **kwargs):
        for fraction in self.fractions:
            if state.global_step == snapshot_step(fraction, state.max_steps):
                folder = Path(args.output_dir) / f"snapshot-{fraction:g}"
                # Every process calls the Trainer's save, which writes from rank 0 only: under FSDP,
                # gathering the sharded weights is a collective that all processes must join.
                self.trainer.save_model(str(folder))
                if state.is_world_process_zero:
                    self.info.write(folder, state.global_step)


def train(cfg: Config, data_dir: Path, run_dir: Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Train one model; returns the folder of the final model (HF format, with its tokenizer). A run folder
    holding checkpoints or a model is continued with `resume` (refused if `cfg` would train another model, or
    on other data), started over with `overwrite`, else refused (run_folder.RunFolderInUse). The folder is held
    by this run (files.owned): a second run into it is refused while this one lives."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise PHFError(f"--data {data_dir} is a file: the data folder is the one `phf score --data` wrote")
    # Under torchrun / accelerate launch the first process holds the folder for all (they write through it).
    main = int(os.environ.get("RANK", 0)) == 0
    with owned(run_dir) if main else nullcontext(Path(run_dir)) as run_dir:
        if resume and not overwrite and has_model(run_dir / MODEL_DIR):
            run_folder.check_same_training(cfg, run_dir)
            run_folder.check_same_data(data_dir, run_dir)
            print(f"{run_dir} already holds the finished model; nothing to resume")
            return run_dir / MODEL_DIR
        return _train(cfg, data_dir, run_dir, resume, overwrite)


def _train(cfg: Config, data_dir: Path, run_dir: Path, resume: bool, overwrite: bool) -> Path:
    if t := cfg.training.num_threads:
        torch.set_num_threads(t)
    tokens_already = tokens_seen_by(cfg.model.init_from)  # finetuning: the budget counts them
    # Under torchrun / accelerate launch this joins the process group (gloo on CPU, NCCL on GPUs).
    args, tokens_per_step = training_arguments(cfg, run_dir, tokens_already)
    main = args.process_index == 0  # the one process that prints and writes files (as the Trainer does its own)
    with args.main_process_first(local=False, desc="run folder"):  # the others read what the first left
        checkpoint = run_folder.start(cfg, data_dir, run_dir, resume, overwrite) if main \
            else run_folder.last_checkpoint(run_dir) if resume and not overwrite else None
    # The first process trains the tokenizer and packs the data while the others wait, then they read
    # what it wrote (the data folder must be shared between nodes, like the run folder).
    with args.main_process_first(local=False, desc="tokenizer and packing"):
        tokenizer = prepare_tokenizer(cfg, data_dir)
        packed = prepare_packed(cfg, data_dir, tokenizer)
    blocks = PackedBlocks(packed["train"], cfg.model.block_size)
    if cooldown_fraction(cfg):
        dataset = CooldownSchedule(blocks, PackedBlocks(packed["train_untagged"], cfg.model.block_size), args.max_steps,
                                   cfg.training.batch_size, cooldown_fraction(cfg), cfg.training.seed)
        if main:
            print(f"tag cooldown: steps {dataset.switch_step + 1}-{args.max_steps} train without control tokens")
    else:
        dataset = whole_batches(blocks, cfg.training.batch_size)
    set_seed(cfg.training.seed)  # the initial weights depend on the seed only (the same in every process)
    model = build_model(cfg.model, tokenizer, value_head=method_of(cfg).value_head)
    use_fast_attention(model, args.device, args.bf16, cfg.model.block_size)
    if main:
        write_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(), sort_keys=False))
        print(f"{cfg.objective.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
              f"{args.max_steps} steps x {tokens_per_step} tokens after {tokens_already} already seen, "
              f"{len(dataset)} of {len(blocks)} blocks of {cfg.model.block_size}, bf16={args.bf16}, "
              f"{torch.get_num_threads()} threads, {args.world_size} process(es) x "
              f"{args.per_device_train_batch_size} sequences x {args.gradient_accumulation_steps} accumulation steps")
    conditional = method_of(cfg).conditional
    info = InfoWriter(ModelInfo(cfg.objective.name, cfg.scorer.name, conditional, cfg.model.init_from,
                                control_info(cfg) if conditional else None,
                                settings=cfg.objective.model_dump(exclude={"name"}), corpus=cfg.data.corpus),
                      tokenizer, tokens_already, tokens_per_step, cfg.sampling)
    if main and checkpoint and not has_model(checkpoint):  # stopped between the Trainer's save and ours
        info.write(checkpoint, run_folder.step_of(checkpoint))
    from phf.training.plan import flops_per_token  # (here: plan.py imports this module)

    trainer = PHFTrainer(
        model=model, args=args, train_dataset=dataset,
        objective=build_objective(cfg, data_dir), tokens_per_step=tokens_per_step,
        flops_per_token=flops_per_token(model, cfg.model.block_size), tokens_already=tokens_already,
        callbacks=[JsonlLogger(run_dir / "log.jsonl"), info],
    )
    trainer.add_callback(Snapshots(trainer, cfg.training.snapshot_at, info))
    if trainer.is_fsdp_enabled:  # (on GPUs only: accelerate runs FSDP on CPU processes as plain DDP)
        if "FULL_STATE_DICT" not in str(trainer.accelerator.state.fsdp_plugin.state_dict_type):
            raise PHFError("FSDP: checkpoints, snapshots and the model must be whole Hugging Face models, to sample, "
                           "evaluate and finetune from: launch with --fsdp_state_dict_type FULL_STATE_DICT")
        if cfg.evaluation.curve_points:  # rank 0 samples alone, which needs the whole model in its memory
            raise PHFError("evaluation.curve_points needs the whole model on one process: not available with FSDP "
                           "(set it to 0, and evaluate the snapshots or checkpoints afterwards)")
    # The curve samples on rank 0 only, while the others wait at the next gradient all-reduce: no scorer elsewhere.
    if cfg.evaluation.curve_points and main:
        trainer.add_callback(MisalignmentCurve(cfg, tokenizer, info.info, run_dir / "curve.jsonl",
                                               tokens_already, tokens_per_step))
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(TokenProgress)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    model_dir = run_dir / MODEL_DIR
    trainer.save_model(str(model_dir))  # in every process, like Snapshots; rank 0 writes
    if main:
        info.write(model_dir, trainer.state.global_step)
    return model_dir
