"""GPU check: one script that measures phf's training, loss memory, sampling, FSDP and scoring on one device, in
under 8 minutes on one GPU (`--scale gpu`, the default where CUDA is available), or scaled down to a smoke run on a
CPU (`--scale cpu`, the default elsewhere; tests/test_gpu_check.py runs it).

    python benchmarks/gpu_check.py [--scale gpu|cpu] [--out check.json] [--parts train memory ...]
                                   [--classifier PATH] [--verbose]

Nothing is fetched from the internet (HF_HUB_OFFLINE=1 is set): the models are randomly initialised, the tokenizer
is a byte-level BPE trained here by phf (`phf.data.tokenizer.train_bpe`) on the scored documents, and the
corpus is phf's embedded default (data.corpus=stdlib, the standard library's .py files, scored for PEP8 once at
the start, in a temporary folder). Parts, each with a time budget (its wall time is printed; a part over its
budget, or one that raises, fails with its error and the script goes on; the exit status is 1 if any failed):

  setup           score the first documents of the embedded corpus (pep8, every core), train a BPE on them and
                  top it up with unused special tokens to the vocabulary size (50257 at GPU scale: the
                  stdlib's first 200 files give the BPE about 25k merges; the added rows cost what GPT-2's do);
  peak            the measured matmul peak of the training dtype (peak_flops.matmul_peak on the device: bf16 where
                  phf trains in bf16, else fp32), and on a GPU whose nominal dense bf16 peak is known (H100 SXM
                  and H200 989, A100 312 TFLOP/s) the ratio of the two;
  train           training tokens/s and MFU through phf's own training path: `phf.training.train.train()` (MLE,
                  training.bf16=auto, PHFTrainer with the chunked LM-head loss), driven by
                  train_throughput.run_phf; tokens/s from the median step of its log.jsonl after the warm-up steps.
                  MFU = model FLOPs per token (phf.training.plan.flops_per_token) x tokens/s / peak;
  train_compiled  the same with training.compile=true: the Trainer compiles the model through accelerate, with
                  torch.compile's default backend, inductor; compilation and its recompiles fall in the untimed
                  warm-up steps; the dynamo graph and graph-break counts are printed;
  memory          peak memory of one training step (forward and backward), phf's chunked loss against the full
                  logits with fp32 cross-entropy, by loss_memory.py (GPT-2 small on 4 x 1024 tokens at GPU scale,
                  torch.cuda.max_memory_allocated; its pep8 case on a CPU, peak resident memory);
  sampling        samples/s and tokens/s of `phf.sampling.generate.sample()` at batch --samples (256) against one
                  batched `model.generate(num_return_sequences=...)` (sampling_throughput.py), temperature 0.7,
                  top-p 0.9, top-k off, min_new_tokens = max_new_tokens so both generate the same tokens; the model
                  is the training part's architecture, randomly initialised, in fp32 as `phf sample` loads it;
  fsdp            a one-process FSDP smoke run: `accelerate launch --use_fsdp --fsdp_version 2 --num_processes 1
                  --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP --fsdp_transformer_layer_cls_to_wrap GPT2Block
                  --fsdp_state_dict_type FULL_STATE_DICT -m phf.cli train ...` (docs/distributed.md) of a 2-layer
                  model for 4 steps on the setup's data, evaluation.curve_points=0, checkpoint at step 4; then the
                  saved model is loaded with AutoModelForCausalLM.from_pretrained and its logits checked finite.
                  FSDP is taken as active when the checkpoint holds FSDP's own files (pytorch_model_fsdp*,
                  optimizer.bin). On a CPU accelerate ignores --use_fsdp and runs one plain process: the same
                  command runs, and the part says so; on a GPU a run without FSDP fails the part;
  scoring         sentences/s of phf's Detoxify or classifier scorer (phf.scorers.toxicity, as `phf score` runs
                  it: on the GPU in bf16 or fp16 where there is one, batched by token length) on the lines of the
                  first stdlib files (scorer.segmenter=lines: no spaCy), only with weights already here:
                  --classifier PATH (a model folder: the classifier scorer; a file: a Detoxify checkpoint), else a
                  Detoxify checkpoint in torch hub's cache or a known toxicity classifier in the Hugging Face
                  cache; otherwise the part prints "skipped: no weights". benchmarks/classifier_throughput.py
                  compares it with transformers' pipeline.

Every figure is measured in this run; benchmarks/README.md says which runs have been recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: nothing from the hub, ever

import torch

sys.path.insert(0, str(Path(__file__).parent))
import loss_memory
from peak_flops import matmul_peak
from sampling_throughput import run_num_return_sequences
from sampling_throughput import run_phf as run_phf_sampling
from train_throughput import pep8_config
from train_throughput import run_phf as run_phf_training

from phf.training.plan import plan_training
from phf.training.trainer import nominal_peak

T0 = time.monotonic()  # the total budget counts from here (after the imports, a few seconds)

# Toxicity classifiers looked for in the Hugging Face cache (never downloaded).
KNOWN_CLASSIFIERS = ("unitary/toxic-bert", "s-nlp/roberta_toxicity_classifier", "martin-ha/toxic-comment-model",
                     "facebook/roberta-hate-speech-dynabench-r4-target", "cardiffnlp/twitter-roberta-base-offensive")
PARTS = ("setup", "peak", "train", "train_compiled", "memory", "sampling", "fsdp", "scoring")


@dataclass(frozen=True)
class Scale:
    n_layer: int
    n_embd: int
    n_head: int
    vocab: int
    block: int
    batch: int  # sequences per optimiser step (one micro-batch)
    warmup: int  # untimed steps of each training run
    steps: int  # timed steps
    documents: int  # of the embedded corpus, scored in setup
    heldout: float
    score_workers: int  # scoring processes (0: one per core; at a few documents, one process starts faster)
    peak_sizes: tuple[int, ...]
    peak_repeats: int
    peak_seconds: float
    memory_case: str  # a case of loss_memory.CASES
    samples: int
    new_tokens: int
    sample_rounds: int
    score_lines: int  # lines of the first stdlib files scored by the classifier
    budgets: dict[str, float] = field(default_factory=dict)  # seconds per part
    total: float = 0.0  # seconds for the whole script

    def model_overrides(self) -> list[str]:
        return [f"model.n_layer={self.n_layer}", f"model.n_embd={self.n_embd}", f"model.n_head={self.n_head}"]


SCALES = {
    # GPT-2 small, the paper's model. The total counts from after the imports, and leaves them room, so that the
    # whole script stays under 8 minutes even if every part used its whole budget.
    "gpu": Scale(n_layer=12, n_embd=768, n_head=12, vocab=50257, block=1024, batch=32, warmup=5, steps=20,
                 documents=200, heldout=0.05, score_workers=0, peak_sizes=(4096, 8192), peak_repeats=3,
                 peak_seconds=0.25, memory_case="gpt2-small", samples=256, new_tokens=128, sample_rounds=3,
                 score_lines=4096,
                 budgets={"setup": 45, "peak": 15, "train": 45, "train_compiled": 150, "memory": 45, "sampling": 45,
                          "fsdp": 75, "scoring": 40},
                 total=455),
    # A smoke run of every part (budgets with room for a machine shared with other jobs; its time on 2 cores:
    # benchmarks/README.md, GPU check).
    "cpu": Scale(n_layer=2, n_embd=64, n_head=2, vocab=512, block=64, batch=8, warmup=6, steps=5,
                 documents=8, heldout=0.25, score_workers=1, peak_sizes=(256, 512), peak_repeats=2,
                 peak_seconds=0.05, memory_case="pep8", samples=16, new_tokens=16, sample_rounds=1,
                 score_lines=128,
                 budgets={"setup": 30, "peak": 10, "train": 30, "train_compiled": 120, "memory": 45, "sampling": 20,
                          "fsdp": 60, "scoring": 30},
                 total=230),
}

# The FSDP smoke run's model and run (the vocabulary is the setup's tokenizer's).
FSDP_TRAIN = ["model.n_layer=2", "model.n_embd=64", "model.n_head=2", "model.block_size=64", "training.batch_size=8",
              "training.micro_batch_size=8", "training.num_tokens=2048", "training.save_steps=4",
              "training.logging_steps=1", "training.report_to=[]", "evaluation.curve_points=0"]
FSDP_LAUNCH = ["--use_fsdp", "--fsdp_version", "2", "--num_processes", "1", "--fsdp_auto_wrap_policy",
               "TRANSFORMER_BASED_WRAP", "--fsdp_transformer_layer_cls_to_wrap", "GPT2Block",
               "--fsdp_state_dict_type", "FULL_STATE_DICT"]


class PartTimeout(Exception):
    pass


class Skipped(Exception):
    """A part that cannot run here (no weights): reported as skipped, not failed."""


@dataclass
class Check:
    scale: Scale
    work: Path  # a temporary folder for everything written
    classifier: str | None
    device: torch.device
    data_dir: Path | None = None
    tokenizer_dir: Path | None = None
    bf16: bool = False
    peak_gflops: float | None = None
    nominal_tflops: float | None = None
    results: dict = field(default_factory=dict)

    def needs_setup(self) -> tuple[Path, Path]:
        if self.data_dir is None or self.tokenizer_dir is None:
            raise RuntimeError("the setup part did not complete (its data and tokenizer are missing)")
        return self.data_dir, self.tokenizer_dir

    def train_overrides(self) -> list[str]:
        return [f"tokenizer.pretrained={self.tokenizer_dir}", *self.scale.model_overrides()]


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------------------------------------------- the parts


def part_setup(c: Check) -> dict:
    """Score the first documents of the embedded corpus; a BPE on them, topped up to the vocabulary size."""
    from tokenizers import AddedToken

    from phf.data.prepare import training_texts
    from phf.data.scoring import score_corpus
    from phf.data.tokenizer import load_tokenizer, train_bpe
    from phf.training.model import bf16_supported

    s = c.scale
    data_dir = c.work / "data"
    start = time.perf_counter()
    cfg = pep8_config(s.documents, f"data.heldout_fraction={s.heldout}", f"scorer.num_workers={s.score_workers}")
    score_corpus(cfg, data_dir)
    scoring_s = time.perf_counter() - start
    tok = train_bpe(training_texts(data_dir, 20_000_000), s.vocab, c.work / "bpe")
    learned = len(tok)
    if learned < s.vocab:  # rows no text ever reaches: the model has the vocabulary's size, the tokens are unchanged
        tok.add_tokens([AddedToken(f"<|unused{i}|>", special=True, normalized=False)
                        for i in range(s.vocab - learned)], special_tokens=True)
    tokenizer_dir = c.work / f"tokenizer-{s.vocab}"
    tok.save_pretrained(tokenizer_dir)
    size = len(load_tokenizer(str(tokenizer_dir)))
    if size != s.vocab:
        raise RuntimeError(f"the tokenizer has {size} tokens, not {s.vocab}")
    c.data_dir, c.tokenizer_dir = data_dir, tokenizer_dir
    c.bf16 = bf16_supported(c.device)
    return {"documents": s.documents, "scoring_s": scoring_s, "bpe_tokens": learned, "vocabulary": size,
            "bf16": c.bf16}


def part_peak(c: Check) -> dict:
    from phf.training.model import bf16_supported

    c.bf16 = bf16_supported(c.device)
    dtype = torch.bfloat16 if c.bf16 else torch.float32
    s = c.scale
    c.peak_gflops = matmul_peak(dtype, s.peak_sizes, s.peak_repeats, s.peak_seconds, device=c.device)
    out = {"device": device_name(c.device), "dtype": str(dtype).removeprefix("torch."),
           "measured_tflops": c.peak_gflops / 1e3}
    if c.device.type == "cuda":
        nominal = nominal_peak(c.device, c.bf16)
        c.nominal_tflops = nominal / 1e12 if nominal else None
        out["nominal_bf16_tflops"] = c.nominal_tflops
        if c.nominal_tflops:
            out["measured_over_nominal"] = c.peak_gflops / 1e3 / c.nominal_tflops
    return out


def training_figures(c: Check, seconds: list[float]) -> dict:
    s = c.scale
    if not seconds:
        raise RuntimeError("no timed steps in log.jsonl")
    tokens_per_step = s.batch * s.block
    plan = plan_training(pep8_config(s.documents, f"model.block_size={s.block}", *c.train_overrides()))
    params, per_token = plan.parameters, plan.flops_per_token  # of the model train() builds
    rate = tokens_per_step / statistics.median(seconds)
    out = {"tokens_per_s": rate, "tokens_per_s_mean": tokens_per_step * len(seconds) / sum(seconds),
           "steps_timed": len(seconds), "batch": f"{s.batch} x {s.block}", "parameters": params,
           "flops_per_token": per_token, "bf16": c.bf16}
    if c.peak_gflops:
        out["mfu"] = rate * per_token / (c.peak_gflops * 1e9)
    if c.nominal_tflops:
        out["mfu_nominal"] = rate * per_token / (c.nominal_tflops * 1e12)
    return out


def part_train(c: Check) -> dict:
    data_dir, _ = c.needs_setup()
    s = c.scale
    seconds = run_phf_training(data_dir, s.documents, s.steps, s.warmup, "auto", *c.train_overrides(),
                               batch=s.batch, block=s.block)
    return training_figures(c, seconds)


def part_train_compiled(c: Check) -> dict:
    from torch._dynamo.utils import counters

    data_dir, _ = c.needs_setup()
    s = c.scale
    torch._dynamo.reset()
    counters.clear()
    seconds = run_phf_training(data_dir, s.documents, s.steps, s.warmup, "auto", "training.compile=true",
                               *c.train_overrides(), batch=s.batch, block=s.block)
    out = {"backend": "inductor", **training_figures(c, seconds),
           "graphs": counters["stats"]["unique_graphs"], "graph_breaks": sum(counters["graph_break"].values())}
    if not out["graphs"]:
        raise RuntimeError("torch.compile compiled no graph: the model ran uncompiled")
    eager = c.results.get("train", {})
    if finite(eager.get("tokens_per_s")):
        out["speedup_over_eager"] = out["tokens_per_s"] / eager["tokens_per_s"]
    return out


def part_memory(c: Check, limit: float) -> dict:
    case = c.scale.memory_case
    peaks = loss_memory.measure(case, timeout=max(1.0, limit - 2))
    n_layer, n_embd, _, vocab, batch, block = loss_memory.CASES[case]
    return {"case": case, "model": f"{n_layer} layers x {n_embd}", "tokens": f"{batch} x {block}", "vocabulary": vocab,
            "device": c.device.type, "chunked_mib": peaks["chunked"], "logits_mib": peaks["logits"],
            "ratio": peaks["chunked"] / peaks["logits"]}


def part_sampling(c: Check) -> dict:
    from phf.config import SamplingConfig
    from phf.data.tokenizer import load_tokenizer
    from phf.model_folder import ModelInfo
    from phf.sampling.generate import LoadedModel
    from phf.training.model import build_model

    _, tokenizer_dir = c.needs_setup()
    s = c.scale
    tok = load_tokenizer(str(tokenizer_dir))
    torch.manual_seed(0)
    cfg = pep8_config(s.documents, f"model.block_size={s.block}", *s.model_overrides())
    model = build_model(cfg.model, tok).eval().to(c.device)  # random weights, fp32 as phf sample loads a model
    loaded = LoadedModel(model, tok, ModelInfo())
    n, new = s.samples, s.new_tokens
    sampling = SamplingConfig(max_new_tokens=new, min_new_tokens=new, temperature=0.7, top_p=0.9, batch_size=n)
    kwargs = {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 0, "max_new_tokens": new,
              "min_new_tokens": new, "pad_token_id": tok.eos_token_id}
    few = min(8, new)
    run_phf_sampling(loaded, sampling.model_copy(update={"max_new_tokens": few, "min_new_tokens": few}), n)
    run_num_return_sequences(model, tok, n, {**kwargs, "max_new_tokens": few, "min_new_tokens": few})  # warm-up
    runs = {"phf": [], "generate": []}
    for _ in range(s.sample_rounds):
        runs["phf"].append(run_phf_sampling(loaded, sampling, n))
        torch.manual_seed(0)
        runs["generate"].append(run_num_return_sequences(model, tok, n, kwargs))
    out = {"samples": n, "new_tokens": new, "rounds": s.sample_rounds, "device": c.device.type, "dtype": "fp32",
           "weights": "random init", "parameters": sum(p.numel() for p in model.parameters())}
    for name, r in runs.items():
        seconds = statistics.median(t for t, _ in r)
        out[name] = {"seconds": seconds, "samples_per_s": n / seconds, "tokens_per_s": r[-1][1] / seconds,
                     "tokens": r[-1][1]}
    out["same_tokens"] = out["phf"]["tokens"] == out["generate"]["tokens"] == n * new
    if not out["same_tokens"]:
        raise RuntimeError(f"phf generated {out['phf']['tokens']} tokens, generate {out['generate']['tokens']}; "
                           f"expected {n} x {new}")
    out["ratio"] = out["phf"]["samples_per_s"] / out["generate"]["samples_per_s"]
    return out


def descendants(pid: int) -> list[int]:
    """The processes below `pid`, from /proc (torchrun, under accelerate launch, starts its workers in sessions of
    their own, out of reach of a kill of the launcher's process group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_group(command: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`command` in a process group of its own; if it outlasts `timeout` (or the part its budget), it and every
    process it started are ended: SIGTERM (torchrun passes it to its workers), then SIGKILL after 5 s."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=cwd)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        tree = descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        for pid in [proc.pid, *tree]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, out, None)


def part_fsdp(c: Check, limit: float) -> dict:
    from transformers import AutoModelForCausalLM

    data_dir, tokenizer_dir = c.needs_setup()
    run_dir = c.work / "fsdp-run"
    command = [sys.executable, "-m", "accelerate.commands.launch", *FSDP_LAUNCH, "-m", "phf.cli", "train",
               "--data", str(data_dir), "--output", str(run_dir), f"tokenizer.pretrained={tokenizer_dir}",
               *FSDP_TRAIN]
    start = time.perf_counter()
    done = run_group(command, timeout=max(1.0, limit - 10))
    train_s = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"accelerate launch exited {done.returncode}:\n{done.stdout[-3000:]}")
    logs = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in logs if "loss" in r]
    checkpoint = run_dir / "checkpoint-4"
    files = sorted(p.name for p in checkpoint.iterdir()) if checkpoint.is_dir() else []
    fsdp_active = any(name.startswith("pytorch_model_fsdp") or name == "optimizer.bin" for name in files)
    model, info = AutoModelForCausalLM.from_pretrained(run_dir / "model", output_loading_info=True)
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    out = {"command": "accelerate launch " + shlex.join(command[3:]), "fsdp_active": fsdp_active,
           "mode": "FSDP2, 1 process" if fsdp_active else
           "1 plain process: accelerate ignored --use_fsdp (it enables FSDP on GPUs only)",
           "train_s": train_s, "steps": len(losses), "final_loss": losses[-1] if losses else None,
           "checkpoint_files": files, "loaded": True, "missing_keys": sorted(info["missing_keys"]),
           "parameters": sum(p.numel() for p in model.parameters()),
           "logits_finite": bool(torch.isfinite(logits).all()), "max_abs_logit": float(logits.abs().max())}
    if not losses or not all(map(finite, losses)):
        raise RuntimeError(f"losses {losses}")
    if out["missing_keys"] or not out["logits_finite"]:
        raise RuntimeError(f"the saved model: missing keys {out['missing_keys']}, finite logits {out['logits_finite']}")
    if c.device.type == "cuda" and not fsdp_active:
        raise RuntimeError(f"FSDP was not enabled on a GPU (checkpoint files: {', '.join(files)})")
    return out


def find_classifier(path: str | None) -> tuple[str, str]:
    """(scorer name, scorer.model) of local weights only; Skipped if there are none."""
    if path:
        if Path(path).is_file():
            return "detoxify", path
        if (Path(path) / "config.json").is_file():
            return "classifier", path
        raise FileNotFoundError(f"--classifier {path}: neither a Detoxify checkpoint file nor a model folder")
    with contextlib.suppress(ImportError):
        import inspect

        from detoxify import Detoxify

        urls = getattr(inspect.getmodule(Detoxify), "MODEL_URLS", {})
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        for name, url in urls.items():
            if (cache / url.rsplit("/", 1)[-1]).is_file():
                return "detoxify", name
    from huggingface_hub import try_to_load_from_cache

    for repo in KNOWN_CLASSIFIERS:
        if isinstance(try_to_load_from_cache(repo, "config.json"), str):
            return "classifier", repo
    raise Skipped("no weights (no --classifier, no Detoxify checkpoint in torch hub's cache, none of "
                  f"{', '.join(KNOWN_CLASSIFIERS)} in the Hugging Face cache)")


def part_scoring(c: Check) -> dict:
    from phf.config import ScorerConfig
    from phf.data.corpus import Corpus
    from phf.scorers import ScorerUnavailable, get_scorer

    name, model = find_classifier(c.classifier)
    try:
        scorer = get_scorer(ScorerConfig(name=name, model=model, segmenter="lines", batch_size=256))
    except ScorerUnavailable as e:  # e.g. a Detoxify checkpoint without its base model's tokenizer in the cache
        raise Skipped(f"no weights: {e}") from e
    docs, lines = [], 0
    for record in Corpus().records():  # the first files, up to score_lines lines
        if lines >= c.scale.score_lines:
            break
        if record.text and record.text.strip():
            docs.append(record.text)
            lines += record.text.count("\n") + 1
    scorer.score_documents(docs[:1])  # warm-up
    start = time.perf_counter()
    scored = scorer.score_documents(docs)
    seconds = time.perf_counter() - start
    sentences = sum(len(d[1]) for d in scored if isinstance(d, tuple))
    network = scorer.classifier.model
    return {"scorer": name, "model": model, "device": str(network.device), "dtype": str(network.dtype),
            "documents": len(docs), "sentences": sentences, "seconds": seconds, "sentences_per_s": sentences / seconds}


RUNNERS: dict[str, Callable] = {"setup": part_setup, "peak": part_peak, "train": part_train,
                                "train_compiled": part_train_compiled, "memory": part_memory,
                                "sampling": part_sampling, "fsdp": part_fsdp, "scoring": part_scoring}
TAKES_LIMIT = {"memory", "fsdp"}  # parts with subprocesses, given their time limit
NEEDS_SETUP = {"train", "train_compiled", "sampling", "fsdp"}


# ---------------------------------------------------------------------------------------------------- running


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads")


def _timeout(signum, frame):
    raise PartTimeout("over its time budget")


def timed_out(e: BaseException | None) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, (PartTimeout, subprocess.TimeoutExpired)) or "PartTimeout" in str(e):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def run_part(c: Check, name: str, verbose: bool) -> dict:
    budget = c.scale.budgets[name]
    left = c.scale.total - (time.monotonic() - T0)
    limit = min(budget, left)
    print(f"\n== {name} (budget {budget:.0f} s)", flush=True)
    if limit < 1:
        result = {"status": "failed", "error": "no time left in the script's total budget", "seconds": 0.0,
                  "budget_s": budget}
        print(f"   {summary(name, result)}")
        return result
    captured = io.StringIO()
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with contextlib.ExitStack() as stack:
            if not verbose:
                stack.enter_context(contextlib.redirect_stdout(captured))
                stack.enter_context(contextlib.redirect_stderr(captured))
            args = (c, limit) if name in TAKES_LIMIT else (c,)
            figures = RUNNERS[name](*args)
        result = {"status": "ok", **figures}
    except Skipped as e:
        result = {"status": "skipped", "reason": str(e)}
    except Exception as e:  # a failing part is reported, and the next part runs
        signal.setitimer(signal.ITIMER_REAL, 0)
        if timed_out(e):  # also when raised inside another library's code, which may wrap it (torch.compile)
            error = f"PartTimeout: over its time budget of {limit:.0f} s (in {type(e).__name__})"
        else:
            error = f"{type(e).__name__}: {e}"
        result = {"status": "failed", "error": error}
        tail = captured.getvalue()[-3000:]
        print(("   output before the error:\n" + tail) if tail.strip() else "", end="")
        traceback.print_exception(e, file=sys.stdout, limit=-4)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        gc.collect()  # the Trainer's callbacks hold it in reference cycles: free its model before the next part
        if c.device.type == "cuda":
            torch.cuda.empty_cache()
    result["seconds"] = time.perf_counter() - start
    result["budget_s"] = budget
    print(f"   {summary(name, result)}", flush=True)
    return result


def pct(x) -> str:
    return f"{x:.1%}" if finite(x) else "n/a"


def summary(name: str, r: dict) -> str:
    """One line per part: its figures."""
    head = f"[{r['status']}, {r['seconds']:.1f} s of {r['budget_s']:.0f}]"
    if r["status"] == "failed":
        return f"{head} {r['error']}"
    if r["status"] == "skipped":
        return f"{head} skipped: {r['reason']}"
    if name == "setup":
        return (f"{head} {r['documents']} documents scored in {r['scoring_s']:.1f} s; BPE of {r['bpe_tokens']} "
                f"tokens, topped up to {r['vocabulary']}; bf16 {r['bf16']}")
    if name == "peak":
        nominal = (f"; {pct(r['measured_over_nominal'])} of the nominal {r['nominal_bf16_tflops']:.0f}"
                   if r.get("measured_over_nominal") else "")
        return f"{head} {r['device']}: {r['dtype']} matmul {r['measured_tflops']:.3f} TFLOP/s measured{nominal}"
    if name in ("train", "train_compiled"):
        compiled = (f"torch.compile ({r['backend']}: {r['graphs']} graphs, {r['graph_breaks']} graph breaks), "
                    if name == "train_compiled" else "eager, ")
        speedup = f"; {r['speedup_over_eager']:.2f}x eager" if "speedup_over_eager" in r else ""
        nominal = f", {pct(r['mfu_nominal'])} of nominal" if "mfu_nominal" in r else ""
        return (f"{head} {compiled}{r['parameters'] / 1e6:.2f}M parameters, {r['batch']} tokens a step: "
                f"{r['tokens_per_s']:,.0f} tokens/s (median of {r['steps_timed']} steps; mean "
                f"{r['tokens_per_s_mean']:,.0f}), MFU {pct(r.get('mfu'))} of measured peak{nominal}{speedup}")
    if name == "memory":
        return (f"{head} {r['case']} ({r['model']}, {r['tokens']} tokens, vocabulary {r['vocabulary']}, "
                f"{r['device']}): chunked {r['chunked_mib']:,.0f} MiB, full logits {r['logits_mib']:,.0f} MiB, "
                f"{r['ratio']:.2f}x")
    if name == "sampling":
        p, g = r["phf"], r["generate"]
        return (f"{head} {r['samples']} x {r['new_tokens']} tokens, {r['parameters'] / 1e6:.2f}M parameters "
                f"({r['weights']}, {r['dtype']}, {r['device']}): phf {p['samples_per_s']:.2f} samples/s "
                f"({p['tokens_per_s']:,.0f} tokens/s), generate {g['samples_per_s']:.2f} samples/s "
                f"({g['tokens_per_s']:,.0f} tokens/s): {r['ratio']:.2f}x")
    if name == "fsdp":
        return (f"{head} {r['mode']}: {r['steps']} steps, final loss {r['final_loss']:.3f}; model loaded "
                f"({r['parameters'] / 1e6:.2f}M parameters, no missing keys), logits finite: {r['logits_finite']}\n"
                f"   {r['command']}")
    if name == "scoring":
        return (f"{head} {r['scorer']} {r['model']} ({r['device']}, {r['dtype']}): "
                f"{r['sentences_per_s']:,.0f} sentences/s "
                f"({r['sentences']} lines of {r['documents']} stdlib files)")
    return head


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="run these parts only (setup is added when a part needs its data)")
    parser.add_argument("--classifier", help="a sequence-classification model folder or a Detoxify checkpoint file")
    parser.add_argument("--verbose", action="store_true", help="show every part's own output as it runs")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    chosen = set(args.parts)
    parts = [p for p in PARTS if p in chosen or (p == "setup" and chosen & NEEDS_SETUP)
             or (p == "peak" and chosen & {"train", "train_compiled"})]  # MFU needs the peak
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"# GPU check, scale {args.scale}: {device_name(device)}; torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}; parts: {' '.join(parts)}")
    with tempfile.TemporaryDirectory(prefix="phf-gpu-check-") as work:
        c = Check(scale, Path(work), args.classifier, device)
        for name in parts:
            c.results[name] = run_part(c, name, args.verbose)
    import transformers

    failed = [n for n, r in c.results.items() if r["status"] == "failed"]
    report = {"scale": args.scale, "device": device_name(device), "torch": torch.__version__,
              "transformers": transformers.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
              "total_s": time.monotonic() - T0, "total_budget_s": scale.total, "failed": failed, "parts": c.results}
    print(f"\n# total {report['total_s']:.1f} s (budget {scale.total:.0f} s); "
          + (f"failed: {', '.join(failed)}" if failed else "every part ran"))
    for name, r in c.results.items():
        print(f"{name:>15} {summary(name, r).splitlines()[0]}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
