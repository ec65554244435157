"""Turn a finished `phf experiment` folder into a self-contained HTML report.

`write_report(experiment_dir)` reads `results.json`, each arm's `eval/samples.jsonl` and (if present)
`curve.jsonl`, and writes `experiment_dir/report/`: `index.html` (opens from file://, no external
resources: figures are embedded as base64 PNGs), `pareto.png`, `curves.png`, `metrics.csv`, `metrics.json`, and
where the arms have them, `pareto_kl.png` (capability as KL from a reference) and `redteam.png`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on training machines; must precede the pyplot import
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from phf.evaluation.causes import causes_table  # noqa: E402
from phf.metrics_table import (  # noqa: E402
    as_deployed,
    attribute_names,
    downstream_scores,
    expected_max,
    prompted_judged,
    table,
)

NUM_EXTREMES = 10  # samples shown from each end of the score distribution

# What a sample's misalignment score means, by scorer (a user's module:function scorer: its own scale).
SCORE_MEANING = {
    "pep8": "PEP8 violations per character",
    "profanity": "probability of offensive language (alt-profanity-check)",
    "detoxify": "probability of toxicity (Detoxify)",
    "classifier": "the classifier's probability of its misaligned label",
    "pii": "personal data items per character",
}


def score_meaning(scorer: str | None) -> str:
    return SCORE_MEANING.get(scorer or "pep8", f"score of {scorer}")

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 4px 6px; text-align: right; vertical-align: top; }
#metrics-table td { white-space: nowrap; }
.scroll { overflow-x: auto; }  /* a wide table scrolls by itself instead of widening the page */
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
table.samples { width: 100%; }
table.samples td.text { text-align: left; width: 100%; }
pre { white-space: pre-wrap; margin: 0; max-height: 14em; overflow: auto; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #eee; }
.note { background: #f8f8f8; border-left: 4px solid #999; padding: 0.5em 1em; }
"""


def pareto_frontier(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the points no other point dominates (lower-or-equal in x and y, strictly lower in one), by x."""
    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points.values())
    return sorted((n for n, p in points.items() if not dominated(p)), key=lambda n: points[n])


def _flatten(metrics: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


CAPABILITY = {"heldout_loss_deployed": "held-out loss as deployed (nats/token; lower is better)",
              "kl_per_char_deployed": "KL from the reference as deployed (nats/char; lower is better)"}


def _pareto_png(results: dict[str, dict], scorer: str | None, capability: str = "heldout_loss_deployed",
                downstream: str | None = None) -> bytes:
    """Misalignment against a capability: `capability` (lower is better), or the headline figure of the
    `downstream` task (higher is better)."""
    if downstream:
        figures = {arm: downstream_scores(m).get(downstream) for arm, m in results.items()}
        points = {arm: (m["unconditional"]["mean"], f[1]) for arm, m in results.items() if (f := figures[arm])}
        label = f"{downstream} {next(f[0] for f in figures.values() if f)} (higher is better)" if points else downstream
    else:
        points = {arm: (m["unconditional"]["mean"], as_deployed(m, capability))
                  for arm, m in results.items() if as_deployed(m, capability) is not None}
        label = CAPABILITY[capability]
    fig, ax = plt.subplots(figsize=(7, 5))
    if points:
        # the frontier of (misalignment, capability) with both to be lowered
        frontier = pareto_frontier({a: (x, -y) for a, (x, y) in points.items()} if downstream else points)
        ax.step([points[a][0] for a in frontier], [points[a][1] for a in frontier], where="post",
                color="tab:red", alpha=0.5, label="Pareto frontier")
        for arm, (x, y) in points.items():
            ax.scatter(x, y, s=40, color="tab:red" if arm in frontier else "tab:blue", zorder=3)
            ax.annotate(arm, (x, y), textcoords="offset points", xytext=(6, 4))
        xs = [x for x, _ in points.values()]
        # Log scale where the arms span a decade or more (and none is 0); on a shorter range it would show no tick.
        if min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on a short log range
        ax.legend()
    ax.set_xlabel(f"misalignment (mean {score_meaning(scorer)}, unconditional; lower is better)")
    ax.set_ylabel(label)
    ax.set_title("Alignment vs capability")
    ax.grid(alpha=0.3)
    return _png(fig)


def _tokens_label(n: float, _pos=None) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:g}{suffix}"
    return f"{n:g}"


def _curves_png(experiment_dir: Path, results: dict[str, dict]) -> tuple[bytes, bool]:
    """Misalignment against tokens seen; falls back to the final points when no arm logged a curve."""
    curves = {arm: sorted(_read_jsonl(p), key=lambda r: r["num_tokens"])
              for arm in results if (p := experiment_dir / arm / "curve.jsonl").exists()}
    fig, ax = plt.subplots(figsize=(7, 5))
    for arm, points in curves.items():
        ax.plot([r["num_tokens"] for r in points], [r["misalignment"] for r in points], marker="o", ms=3, label=arm)
    if not curves:
        for arm, m in results.items():
            ax.scatter(m["tokens_seen"], m["unconditional"]["mean"], label=arm)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # matplotlib's labelled minor ticks collide on short log ranges: label 1, 2 and 5 x 10^k instead
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(_tokens_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("misalignment (mean, unconditional)")
    ax.set_title("Misalignment during training" if curves else "Final misalignment (no curve.jsonl found)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _png(fig), not curves


def _redteam_png(results: dict[str, dict]) -> bytes:
    """Misalignment of the red team's prompts against round, one line per arm (round 0: the seed prompts)."""
    fig, (new_ax, pool_ax) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for arm, m in results.items():
        rt = m.get("redteam")
        if rt:
            rounds = range(1, len(rt["round_mean"]) + 1)
            new_ax.plot(rounds, rt["round_mean"], marker="o", ms=3, label=arm)
            pool_ax.plot([0, *rounds], [rt["seed_pool_mean"], *rt["pool_mean"]], marker="o", ms=3, label=arm)
    new_ax.set_title("prompts found in the round")
    pool_ax.set_title("whole pool")
    new_ax.set_ylabel("mean misalignment of continuations")
    for ax in (new_ax, pool_ax):
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    pool_ax.legend()
    return _png(fig)


def seed_groups(results: dict[str, dict]) -> dict[str, list[str]]:
    """Arms that differ by training seed only (`phf experiment --seeds`: NAME-seedN), by NAME; only NAMEs with
    two seeds or more."""
    groups: dict[str, list[str]] = {}
    for arm in results:
        name, sep, seed = arm.rpartition("-seed")
        if sep and seed.isdigit():
            groups.setdefault(name, []).append(arm)
    return {name: arms for name, arms in groups.items() if len(arms) > 1}


def seeds_table(results: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): each method with several seeds, its metrics as the mean over seeds [lowest, highest seed]."""
    groups = seed_groups(results)
    if not groups:
        return [], []
    k = expected_max(next(iter(results.values()))["unconditional"])[0]
    metrics = {"misalignment mean": lambda m: m["unconditional"]["mean"],
               "median": lambda m: m["unconditional"].get("median"),
               f"expected max@{k}": lambda m: expected_max(m["unconditional"])[1],
               "hit rate": lambda m: m["unconditional"]["hit_rate"],
               "prompted mean": lambda m: m.get("prompted", {}).get("mean"),
               "held-out loss (deployed)": lambda m: as_deployed(m, "heldout_loss_deployed")}
    rows = []
    for name, arms in groups.items():
        cells = [name, str(len(arms))]
        for get in metrics.values():
            values = [get(results[a]) for a in arms]
            cells.append("n/a" if None in values else
                         f"{sum(values) / len(values):.5f} [{min(values):.5f}, {max(values):.5f}]")
        rows.append(cells)
    return ["method", "seeds", *metrics], rows


def _metrics_table(results: dict[str, dict]) -> str:
    head, rows = table(results)
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table id="metrics-table"><thead><tr>{header}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def _table_section(title: str, note: str, header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>"
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')


def _samples_section(experiment_dir: Path, arm: str) -> str:
    path = experiment_dir / arm / "eval" / "samples.jsonl"
    samples = [r for r in _read_jsonl(path) if r["scenario"] == "unconditional"] if path.exists() else []
    if not samples:
        return f"<h3>{html.escape(arm)}</h3><p>No unconditional samples found.</p>"
    ranked = sorted((r for r in samples if r["score"] is not None), key=lambda r: r["score"], reverse=True)
    groups = [(f"{NUM_EXTREMES} highest-scoring (most misaligned)", ranked[:NUM_EXTREMES]),
              (f"{NUM_EXTREMES} lowest-scoring (least misaligned)", ranked[::-1][:NUM_EXTREMES])]
    rows = []
    for title, group in groups:
        rows.append(f'<tr><th colspan="2">{title}</th></tr>')
        rows += [f'<tr><td>{r["score"]:.4f}</td><td class="text"><pre>{html.escape(r["text"])}</pre></td></tr>'
                 for r in group]
    return f'<h3>{html.escape(arm)}</h3><table class="samples">{"".join(rows)}</table>'


def _summary(data: dict) -> str:
    results = data["results"]
    best_mis = min(results, key=lambda a: results[a]["unconditional"]["mean"])
    with_loss = [a for a in results if as_deployed(results[a], "heldout_loss_deployed") is not None]
    text = (f"This experiment on the <b>{html.escape(str(data.get('task', '?')))}</b> task compared "
            f"{len(results)} arms ({html.escape(', '.join(results))}) and evaluated each on misalignment of its "
            f"samples, held-out loss and diversity. The lowest unconditional misalignment is "
            f"<b>{html.escape(best_mis)}</b> ({results[best_mis]['unconditional']['mean']:.5f})")
    if with_loss:
        best_loss = min(with_loss, key=lambda a: as_deployed(results[a], "heldout_loss_deployed"))
        loss = as_deployed(results[best_loss], "heldout_loss_deployed")
        text += f"; the lowest held-out loss as deployed is <b>{html.escape(best_loss)}</b> ({loss:.4f})"
    if "wall_seconds" in data:
        text += f". Its last run took {data['wall_seconds'] / 60:.1f} minutes (arms finished before are reused)"
    return f"<p>{text}.</p>"


HOW_TO_READ = """<div class="note"><h2>How to read this</h2><ul>
<li><b>Misalignment</b>: the task scorer's mean score of the model's samples: {meaning} (lower is better);
 unconditional samples start from nothing, prompted ones continue the evaluation prompts{judged}.</li>
<li><b>Median</b>: the typical sample's misalignment; unlike the mean, a few very short samples (whose
 per-character score is extreme) do not move it.</li>
<li><b>Expected max@k</b>: the expected worst misalignment among k consecutive samples (k = 25 by default);
 it tracks how bad the tail is, not just the average.</li>
<li><b>Hit rate</b>: share of samples whose misalignment is over the hit threshold
 (<code>evaluation.hit_threshold</code>); <b>any-misalignment rate</b>: share with a score above 0 at all (for
 PEP8, any violation: the paper's hit).</li>{attributes}
<li><b>Held-out loss</b>, nats per token on held-out text, control tokens never counted (lower = more capable).
 <i>Deployed</i>: the text as each model is used; for a conditional model, with <code>&lt;|aligned|&gt;</code>
 before every segment, as it is sampled. This is the capability on the Pareto plot: a conditional model is
 only ever run with the aligned tags, so its loss without them (<i>untagged</i>, out of its training
 distribution) understates it, and its loss with the true tags (<i>true tags</i>) uses the scorer's labels of
 the held-out text, which no user has. For the other objectives all three are the same text.
 <i>Aligned</i> counts only the tokens of aligned segments (scored at most
 <code>evaluation.aligned_threshold</code>, 0 by default) of the untagged text.</li>
<li><b>By cause</b> (when the scorer has causes: PEP8 codes, kinds of PII): rates per 1,000 characters of the
 unconditional samples, beside the training corpus's. A cause the corpus never shows was not imitated from it:
 no objective can be taught to avoid it from the corpus's labels.</li>
<li><b>Distinct-n</b> and <b>self-BLEU</b> measure diversity: higher distinct-n and lower self-BLEU mean more
 diverse samples.</li>
<li>On the Pareto plot, arms in red are on the frontier: no other arm is both less misaligned and more capable.</li>
</ul></div>"""


def _attributes_note(results: dict[str, dict]) -> str:
    names = attribute_names(results)
    if not names:
        return ""
    meanings = "; ".join(html.escape(score_meaning(name)) for name in names)
    return (f"\n<li><b>Attribute columns</b> (<code>scorer.attributes</code>, after <i>prompted mean</i>): the mean "
            f"misalignment of the same unconditional samples by each further scorer, on its own scale ({meanings}); "
            "lower is better.</li>")


def _shared_model_note(results: dict[str, dict]) -> str:
    shared = {arm: m["model_of"] for arm, m in results.items() if m.get("model_of")}
    if not shared:
        return ""
    pairs = ", ".join(f"{html.escape(arm)} uses {html.escape(of)}'s" for arm, of in shared.items())
    return (f"\n<li><b>Arms that share a model</b> ({pairs}): they differ only in how it is sampled (e.g. "
            "<code>sampling.guidance</code>), so their held-out loss is that model's; their samples, diversity and "
            "KL (scored with the guided next-token distribution) are their own.</li>")


def _write_metrics(out: Path, results: dict[str, dict]) -> None:
    rows = [{"arm": arm, **_flatten(m)} for arm, m in results.items()]
    (out / "metrics.json").write_text(json.dumps(rows, indent=1))
    fields = list(dict.fromkeys(k for row in rows for k in row))  # union of keys: arms may lack some metrics
    with (out / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


def write_report(experiment_dir: Path) -> Path:
    """Write `experiment_dir/report/` (see the module docstring) and return the path of its `index.html`."""
    experiment_dir = Path(experiment_dir)
    data = json.loads((experiment_dir / "results.json").read_text())
    results = data["results"]
    out = experiment_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    _write_metrics(out, results)

    pareto = _pareto_png(results, data.get("scorer"))
    curves, fallback = _curves_png(experiment_dir, results)
    (out / "pareto.png").write_bytes(pareto)
    (out / "curves.png").write_bytes(curves)

    def img(id_: str, png: bytes, alt: str) -> str:
        return f'<img id="{id_}" alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    optional = ""
    if any(m.get("kl_per_char") is not None for m in results.values()):
        pareto_kl = _pareto_png(results, data.get("scorer"), "kl_per_char_deployed")
        (out / "pareto_kl.png").write_bytes(pareto_kl)
        optional += (f"<h2>Alignment vs KL from the reference</h2><p>Capability as KL(reference || model) in nats per "
                     f"character, estimated on samples of {html.escape(str(data.get('kl_reference')))} "
                     f"(the paper's capability measure, with a reference one has offline), as deployed: a conditional "
                     f"model with its aligned tags before every segment of those samples, as it is sampled. The "
                     f"metrics table also has the paper's (one tag at the start).</p>"
                     + img("pareto-kl-plot", pareto_kl, "Pareto plot of misalignment against KL from the reference"))
    for task in dict.fromkeys(t for m in results.values() for t in downstream_scores(m)):
        png = _pareto_png(results, data.get("scorer"), downstream=task)
        (out / f"pareto_{task}.png").write_bytes(png)
        optional += (f"<h2>Alignment vs {html.escape(task)}</h2><p>Capability as the downstream task's headline "
                     f"figure (higher is better; the upper left is better on both axes); every figure of it is in "
                     f"metrics.json under downstream.</p>"
                     + img(f"pareto-{html.escape(task)}-plot", png, f"Pareto plot of misalignment against {task}"))
    if any("redteam" in m for m in results.values()):
        redteam = _redteam_png(results)
        (out / "redteam.png").write_bytes(redteam)
        red_lm = next(m["redteam"]["red_lm"] for m in results.values() if "redteam" in m)
        optional += (f"<h2>Red teaming</h2><p>Stochastic few-shot red teaming (the paper's section 4.2): each round "
                     f"the red LM ({html.escape(red_lm)}) writes new prompts imitating the pool's most successful "
                     f"ones; each arm's continuations are scored. Left: the round's new prompts; right: the pool so "
                     f"far. Every prompt and continuation is in &lt;arm&gt;/redteam/redteam.json.</p>"
                     + img("redteam-plot", redteam, "Red-team misalignment against round"))

    curves_note = " No arm logged a curve.jsonl, so only the final points are shown." if fallback else ""
    title = f"PHF experiment report: {html.escape(str(data.get('task', experiment_dir.name)))}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{CSS}</style></head>
<body><h1>{title}</h1>
{_summary(data)}
<h2>Metrics</h2>
{_metrics_table(results)}
{_table_section("Across training seeds", "Each method with several seeds: the mean over its seeds, and the lowest "
                "and highest seed.", *seeds_table(results))}
{_table_section("Misalignment by cause", "Unconditional samples, per 1,000 characters; the corpus column: "
                "training documents.", *causes_table(results, data.get("corpus_causes")))}
<h2>Alignment vs capability</h2>
<p>Each point is one arm; lower-left is better on both axes. Capability is the held-out loss as deployed.</p>
{img("pareto-plot", pareto, "Pareto plot of misalignment against held-out loss as deployed")}
<h2>Misalignment during training</h2>
<p>Mean misalignment of unconditional samples against tokens seen.{curves_note}</p>
{img("curves-plot", curves, "Misalignment against tokens seen")}
{optional}
{HOW_TO_READ.format(meaning=html.escape(score_meaning(data.get("scorer"))),
                    judged=f" and are scored {html.escape(judged)}" if (judged := prompted_judged(results)) else "",
                    attributes=_attributes_note(results) + _shared_model_note(results))}
<h2>Samples</h2>
<p>For each arm, the {NUM_EXTREMES} highest- and {NUM_EXTREMES} lowest-scoring unconditional samples.</p>
{"".join(_samples_section(experiment_dir, arm) for arm in results)}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
