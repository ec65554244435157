"""Peak memory of one training step (forward and backward): phf's chunked LM-head NLL against the plain path
(the model's full logits, then cross-entropy in fp32), under bf16 autocast, each in a fresh process (the two
at once: each process's peak is its own).

    python benchmarks/loss_memory.py [--cases pep8 gpt2-small]

Cases: `pep8` is the pep8 task's default model and batch (GPT-2, 4 layers, 256 wide, vocabulary 8192,
8 x 256 tokens); `gpt2-small` is the paper's model (12 layers, 768 wide, vocabulary 50257) on a micro-batch of
4 x 1024 tokens. On a GPU the peak is `torch.cuda.max_memory_allocated` above the memory held before the
step (model, optimiser state, inputs); on a CPU, the process's peak resident memory (`ru_maxrss`) above its
resident memory before the step, which also counts the allocator's caching (so it is an upper bound).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

CASES = {  # n_layer, n_embd, n_head, vocabulary, batch, block
    "pep8": (4, 256, 4, 8192, 8, 256),
    "gpt2-small": (12, 768, 12, 50257, 4, 1024),
}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def one_step(case: str, path: str) -> dict:
    """Runs in its own process: build the model, take one forward and backward, report the peak above the start."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from phf.objectives.nll import logits_token_nll, model_token_nll

    n_layer, n_embd, n_head, vocab, batch, block = CASES[case]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = GPT2Config(vocab_size=vocab, n_positions=block, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).to(device).train()
    ids = torch.randint(0, vocab, (batch, block), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        start = rss_mib()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        if path == "chunked":
            nll, _ = model_token_nll(model, ids, torch.bfloat16)
        else:  # what the plain Trainer path holds: the whole logits, shifted, then cross-entropy
            nll = logits_token_nll(model(input_ids=ids, use_cache=False).logits[:, :-1], ids[:, 1:])
    nll.mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - start) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start  # ru_maxrss is in KiB on Linux
    return {"case": case, "path": path, "device": device.type, "peak_mib": peak}


def measure(case: str, timeout: float | None = None) -> dict[str, float]:
    """Peak MiB of one training step of `case` by path ("logits", "chunked"): each path in a fresh process of its
    own, the two at once (each process's peak is its own, on a CPU and on a GPU)."""
    runs = {path: subprocess.Popen([sys.executable, __file__, "--one", case, path], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for path in ("logits", "chunked")}
    peaks, errors = {}, []
    try:
        for path, run in runs.items():
            out, err = run.communicate(timeout=timeout)
            if run.returncode:
                errors.append(f"{path}: exit {run.returncode}: {err.strip()[-2000:]}")
            else:
                peaks[path] = json.loads(out.strip().splitlines()[-1])["peak_mib"]
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    if errors:
        raise RuntimeError(f"loss_memory {case}: " + "; ".join(errors))
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--one", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_step(*args.one)))
        return
    print("| case | tokens | vocabulary | plain logits path, MiB | chunked NLL, MiB | ratio |")
    print("|---|---|---|---|---|---|")
    for case in args.cases:
        peaks = measure(case)
        _, _, _, vocab, batch, block = CASES[case]
        print(f"| {case} | {batch} x {block} | {vocab} | {peaks['logits']:.0f} | {peaks['chunked']:.0f} | "
              f"{peaks['chunked'] / peaks['logits']:.2f}x |")


if __name__ == "__main__":
    main()
