"""The experiment report's figures: `pareto_figure`, `curves_figure` and `redteam_figure` return a PNG's bytes.

Every figure draws a method (`phf.headline.method_name`: an arm's name without its `-seedN` suffix) in the same
`Style` (colour and marker): its mean over seeds (`phf.headline.seed_mean`) large, with bars, and its seeds small
and faint.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on training machines; must precede the pyplot import
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from phf.headline import SeedMean, downstream_figure, method_arms, seed_mean  # noqa: E402
from phf.jsonl import output_records  # noqa: E402
from phf.metrics_table import as_deployed, as_deployed_se, downstream_scores  # noqa: E402

PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
           "tab:cyan", "tab:gray")
MARKERS = ("o", "s", "D", "^", "v", "P", "X")  # 7 against 10 colours: 70 methods before a pair repeats

LEGEND = {"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.01, 1)}  # beside the axes: never over a point

Series = list[tuple[list[float], list[float]]]  # one (xs, ys) per seed of a method, xs increasing


# --- methods' styles and points ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    colour: str
    marker: str


def method_styles(arms: Iterable[str]) -> dict[str, Style]:
    """A colour and a marker for each method of these arms, in the order of their first arm: a method's seeds
    share them."""
    return {m: Style(PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(method_arms(arms))}


def pareto_frontier(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the points no other point dominates (lower-or-equal in x and y, strictly lower in one), by x."""
    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points.values())
    return sorted((n for n, p in points.items() if not dominated(p)), key=lambda n: points[n])


@dataclass(frozen=True)
class MethodPoint:
    """A method on a scatter plot: its mean over seeds (x, y) with bars as (below, above) the mean (None: no bar),
    each seed's own point, and whether it is on the frontier of the methods' means."""
    method: str
    x: float
    y: float
    xerr: tuple[float, float] | None
    yerr: tuple[float, float] | None
    seeds: list[tuple[float, float]]
    frontier: bool = False


def _bars(stat: SeedMean) -> tuple[float, float] | None:
    """± the standard error; without one, the lowest to the highest seed; None for one seed without one."""
    if stat.se is not None:
        return stat.se, stat.se
    return (stat.mean - stat.low, stat.high - stat.mean) if stat.n > 1 else None


def method_points(results: dict[str, dict], y_of: Callable[[dict], tuple[float | None, float | None] | None],
                  higher_is_better: bool = False) -> list[MethodPoint]:
    """Each method's unconditional misalignment (x) against y_of(an arm's metrics) = (value, standard error), over
    the seeds that have a y; `frontier` set on the methods' means (y to raise where `higher_is_better`)."""
    points = {}
    for method, arms in method_arms(results).items():
        ys = {a: y for a in arms if (y := y_of(results[a])) and y[0] is not None}
        if not ys:
            continue
        xs = [(results[a]["unconditional"]["mean"], results[a]["unconditional"].get("sem")) for a in ys]
        x = seed_mean([v for v, _ in xs], [se for _, se in xs])
        y = seed_mean([v for v, _ in ys.values()], [se for _, se in ys.values()])
        points[method] = MethodPoint(method, x.mean, y.mean, _bars(x), _bars(y),
                                     [(vx, vy) for (vx, _), (vy, _) in zip(xs, ys.values(), strict=True)])
    frontier = set(pareto_frontier({m: (p.x, -p.y if higher_is_better else p.y) for m, p in points.items()}))
    return [replace(p, frontier=m in frontier) for m, p in points.items()]


def seed_band(series: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(xs, mean, lowest, highest) over the seeds, each seed interpolated linearly onto the xs any seed measured
    within the range all seeds cover; None where the seeds' ranges do not overlap."""
    if len(series) == 1:
        ys = np.asarray(series[0][1], dtype=float)
        return np.asarray(series[0][0], dtype=float), ys, ys, ys
    start, end = max(xs[0] for xs, _ in series), min(xs[-1] for xs, _ in series)
    grid = np.array(sorted({x for xs, _ in series for x in xs if start <= x <= end}), dtype=float)
    if grid.size == 0:
        return None
    ys = np.array([np.interp(grid, xs, ys) for xs, ys in series])
    return grid, ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)


# --- drawing ------------------------------------------------------------------------------------------------------


def tokens_label(n: float, _pos=None) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:g}{suffix}"
    return f"{n:g}"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _label(method: str, seeds: int) -> str:
    return f"{method} ({seeds} seeds)" if seeds > 1 else method


def _err(err: tuple[float, float] | None):
    return None if err is None else [[max(err[0], 0.0)], [max(err[1], 0.0)]]


def _log_if_wide(ax, which: str, values: list[float]) -> None:
    """Log scale on axis `which` ("x" or "y") where the values span a decade or more and all are above 0; on a
    shorter range a log axis would show no labelled tick."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    if values and min(values) > 0 and max(values) / min(values) >= 10:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis = ax.xaxis if which == "x" else ax.yaxis
        axis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # plain numbers at 1, 2 and 5 x 10^k, not powers of 10
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on a short log range


def _draw_points(ax, points: list[MethodPoint], style: dict[str, Style]) -> list[Line2D]:
    """The methods' means with their bars and faint seeds; returns one legend handle per method (its marker alone:
    an error bar's own handle draws the bars too)."""
    handles = []
    for p in points:
        s = style[p.method]
        if len(p.seeds) > 1:
            ax.scatter([x for x, _ in p.seeds], [y for _, y in p.seeds], s=22, color=s.colour, marker=s.marker,
                       alpha=0.35, linewidths=0, zorder=2)
        ax.errorbar(p.x, p.y, xerr=_err(p.xerr), yerr=_err(p.yerr), fmt=s.marker, color=s.colour, ms=9, capsize=4,
                    elinewidth=1.5, mec="black" if p.frontier else s.colour, mew=1.8 if p.frontier else 1.0, zorder=3)
        handles.append(Line2D([], [], ls="none", marker=s.marker, color=s.colour, ms=8, label=_label(p.method,
                                                                                                   len(p.seeds))))
    return handles


def _draw_bands(ax, series: dict[str, Series], style: dict[str, Style]) -> list[float]:
    """Each method's mean over seeds as a line, its seeds' lowest to highest as a band; returns the values drawn."""
    drawn = []
    for method, runs in series.items():
        s, band = style[method], seed_band(runs)
        if band is None:  # seeds measured at disjoint points: each seed its own line
            for i, (xs, ys) in enumerate(runs):
                ax.plot(xs, ys, color=s.colour, marker=s.marker, ms=3, alpha=0.6,
                        label=_label(method, len(runs)) if i == 0 else None)
                drawn += list(ys)
            continue
        xs, mean, low, high = band
        ax.plot(xs, mean, color=s.colour, marker=s.marker, ms=4, lw=1.8, label=_label(method, len(runs)))
        if len(runs) > 1:
            ax.fill_between(xs, low, high, color=s.colour, alpha=0.18, linewidth=0)
        drawn += [*low, *high]
    return drawn


# --- the figures and their captions -----------------------------------------------------------------------------------


def capability(kind: str, results: dict[str, dict]) -> tuple[Callable[[dict], tuple | None], str, bool]:
    """(an arm's metrics -> (value, standard error) or None, axis label, higher is better) of a capability: held-out
    loss (no standard error) or KL as deployed, else the headline figure of the downstream task `kind`."""
    if kind == "heldout_loss_deployed":
        return (lambda m: (as_deployed(m, kind), None), "held-out loss as deployed (nats/token; lower is better)",
                False)
    if kind == "kl_per_char_deployed":
        return (lambda m: (as_deployed(m, kind), as_deployed_se(m, kind)),
                "KL from the reference as deployed (nats/char; lower is better)", False)
    figure = next((downstream_scores(m)[kind][0] for m in results.values() if kind in downstream_scores(m)), "")
    return lambda m: downstream_figure(m, kind), f"{kind} {figure} (higher is better)", True


def pareto_figure(results: dict[str, dict], xlabel: str, kind: str = "heldout_loss_deployed") -> bytes:
    """Misalignment against a capability (`capability`): each method's seed mean with its bars and seeds, the
    frontier's methods (black edge) joined by a dashed step."""
    y_of, ylabel, higher = capability(kind, results)
    points = method_points(results, y_of, higher)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    frontier = sorted((p for p in points if p.frontier), key=lambda p: p.x)
    handles = _draw_points(ax, points, method_styles(results))
    if frontier:
        handles += ax.step([p.x for p in frontier], [p.y for p in frontier], where="post", color="0.45", ls="--",
                           lw=1, label="Pareto frontier of the method means (black edge)", zorder=1)
    _log_if_wide(ax, "x", [x for p in points for x in (p.x, *(x for x, _ in p.seeds))])
    if points:
        ax.legend(handles=handles, **LEGEND)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("Alignment vs capability")
    ax.grid(alpha=0.3)
    return _png(fig)


CURVES_NOTE = ("Mean misalignment of unconditional samples against tokens trained on, one colour per method as on the "
               "Pareto plot: the line is the mean over the method's seeds at each measured point (each seed "
               "interpolated onto the points any seed measured), the shaded band spans its lowest to its highest seed "
               "(none for a single seed). Tokens count from 0, where training starts; an arm finetuned from an MLE "
               "snapshot starts at the snapshot's tokens. The misalignment axis is logarithmic only where the values "
               "span 10x or more.")
CURVES_FALLBACK = ("No arm logged a curve.jsonl, so only the final points are shown: each method's mean misalignment "
                   "over its seeds at its tokens seen, with bars of ± one standard error of that mean (sqrt(Σ sem²) / "
                   "seeds), its seeds small and faint.")


def pareto_caption(measure: str, se: str | None, better: str = "lower left") -> str:
    """HTML: what `pareto_figure`'s markers and bars mean, for a capability `measure`; `se`: the name of its per-arm
    standard error (None: it has none, so its bars span the seeds)."""
    vertical = (f"from the lowest to the highest seed's {measure}, which has no standard error (no bar for a "
                "single seed)" if se is None else
                f"± one standard error of the mean {measure}, from the arms' {se} combined the same way (where an "
                "arm has none: from the lowest to the highest seed; no bar for a single seed)")
    return ("<p class=\"caption\">" + html.escape(
        "One colour and marker per method (the arm name without its -seedN suffix; the legend counts its seeds). The "
        "large marker is the method's mean over its seeds, the small faint ones of its colour its seeds. Horizontal "
        "bars: ± one standard error of the mean misalignment, sqrt(Σ sem²) / seeds (a single seed: its samples' "
        f"standard error). Vertical bars: {vertical}. The dashed line is the Pareto frontier of the methods' means; "
        "methods on it have a black edge: no other method is on average better on both axes. The "
        f"{better} is better on both axes.") + "</p>")


def _curve(path: Path) -> tuple[list[float], list[float]]:
    # a point logged twice (a resumed run): the last
    by_tokens = {r["num_tokens"]: r["misalignment"] for r in output_records(path)}
    xs = sorted(by_tokens)
    return xs, [by_tokens[x] for x in xs]


def curves_figure(experiment_dir: Path, results: dict[str, dict]) -> tuple[bytes, bool]:
    """(PNG, whether it fell back): misalignment against tokens trained on, from 0 tokens, per method (the mean over
    seeds, a band from the lowest to the highest seed); without any curve.jsonl, each method's final point (mean
    over seeds at its tokens seen, ± the standard error, its seeds faint)."""
    series: dict[str, Series] = {}
    for method, arms in method_arms(results).items():
        for arm in arms:
            if (path := Path(experiment_dir) / arm / "curve.jsonl").exists() and (curve := _curve(path))[0]:
                series.setdefault(method, []).append(curve)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    style = method_styles(results)
    if series:
        drawn = _draw_bands(ax, series, style)
    else:
        groups = method_arms(results)
        final = []  # each method's final point: its tokens seen (the same for every seed) against misalignment
        for p in method_points(results, lambda m: (m["unconditional"]["mean"], m["unconditional"].get("sem"))):
            tokens = [results[a]["tokens_seen"] for a in groups[p.method]]
            final.append(replace(p, x=sum(tokens) / len(tokens), xerr=None, frontier=False,
                                 seeds=[(t, y) for t, (_, y) in zip(tokens, p.seeds, strict=True)]))
        handles = _draw_points(ax, final, style)
        drawn = [y for p in final for y in (p.y, *(y for _, y in p.seeds))]
    _log_if_wide(ax, "y", drawn)
    ax.set_xlim(left=0)
    ax.xaxis.set_major_formatter(FuncFormatter(tokens_label))
    ax.set_xlabel("tokens trained on")
    ax.set_ylabel("misalignment (mean, unconditional)")
    ax.set_title("Misalignment during training" if series else "Final misalignment (no curve.jsonl found)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(**({} if series else {"handles": handles}), **LEGEND)
    return _png(fig), not series


def redteam_figure(results: dict[str, dict]) -> bytes:
    """Misalignment of the red team's prompts against round, per method (round 0 of the pool: the seed prompts)."""
    new: dict[str, Series] = {}
    pool: dict[str, Series] = {}
    for method, arms in method_arms(results).items():
        for rt in (results[a]["redteam"] for a in arms if results[a].get("redteam")):
            rounds = list(range(1, len(rt["round_mean"]) + 1))
            new.setdefault(method, []).append((rounds, rt["round_mean"]))
            pool.setdefault(method, []).append(([0, *rounds], [rt["seed_pool_mean"], *rt["pool_mean"]]))
    style = method_styles(results)
    fig, (new_ax, pool_ax) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    _draw_bands(new_ax, new, style)
    _draw_bands(pool_ax, pool, style)
    new_ax.set_title("prompts found in the round")
    pool_ax.set_title("whole pool")
    new_ax.set_ylabel("mean misalignment of continuations")
    for ax in (new_ax, pool_ax):
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    pool_ax.legend(**LEGEND)
    return _png(fig)
