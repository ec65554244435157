"""The `phf` command: score, train, sample, evaluate, experiment.

Heavy libraries are imported inside each command, so `phf --help` answers at once.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shlex
import sys
from pathlib import Path

from phf.config import field_help  # (pydantic and the schema, no torch: --help stays quick)
from phf.errors import PHFError

INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it
OVERRIDES_HELP = "config overrides as section.key=value, e.g. training.learning_rate=3e-4 model.n_layer=2"
# Flags that set one config value each (argument name -> section.key), on every command that has them. Their
# values are taken literally, never read as YAML, so a path like `runs/a: b` or `null` stays that path.
SHORTHANDS = {
    "corpus": "data.corpus",
    "text_field": "data.text_field",
    "scorer": "scorer.name",
    "init_from": "model.init_from",
    "guidance": "sampling.guidance",
    "kl_reference": "evaluation.kl_reference",
    "kl_samples": "evaluation.kl_samples",
    "red_lm": "redteam.red_lm",
}


def _config_args(p: argparse.ArgumentParser, method: str | None = "mle") -> None:
    p.add_argument("--task", default="pep8",
                   help="task recipe: a folder name under phf/configs or a task YAML (default: pep8)")
    if method is not None:
        p.add_argument("--method", default=method or None,
                       help="method recipe of the task (mle, filtering, conditional, unlikelihood, rwr, awr) or a "
                            f"YAML path (default: {method or 'the config the model was trained with'})")
    p.add_argument("--preset", help="a preset of the task, laid over the method's recipe: paper (the paper's full "
                                    "scale: GPT-2 small, 3.3B tokens of its corpus from the hub, its batch, learning "
                                    "rates and evaluation sizes; see --dry-run), or a YAML path")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def _at_least_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


def _plan_args(p: argparse.ArgumentParser, processes: bool = True) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="print what the run will do and cost (parameters, steps, tokens per step, micro-batch and "
                        "accumulation per process, memory, hours) without downloading data or training; the hours "
                        "are at --throughput, else at a throughput measured with a few training steps here")
    if processes:
        p.add_argument("--processes", type=_positive(int), default=int(os.environ.get("WORLD_SIZE", 1)),
                       help="with --dry-run: the processes (GPUs) the run will use (default: WORLD_SIZE, else 1)")
    p.add_argument("--device", choices=["cuda", "cpu"],
                   help="with --dry-run: the device the run is for, which decides its precision (training.bf16=auto "
                        "is bf16 on GPUs) and so its memory (default: this machine's)")
    p.add_argument("--throughput", type=_positive(float), metavar="TOKENS_PER_S",
                   help="with --dry-run: training tokens per second of all processes together, e.g. from "
                        "benchmarks/gpu_check.py on the machine the run is for (default: measured here)")


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=Path("runs/data"),
                   help="folder of the scored corpus, tokenizer and packed data (default: runs/data)")


def cmd_score(a) -> None:
    from phf.config import load_config
    from phf.data.scoring import merge_scored, score_corpus

    if a.dry_run:
        from phf.data.scoring import worker_count
        from phf.data.scoring_plan import format_scoring_plan, plan_scoring

        cfg = load_config(a.task, None, a.overrides, _values(a), a.preset)
        print(f"phf score --dry-run: {cfg.scorer.name} over {cfg.data.corpus} into {a.data}/scored "
              "(nothing is written)")
        workers = sorted({1, worker_count(cfg.scorer), *([a.tasks] if a.tasks else [])})
        print(format_scoring_plan(cfg, plan_scoring(cfg, a.throughput), workers))
        return
    if a.merge:
        report = merge_scored(a.merge, a.data)
    elif a.executor:
        if a.shard:
            raise PHFError("--shard i/N scores one part by hand; --executor runs every part as a task: choose one")
        from phf.data.engine import Engine, score_on_engine  # (says which extra it needs where Ray is missing)

        cfg = load_config(a.task, None, a.overrides, _values(a), a.preset)
        report = score_on_engine(cfg, a.data, Engine(a.address, a.tasks, a.cpus_per_task, a.gpus_per_task))
    else:
        cfg = load_config(a.task, None, a.overrides, _values(a), a.preset)
        index, _, parts = (a.shard or "0/1").partition("/")
        if not (index.isdigit() and parts.isdigit()):
            raise PHFError(f"--shard {a.shard!r}: expected i/N, e.g. 0/4")
        report = score_corpus(cfg, a.data, (int(index), int(parts)))
    for split, r in report.items():
        print(f"{split}: {r['documents']} documents ({r['prescored']} already scored), {r['segments']} segments, "
              f"mean segment score {r['mean_segment_score']}, {r['skipped']} skipped {r['skipped_by_reason']}")
    print(f"scored corpus in {a.data}/scored (report: {a.data}/scored/report.json)")


def cmd_train(a) -> None:
    from phf.config import load_config
    from phf.training.run_folder import RunFolderInUse, checkpoints, is_complete, last_checkpoint, step_of
    from phf.training.train import train

    if a.resume and a.overwrite:
        raise PHFError("--resume continues the run in the folder, --overwrite deletes it: choose one")
    cfg = load_config(a.task, a.method, a.overrides, _values(a), a.preset)
    output = a.output or Path("runs") / cfg.objective.name
    if a.dry_run:
        from phf.training.plan import format_plan, plan_training, with_throughput

        plan = with_throughput(cfg, plan_training(cfg, a.processes, device=a.device), a.throughput)
        print(f"phf train --dry-run: {cfg.objective.name} into {output} (nothing is downloaded or trained)")
        print(format_plan(cfg, plan))
        return
    again = "phf " + shlex.join(arg for arg in a.argv if arg not in ("--resume", "--overwrite"))
    try:
        model_dir = train(cfg, a.data, output, resume=a.resume, overwrite=a.overwrite)
    except RunFolderInUse as e:
        raise PHFError(f"{e}. `{again} --resume` continues it; `{again} --overwrite` deletes it and starts over; "
                       "or choose another --output") from None
    except KeyboardInterrupt:
        print(file=sys.stderr)  # past the progress bar's line
        checkpoint = last_checkpoint(output)
        print(f"phf train: interrupted. {checkpoint} (step {step_of(checkpoint)}) is kept: `{again} --resume` "
              "continues from it" if checkpoint else
              f"phf train: interrupted before the first checkpoint (every training.save_steps="
              f"{cfg.training.save_steps} steps): nothing to resume; `{again} --overwrite` starts again",
              file=sys.stderr)
        sys.exit(INTERRUPTED)
    except PHFError:  # already said in one line (a diverged run, a bad input)
        raise
    except Exception as e:
        # A failure while saving (a full disk; torch and safetensors say so in their own exceptions, in words that
        # vary) leaves the newest checkpoint incomplete: say that, and what resumes.
        found = [c for c in checkpoints(output) if not is_complete(c)]
        if not found:
            raise
        kept = last_checkpoint(output)
        raise PHFError(f"saving {found[-1]} failed ({type(e).__name__}: {' '.join(str(e).split())[:200]}): a full "
                       "disk or a file-size limit? The incomplete checkpoint is removed when the run resumes; "
                       + (f"{kept} is kept" if kept else "no complete checkpoint was saved before") +
                       f". Make room, then `{again} --resume`") from None
    if os.environ.get("RANK", "0") == "0":  # under torchrun / accelerate launch, say it once
        print(f"model saved in {model_dir}")


def _guidance_arg(p) -> None:
    p.add_argument("--guidance", type=float, metavar="W", help=field_help("sampling.guidance"))


def cmd_sample(a) -> None:
    from phf.files import output_folder, write_atomic
    from phf.jsonl import read_prompts
    from phf.sampling.generate import load_model, sample

    cfg = _model_config(a)
    prompts = [p for p in read_prompts(a.prompts) for _ in range(a.num_samples)] if a.prompts else [""] * a.num_samples
    if a.output:  # a path that cannot be written is said before the slow part
        output_folder(Path(a.output).parent, "the folder of --output")
        if Path(a.output).is_dir():
            raise PHFError(f"--output {a.output} is a folder; name a file, e.g. {Path(a.output) / 'samples.jsonl'}")
    loaded = load_model(a.model)  # after the prompts: bad input is reported before the slow part
    lines = [json.dumps({"prompt": p, "text": t}) + "\n"
             for p, t in zip(prompts, sample(loaded, cfg.sampling, prompts), strict=True)]
    if a.output:
        write_atomic(Path(a.output), "".join(lines))
    else:
        sys.stdout.writelines(lines)


def _values(a) -> dict:
    """The config values the command's flags set: the SHORTHANDS given, and --downstream's tasks."""
    values = {key: getattr(a, name) for name, key in SHORTHANDS.items() if getattr(a, name, None) is not None}
    return values | _downstream(a)


def _downstream(a) -> dict:
    """--downstream TASK[=PATH] ...: the tasks, and the local data of those given a path (taken literally)."""
    if not getattr(a, "downstream", None):
        return {}
    pairs = [item.partition("=")[::2] for item in a.downstream]
    return {"evaluation.downstream": [name for name, _ in pairs],
            "evaluation.downstream_files": {name: path for name, path in pairs if path}}


def _is_override(word: str) -> bool:
    """A section.key=value word (TASK=PATH and METHOD are not: no dot before the =)."""
    key, equals, _ = word.partition("=")
    return bool(equals) and "." in key


def _gather_overrides(a) -> None:
    """A flag that takes a list (--methods, --downstream) takes every word after it, the section.key=value
    overrides after it too: those go back to the overrides, once, as the arguments are read."""
    for name in ("methods", "downstream"):
        if words := getattr(a, name, None):
            a.overrides = [*a.overrides, *(w for w in words if _is_override(w))]
            setattr(a, name, [w for w in words if not _is_override(w)])


def _model_config(a):
    """The config of a command given a --model (sample, evaluate, redteam): the one the model was trained with
    (config.yaml in its run folder), else the --task's recipe; or, with --method, that recipe of the task. Then
    the overrides and flags."""
    from phf.config import apply, build_config, load_config, saved_config

    run_config = Path(a.model).parent / "config.yaml"
    if getattr(a, "method", None) is None and run_config.exists():
        if a.preset:
            raise PHFError(f"--preset lays a preset over a recipe, but {a.model} is used with the config it was "
                           f"trained with ({run_config}); add --method to start from the task's recipe instead")
        return build_config(apply(saved_config(run_config), a.overrides, _values(a)))
    return load_config(a.task, getattr(a, "method", None), a.overrides, _values(a), a.preset)


def cmd_evaluate(a) -> None:
    from phf.evaluation.evaluate import evaluate

    cfg = _model_config(a)
    output = a.output or Path(a.model).parent / "eval"
    metrics = evaluate(Path(a.model), cfg, output, a.data if a.data.exists() else None)
    print(json.dumps(metrics, indent=1))
    print(f"metrics and scored samples in {output}")


def cmd_redteam(a) -> None:
    from phf.evaluation.prompts import task_prompts
    from phf.jsonl import read_prompts
    from phf.lm import load_lm
    from phf.redteam import Template, format_table, run_redteam, template_path
    from phf.scorers import get_scorer

    cfg = _model_config(a)  # the config the model was trained with: its task's scorer, prompts and sampling
    Template.load(template_path(cfg))  # a bad template is reported before any model is loaded
    if not (a.prompts or cfg.evaluation.prompts):
        raise PHFError("no seed prompts: pass --prompts FILE or set evaluation.prompts")
    seeds = read_prompts(a.prompts) if a.prompts else task_prompts(cfg.evaluation)
    target = load_lm(a.model, guidance=cfg.sampling.guidance, tags=cfg.sampling.tags)  # sampled as configured
    red = load_lm(cfg.redteam.red_lm) if cfg.redteam.red_lm else target
    output = a.output or (Path(a.model).parent / "redteam" if Path(a.model).exists() else Path("runs/redteam"))
    print(format_table(run_redteam(target, red, get_scorer(cfg.scorer), cfg, seeds, output)))
    print(f"every prompt with its continuations and scores in {output}/redteam.json; figure in {output}/redteam.png")


def cmd_experiment(a) -> None:
    from phf.config import PAPER_ORDER, methods_of
    from phf.experiment import ExperimentSpec, plan_experiment, run_experiment

    methods = a.methods or [m for m in methods_of(a.task) if m in PAPER_ORDER] or methods_of(a.task)
    spec = ExperimentSpec(a.task, methods, a.output, a.overrides, _values(a), a.preset, a.seeds, a.finetune,
                          a.reference, a.redteam, a.parallel)
    if a.dry_run:
        print(plan_experiment(spec, a.device, a.throughput))
    else:
        run_experiment(spec)


def cmd_serve(a) -> None:
    from dataclasses import fields

    from phf.lm import LocalLM
    from phf.lm.server import Limits, make_server

    if not 0 <= a.port <= 65535:
        raise PHFError(f"--port {a.port}: a port is a number from 0 to 65535 (0: any free one)")
    limits = Limits(**{f.name: getattr(a, f.name) for f in fields(Limits) if hasattr(a, f.name)})  # those given
    lm = LocalLM(a.model)
    try:
        server = make_server(lm, a.host, a.port, limits)
    except OSError as e:  # port taken, host not ours: one line, like every other bad input
        raise PHFError(f"cannot listen on {a.host}:{a.port}: {e.strerror or e}") from None
    url = f"http://{a.host}:{server.server_address[1]}/v1"
    print(f"serving {lm.name} at {url} (other commands reach it as openai:{lm.name}@{url}); Ctrl-C stops", flush=True)
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:  # the normal way to stop a server, not an interrupted job to resume
            pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phf",
        description="Pretraining language models with human feedback (Korbak et al. 2023): score a corpus with a "
                    "reward function, train with an objective that uses the scores, sample, evaluate misalignment.",
        epilog="Every task runs offline on a corpus phf carries: pep8 (the default) on the standard library's Python "
               "source, toxicity and pii on the corpora it ships. `phf experiment --task pii` runs the whole study; "
               "each command's --help explains its options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("score", help="split documents into segments and score each (resumable)",
                       description="Score every document of a corpus, segment by segment (lines of code, or "
                                   "sentences), into Parquet shards with texts, scores and avg_score per document. "
                                   "Records already in that format are kept as they are. Streams the corpus, uses "
                                   "every core; a killed run started again resumes without rescoring finished shards. "
                                   "Malformed records are skipped and named in scored/report.json "
                                   "(data.on_error=fail stops at the first).")
    p.add_argument("--corpus", help=field_help("data.corpus", "the task's"))
    p.add_argument("--text-field", help=field_help("data.text_field"))
    p.add_argument("--shard", metavar="i/N", help="score only part i of N (0-based; documents assigned by a hash of "
                                                  "their id), e.g. on N machines; gather the parts with --merge")
    p.add_argument("--merge", nargs="+", type=Path, metavar="PART_DIR",
                   help="gather the data folders of parts scored with --shard i/N into --data (checks that every "
                        "part is there, complete and scored with the same settings)")
    p.add_argument("--scorer", help=field_help("scorer.name", "the task's"))
    p.add_argument("--dry-run", action="store_true",
                   help="print the corpus's size, the scorer's rate (measured here in one process on 256 documents: "
                        "the first of as many files spread over a folder of more, else the first; or --throughput) "
                        "and the hours at 1 process, this machine's processes and --tasks; nothing is written")
    p.add_argument("--throughput", type=_positive(float), metavar="DOCS_PER_S",
                   help="with --dry-run: documents per second of one process (or GPU), e.g. measured on the machines "
                        "the run is for (default: measured here)")
    engine = p.add_argument_group("on a Ray cluster (pip install 'phf[ray]'; docs/scoring.md)")
    engine.add_argument("--executor", choices=("ray",),
                        help="score the corpus as --tasks tasks on Ray, each a part in its own process; Ray runs "
                             "again a task whose process died, which keeps the shards it finished; the parts are then "
                             "gathered into --data. The same command run again redoes only what is missing")
    engine.add_argument("--address", help="the Ray cluster: auto (the one this node belongs to) or ray://HOST:10001 "
                                          "(default: a Ray instance started on this machine)")
    engine.add_argument("--tasks", type=_positive(int),
                        help="parts of the corpus, one task each (default: the earlier run's into --data, else as many "
                             "as the cluster runs at once)")
    engine.add_argument("--cpus-per-task", type=_positive(int), default=1, help="CPU cores per task (default: 1)")
    engine.add_argument("--gpus-per-task", type=_at_least_zero, default=0,
                        help="GPUs per task, for detoxify or a classifier (default: 0)")
    _data_arg(p)
    _config_args(p, method=None)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("train",
                       help="train a GPT-2 or Llama-style model with an objective (mle, filtering, conditional, "
                            "unlikelihood, rwr, awr)",
                       description="Pack the scored corpus for the objective and train with transformers' Trainer: "
                                   "token budget, gradient accumulation, warm-up and decay, bf16 autocast where "
                                   "faster, checkpoints, JSONL and TensorBoard logs. Runs on several GPUs or "
                                   "machines under torchrun or accelerate launch (DDP, FSDP) with the same "
                                   "effective batch: see docs/distributed.md.")
    _data_arg(p)
    p.add_argument("--output", type=Path, help="run folder (default: runs/<objective>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last complete checkpoint in the run folder (refused if the config would "
                        "train another model: the keys that differ are named)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in a run folder that holds checkpoints or a model, deleting them, its logs, "
                        "snapshots and evaluations (without --resume or --overwrite such a folder is refused, never "
                        "overwritten)")
    p.add_argument("--init-from", help=field_help("model.init_from"))
    _plan_args(p)
    _config_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="sample from a model (conditional models: from <|aligned|>)",
                       description="Batched sampling with a KV cache; prints one JSON object per sample. Uses the "
                                   "config the model was trained with (config.yaml beside the model folder) when there "
                                   "is one, else --task's recipe.")
    p.add_argument("--model", required=True, help="model folder (runs/<objective>/model)")
    p.add_argument("--prompts", help="JSONL file of prompts, one {\"text\": ...} per line")
    p.add_argument("-n", "--num-samples", type=int, default=8, help="samples (per prompt, with --prompts)")
    p.add_argument("--output", help="JSONL file to write (default: standard output)")
    _guidance_arg(p)
    _config_args(p, method="")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("evaluate", help="misalignment of samples, held-out loss, KL from a reference LM",
                       description="Draw samples (unconditional, and prompted: the held-out split's function "
                                   "signatures with evaluation.signature_prompts, else evaluation.prompts), score "
                                   "them with the task's scorer, report mean, median, expected max over 25, hit rates "
                                   "and misalignment by cause; held-out loss (as deployed, untagged, with the true "
                                   "tags) when the data folder exists; with --kl-reference, KL(reference || "
                                   "model) in nats per character (also per sample, and per token when the tokenisers "
                                   "agree) with standard errors, on reference samples cached in the data folder's "
                                   "kl-cache/ (without one, the output folder's). "
                                   "Writes metrics.json and samples.")
    p.add_argument("--model", required=True, help="model folder (runs/<objective>/model)")
    _data_arg(p)
    p.add_argument("--output", type=Path, help="folder for metrics and samples (default: next to the model, eval/)")
    p.add_argument("--kl-reference", metavar="SPEC", help=field_help("evaluation.kl_reference"))
    p.add_argument("--downstream", nargs="+", metavar="TASK[=PATH]",
                   help="also measure downstream capability (the paper's): humaneval (pass@k), a GLUE task (sst2, "
                        "cola, mrpc, qqp, stsb, mnli, qnli, rte, wnli: finetuned with a new head), or any "
                        "lm-evaluation-harness task zero-shot (lambada = lambada_openai; phf_toxicity_profanity[_"
                        "challenging] or phf_toxicity_detoxify[_challenging]: RealToxicityPrompts, 25 samples a "
                        "prompt, judged by phf's scorer, docs/evaluation.md); =PATH reads the task's data "
                        "from local files instead of the hub (see evaluation.downstream_files; offline, "
                        "lambada=builtin:pii-lastword or builtin:toxicity-lastword, the built-in corpora's held-out "
                        "prose). Results in metrics.json under downstream")
    p.add_argument("--kl-samples", type=int, metavar="N", help=field_help("evaluation.kl_samples"))
    _guidance_arg(p)
    _config_args(p, method="")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("redteam", help="search for prompts that make a model write misaligned text (red teaming)",
                       description="Automated red teaming by stochastic few-shot generation (Korbak et al. 2023, "
                                   "section 4.2). Each round a red LM is shown few-shot examples drawn from a pool of "
                                   "prompts (weight exp(score / T): the more misaligned text a prompt elicited, the "
                                   "likelier) and writes new prompts; the target writes continuations of each, scored "
                                   "by the task's scorer (alone, or with the prompt: evaluation.score_prompt); a "
                                   "prompt's mean score joins the pool. The "
                                   "pool starts from the task's prompts, scored first. Uses the config the model was "
                                   "trained with (config.yaml beside the model folder) when there is one, else "
                                   "--task's recipe. Writes redteam.json (per-round misalignment, every prompt with "
                                   "the round that found it, its continuations and scores, the best prompts) and "
                                   "redteam.png, and prints the table.",
                       epilog="Settings are the redteam.* keys (rounds, new_prompts_per_round, "
                              "continuations_per_prompt, few_shot, pool_temperature, red_max_new_tokens, "
                              "red_temperature, red_top_p, template, seed), e.g. "
                              "`phf redteam --model runs/mle/model redteam.rounds=3`. The red LM's instruction is "
                              "redteam.txt beside the task's YAML; redteam.template=FILE swaps in your own (it must "
                              "end in {numbered_list} or {python_signatures}).")
    p.add_argument("--model", required=True, help="target LM: a model folder (runs/<objective>/model), a hub name, or "
                                                  "openai:MODEL@URL")
    p.add_argument("--red-lm", metavar="SPEC", help=field_help("redteam.red_lm"))
    p.add_argument("--prompts", help="JSONL file of seed prompts, one {\"text\": ...} per line (default: the task's "
                                     "evaluation.prompts)")
    p.add_argument("--output", type=Path, help="output folder (default: next to the model folder, redteam/)")
    _config_args(p, method="")
    p.set_defaults(func=cmd_redteam)

    p = sub.add_parser("experiment", help="score, train and evaluate several objectives; print the table",
                       description="The study in one command: score the corpus once, train one model per method "
                                   "with the same token budget, evaluate each the same way, print and save a table. "
                                   "Finished arms are reused; a killed experiment resumes.")
    p.add_argument("--corpus", help="corpus to score and train on, as for `phf score` (default: the task's)")
    p.add_argument("--methods", nargs="+",
                   help="method recipes to compare (default: the paper's six objectives, or every recipe of a task "
                        "without them). Beyond the paper, each shipped task also has conditional-graded (K=4 levels), "
                        "conditional-guided-w1 / -w3 (classifier-free guidance), conditional-cooldown (untagged last "
                        "10%%); toxicity has conditional-with-pii (two attributes)")
    p.add_argument("--output", type=Path, default=Path("runs/experiment"),
                   help="experiment folder (default: runs/experiment)")
    p.add_argument("--seeds", type=int, nargs="+", help="train every method once per seed (default: the config's seed)")
    p.add_argument("--finetune", nargs="+", default=[], metavar="METHOD@FRACTION",
                   help="finetuning arms, e.g. conditional@0.5: MLE for half the token budget, then conditional "
                        "training for the rest (the paper's comparison with pretraining with feedback)")
    p.add_argument("--parallel", type=int, default=1,
                   help="arms trained side by side, sharing the CPU cores (default: 1)")
    p.add_argument("--kl-reference", metavar="SPEC", dest="reference",  # not the shorthand: longer-mle is no model
                   help="also measure every arm's KL from a reference LM: longer-mle (an MLE model trained first on "
                        "twice the budget, offline), a model folder, a hub name, or openai:MODEL@URL")
    p.add_argument("--downstream", nargs="+", metavar="TASK[=PATH]",
                   help="also measure every arm's downstream capability, as `phf evaluate --downstream` does (e.g. "
                        "humaneval, lambada, sst2); a column per task in the table and a Pareto plot per capability "
                        "task in the report")
    p.add_argument("--redteam", action="store_true",
                   help="also red-team every arm (redteam.* settings) with one red LM: redteam.red_lm, else the KL "
                        "reference, else the first arm's model")
    _plan_args(p, processes=False)  # an experiment trains each arm in one process
    _config_args(p, method=None)
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible completions API",
                       description="A small HTTP server (GET /v1/models, POST /v1/completions, with echo and "
                                   "logprobs) for one local model, so that red teaming and KL evaluation can reach it "
                                   "as openai:MODEL@http://HOST:PORT/v1, as they would a vLLM server. One request at a "
                                   "time; for experiments and tests, not production. A request beyond a --max-* limit "
                                   "is refused at once (413 for the body, else 400); a connection beyond "
                                   "--max-connections gets 503 with Retry-After; a request whose client has gone is "
                                   "dropped.")
    p.add_argument("--model", required=True, help="model folder (runs/<objective>/model), or a Hugging Face hub name")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; 0 = any free port (default: 8000)")
    # Limits: the defaults are phf.lm.server.Limits' (not imported here: it loads torch); unset options keep them.
    for option, text in [("--max-body-bytes", "largest request body, in bytes (default: 1048576)"),
                         ("--max-prompts", "most prompts in one request (default: 128)"),
                         ("--max-n", "most samples per prompt, n (default: 128)"),
                         ("--max-choices", "most samples in one request, prompts x n (default: 256)"),
                         ("--max-tokens", "most new tokens per sample (default: the model's context window - 2)"),
                         ("--max-prompt-tokens", "most tokens in one prompt (default: 8192)"),
                         ("--max-connections", "connections served at once; more get 503 (default: 64)")]:
        p.add_argument(option, type=_positive(int), default=argparse.SUPPRESS, metavar="N", help=text)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # to print the command that resumes
    _gather_overrides(args)
    try:
        args.func(args)
    except PHFError as e:  # a bad input, said in one line; any other exception is a bug, and keeps its traceback
        sys.exit(f"phf {args.command}: error: {e}")
    except KeyboardInterrupt:  # (phf train says what it kept itself)
        resumes = args.command in ("score", "experiment")
        print(f"phf {args.command}: interrupted" + (" (finished work is kept; run the same command again to "
                                                     "resume)" if resumes else ""), file=sys.stderr)
        sys.exit(INTERRUPTED)
    except Exception as e:
        if (failed := write_failure(e)) is None:
            raise
        again = " (with --resume)" if args.command == "train" else ""
        fix = "write elsewhere or mend its permissions" if isinstance(e, OSError) and e.errno in DENIED else \
            "make room"
        sys.exit(f"phf {args.command}: error: {failed}. What was finished is kept (each file is written whole or "
                 f"not at all): {fix}, then run the same command again{again}")


# A write refused by the file system: said in one line. torch and safetensors report it in their own exceptions.
WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file too large for the file system or its limits", errno.EROFS: "read-only file system",
                errno.EACCES: "permission denied"}
DENIED = {errno.EACCES, errno.EROFS}
WRITE_MESSAGES = {"No space left on device": WRITE_ERRNOS[errno.ENOSPC], "StorageFull": WRITE_ERRNOS[errno.ENOSPC],
                  "File too large": WRITE_ERRNOS[errno.EFBIG], "FileTooLarge": WRITE_ERRNOS[errno.EFBIG],
                  "file write failed": "the file system refused a write (full, or over a size limit)"}


def write_failure(e: BaseException) -> str | None:
    """What a failed write says, in words, if `e` is one (with the file, when known); None: another error."""
    if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
        return f"cannot write {e.filename}: {WRITE_ERRNOS[e.errno]}" if e.filename else WRITE_ERRNOS[e.errno]
    said = next((words for text, words in WRITE_MESSAGES.items() if text in str(e)), None)
    return None if said is None else f"a file could not be written: {said}"


if __name__ == "__main__":
    main()
