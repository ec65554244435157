"""The numbers an experiment's headline rests on: each method over its seeds, and the paper's claim checked.

The paper (Korbak et al., 2023) finds that pretraining with human feedback, conditional training above all, lowers
misalignment below MLE's at little cost in capability. One `phf experiment` supports that only where a drop is
larger than chance: than the samples' noise (2 standard errors of the difference of the means) and than the choice
of training seed (the spread between a method's seeds). So every figure here is a method's mean over its seeds
(`SeedMean`: with a standard error combined from the seeds' own, and the lowest and highest seed), and each claim
says yes, no or n/a with the numbers that decided it.

A method is an arm's name without the `-seedN` suffix of `phf experiment --seeds`: `mle-seed0` and `mle-seed1` are
the method `mle`, a finetuning arm `mle-then-conditional-0.5-seed0` the method `mle-then-conditional-0.5`.
`headline_markdown` and `seeds_table` go to results.md; `phf.report` puts the same on the HTML page and
`phf.report_plots` draws the seed means.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from phf.metrics_table import as_deployed, downstream_scores, expected_max, fmt, markdown

# --- methods and their seeds ----------------------------------------------------------------------------------------


SEED = "-seed"  # an arm of `phf experiment --seeds`: METHOD-seedN
FINETUNED = re.compile(r"^mle-then-(?P<method>.+)-(?P<fraction>[0-9.]+)$")  # an arm of `phf experiment --finetune`


def arm_name(method: str, seed: int | None = None, finetuned_at: float | None = None) -> str:
    """An experiment arm's name: the method, `mle-then-METHOD-FRACTION` for a finetuning arm, then `-seedN` where the
    experiment has several seeds (`method_name` and `FINETUNED` read them back)."""
    name = method if finetuned_at is None else f"mle-then-{method}-{finetuned_at:g}"
    return name if seed is None else f"{name}{SEED}{seed}"


def method_name(arm: str) -> str:
    """The method an arm trains: its name without the `-seedN` of `phf experiment --seeds`."""
    name, sep, seed = arm.rpartition(SEED)
    return name if sep and seed.isdigit() else arm


def method_arms(arms: Iterable[str]) -> dict[str, list[str]]:
    """Each method's arms (its seeds), methods in the order of their first arm."""
    groups: dict[str, list[str]] = {}
    for arm in arms:
        groups.setdefault(method_name(arm), []).append(arm)
    return groups


def seed_groups(results: dict[str, dict]) -> dict[str, list[str]]:
    """The methods run with two seeds or more, and their arms."""
    return {method: arms for method, arms in method_arms(results).items() if len(arms) > 1}


@dataclass(frozen=True)
class SeedMean:
    """A metric of a method over its n seeds: the mean, its standard error (None where a seed's metric has none),
    and the lowest and highest seed."""
    mean: float
    se: float | None
    low: float
    high: float
    n: int

    @property
    def spread(self) -> float:
        return self.high - self.low


def seed_mean(values: list[float | None], sems: list[float | None] | None = None) -> SeedMean | None:
    """The mean of the seeds' values and its standard error sqrt(sum of sem_i^2) / n (the seeds are independent);
    None where a seed lacks the value."""
    if not values or any(v is None for v in values):
        return None
    n = len(values)
    se = None if sems is None or any(s is None for s in sems) else math.sqrt(sum(s * s for s in sems)) / n
    return SeedMean(sum(values) / n, se, min(values), max(values), n)


def downstream_figure(metrics: dict, task: str) -> tuple[float, float | None] | None:
    """A downstream task's headline figure (higher is better) and its stderr where the task reports one."""
    if task not in (scores := downstream_scores(metrics)):
        return None
    name, value = scores[task]
    return value, metrics["downstream"][task].get(f"{name}_stderr")


# --- each method over its seeds ---------------------------------------------------------------------------------------


def _expected_max(m: dict) -> tuple[float | None, float | None]:
    k, value = expected_max(m["unconditional"])
    return value, m["unconditional"].get(f"expected_max@{k}_sem")


def _with_sem(block: dict | None, key: str, sem_key: str) -> tuple[float | None, float | None]:
    block = block or {}  # an arm evaluated without prompts has no prompted block
    return block.get(key), block.get(sem_key)


# (key, label, an arm's metrics -> (value, its standard error)): the misalignment figures the claims compare. Results
# from before phf.evaluation.metrics wrote hit_rate_sem and expected_max@k_sem leave those figures unchecked (n/a).
CLAIMED = (("unconditional_mean", "unconditional mean", lambda m: _with_sem(m["unconditional"], "mean", "sem")),
           ("hit_rate", "hit rate", lambda m: _with_sem(m["unconditional"], "hit_rate", "hit_rate_sem")),
           ("expected_max", "expected max", _expected_max),
           ("prompted_mean", "prompted mean", lambda m: _with_sem(m.get("prompted"), "mean", "sem")))


def method_summary(results: dict[str, dict]) -> dict[str, dict]:
    """Each method (in order of its first arm), over its seeds: `arms`, `seeds`, `objective`, `k` (of expected max@k),
    a `SeedMean` (None where a seed lacks the metric) for each of unconditional_mean, hit_rate, expected_max,
    prompted_mean, median and heldout_loss (as deployed; these two have no standard error), and `downstream`:
    {task: (figure, SeedMean)}."""
    summary = {}
    for method, arms in method_arms(results).items():
        ms = [results[a] for a in arms]
        entry = {"arms": arms, "seeds": len(arms), "objective": ms[0].get("objective"),
                 "k": expected_max(ms[0]["unconditional"])[0]}
        for key, _, get in CLAIMED:
            entry[key] = seed_mean(*map(list, zip(*(get(m) for m in ms), strict=True)))
        entry["median"] = seed_mean([m["unconditional"].get("median") for m in ms])
        entry["heldout_loss"] = seed_mean([as_deployed(m, "heldout_loss_deployed") for m in ms])
        entry["downstream"] = {}
        for task in dict.fromkeys(t for m in ms for t in downstream_scores(m)):
            figures = [downstream_figure(m, task) for m in ms]
            if all(figures):
                entry["downstream"][task] = (downstream_scores(ms[0])[task][0],
                                             seed_mean([f[0] for f in figures], [f[1] for f in figures]))
        summary[method] = entry
    return summary


def baseline_method(methods: Collection[str]) -> str:
    """What the claims compare against: the `mle` method, else the first."""
    return "mle" if "mle" in methods else next(iter(methods))


# --- the paper's claim ------------------------------------------------------------------------------------------------


def _compare(label: str, base: SeedMean | None, other: SeedMean | None) -> dict:
    """Whether `other` is below `base` (`below`; None where a figure or a standard error is missing): lower by more
    than 2 standard errors of the difference and by more than the spread between seeds (`CLAIMS_NOTE`)."""
    out = {"metric": label, "baseline": base and base.mean, "value": other and other.mean, "drop": None, "se": None,
           "spread": None, "below": None}
    if base is None or other is None:
        return out
    out["drop"] = drop = base.mean - other.mean
    # A method run with one seed has no spread of its own: the other's, if it has several, stands in for how far
    # the choice of seed moves the figure. With one seed each, the standard errors alone decide.
    out["spread"] = spread = max((s.spread for s in (base, other) if s.n > 1), default=None)
    if base.se is not None and other.se is not None:
        out["se"] = se = math.hypot(base.se, other.se)
        out["below"] = drop > 2 * se and (spread is None or drop > spread)
    return out


def _claim(summary: dict[str, dict], method: str, base: str) -> dict:
    a, b = summary[base], summary[method]
    loss = _relative(b["heldout_loss"], a["heldout_loss"])
    return {"method": method, "baseline": base, "objective": b["objective"], "seeds": b["seeds"],
            "baseline_seeds": a["seeds"],
            "comparisons": [_compare(f"expected max@{b['k']}" if key == "expected_max" else label, a[key], b[key])
                            for key, label, _ in CLAIMED],
            "heldout_loss_change_pct": None if loss is None else 100 * (loss - 1)}


def claims(results: dict[str, dict]) -> list[dict]:
    """The paper's claims checked: each method against the baseline (`baseline_method`), conditional methods first;
    then the fresh-start claim, each objective trained from the start against MLE then that objective (a
    `--finetune` arm), where the experiment has both. Each: {method, baseline, objective, seeds, baseline_seeds,
    comparisons: one `_compare` per misalignment figure, heldout_loss_change_pct (None where a held-out loss is
    missing)}; none with a single method."""
    summary = method_summary(results)
    if len(summary) < 2:
        return []
    base = baseline_method(summary)
    others = sorted((m for m in summary if m != base), key=lambda m: summary[m]["objective"] != "conditional")
    fresh_start = [(match["method"], finetuned) for finetuned in summary
                   if (match := FINETUNED.match(finetuned)) and match["method"] in summary]
    return [_claim(summary, m, base) for m in others] + [_claim(summary, m, ft) for m, ft in fresh_start]


# --- in words and tables ----------------------------------------------------------------------------------------------

HEADLINE_NOTE = ("Each method's figures over its seeds: the mean ± the samples' standard error, sqrt(sum of the "
                 "seeds' squared standard errors) / seeds, then [lowest, highest seed]: how far the training seed "
                 "moves a figure, which the samples' standard error does not include (held-out loss has no "
                 "standard error: the mean [lowest, highest seed]).")
CLAIMS_NOTE = ("The paper: pretraining with human feedback, conditional training above all, lowers misalignment "
               "below MLE's at little cost in capability, and more so when it is used from the start than when it "
               "only finetunes an MLE model (the fresh-start claim: an objective against MLE then that objective). "
               "Here a method is below its baseline on a figure (yes) when its "
               "seed mean is lower by more than 2 standard errors of the difference, sqrt(se_a^2 + se_b^2), and by "
               "more than the spread between seeds (highest minus lowest seed) of either method that has several, "
               "the larger where both have: a method run with one seed has no spread of its own, so the other's "
               "stands in for how far a seed moves the figure; with one seed each, the standard errors alone decide.")


def _with_range(stat: SeedMean | None, spec: str, se: bool = False) -> str:
    """mean (± standard error with `se`), then [lowest, highest seed] with several seeds; or n/a."""
    if stat is None:
        return "n/a"
    seeds = f" [{stat.low:{spec}}, {stat.high:{spec}}]" if stat.n > 1 else ""
    return f"{stat.mean:{spec}}" + (f" ± {fmt(stat.se, spec)}" if se else "") + seeds


def _pm(stat: SeedMean | None, spec: str) -> str:
    return _with_range(stat, spec, se=True)


def _relative(stat: SeedMean | None, base: SeedMean | None) -> float | None:
    """stat's mean / base's, or None."""
    return stat.mean / base.mean if stat and base and base.mean else None


def headline_table(results: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per method, its figures over its seeds (mean ± standard error of the mean; held-out
    loss: mean [lowest, highest seed]), its misalignment as a ratio to the baseline's and its loss's change."""
    summary = method_summary(results)
    name = baseline_method(summary)
    base = summary[name]
    tasks = {task: figure for s in summary.values() for task, (figure, _) in s["downstream"].items()}
    rows = []
    for method, s in summary.items():
        change = _relative(s["heldout_loss"], base["heldout_loss"])
        rows.append([method, str(s["seeds"]), _pm(s["unconditional_mean"], ".5f"),
                     fmt(_relative(s["unconditional_mean"], base["unconditional_mean"]), ".2f"),
                     _pm(s["hit_rate"], ".3f"), _pm(s["expected_max"], ".4f"), _pm(s["prompted_mean"], ".5f"),
                     _with_range(s["heldout_loss"], ".4f"), "n/a" if change is None else f"{100 * (change - 1):+.1f}%",
                     *(_pm(s["downstream"].get(task, (None, None))[1], ".3f") for task in tasks)])
    header = ["method", "seeds", "unconditional misalignment ± s.e.", f"ratio to {name}", "hit rate ± s.e.",
              f"expected max@{base['k']} ± s.e.", "prompted mean ± s.e.", "held-out loss (deployed)", f"loss vs {name}",
              *(f"{task} {figure} ± s.e." for task, figure in tasks.items())]
    return header, rows


def _spread_test(claim: dict, spread: float | None) -> str:
    """The seed-spread half of a claim's test, naming whose spread it is."""
    if spread is None:
        return "(one seed each: no spread between seeds to beat)"
    several = [name for name, seeds in ((claim["baseline"], claim["baseline_seeds"]), (claim["method"], claim["seeds"]))
               if seeds > 1]
    whose = f"{several[0]}'s seeds" if len(several) == 1 else "seeds (the larger of the two methods')"
    return f"and > the spread between {whose} = {spread:.3g}"


def claim_lines(claim: dict) -> tuple[str, list[str]]:
    """A claim in words: (its title, one line per figure and one for the held-out loss)."""
    base = claim["baseline"]
    title = (f"{claim['method']} ({claim['seeds']} seed{'s' * (claim['seeds'] > 1)}) vs {base} "
             f"({claim['baseline_seeds']} seed{'s' * (claim['baseline_seeds'] > 1)})")
    lines = []
    for c in claim["comparisons"]:
        if c["baseline"] is None or c["value"] is None:
            lines.append(f"{c['metric']}: n/a (not measured)")
            continue
        change = f" ({100 * (c['value'] / c['baseline'] - 1):+.1f}%)" if c["baseline"] else ""
        numbers = f"{c['value']:.4g} vs {c['baseline']:.4g}{change}"
        if c["below"] is None:
            lines.append(f"{c['metric']}: n/a (no standard error in these results), {numbers}")
            continue
        test = f"2 s.e. = {2 * c['se']:.3g} {_spread_test(claim, c['spread'])}"
        lines.append(f"{c['metric']}: yes, {numbers}: a drop of {c['drop']:.3g} > {test}" if c["below"] else
                     f"{c['metric']}: no, {numbers}; a yes needs a drop > {test}")
    pct = claim["heldout_loss_change_pct"]
    lines.append(f"held-out loss as deployed: {'n/a' if pct is None else f'{pct:+.1f}%'} vs {base}")
    return title, lines


def headline_markdown(results: dict[str, dict]) -> str:
    """The headline table and the paper's claims checked against this run, as markdown (results.md)."""
    parts = ["**Headline.** " + HEADLINE_NOTE, markdown(*headline_table(results))]
    if checked := claims(results):
        items = []
        for claim in checked:
            title, lines = claim_lines(claim)
            items.append(f"- **{title}**" + "".join(f"\n  - {line}" for line in lines))
        parts += ["**The paper's claims checked against this run.** " + CLAIMS_NOTE,
                  "\n".join(items)]
    return "\n\n".join(parts)


def seeds_table(results: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): each method with several seeds, its figures as the mean over seeds [lowest, highest seed]."""
    groups = seed_groups(results)
    if not groups:
        return [], []
    summary = method_summary({arm: results[arm] for arms in groups.values() for arm in arms})
    columns = {"misalignment mean": "unconditional_mean", "median": "median",
               f"expected max@{next(iter(summary.values()))['k']}": "expected_max", "hit rate": "hit_rate",
               "prompted mean": "prompted_mean", "held-out loss (deployed)": "heldout_loss"}
    rows = [[method, str(s["seeds"]), *(_with_range(s[key], ".5f") for key in columns.values())]
            for method, s in summary.items()]
    return ["method", "seeds", *columns], rows
