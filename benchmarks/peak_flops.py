"""Measured matmul peak of this machine (GFLOP/s) for fp32 and bf16: the denominator of model FLOP utilisation.

    python benchmarks/peak_flops.py [--size 2048 4096] [--repeats 5] [--threads N]

torch.matmul of large square matrices on every thread torch uses, after a warm-up; the best of several
timed runs (each of several products), so that other jobs on the machine lower it as little as possible.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def matmul_peak(dtype: torch.dtype, sizes: tuple[int, ...] = (2048, 4096), repeats: int = 5,
                min_seconds: float = 0.5, device: str | torch.device = "cpu") -> float:
    """Best GFLOP/s of `a @ b` over the sizes (2 n^3 flops a product), best of `repeats` timed runs, on `device`
    (a CUDA device: random matrices made there, the clock read after `torch.cuda.synchronize`)."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
        out = torch.empty(n, n, dtype=dtype, device=device)
        torch.matmul(a, b, out=out)  # warm-up (oneDNN/MKL/cuBLAS kernel selection, page faults)
        sync()
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        sync()
        per_product = time.perf_counter() - start
        products = max(1, round(min_seconds / max(per_product, 1e-6)))
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(products):
                torch.matmul(a, b, out=out)
            sync()
            best = max(best, 2 * n ** 3 * products / (time.perf_counter() - start) / 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs="+", default=[2048, 4096], help="square matrix sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per size (the best counts)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, every core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# matmul peak: {os.cpu_count()} cores, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")
    print("| dtype | GFLOP/s |")
    print("|---|---|")
    for dtype in (torch.float32, torch.bfloat16):
        print(f"| {str(dtype).removeprefix('torch.')} | {matmul_peak(dtype, tuple(args.size), args.repeats):.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
