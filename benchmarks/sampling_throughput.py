"""Sampling throughput (samples/s) of `phf sample` against a plain `model.generate` loop, in the same run.

    python benchmarks/sampling_throughput.py [--model runs/pep8/mle/model] [--samples 64] [--max-new-tokens 128]

Unconditional samples from EOS, temperature 0.7, top-p 0.9 (top-k off on both sides: the same distribution),
--max-new-tokens each, every thread torch uses. Runs:

  phf sample          `phf.sampling.generate.sample()`: batches of sampling.batch_size (64) with a KV cache,
                      drawn by `phf.sampling.nucleus.NucleusSampler` (greedy `generate` over its scores), cut
                      at EOS and decoded;
  generate, one       what a user would write: for each sample, model.generate(input_ids=[[eos]], do_sample=True,
                      temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=...) and decode;
  generate, batched   one model.generate(..., num_return_sequences=--samples) call with the same arguments
                      (transformers' own batching and sampler: the baseline to beat).

Without --model, a small pep8 MLE model is trained once with phf (--train-tokens tokens on the embedded corpus,
kept in runs/bench/pep8-mle/model). Model loading and one short untimed warm-up of each run are not timed; the
tokens column counts generated tokens up to and including EOS (a batch keeps stepping until its longest sample
ends, which it counts as well).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import pep8_config, scored_data

from phf.config import SamplingConfig
from phf.sampling.generate import load_model, sample

MODEL_DIR = Path("runs/bench/pep8-mle")


def quick_model(tokens: int) -> Path:
    """A pep8 MLE model trained once with phf on `tokens` tokens (reused after)."""
    from phf.training.train import train

    if not (MODEL_DIR / "model" / "config.json").exists():
        data_dir = scored_data()
        train(pep8_config(200, f"training.num_tokens={tokens}", "training.save_steps=100000"), data_dir,
              MODEL_DIR)
    return MODEL_DIR / "model"


def generated_tokens(rows: list[list[int]], eos: int) -> int:
    return sum(row.index(eos) + 1 if eos in row else len(row) for row in rows)


def run_phf(loaded, cfg: SamplingConfig, n: int) -> tuple[float, int]:
    """`phf sample`'s function; its generate calls are wrapped only to count the tokens they return."""
    outputs, generate = [], loaded.model.generate

    def counting_generate(*args, **kwargs):
        out = generate(*args, **kwargs)
        outputs.extend(out[:, kwargs["input_ids"].shape[1]:].tolist())
        return out

    loaded.model.generate = counting_generate
    start = time.perf_counter()
    sample(loaded, cfg, [""] * n)
    seconds = time.perf_counter() - start
    del loaded.model.generate
    return seconds, generated_tokens(outputs, loaded.tokenizer.eos_token_id)


def run_one_at_a_time(model, tok, n: int, kwargs: dict) -> tuple[float, int]:
    """The loop a user would write: one generate call per sample, then decode it."""
    eos, rows = tok.eos_token_id, []
    start = time.perf_counter()
    for _ in range(n):
        out = model.generate(input_ids=torch.tensor([[eos]], device=model.device), **kwargs)
        tok.decode(out[0, 1:], skip_special_tokens=True)
        rows.append(out[0, 1:].tolist())
    return time.perf_counter() - start, generated_tokens(rows, eos)


def run_num_return_sequences(model, tok, n: int, kwargs: dict) -> tuple[float, int]:
    """transformers' own batching: one generate call returning n sequences."""
    eos = tok.eos_token_id
    start = time.perf_counter()
    out = model.generate(input_ids=torch.tensor([[eos]], device=model.device), num_return_sequences=n, **kwargs)
    tok.batch_decode(out[:, 1:], skip_special_tokens=True)
    return time.perf_counter() - start, generated_tokens(out[:, 1:].tolist(), eos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a phf model folder (default: train a small pep8 one)")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64, help="phf's sampling.batch_size")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the three runs, interleaved; medians count")
    parser.add_argument("--train-tokens", type=int, default=200_000, help="tokens of the model trained without --model")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, every core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.model or quick_model(args.train_tokens))
    model, tok = loaded.model, loaded.tokenizer
    cfg = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.9, batch_size=args.batch_size)
    kwargs = {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 0, "max_new_tokens": args.max_new_tokens,
              "pad_token_id": tok.eos_token_id}
    names = [f"phf sample (batch {args.batch_size})", "model.generate, one sample at a time",
             f"model.generate, num_return_sequences={args.samples}"]
    runs = {name: [] for name in names}
    # Warm-up (first calls allocate and pick kernels), so that the first timed run is not the only one to pay.
    run_phf(loaded, cfg.model_copy(update={"max_new_tokens": 8}), args.batch_size)
    run_num_return_sequences(model, tok, args.samples, {**kwargs, "max_new_tokens": 8})
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        runs[names[0]].append(run_phf(loaded, cfg, args.samples))
        torch.manual_seed(0)
        runs[names[1]].append(run_one_at_a_time(model, tok, args.samples, kwargs))
        torch.manual_seed(0)
        runs[names[2]].append(run_num_return_sequences(model, tok, args.samples, kwargs))
        loads.append(os.getloadavg()[0])

    print(f"\n# sampling throughput: {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"model {args.model or MODEL_DIR / 'model'}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
          f"parameters; {args.samples} samples of at most {args.max_new_tokens} new tokens; median of {args.rounds}")
    print("| run | seconds (median) | each round | samples/s | tokens generated | phf vs this |")
    print("|---|---|---|---|---|---|")
    seconds = {name: statistics.median(s for s, _ in r) for name, r in runs.items()}
    for name, r in runs.items():
        each = ", ".join(f"{s:.2f}" for s, _ in r)
        print(f"| {name} | {seconds[name]:.2f} | {each} | {args.samples / seconds[name]:.2f} | {r[-1][1]} | "
              f"{seconds[name] / seconds[names[0]]:.2f}x |")
    print(f"\nphf against batched generate: {seconds[names[2]] / seconds[names[0]]:.2f}x (median seconds)")


if __name__ == "__main__":
    main()
