"""`phf train` under torchrun: 2 CPU processes (gloo) train like 1 process with the same effective batch,
prepare the data once, write once, and resume from their checkpoint."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from phf.errors import PHFError
from phf.training.train import micro_batches, train
from tests.helpers import TINY, tiny_config

# Both runs take the same 4 blocks at every step: the sampler shuffles the same order in every process
# and hands rank r the micro-batches r, r+2, ... of it, and train() keeps whole effective batches so
# that epochs split evenly. What differs is float arithmetic only: 2 ranks x 2 accumulated micro-batches
# of 1 block, averaged by gradient all-reduce, against one batch of 4. Measured: at most 1.1e-7 relative
# over the 8 steps; 1e-4 leaves room for other CPUs and BLAS builds.
TOLERANCE = 1e-4


def losses(run_dir) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert len(steps) == len(set(steps)), f"duplicate log lines (more than one process wrote): {steps}"
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def torchrun(data, run_dir, *args: str) -> str:
    """`phf train` in 2 processes with 1 block per micro-batch: accumulation 2 keeps the effective batch at 4."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
               "-m", "phf.cli", "train", "--data", str(data), "--output", str(run_dir), *args,
               *TINY, "training.micro_batch_size=1", "training.bf16=false"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # 2 processes on 2 cores
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_two_processes_train_like_one_and_resume(data_dir, tmp_path):
    data = tmp_path / "data"  # scored only: the tokenizer and the packing are made by the 2-process run
    shutil.copytree(data_dir / "scored", data / "scored")
    out = torchrun(data, tmp_path / "two")
    assert out.count("byte-level BPE on the training split") == 1  # rank 0 prepared, rank 1 waited
    assert out.count("2 process(es) x 1 sequences x 2 accumulation steps") == 1  # printed by rank 0 only

    train(tiny_config("mle", "training.bf16=false"), data, tmp_path / "one")  # 1 process x 4 sequences
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 9))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=TOLERANCE), f"step {step}"
    records = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert sum("train_runtime" in r for r in records) == 1
    for r in records:  # the objective's statistics are averaged over the processes too (MLE: nll is the loss)
        assert "loss" not in r or r["nll"] == pytest.approx(r["loss"], rel=1e-6)
    assert json.loads((tmp_path / "two" / "checkpoint-4" / "phf.json").read_text())["tokens_seen"] == 512
    assert json.loads((tmp_path / "two" / "model" / "phf.json").read_text())["tokens_seen"] == 1024

    # What a 2-process run killed after its step-4 checkpoint leaves behind; --resume must continue it.
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "two", resumed)
    shutil.rmtree(resumed / "checkpoint-8")
    shutil.rmtree(resumed / "model")
    log = resumed / "log.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines() if json.loads(line)["step"] <= 4))
    torchrun(data, resumed, "--resume")
    again = losses(resumed)  # a restart would log steps 1-4 twice
    assert sorted(again) == list(range(1, 9))
    for step in range(5, 9):
        assert again[step] == pytest.approx(two[step], rel=1e-5), f"step {step}"


def test_the_effective_batch_is_kept_whatever_the_number_of_processes():
    def split(world: int, *overrides: str) -> tuple[int, int]:
        return micro_batches(tiny_config("mle", *overrides).training, world)

    assert split(1) == (4, 1)  # TINY: batch_size 4, micro_batch_size 4
    assert split(2) == (2, 1)  # a micro-batch larger than a process's share of the batch is lowered to it
    assert split(2, "training.micro_batch_size=1") == (1, 2)
    assert split(4, "training.batch_size=32", "training.micro_batch_size=2") == (2, 4)
    with pytest.raises(PHFError, match=r"multiple of the number of processes \(3\)"):
        split(3)
    with pytest.raises(PHFError, match=r"micro_batch_size \(3\) must divide .* = 4\)"):
        split(2, "training.batch_size=8", "training.micro_batch_size=3")
