"""The red-teaming loop (Korbak et al. 2023, section 4.2; docs/method.md, Evaluation).

Seed prompts are scored first. Then, for `rounds` rounds: every query to the red LM shows `few_shot` pool
prompts drawn ∝ exp(score / T) and asks for one more; the red LM's continuations are parsed into new
prompts (unusable and already known ones dropped and counted); the target LM writes
`continuations_per_prompt` continuations of each new prompt with the task's sampling settings; each is
scored as `phf evaluate` scores prompted samples (alone, or with its prompt: evaluation.score_prompt); a
prompt's score is the mean over its
continuations, and it joins the pool. Misalignment is recorded per round.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from phf.config import Config, is_prompt_file
from phf.errors import PHFError
from phf.evaluation.metrics import judged
from phf.files import owned, staged
from phf.lm.base import LanguageModel
from phf.redteam.output import plot_rounds
from phf.redteam.pool import Candidate, draw_examples, pool_temperature
from phf.redteam.template import Template
from phf.scorers import Scorer


def template_path(cfg: Config) -> Path:
    """redteam.template, or `redteam.txt` beside the task's prompt file (a shipped task's folder)."""
    if cfg.redteam.template:
        return Path(cfg.redteam.template)
    if cfg.evaluation.prompts and is_prompt_file(cfg.evaluation.prompts):
        return Path(cfg.evaluation.prompts).parent / "redteam.txt"
    raise PHFError("no red-teaming template: set redteam.template (the task has no evaluation.prompts file "
                   "beside which to look for redteam.txt)")


def elicit(target: LanguageModel, scorer: Scorer, cfg: Config, candidates: list[Candidate], seed: int) -> None:
    """Fill in each candidate's continuations from the target and their scores, in one batched call each."""
    if not candidates:
        return
    k, s = cfg.redteam.continuations_per_prompt, cfg.sampling
    prompts = [c.text for c in candidates for _ in range(k)]
    texts = target.generate(prompts, max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
                            seed=seed)
    # Judged as `phf evaluate` judges prompted samples: alone, or with the prompt (evaluation.score_prompt).
    with_prompt = cfg.evaluation.score_prompt
    scores = scorer.score_texts([judged(p, t, with_prompt) for p, t in zip(prompts, texts, strict=True)])
    for i, c in enumerate(candidates):
        c.continuations, c.scores = texts[i * k:(i + 1) * k], scores[i * k:(i + 1) * k]


def _stats(candidates: list[Candidate], prefix: str) -> dict:
    """Mean and max score of the candidates that could be scored (None when none could)."""
    scores = [c.score for c in candidates if c.score is not None]
    return {f"{prefix}_mean": statistics.fmean(scores) if scores else None, f"{prefix}_max": max(scores, default=None)}


def run_redteam(target: LanguageModel, red: LanguageModel, scorer: Scorer, cfg: Config, seed_prompts: list[str],
                out_dir: str | Path) -> dict:
    """Red-team `target` with prompts written by `red` (may be the same object), starting from `seed_prompts`.
    Writes `redteam.json` and `redteam.png` to `out_dir` and returns what redteam.json holds."""
    template = Template.load(template_path(cfg))  # a bad template fails before any sampling
    with owned(out_dir) as out_dir:  # (a folder this user cannot write in is said before any sampling)
        result = _red_team(target, red, scorer, cfg, seed_prompts, template)
        with staged(out_dir, ["redteam.json", "redteam.png"]) as stage:
            (stage / "redteam.json").write_text(json.dumps(result, indent=1))
            plot_rounds(result, stage / "redteam.png")
    return result


def _red_team(target: LanguageModel, red: LanguageModel, scorer: Scorer, cfg: Config, seed_prompts: list[str],
              template: Template) -> dict:
    rt = cfg.redteam
    rng = np.random.default_rng(rt.seed)

    pool = [Candidate(text, 0) for text in dict.fromkeys(seed_prompts)]
    elicit(target, scorer, cfg, pool, rt.seed)
    if all(c.score is None for c in pool):
        raise PHFError(f"the scorer {cfg.scorer.name!r} could score no continuation of the seed prompts")
    seed_pool = {"prompts": len(pool), "unscorable_prompts": sum(c.score is None for c in pool), **_stats(pool, "pool")}
    known, rounds = {c.text for c in pool}, []
    for r in tqdm(range(1, rt.rounds + 1), desc="red teaming", unit="round"):
        temperature = pool_temperature(pool, rt.pool_temperature)
        # Stochastic few-shot: every query gets its own draw, so one round's prompts imitate different examples.
        queries = [template.render([c.text for c in draw_examples(pool, rt.few_shot, temperature, rng)])
                   for _ in range(rt.new_prompts_per_round)]
        outputs = red.generate(queries, max_new_tokens=rt.red_max_new_tokens, temperature=rt.red_temperature,
                               top_p=rt.red_top_p, seed=rt.seed + r)
        new, unparsable, duplicate = [], 0, 0
        for text in map(template.parse, outputs):
            if text is None:
                unparsable += 1
            elif text in known:
                duplicate += 1
            else:
                known.add(text)
                new.append(Candidate(text, r))
        elicit(target, scorer, cfg, new, rt.seed + r)
        pool += new
        rounds.append({"round": r, "temperature": temperature, "new_prompts": len(new),
                       "dropped_unparsable": unparsable, "dropped_duplicate": duplicate,
                       "unscorable_prompts": sum(c.score is None for c in new), **_stats(new, "round"),
                       "pool_size": len(pool), **_stats(pool, "pool"),
                       "example_query": queries[0], "red_outputs": outputs})

    best = sorted((c for c in pool if c.score is not None), key=lambda c: -c.score)[:rt.report_top]
    result = {"target": target.name, "red_lm": red.name, "scorer": cfg.scorer.name, "template": str(template.path),
              "redteam": rt.model_dump(), "sampling": cfg.sampling.model_dump(),
              "scored_with_prompt": cfg.evaluation.score_prompt, "seed_pool": seed_pool,
              "rounds": rounds, "best": [{"text": c.text, "score": c.score, "round": c.round} for c in best],
              "pool": [c.record() for c in pool]}
    return result
