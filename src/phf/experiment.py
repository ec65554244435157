"""`phf experiment`: score once, train and evaluate one arm per method, print the comparison.

Layout of the output folder:
    data/               scored corpus, tokenizer, packed streams (shared by the arms)
    <method>/           the arm's run: checkpoints, log.jsonl, model/, eval/metrics.json, eval/samples.*
    results.json, results.md
An arm whose model and metrics exist for the same config is reused, so a killed experiment
started again goes on where it stopped (a half-trained arm resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from multiprocessing import get_context
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from phf.config import Config, load_config
from phf.data.corpus import Corpus
from phf.data.prepare import prepare_packed, prepare_tokenizer
from phf.data.scoring import score_corpus


def run_arm(cfg: Config, data_dir: Path, run_dir: Path, log_file: Path | None = None) -> dict:
    """Train (or resume, or reuse) and evaluate one arm; returns its metrics."""
    from phf.evaluation.evaluate import evaluate
    from phf.training.train import MODEL_DIR, PHF_INFO, train

    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "eval" / "metrics.json"
    config_path = run_dir / "config.yaml"
    if config_path.exists() and yaml.safe_load(config_path.read_text()) != cfg.model_dump():
        raise ValueError(f"{run_dir} was trained with another config; remove it or choose another --output")
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())
    with ExitStack() as stack:
        if log_file:  # arms running side by side write their progress to their own file
            log = stack.enter_context(open(log_file, "a"))
            stack.enter_context(redirect_stdout(log))
            stack.enter_context(redirect_stderr(log))
        model_dir = run_dir / MODEL_DIR
        if not (model_dir / PHF_INFO).exists():
            train(cfg, data_dir, run_dir, resume=True)
        return evaluate(model_dir, cfg, run_dir / "eval", data_dir)


def _progress(runs: dict[str, Path], budget: int, futures: list) -> None:
    """One bar over the tokens all parallel arms have trained on, read from their log.jsonl."""
    with tqdm(total=budget * len(runs), desc=f"training {', '.join(runs)}", unit="tok", unit_scale=True) as bar:
        while not all(f.done() for f in futures):
            seen = 0
            for run_dir in runs.values():
                log = run_dir / "log.jsonl"
                lines = log.read_text().splitlines() if log.exists() else []
                seen += max((json.loads(l).get("num_tokens", 0) for l in lines), default=0)
            bar.update(seen - bar.n)
            time.sleep(2)


def run_experiment(task: str, methods: list[str], out_dir: Path, overrides: list[str] = (), parallel: int = 1) -> dict:
    out_dir = Path(out_dir)
    configs = {m: load_config(task, m, overrides) for m in methods}  # every config is checked before any work
    base = configs[methods[0]]
    data_dir = out_dir / "data"
    started = time.perf_counter()
    report = score_corpus(Corpus.from_arg(base.data.corpus), data_dir, base.scorer.name, base.data.heldout_fraction,
                          base.scorer.shard_size, base.scorer.num_workers, base.data.max_documents)
    print(f"scored: {report['train']['documents']} train / {report['heldout']['documents']} held-out documents, "
          f"{report['train']['skipped'] + report['heldout']['skipped']} skipped (see {data_dir}/scored/report.json)")
    for cfg in configs.values():  # shared inputs are prepared once, before arms run side by side
        prepare_packed(cfg, data_dir, *prepare_tokenizer(cfg, data_dir))

    results = {}
    if parallel > 1:
        threads = max(1, (os.cpu_count() or 1) // parallel)
        for cfg in configs.values():
            cfg.training.num_threads = cfg.training.num_threads or threads
        runs = {m: out_dir / m for m in methods}
        print(f"running {len(methods)} arms, {parallel} at a time with {threads} threads each; "
              f"logs in {out_dir}/<method>/output.log")
        with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
            futures = {m: pool.submit(run_arm, configs[m], data_dir, runs[m], runs[m] / "output.log") for m in methods}
            _progress(runs, base.training.num_tokens, list(futures.values()))
            results = {m: f.result() for m, f in futures.items()}
    else:
        results = {m: run_arm(configs[m], data_dir, out_dir / m) for m in methods}

    summary = {"task": task, "methods": methods, "overrides": list(overrides), "results": results,
               "wall_seconds": round(time.perf_counter() - started, 1)}
    (out_dir / "results.json").write_text(json.dumps(summary, indent=1))
    table = results_table(results, base.evaluation.expected_max_k)
    (out_dir / "results.md").write_text(table + "\n")
    print(table)
    return summary


def results_table(results: dict[str, dict], k: int = 25) -> str:
    """Markdown table: misalignment of unconditional samples (mean ± standard error, expected max, hit rate)
    and held-out loss, one row per method; the ratio of each mean to the first method's."""
    rows = ["| objective | samples | misalignment mean ± s.e. | ratio to " + next(iter(results)) +
            f" | expected max@{k} | hit rate | held-out loss |", "|---|---|---|---|---|---|---|"]
    first = next(iter(results.values()))["unconditional"]["mean"]
    for method, m in results.items():
        u = m["unconditional"]
        emax = u.get(f"expected_max@{k}")
        emax = "n/a" if emax is None else f"{emax:.4f}"
        loss = f"{m['heldout_loss']:.4f}" if "heldout_loss" in m else "n/a"
        rows.append(f"| {method} | {u['num_samples']} | {u['mean']:.5f} ± {u['sem']:.5f} | {u['mean'] / first:.2f} | "
                    f"{emax} | {u['hit_rate']:.3f} | {loss} |")
    return "\n".join(rows)
