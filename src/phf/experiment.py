"""`phf experiment`: the paper's study in one command.

Score the corpus once; train one arm per method (and seed) on the same token budget; optionally
finetuning arms (MLE for a fraction of the budget, then another objective for the rest, the
paper's comparison); evaluate every arm the same way; write a table and a report.

Layout of the output folder:
    data/          scored corpus, tokenizer, packed streams (shared by the arms)
    <arm>/         the arm's run: checkpoints, log.jsonl, curve.jsonl, model/, eval/{metrics.json,samples.*}
    results.json, results.md, report/index.html
An arm whose metrics exist for the same config is reused, so a killed experiment started again goes
on where it stopped (a half-trained arm resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from multiprocessing import active_children, get_context
from pathlib import Path

from tqdm.auto import tqdm

from phf.config import Config, ConfigError, load_config, training_settings, updated
from phf.data.prepare import prepare_packed, prepare_tokenizer
from phf.data.scoring import score_corpus
from phf.errors import PHFError
from phf.files import is_built_from, owned, write_atomic, write_built_from
from phf.headline import arm_name
from phf.jsonl import output_records
from phf.metrics_table import markdown, prompted_judged, table
from phf.model_folder import MODEL_DIR, has_model, model_fingerprint
from phf.processes import init_worker
from phf.training.run_folder import check_same_training, data_differences


@dataclass(frozen=True)
class ExperimentSpec:
    """What `phf experiment` runs: the task's recipe of each method (under `preset`, with `overrides` as
    section.key=value and `values` set literally, as flags set them), once per seed of `seeds` (None: the
    config's seed); finetuning arms "METHOD@FRACTION"; KL from `kl_reference` (a model, or "longer-mle");
    red teaming; `parallel` arms side by side. One object for planning, running and the dry run."""

    task: str
    methods: list[str]
    out_dir: Path
    overrides: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)
    preset: str | None = None
    seeds: list[int] | None = None
    finetune: list[str] = field(default_factory=list)
    kl_reference: str | None = None
    redteam: bool = False
    parallel: int = 1

    def config(self, method: str, values: dict | None = None) -> Config:
        """The config of `method` in this experiment, with these `values` set on top of the experiment's."""
        return load_config(self.task, method, self.overrides, {**self.values, **(values or {})}, self.preset)


@dataclass
class Arm:
    name: str
    cfg: Config
    starts_from: str | None = None  # the arm whose snapshot this one finetunes
    model_of: str | None = None  # the arm whose model this one evaluates: the same training, other sampling (guidance)
    starts_at: float | None = None  # the fraction of starts_from's steps at which its snapshot is taken


def _finetuning(item: str) -> tuple[str, float]:
    """--finetune METHOD@FRACTION: the method and the fraction of the budget trained by MLE first."""
    method, _, fraction = item.partition("@")
    try:
        value = float(fraction)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise ConfigError(f"--finetune {item!r}: expected METHOD@FRACTION with 0 < FRACTION < 1, e.g. conditional@0.5")
    return method, value


def plan_arms(spec: ExperimentSpec) -> list[Arm]:
    """Arms for methods x seeds, plus finetuning arms "METHOD@FRACTION": MLE for FRACTION of the
    budget (a snapshot of the seed's MLE arm, which is added if missing), then METHOD to the end.
    Arms whose methods train the same model (e.g. conditional, and conditional sampled with guidance)
    share one: the later ones only evaluate it. Each arm's config is its recipe with what the experiment
    decides for every arm, set here once."""
    finetuning = [_finetuning(item) for item in spec.finetune]
    planned = []  # (name, method, values, the arm it finetunes, at which fraction)
    for seed in spec.seeds or [None]:
        named = None if seed is None or len(spec.seeds) == 1 else seed  # the seed in the arms' names
        seeded = {} if seed is None else {"training.seed": seed}
        for method in list(spec.methods) + (["mle"] if finetuning and "mle" not in spec.methods else []):
            planned.append((arm_name(method, named), method, seeded, None, None))
        for method, fraction in finetuning:
            snapshot = spec.out_dir / arm_name("mle", named) / f"snapshot-{fraction:g}"
            planned.append((arm_name(method, named, finetuned_at=fraction), method,
                            {**seeded, "model.init_from": str(snapshot)}, arm_name("mle", named), fraction))
    recipes = {name: spec.config(method, values) for name, method, values, _, _ in planned}
    # The arms share one scored corpus, so each is scored, and evaluated, on every attribute any arm tags.
    attributes = list(dict.fromkeys(a for cfg in recipes.values() for a in cfg.scorer.attributes))
    threads = max(1, (os.cpu_count() or 1) // spec.parallel) if spec.parallel > 1 else 0  # arms share the cores
    reference = str((spec.out_dir / REFERENCE_ARM / MODEL_DIR).resolve()) if spec.kl_reference == LONGER_MLE \
        else spec.kl_reference
    fractions = sorted({fraction for _, fraction in finetuning})
    arms = []
    for name, method, _, starts_from, starts_at in planned:
        cfg = recipes[name]
        arms.append(Arm(name, updated(cfg, {
            "scorer.attributes": attributes,
            "training.num_threads": cfg.training.num_threads or threads,
            "evaluation.kl_reference": reference or cfg.evaluation.kl_reference,
            # the MLE arm keeps a snapshot where each finetuning arm starts
            **({"training.snapshot_at": sorted({*cfg.training.snapshot_at, *fractions})}
               if method == "mle" and fractions and starts_from is None else {})}),
            starts_from=starts_from, starts_at=starts_at))
    if len({json.dumps(arm.cfg.scorer.model_dump(), sort_keys=True) for arm in arms}) > 1:
        raise ConfigError("the methods score the corpus differently (scorer section); the arms of an experiment "
                          "share one scored corpus: set the scorer in the task or as an override")
    trained_by: dict[str, str] = {}  # an arm that would train the same model as an earlier one evaluates that model
    for arm in arms:
        key = json.dumps(training_settings(arm.cfg), sort_keys=True, default=str)
        if key in trained_by:
            arm.model_of = trained_by[key]
        else:
            trained_by[key] = arm.name
    return arms


def plan_experiment(spec: ExperimentSpec, device: str | None = None, throughput: float | None = None) -> str:
    """`phf experiment --dry-run`: every arm's training plan (phf.training.plan) as a table, and the total (with the
    longer MLE that `kl_reference="longer-mle"` trains first). The throughput is `throughput`, else measured once
    per model shape and micro-batch."""
    from phf.training.plan import duration, format_plan, plan_training, size, with_throughput
    from phf.training.train import snapshot_step

    arms = plan_arms(spec)
    if spec.kl_reference == LONGER_MLE:
        arms.insert(0, Arm(REFERENCE_ARM, reference_config(spec, arms[0].cfg)))
    plans, measured = {}, {}
    for arm in arms:
        if arm.model_of:
            continue
        cfg, tokens_already = arm.cfg, None
        if arm.starts_from:  # its start is a snapshot not yet taken: the same model after a share of the steps
            base = plans[arm.starts_from]
            cfg = updated(cfg, {"model.init_from": None})
            tokens_already = snapshot_step(arm.starts_at, base.steps) * base.tokens_per_step
        plan = plan_training(cfg, tokens_already=tokens_already, device=device)
        key = json.dumps([cfg.model.model_dump(), plan.micro_batch, cfg.training.bf16], default=str)
        if throughput is None and key in measured:
            plan.throughput, plan.throughput_note, plan.measured_memory = measured[key]
        else:
            with_throughput(cfg, plan, throughput)
            measured[key] = plan.throughput, plan.throughput_note, plan.measured_memory
        plans[arm.name] = plan
    first = next(a for a in arms if a.name in plans)
    header = ["arm", "objective", "steps", "batch", "learning rate", "tokens", "memory/process", "hours"]
    rows = [[a.name, a.cfg.objective.name, f"{p.steps:,}", str(a.cfg.training.batch_size),
             f"{a.cfg.training.learning_rate:g}", f"{p.tokens:,}", size(sum(p.memory.values())), f"{p.hours:,.2f}"]
            for a in arms if (p := plans.get(a.name))]
    rows += [[a.name, a.cfg.objective.name, f"evaluates {a.model_of}'s model"] + [""] * 5 for a in arms if a.model_of]
    total = sum(p.hours for p in plans.values())
    return "\n".join([
        f"phf experiment --dry-run: {len(arms)} arms into {spec.out_dir} (nothing is downloaded or trained)",
        "", f"The first arm, {first.name}:", format_plan(first.cfg, plans[first.name]), "", markdown(header, rows),
        f"Training: {duration(total)} in all, one arm at a time on one process each (arms side by side, --parallel, "
        "share the device). Scoring the corpus, the evaluations and red teaming come on top.",
    ])


def run_arm(cfg: Config, data_dir: Path, run_dir: Path, log_file: Path | None = None,
            model_dir: Path | None = None) -> dict:
    """Train (or resume, or reuse) and evaluate (or reuse the evaluation of) one arm; returns its metrics.
    With `model_dir` (another arm's model, trained with the same config), only evaluate that model."""
    from phf.evaluation.evaluate import evaluate
    from phf.training.train import train

    run_dir.mkdir(parents=True, exist_ok=True)
    own_model = model_dir is None
    model_dir = run_dir / MODEL_DIR if own_model else Path(model_dir)
    if own_model:
        check_same_training(cfg, run_dir)  # evaluation settings may differ
    if (done := _done_evaluation(cfg, model_dir, run_dir / "eval", data_dir)) is not None:
        return done
    with ExitStack() as stack:
        if log_file:  # arms running side by side write their progress to their own file
            log = stack.enter_context(open(log_file, "a"))
            stack.enter_context(redirect_stdout(log))
            stack.enter_context(redirect_stderr(log))
        if own_model and not has_model(model_dir):
            train(cfg, data_dir, run_dir, resume=True)
        return evaluate(model_dir, cfg, run_dir / "eval", data_dir)


def _done_evaluation(cfg: Config, model_dir: Path, eval_dir: Path, data_dir: Path) -> dict | None:
    """The metrics of an evaluation already in `eval_dir` built from what this one would be (`evaluation_inputs`);
    None: there is none to reuse."""
    from phf.evaluation.evaluate import evaluation_inputs

    if not is_built_from(eval_dir, evaluation_inputs(cfg, model_dir, data_dir)):
        return None
    try:
        return json.loads((eval_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def _tokens_trained(run_dir: Path) -> int:
    log = run_dir / "log.jsonl"  # (being written: its last line may be half of one)
    return max((r.get("num_tokens", 0) for r in output_records(log)), default=0) if log.exists() else 0


def _run_side_by_side(arms: list[Arm], out_dir: Path, data_dir: Path, parallel: int) -> dict[str, dict]:
    """Arms in separate processes sharing the cores (each with its share of threads: `plan_arms`); one progress
    bar over the tokens they train on."""
    parallel = min(parallel, len(arms))
    print(f"running {', '.join(a.name for a in arms)}: {parallel} at a time, "
          f"{arms[0].cfg.training.num_threads or 'default'} threads each; logs in {out_dir}/<arm>/output.log")
    budget = sum(a.cfg.training.num_tokens for a in arms if not a.model_of)
    pool = ProcessPoolExecutor(parallel, mp_context=get_context("spawn"), initializer=init_worker,
                               initargs=(os.getpid(),))
    try:
        with tqdm(total=budget, desc="training" if budget else "evaluating", unit="tok", unit_scale=True) as bar:
            futures = {a.name: pool.submit(run_arm, a.cfg, data_dir, out_dir / a.name,
                                           out_dir / a.name / "output.log", _model_of(a, out_dir)) for a in arms}
            while not all(f.done() for f in futures.values()):
                bar.update(sum(_tokens_trained(out_dir / a.name) for a in arms) - bar.n)
                time.sleep(2)
            return {name: f.result() for name, f in futures.items()}
    except KeyboardInterrupt:
        stop_workers(pool)
        raise
    finally:
        pool.shutdown(cancel_futures=True)


def stop_workers(pool: ProcessPoolExecutor, grace: float = 30.0) -> None:
    """Ctrl-C: the arms not started are cancelled and the running ones interrupted (what they finished, and their
    checkpoints, are kept); a second Ctrl-C, or `grace` seconds, kills them. A pool left to itself would wait for
    its running arms, whatever the number of interrupts."""
    workers = active_children()
    print(f"\ninterrupted: stopping {len(workers)} running arm(s) (Ctrl-C again stops them at once)", file=sys.stderr)
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.pid is not None:
            os.kill(worker.pid, signal.SIGINT)
    try:
        deadline = time.monotonic() + grace
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass
    for worker in workers:
        if worker.is_alive():
            worker.kill()
            worker.join()


def _model_of(arm: Arm, out_dir: Path) -> Path | None:
    """The model folder an arm evaluates instead of training its own (None: its own)."""

    return out_dir / arm.model_of / MODEL_DIR if arm.model_of else None


LONGER_MLE = "longer-mle"  # --kl-reference: an MLE arm trained on twice the budget, the offline reference
REFERENCE_ARM = "reference-mle-2x"


def reference_config(spec: ExperimentSpec, base: Config) -> Config:
    """The config of the longer MLE: the task's MLE on twice the token budget of the arms (`base`: the first)."""
    return spec.config("mle", {"training.num_tokens": 2 * base.training.num_tokens})


def train_reference(cfg: Config, data_dir: Path, run_dir: Path) -> Path:
    """The KL reference of an experiment: MLE on twice the arms' token budget (the same data, tokenizer
    and model size), trained once and reused. Returns its model folder."""
    from phf.training.train import train

    model_dir = run_dir / MODEL_DIR
    check_same_training(cfg, run_dir)
    if not has_model(model_dir):
        print(f"training the KL reference ({REFERENCE_ARM}: MLE on {cfg.training.num_tokens:,} tokens) in {run_dir}")
        train(cfg, data_dir, run_dir, resume=True)
    return model_dir.resolve()


def redteam_arm(cfg: Config, run_dir: Path, red_spec: str, model_dir: Path | None = None) -> dict:
    """Red-team one arm's model with the shared red LM (reused when done with the same settings); returns
    the per-round summary the report plots."""
    from phf.evaluation.prompts import task_prompts
    from phf.lm import LocalLM, load_lm
    from phf.redteam import run_redteam
    from phf.scorers import get_scorer

    out = run_dir / "redteam"
    done = out / "redteam.json"
    model_dir = model_dir or run_dir / MODEL_DIR
    settings = {"redteam": cfg.redteam.model_dump(), "sampling": cfg.sampling.model_dump(), "red_lm": red_spec,
                "prompts": cfg.evaluation.prompts, "score_prompt": cfg.evaluation.score_prompt,
                "model_files": model_fingerprint(model_dir)}
    if done.exists() and is_built_from(out, settings):
        result = json.loads(done.read_text())
    else:
        target = LocalLM(model_dir, guidance=cfg.sampling.guidance, tags=cfg.sampling.tags)
        red = load_lm(red_spec)
        result = run_redteam(target, red, get_scorer(cfg.scorer), cfg, task_prompts(cfg.evaluation), out)
        write_built_from(out, settings)
    return {"red_lm": result["red_lm"], "seed_pool_mean": result["seed_pool"]["pool_mean"],
            "round_mean": [r["round_mean"] for r in result["rounds"]],
            "pool_mean": [r["pool_mean"] for r in result["rounds"]],
            "final_pool_mean": result["rounds"][-1]["pool_mean"], "final_pool_max": result["rounds"][-1]["pool_max"],
            "best_prompt": result["best"][0]["text"] if result["best"] else None}


def run_experiment(spec: ExperimentSpec) -> dict:
    """Score the corpus, train and evaluate every arm (`plan_arms`), and write the table and the report. With
    `spec.kl_reference` (a model spec, or "longer-mle": an MLE arm on twice the budget, trained first), every arm
    is also evaluated by KL from that reference; with `spec.redteam`, every arm is red-teamed by the same red LM
    (redteam.red_lm, else the reference, else the MLE arm)."""
    arms = plan_arms(spec)  # every config is checked before any work
    if spec.redteam and not arms[0].cfg.evaluation.prompts:
        raise ConfigError("red teaming needs seed prompts: set evaluation.prompts")
    if arms[0].cfg.evaluation.downstream:  # its data and packages, before the arms train
        from phf.evaluation.downstream import check_downstream

        check_downstream(arms[0].cfg)
    with owned(spec.out_dir):  # one experiment at a time in a folder
        return _run(spec, arms)


def _run(spec: ExperimentSpec, arms: list[Arm]) -> dict:
    out_dir, base = spec.out_dir, arms[0].cfg
    data_dir = out_dir / "data"
    started = time.perf_counter()
    report = score_corpus(base, data_dir)
    print(f"scored: {report['train']['documents']} train / {report['heldout']['documents']} held-out documents, "
          f"{report['train']['skipped'] + report['heldout']['skipped']} skipped (see {data_dir}/scored/report.json)")
    check_arms_trained_on(data_dir, [out_dir / a.name for a in arms if not a.model_of] + [out_dir / REFERENCE_ARM])
    for arm in arms:  # shared inputs are prepared once, before arms run side by side
        prepare_packed(arm.cfg, data_dir, prepare_tokenizer(arm.cfg, data_dir))
    if spec.kl_reference == LONGER_MLE:
        train_reference(reference_config(spec, base), data_dir, out_dir / REFERENCE_ARM)
    kl_reference = base.evaluation.kl_reference

    results = {}
    # Finetuning arms start from snapshots of the first phase; arms sharing a model wait for it to be trained.
    for phase in ([a for a in arms if not a.starts_from and not a.model_of], [a for a in arms if a.starts_from],
                  [a for a in arms if a.model_of]):
        if not phase:
            continue
        if spec.parallel > 1:
            results.update(_run_side_by_side(phase, out_dir, data_dir, spec.parallel))
        else:
            results.update({a.name: run_arm(a.cfg, data_dir, out_dir / a.name, model_dir=_model_of(a, out_dir))
                            for a in phase})
    results = {a.name: {**results[a.name], **({"model_of": a.model_of} if a.model_of else {})} for a in arms}
    if spec.redteam:
        red_spec = base.redteam.red_lm or kl_reference or str((out_dir / arms[0].name / MODEL_DIR).resolve())
        for arm in tqdm(arms, desc="red teaming the arms", unit="arm"):
            results[arm.name]["redteam"] = redteam_arm(arm.cfg, out_dir / arm.name, red_spec, _model_of(arm, out_dir))

    from phf.evaluation.causes import corpus_cause_rates
    from phf.scorers import get_scorer

    summary = {"task": spec.task, "preset": spec.preset, "scorer": base.scorer.name, "methods": spec.methods,
               "arms": [a.name for a in arms], "overrides": list(spec.overrides), "values": spec.values,
               "kl_reference": kl_reference, "results": results,
               "corpus_causes": corpus_cause_rates(get_scorer(base.scorer), data_dir),
               "wall_seconds": round(time.perf_counter() - started, 1)}
    write_atomic(out_dir / "results.json", json.dumps(summary, indent=1))
    text = results_markdown(summary)
    write_atomic(out_dir / "results.md", text)
    print(text)
    from phf.report import write_report

    print(f"report: {write_report(out_dir)}")
    return summary


def check_arms_trained_on(data_dir: Path, run_dirs: list[Path]) -> None:
    """Refuse to reuse arms trained on data scored otherwise than `data_dir` is now (a corpus changed and its data
    folder rebuilt): every arm of a table must come from the same data. Checked for all before any work."""
    stale = [run_dir for run_dir in run_dirs if data_differences(data_dir, run_dir)]
    if stale:
        raise PHFError(f"{', '.join(str(d) for d in stale)} {'was' if len(stale) == 1 else 'were'} trained on data "
                       f"scored otherwise than {data_dir} holds now (compare their data.json with "
                       f"{data_dir / 'scored' / 'info.json'}); delete {'it' if len(stale) == 1 else 'them'} to "
                       "train again on this data, or use another --output")


def results_table(results: dict[str, dict]) -> str:
    """Markdown table, one row per arm, of the brief columns of `phf.metrics_table` (the report has them all)."""
    return markdown(*table(results, brief=True))


def results_markdown(summary: dict) -> str:
    """results.md: the headline (each method over its seeds, the paper's claims checked); the arms' table; with
    several training seeds, each method across its seeds; the causes."""
    from phf.evaluation.causes import causes_table
    from phf.headline import headline_markdown, seeds_table

    results = summary["results"]
    parts = [headline_markdown(results), results_table(results)]
    if judged := prompted_judged(results):
        parts.append(f"Prompted samples are scored {judged}.")
    header, rows = seeds_table(results)
    if rows:
        parts.append("Each method across its training seeds: the mean over seeds, and the lowest and highest seed.\n\n"
                     + markdown(header, rows))
    header, rows = causes_table(results, summary.get("corpus_causes"))
    if rows:
        parts.append("Misalignment of the unconditional samples by cause, per 1,000 characters (the corpus: "
                     "training documents).\n\n" + markdown(header, rows))
    return "\n\n".join(parts) + "\n"
