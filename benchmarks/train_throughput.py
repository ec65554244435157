"""Training throughput (tokens/s, model FLOP utilisation) of phf's training path against the plain
transformers `Trainer` a user would write, in fp32 and with `bf16=True`, measured in the same run, one after
the other.

    python benchmarks/train_throughput.py [--steps 30] [--warmup 5] [--rounds 1] [--documents 200]

Same model (the pep8 task's GPT-2: 4 layers, 256 wide, block 256, vocabulary 8192), same documents (the
embedded corpus, scored once into --data-dir), same batch (8 x 256 tokens, no accumulation), same AdamW,
learning rate, cosine schedule, warm-up and clipping, every thread torch uses. Runs:

  phf bf16      `phf.training.train.train()` on the MLE objective, training.bf16=auto, where that is bf16 autocast
                (a CPU with AVX-512 BF16 or AMX); on other CPUs auto is fp32 and this row is left out;
  phf fp32      the same with training.bf16=false, to separate bf16 from the rest;
  HF fp32       GPT2LMHeadModel(config) + transformers.Trainer in fp32: documents tokenised with
                datasets.map, concatenated and cut into blocks of 256 (`group_texts` of HF's run_clm
                example), DataCollatorForLanguageModeling(tokenizer, mlm=False), logging and saving off;
  HF bf16       the same with TrainingArguments(bf16=True): the strongest configuration a user would pick.

Setup (scoring, tokenizer, packing, tokenising, model init) is not timed. Each optimiser step after the
first --warmup is timed (phf: its own `tokens_per_second` in log.jsonl, logging every step, i.e. the wall
clock from one step's log to the next; baseline: the same clock in a callback); tokens/s is reported from
the median step (robust to other jobs on a shared machine) and from the mean, over --rounds interleaved
repetitions. MFU = model FLOPs per token (phf.training.plan.flops_per_token: 6 N + 6 n_layer n_ctx d_model, N
the parameters that multiply every token, the second term causal attention's score and value products) x
tokens/s / the measured matmul peak (peak_flops.py, best of before and after) of the precision the row ran in:
bf16 for the bf16 rows, fp32 for the others. MFU counts the model's FLOPs only: phf's LM head would recompute its
logits in backward where their gradient does not fit its budget (phf.objectives.nll; not at this size), work
that would earn no credit here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path

import torch
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).parent))
from peak_flops import matmul_peak

from phf.config import Config, load_config
from phf.data.scored import read_scored
from phf.data.scoring import score_corpus
from phf.training.model import bf16_supported
from phf.training.plan import plan_training

DATA_DIR = Path("runs/bench/pep8")
TOKENS_PER_STEP = 8 * 256  # batch 8 x block 256, no accumulation


def pep8_config(documents: int, *overrides: str) -> Config:
    return load_config("pep8", "mle", [f"data.max_documents={documents}", "training.report_to=[]", *overrides])


def scored_data(data_dir: Path = DATA_DIR, documents: int = 200) -> Path:
    """The embedded corpus's first `documents` documents, scored once into `data_dir` (reused after)."""
    if not (data_dir / "scored").exists():
        score_corpus(pep8_config(documents), data_dir)
    return data_dir


def run_phf(data_dir: Path, documents: int, steps: int, warmup: int, bf16: str, *overrides: str, batch: int = 8,
            block: int = 256) -> list[float]:
    """phf's `train()` on batches of `batch` x `block` tokens (no accumulation), with more config `overrides`; the
    seconds of each timed step, from the `tokens_per_second` of its log.jsonl (logging every step: the wall clock
    from one step's log to the next)."""
    from phf.training.train import train

    tokens_per_step = batch * block
    cfg = pep8_config(documents, f"training.num_tokens={(warmup + steps) * tokens_per_step}",
                      "training.logging_steps=1", f"training.save_steps={10 * (warmup + steps)}",
                      f"training.bf16={bf16}", f"training.batch_size={batch}", f"training.micro_batch_size={batch}",
                      f"model.block_size={block}", *overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        train(cfg, data_dir, Path(run_dir))
        logs = [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]
    return [tokens_per_step / r["tokens_per_second"] for r in logs if "tokens_per_second" in r and r["step"] > warmup]


class StepClock(TrainerCallback):
    """Wall clock at the end of every optimiser step."""

    def __init__(self):
        self.times = {}

    def on_step_end(self, args, state, control, **kwargs):
        self.times[state.global_step] = time.perf_counter()


def run_baseline(data_dir: Path, documents: int, steps: int, warmup: int, cfg: Config, bf16: bool) -> list[float]:
    """What a user would write with transformers: HF run_clm's data pipeline and a plain Trainer (bf16=True or not)."""
    from datasets import Dataset
    from transformers import (
        DataCollatorForLanguageModeling,
        GPT2Config,
        GPT2LMHeadModel,
        PreTrainedTokenizerFast,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    m = cfg.model
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(data_dir / f"tokenizer-bpe{cfg.tokenizer.vocab_size}"))
    tokenizer.pad_token = tokenizer.eos_token  # GPT-2 has no pad token; the collator needs one
    texts = ["".join(t) for t in read_scored(data_dir, "train", ["texts"])["texts"].to_pylist()]
    raw = Dataset.from_dict({"text": texts})
    tokenized = raw.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])

    def group_texts(examples):  # as in transformers/examples/pytorch/language-modeling/run_clm.py
        concatenated = {k: list(chain(*examples[k])) for k in examples}
        total = len(concatenated["input_ids"]) // m.block_size * m.block_size
        return {k: [t[i:i + m.block_size] for i in range(0, total, m.block_size)] for k, t in concatenated.items()}

    blocks = tokenized.map(group_texts, batched=True)
    set_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=m.block_size, n_embd=m.n_embd, n_layer=m.n_layer,
                        n_head=m.n_head, resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=warmup + steps, per_device_train_batch_size=TOKENS_PER_STEP // m.block_size,
            gradient_accumulation_steps=1,
            learning_rate=cfg.training.learning_rate, weight_decay=cfg.training.weight_decay,
            warmup_steps=max(1, round(cfg.training.warmup_fraction * (warmup + steps))), lr_scheduler_type="cosine",
            max_grad_norm=cfg.training.max_grad_norm, use_cpu=True, logging_strategy="no", save_strategy="no",
            report_to=[], disable_tqdm=True, seed=0, bf16=bf16)
        trainer = Trainer(model=model, args=args, train_dataset=blocks,
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=[clock])
        trainer.train()
    return [clock.times[s] - clock.times[s - 1] for s in range(warmup + 1, warmup + steps + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed optimiser steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed optimiser steps first")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the three runs, interleaved")
    parser.add_argument("--documents", type=int, default=200, help="documents of the embedded corpus scored")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="scored data (made once, then reused)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, every core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = scored_data(args.data_dir, args.documents)
    cfg = pep8_config(args.documents, "model.block_size=256")
    peaks = [(matmul_peak(torch.bfloat16), matmul_peak(torch.float32))]
    loads = [os.getloadavg()[0]]
    # Rows are named by the precision they ran in: training.bf16=auto is fp32 where the CPU has no fast bf16.
    auto_is_bf16 = bf16_supported(torch.device("cpu"))
    steps = {**({"phf bf16": []} if auto_is_bf16 else {}), "HF Trainer bf16=True": [], "phf fp32": [],
             "HF Trainer fp32": []}
    for _ in range(args.rounds):
        if auto_is_bf16:
            steps["phf bf16"] += run_phf(data_dir, args.documents, args.steps, args.warmup, "auto")
        steps["HF Trainer bf16=True"] += run_baseline(data_dir, args.documents, args.steps, args.warmup, cfg, True)
        steps["phf fp32"] += run_phf(data_dir, args.documents, args.steps, args.warmup, "false")
        steps["HF Trainer fp32"] += run_baseline(data_dir, args.documents, args.steps, args.warmup, cfg, False)
        loads.append(os.getloadavg()[0])
    peaks.append((matmul_peak(torch.bfloat16), matmul_peak(torch.float32)))
    peak = {"bf16": max(p[0] for p in peaks), "fp32": max(p[1] for p in peaks)}
    plan = plan_training(cfg)  # the model train() builds, on the meta device
    params, per_token = plan.parameters, plan.flops_per_token
    rate = {name: TOKENS_PER_STEP / statistics.median(s) for name, s in steps.items()}
    mean = {name: TOKENS_PER_STEP * len(s) / sum(s) for name, s in steps.items()}
    print(f"\n# training throughput: {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"model: {params / 1e6:.2f}M parameters, {per_token / 1e6:.1f} MFLOP/token (plan.flops_per_token); "
          f"batch {TOKENS_PER_STEP // cfg.model.block_size} x {cfg.model.block_size}; {args.rounds} x {args.steps} "
          f"timed steps after {args.warmup}; matmul peak bf16 {peak['bf16']:.0f} GFLOP/s, "
          f"fp32 {peak['fp32']:.0f} GFLOP/s")
    print("| run | tokens/s (median step) | tokens/s (mean) | MFU (median) | vs HF fp32 (median / mean) "
          "| vs HF bf16=True (median / mean) |")
    print("|---|---|---|---|---|---|")
    for name in steps:
        dtype = "bf16" if "bf16" in name else "fp32"
        mfu = rate[name] * per_token / (peak[dtype] * 1e9)
        ratios = [f"{rate[name] / rate[base]:.2f}x / {mean[name] / mean[base]:.2f}x"
                  for base in ("HF Trainer fp32", "HF Trainer bf16=True")]
        print(f"| {name} | {rate[name]:.0f} | {mean[name]:.0f} | {mfu:.0%} of {dtype} peak | {' | '.join(ratios)} |")


if __name__ == "__main__":
    main()
