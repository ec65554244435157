"""`phf train`: pack the scored corpus for the objective, then train with `PHFTrainer`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import yaml
from transformers import TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import ProgressCallback

from phf.config import Config
from phf.data.packing import PackedBlocks, resolve_threshold
from phf.data.prepare import prepare_packed, prepare_tokenizer
from phf.data.tokenizer import control_ids
from phf.objectives import NEEDS_VALUE_HEAD, build_objective
from phf.training.model import bf16_supported, build_model
from phf.training.trainer import JsonlLogger, PHFTrainer, TokenProgress, last_checkpoint

MODEL_DIR = "model"
PHF_INFO = "phf.json"  # what sampling and evaluation need to know about a phf model


def tokens_seen_by(checkpoint: str | None) -> int:
    """Tokens a phf model or checkpoint has been trained on (0 for a fresh or non-phf model)."""
    info = Path(checkpoint or "") / PHF_INFO
    return json.loads(info.read_text())["tokens_seen"] if checkpoint and info.exists() else 0


def training_arguments(cfg: Config, run_dir: Path, tokens_already: int = 0) -> tuple[TrainingArguments, int]:
    """TrainingArguments for what is left of the token budget; returns them and the tokens per optimiser step."""
    t = cfg.training
    world = int(os.environ.get("WORLD_SIZE", 1))
    per_step = t.micro_batch_size * world
    if t.batch_size % per_step:
        raise ValueError(f"training.batch_size ({t.batch_size}) must be a multiple of micro_batch_size x processes ({per_step})")
    tokens_per_step = t.batch_size * cfg.model.block_size
    max_steps = (t.num_tokens - tokens_already) // tokens_per_step
    if max_steps < 1:
        raise ValueError(f"training.num_tokens ({t.num_tokens}) leaves less than one step ({tokens_per_step} tokens) "
                         f"after the {tokens_already} tokens {cfg.model.init_from} was trained on")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = bf16_supported(device) if t.bf16 == "auto" else t.bf16
    args = TrainingArguments(
        output_dir=str(run_dir),
        max_steps=max_steps,
        per_device_train_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.batch_size // per_step,
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
        dataloader_drop_last=True,
    )
    return args, tokens_per_step


class InfoWriter(TrainerCallback):
    """Writes phf.json into every checkpoint, so a checkpoint can be sampled, evaluated or finetuned from
    (`model.init_from`) knowing its objective and how many tokens it has seen."""

    def __init__(self, info: dict, tokens_already: int, tokens_per_step: int):
        self.info, self.tokens_already, self.tokens_per_step = info, tokens_already, tokens_per_step

    def write(self, folder: Path, step: int) -> None:
        info = {**self.info, "tokens_seen": self.tokens_already + step * self.tokens_per_step}
        (Path(folder) / PHF_INFO).write_text(json.dumps(info, indent=1))

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)


class Snapshots(TrainerCallback):
    """Saves the model, its tokenizer and phf.json at given fractions of the steps, as `snapshot-<fraction>/`,
    out of reach of checkpoint rotation: the paper's finetuning arms start from the MLE run at 50% or 90%."""

    def __init__(self, run_dir: Path, fractions: list[float], tokenizer, info: InfoWriter):
        self.run_dir, self.fractions, self.tokenizer, self.info = Path(run_dir), fractions, tokenizer, info

    def on_step_end(self, args, state, control, model=None, **kwargs):
        for fraction in self.fractions:
            if state.global_step == max(1, round(fraction * state.max_steps)) and state.is_world_process_zero:
                folder = self.run_dir / f"snapshot-{fraction:g}"
                model.save_pretrained(folder)
                self.tokenizer.save_pretrained(folder)
                self.info.write(folder, state.global_step)


def train(cfg: Config, data_dir: Path, run_dir: Path, resume: bool = False) -> Path:
    """Train one model; returns the folder of the final model (HF format, with its tokenizer)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if t := cfg.training.num_threads:
        torch.set_num_threads(t)
    checkpoint = last_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        print(f"--resume: no checkpoint in {run_dir}, starting from scratch")
    tokenizer, tokenizer_id = prepare_tokenizer(cfg, data_dir)
    dataset = PackedBlocks(prepare_packed(cfg, data_dir, tokenizer, tokenizer_id)["train"], cfg.model.block_size)
    tokens_already = tokens_seen_by(cfg.model.init_from)  # finetuning: the budget counts them
    args, tokens_per_step = training_arguments(cfg, run_dir, tokens_already)
    threshold = resolve_threshold(cfg.objective.threshold, data_dir, "scores")
    set_seed(cfg.training.seed)  # the initial weights depend on the seed only
    model = build_model(cfg.model, tokenizer, value_head=cfg.objective.name in NEEDS_VALUE_HEAD)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    print(f"{cfg.objective.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"{args.max_steps} steps x {tokens_per_step} tokens after {tokens_already} already seen, "
          f"{len(dataset)} blocks of {cfg.model.block_size}, bf16={args.bf16}, {torch.get_num_threads()} threads")
    aligned, misaligned = control_ids(tokenizer)
    info = InfoWriter({"objective": cfg.objective.name, "scorer": cfg.scorer.name,
                       "conditional": cfg.objective.name == "conditional", "init_from": cfg.model.init_from,
                       "aligned_token_id": aligned, "misaligned_token_id": misaligned},
                      tokens_already, tokens_per_step)
    trainer = PHFTrainer(
        model=model, args=args, train_dataset=dataset,
        objective=build_objective(cfg.objective, threshold), tokens_per_step=tokens_per_step,
        tokens_already=tokens_already,
        callbacks=[JsonlLogger(run_dir / "log.jsonl"), info, Snapshots(run_dir, cfg.training.snapshot_at, tokenizer, info)],
    )
    if cfg.evaluation.curve_points:
        from phf.evaluation.curve import MisalignmentCurve  # sampling during training

        trainer.add_callback(MisalignmentCurve(cfg, tokenizer, info.info["conditional"], run_dir / "curve.jsonl",
                                               tokens_already, tokens_per_step))
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(TokenProgress)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    model_dir = run_dir / MODEL_DIR
    trainer.save_model(str(model_dir))
    if trainer.is_world_process_zero():
        # Saved here, not by the Trainer: given the tokenizer, it would set pad_token_id = EOS in the
        # model config, and GPT-2 then warns about padding in every packed block that holds an EOS.
        tokenizer.save_pretrained(model_dir)
        info.write(model_dir, trainer.state.global_step)
    return model_dir
