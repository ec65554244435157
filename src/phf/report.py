"""Turn a finished `phf experiment` folder into a self-contained HTML report.

`write_report(experiment_dir)` reads `results.json`, each arm's `eval/samples.jsonl` and (if present)
`curve.jsonl`, and writes `experiment_dir/report/`: `index.html` (opens from file://, no external
resources: figures are embedded as base64 PNGs), `pareto.png`, `curves.png`, `metrics.csv`, `metrics.json`, and
where the arms have them, `pareto_kl.png` (capability as KL from a reference), `pareto_<task>.png` (a downstream
task) and `redteam.png`.

The page opens with the headline: each method (an arm's name without its `-seedN` suffix) over its seeds, and the
paper's claims checked against the run. Those numbers come from `phf.headline`, the figures from `phf.report_plots`;
this module lays out the page.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path

from phf.evaluation.causes import causes_table
from phf.files import staged
from phf.headline import (
    CLAIMS_NOTE,
    HEADLINE_NOTE,
    baseline_method,
    claim_lines,
    claims,
    headline_table,
    method_arms,
    seeds_table,
)
from phf.jsonl import output_records
from phf.metrics_table import as_deployed, attribute_names, downstream_scores, prompted_judged, table
from phf.report_plots import CURVES_FALLBACK, CURVES_NOTE, curves_figure, pareto_caption, pareto_figure, redteam_figure
from phf.scorers import score_meaning

NUM_EXTREMES = 10  # samples shown from each end of the score distribution



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
#headline-table td { white-space: nowrap; }
#claims { font-size: 0.9em; }
#claims li.main { background: #fff8e0; }
.caption { font-size: 0.9em; color: #444; }
"""


def _flatten(metrics: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _headline_html(results: dict[str, dict]) -> str:
    out = f"<h2>Headline</h2><p>{html.escape(HEADLINE_NOTE)}</p>" + _html_table(*headline_table(results),
                                                                               "headline-table")
    checked = claims(results)
    if not checked:
        return out
    items = []
    for claim in checked:
        title, lines = claim_lines(claim)
        # the paper's main claim: conditional training from the start against MLE
        main = ' class="main"' if (claim["method"], claim["baseline"]) == ("conditional", "mle") else ""
        verdicts = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        items.append(f"<li{main}><b>{html.escape(title)}</b><ul>{verdicts}</ul></li>")
    return (out + "<h3>The paper's claims checked against this run</h3>"
            f"<p>{html.escape(CLAIMS_NOTE)}</p>"
            f'<ul id="claims">{"".join(items)}</ul>')


def _html_table(header: list[str], rows: list[list[str] | str], id_: str | None = None, class_: str | None = None,
                pre: int | None = None) -> str:
    """A table of text (escaped here) in a box that scrolls sideways when the table is wider than the page. A row
    that is a string is a heading across the table; the cells of column `pre` are shown as preformatted text."""
    def cell(column: int, text: str) -> str:
        if column == pre:
            return f'<td class="text"><pre>{html.escape(text)}</pre></td>'
        return f"<td>{html.escape(text)}</td>"

    def row(r: list[str] | str) -> str:
        if isinstance(r, str):
            return f'<tr><th colspan="{len(header)}">{html.escape(r)}</th></tr>'
        return "<tr>" + "".join(cell(column, text) for column, text in enumerate(r)) + "</tr>"

    attributes = (f' id="{id_}"' if id_ else "") + (f' class="{class_}"' if class_ else "")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return (f'<div class="scroll"><table{attributes}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(map(row, rows))}</tbody></table></div>')


def _table_section(title: str, note: str, header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return ""
    return f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>" + _html_table(header, rows)


def _samples_section(experiment_dir: Path, arm: str) -> str:
    path = experiment_dir / arm / "eval" / "samples.jsonl"
    samples = [r for r in output_records(path) if r["scenario"] == "unconditional"] if path.exists() else []
    if not samples:
        return f"<h3>{html.escape(arm)}</h3><p>No unconditional samples found.</p>"
    ranked = sorted((r for r in samples if r["score"] is not None), key=lambda r: r["score"], reverse=True)
    groups = [(f"{NUM_EXTREMES} highest-scoring (most misaligned)", ranked[:NUM_EXTREMES]),
              (f"{NUM_EXTREMES} lowest-scoring (least misaligned)", ranked[::-1][:NUM_EXTREMES])]
    rows: list[list[str] | str] = []
    for title, group in groups:
        rows += [title, *([f'{r["score"]:.4f}', r["text"]] for r in group)]
    return f"<h3>{html.escape(arm)}</h3>" + _html_table(["score", "sample"], rows, class_="samples", pre=1)


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
<li><b>Colours and bars</b>: a method is an arm's name without its <code>-seedN</code> suffix; it has one colour
 and marker in every plot. A method's seeds are shown as their mean with their spread: on the scatter plots a large
 marker at the mean over seeds, bars of &plusmn; one standard error of that mean (sqrt(&Sigma; sem&sup2;) / seeds; a
 single seed: its samples' standard error) or, for a figure without a standard error (held-out loss), from the lowest
 to the highest seed, and each seed as a small faint marker; on the curves a line at the mean over seeds and a band
 from the lowest to the highest seed.</li>
<li>The <b>Pareto frontier</b> is computed on the methods' means: a method on it (black edge, joined by the dashed
 line) is not beaten on both axes by another method's mean.</li>
<li><b>Headline</b>: the same seed means. A claim holds (yes) when the method's mean is below its baseline's
 ({baseline}; for the fresh-start claim, MLE then the same objective) by more
 than 2 standard errors of the difference (sqrt(se<sub>a</sub>&sup2; + se<sub>b</sub>&sup2;)) and by more than the
 spread between seeds of either method that has several, so that neither sampling noise nor the choice of seed
 explains it.</li>
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
    """Write `experiment_dir/report/` (see the module docstring) and return the path of its `index.html`. Written
    whole: a report that fails part-way leaves the earlier one as it was (the folder is the report's own)."""
    report = Path(experiment_dir) / "report"
    report.mkdir(parents=True, exist_ok=True)
    with staged(report, [p.name for p in report.iterdir()]) as out:
        _write_report(Path(experiment_dir), out)
    return report / "index.html"


def _write_report(experiment_dir: Path, out: Path) -> None:
    data = json.loads((experiment_dir / "results.json").read_text())
    results = data["results"]
    _write_metrics(out, results)

    xlabel = f"misalignment (mean {score_meaning(data.get('scorer'))}, unconditional; lower is better)"
    pareto = pareto_figure(results, xlabel)
    curves, fallback = curves_figure(experiment_dir, results)
    (out / "pareto.png").write_bytes(pareto)
    (out / "curves.png").write_bytes(curves)

    def img(id_: str, png: bytes, alt: str) -> str:
        return f'<img id="{id_}" alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    optional = ""
    if any(m.get("kl_per_char") is not None for m in results.values()):
        pareto_kl = pareto_figure(results, xlabel, "kl_per_char_deployed")
        (out / "pareto_kl.png").write_bytes(pareto_kl)
        optional += (f"<h2>Alignment vs KL from the reference</h2><p>Capability as KL(reference || model) in nats per "
                     f"character, estimated on samples of {html.escape(str(data.get('kl_reference')))} "
                     f"(the paper's capability measure, with a reference one has offline), as deployed: a conditional "
                     f"model with its aligned tags before every segment of those samples, as it is sampled. The "
                     f"metrics table also has the paper's (one tag at the start).</p>"
                     + pareto_caption("KL from the reference", "KL standard errors")
                     + img("pareto-kl-plot", pareto_kl, "Pareto plot of misalignment against KL from the reference"))
    for task in dict.fromkeys(t for m in results.values() for t in downstream_scores(m)):
        png = pareto_figure(results, xlabel, task)
        (out / f"pareto_{task}.png").write_bytes(png)
        optional += (f"<h2>Alignment vs {html.escape(task)}</h2><p>Capability as the downstream task's headline "
                     f"figure (higher is better; the upper left is better on both axes); every figure of it is in "
                     f"metrics.json under downstream.</p>"
                     + pareto_caption(f"{task} figure", "stderr", better="upper left")
                     + img(f"pareto-{html.escape(task)}-plot", png, f"Pareto plot of misalignment against {task}"))
    if any("redteam" in m for m in results.values()):
        redteam = redteam_figure(results)
        (out / "redteam.png").write_bytes(redteam)
        red_lm = next(m["redteam"]["red_lm"] for m in results.values() if "redteam" in m)
        optional += (f"<h2>Red teaming</h2><p>Stochastic few-shot red teaming (the paper's section 4.2): each round "
                     f"the red LM ({html.escape(red_lm)}) writes new prompts imitating the pool's most successful "
                     f"ones; each arm's continuations are scored. Left: the round's new prompts; right: the pool so "
                     f"far. One line per method in its colour: the mean over its seeds, with a band from the lowest "
                     f"to the highest seed. Every prompt and continuation is in &lt;arm&gt;/redteam/redteam.json.</p>"
                     + img("redteam-plot", redteam, "Red-team misalignment against round"))

    curves_note = CURVES_FALLBACK if fallback else CURVES_NOTE
    title = f"PHF experiment report: {html.escape(str(data.get('task', experiment_dir.name)))}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{CSS}</style></head>
<body><h1>{title}</h1>
{_headline_html(results)}
{_summary(data)}
<h2>Metrics</h2>
{_html_table(*table(results), "metrics-table")}
{_table_section("Across training seeds", "Each method with several seeds: the mean over its seeds, and the lowest "
                "and highest seed.", *seeds_table(results))}
{_table_section("Misalignment by cause", "Unconditional samples, per 1,000 characters; the corpus column: "
                "training documents.", *causes_table(results, data.get("corpus_causes")))}
<h2>Alignment vs capability</h2>
<p>Capability is the held-out loss as deployed.</p>
{pareto_caption("held-out loss", None)}
{img("pareto-plot", pareto, "Pareto plot of misalignment against held-out loss as deployed")}
<h2>Misalignment during training</h2>
<p class="caption">{curves_note}</p>
{img("curves-plot", curves, "Misalignment against tokens seen")}
{optional}
{HOW_TO_READ.format(meaning=html.escape(score_meaning(data.get("scorer"))),
                    judged=f" and are scored {html.escape(judged)}" if (judged := prompted_judged(results)) else "",
                    attributes=_attributes_note(results) + _shared_model_note(results),
                    baseline=html.escape(baseline_method(method_arms(results))))}
<h2>Samples</h2>
<p>For each arm, the {NUM_EXTREMES} highest- and {NUM_EXTREMES} lowest-scoring unconditional samples.</p>
{"".join(_samples_section(experiment_dir, arm) for arm in results)}
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
