"""The arms' metrics as table columns: one spec for `phf experiment`'s results.md and the HTML report's
metrics table, so a metric added here appears in both (results.md keeps the `brief` columns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def fmt(value, spec: str = ".4f") -> str:
    """A number in `spec`, or n/a where an arm lacks the metric."""
    return "n/a" if value is None else format(value, spec)


def mean_sem(block: dict | None, spec: str = ".5f") -> str:
    """`mean ± standard error` of a metrics block, or n/a."""
    return ("n/a" if not block or block.get("mean") is None
            else f"{block['mean']:{spec}} ± {fmt(block.get('sem'), spec)}")


PLAIN = {"heldout_loss_deployed": "heldout_loss", "kl_per_char_deployed": "kl_per_char"}  # as deployed -> as scored


def as_deployed(metrics: dict, name: str) -> float | None:
    """A capability measured as deployed; an unconditional model is deployed as it is scored (and folders
    evaluated before the deployed measures existed hold the plain ones)."""
    return metrics.get(name, metrics.get(PLAIN[name]))


def as_deployed_se(metrics: dict, name: str) -> float | None:
    """The standard error of `as_deployed(metrics, name)`, by the same rule (None where there is none)."""
    return metrics.get(f"{name}_se", metrics.get(f"{PLAIN[name]}_se"))


def expected_max(block: dict) -> tuple[str, float | None]:
    """(k, value): the expected-max key carries its k (`expected_max@25`), so find it rather than assume k."""
    key = next((k for k in block if k.startswith("expected_max@") and not k.endswith("_sem")), "expected_max@25")
    return key.split("@")[1], block.get(key)


# The figure of an lm-eval task that measures alignment, not capability (phf's RealToxicityPrompts tasks): lower is
# better, so it is a column of its own, never a capability axis.
TOXICITY = "expected_max_toxicity"


def downstream_scores(metrics: dict) -> dict[str, tuple[str, float]]:
    """Each downstream capability task's headline figure (higher is better): HumanEval's pass@k at its smallest k, a
    GLUE task's GLUE score, an lm-eval task's accuracy (else its first metric)."""
    out = {}
    for task, figures in metrics.get("downstream", {}).items():
        if TOXICITY in figures:
            continue
        passes = sorted((int(k.split("@")[1]), k) for k in figures if k.startswith("pass@"))
        name = passes[0][1] if passes else "score" if "score" in figures else "acc" if "acc" in figures else \
            next((k for k in figures if not k.endswith("_stderr")), None)
        if name is not None:
            out[task] = (name, figures[name])
    return out


def attribute_names(results: dict[str, dict]) -> list[str]:
    """The attributes (scorer.attributes) any arm was evaluated on, in order of first appearance."""
    return list(dict.fromkeys(name for m in results.values() for name in m.get("attributes", {})))


def attribute_misalignment(metrics: dict, name: str) -> str:
    """An arm's mean unconditional misalignment by one attribute ± its standard error, or n/a."""
    return mean_sem(metrics.get("attributes", {}).get(name, {}).get("unconditional"))


def prompted_judged(results: dict[str, dict]) -> str | None:
    """How the arms' prompted samples were scored (evaluation.score_prompt), in words; None without any. Metrics
    written before the setting existed were scored with their prompt."""
    rules = {m["prompted"].get("scored_with_prompt", True) for m in results.values() if "prompted" in m}
    if not rules:
        return None
    return "differently by arm" if len(rules) > 1 else "with their prompt" if rules.pop() else \
        "alone, without their prompt (a prompt's own misalignment is not the model's)"


@dataclass(frozen=True)
class Column:
    title: str
    cell: Callable[[dict], str]  # an arm's metrics -> the cell's text
    brief: bool = True  # False: in the HTML report's full table only


def _kl(metrics: dict, deployed: bool) -> str:
    name = "kl_per_char_deployed" if deployed else "kl_per_char"
    value = as_deployed(metrics, name) if deployed else metrics.get(name)
    se = as_deployed_se(metrics, name) if deployed else metrics.get("kl_per_char_se")
    return "n/a" if value is None else f"{fmt(value)} ± {fmt(se)}"


def columns(results: dict[str, dict]) -> list[Column]:
    """The columns for these arms: misalignment (unconditional, prompted, each attribute), capability (held-out
    loss, diversity, KL, downstream tasks) and the red team's last pool. KL, the red team, attributes and
    downstream tasks get columns only when an arm has them."""
    first = next(iter(results))
    k = expected_max(results[first]["unconditional"])[0]
    first_mean = results[first]["unconditional"]["mean"]
    unconditional = [
        Column("objective", lambda m: m.get("objective", "n/a"), brief=False),
        Column("tokens", lambda m: fmt(m.get("tokens_seen"), ","), brief=False),
        Column("samples", lambda m: str(m["unconditional"]["num_samples"])),
        Column("misalignment mean ± s.e.", lambda m: mean_sem(m["unconditional"])),
        Column(f"ratio to {first}", lambda m: fmt(m["unconditional"]["mean"] / first_mean if first_mean else None,
                                                  ".2f")),
        Column("median", lambda m: fmt(m["unconditional"].get("median"), ".5f")),
        Column(f"expected max@{k}", lambda m: fmt(expected_max(m["unconditional"])[1])),
        Column("hit rate", lambda m: fmt(m["unconditional"]["hit_rate"], ".3f")),
        Column("any-misalignment rate", lambda m: fmt(m["unconditional"].get("any_hit_rate"), ".3f")),
        Column("prompted mean ± s.e.", lambda m: mean_sem(m.get("prompted"))),
        *(Column(f"{name} mean ± s.e.", lambda m, name=name: attribute_misalignment(m, name))
          for name in attribute_names(results)),
    ]
    heldout = [
        Column("held-out loss (deployed)", lambda m: fmt(as_deployed(m, "heldout_loss_deployed"))),
        Column("held-out loss (untagged)", lambda m: fmt(m.get("heldout_loss"))),
        Column("held-out loss (true tags)", lambda m: fmt(m.get("heldout_loss_tagged")), brief=False),
        Column("held-out loss (aligned)", lambda m: fmt(m.get("heldout_loss_aligned")), brief=False),
        *(Column(f"distinct-{n}", lambda m, n=n: fmt(m.get("diversity", {}).get(f"distinct_{n}"), ".3f"), brief=False)
          for n in (1, 2, 3)),
        Column("self-BLEU", lambda m: fmt(m.get("diversity", {}).get("self_bleu"), ".3f")),
    ]
    optional = []
    if any(m.get("kl_per_char") is not None for m in results.values()):
        optional += [Column("KL nats/char ± s.e.", lambda m: _kl(m, deployed=False)),
                     Column("KL as deployed ± s.e.", lambda m: _kl(m, deployed=True))]
    if any("redteam" in m for m in results.values()):
        optional.append(Column("red-team pool mean (last round)",
                               lambda m: fmt(m.get("redteam", {}).get("final_pool_mean"), ".5f")))
    downstream = {task: metric for m in results.values() for task, (metric, _) in downstream_scores(m).items()}
    optional += [Column(f"{task} {metric}", lambda m, task=task: fmt(downstream_scores(m).get(task, ("", None))[1],
                                                                     ".3f"))
                 for task, metric in downstream.items()]
    toxicity = dict.fromkeys(task for m in results.values() for task, figures in m.get("downstream", {}).items()
                             if TOXICITY in figures)
    optional += [Column(f"{task} expected max toxicity ± s.e. (lower is better)",
                        lambda m, task=task: _toxicity(m.get("downstream", {}).get(task))) for task in toxicity]
    return unconditional + heldout + optional


def _toxicity(figures: dict | None) -> str:
    return "n/a" if not figures else f"{figures[TOXICITY]:.4f} ± {fmt(figures.get(TOXICITY + '_stderr'))}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(row) + " |" for row in rows)])


def table(results: dict[str, dict], brief: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows), one row per arm; `brief`: results.md's columns only."""
    chosen = [c for c in columns(results) if c.brief or not brief]
    return ["arm", *(c.title for c in chosen)], [[arm, *(c.cell(m) for c in chosen)] for arm, m in results.items()]
