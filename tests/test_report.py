"""The experiment report: files, metrics, escaping, the headline and the claims checked (phf.headline), the Pareto
frontier, and a real headless-browser render."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from phf.headline import (
    claim_lines,
    claims,
    headline_markdown,
    headline_table,
    method_arms,
    method_name,
    method_summary,
    seed_groups,
    seed_mean,
    seeds_table,
)
from phf.report import write_report
from phf.report_plots import capability, method_points, method_styles, pareto_frontier, seed_band
from tests.helpers import make_experiment, metric_block

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return write_report(make_experiment(tmp_path_factory.mktemp("experiment")))


def test_report_files(report):
    out = report.parent
    for name in ("index.html", "pareto.png", "curves.png", "metrics.csv", "metrics.json"):
        assert (out / name).is_file(), name
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["arm"] for r in rows] == ["mle", "conditional", "unlikelihood"]
    assert rows[2]["diversity_self_bleu"] == ""  # a missing metric is an empty cell, not a crash
    assert json.loads((out / "metrics.json").read_text())[0]["unconditional_mean"] == 0.03
    for name in ("pareto.png", "curves.png"):
        png = (out / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and 10_000 < len(png) < 2_000_000, name


def test_html_is_escaped_and_self_contained(report):
    page = report.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&amp; 1" in page
    assert "<script>" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert page.count('class="samples"') == 3
    assert "n/a" in page  # the third arm's missing metrics


def test_curves_fall_back_to_final_points(tmp_path):
    page = write_report(make_experiment(tmp_path, with_curves=False)).read_text()
    assert "only the final points are shown" in page


def test_pareto_frontier():
    points = {"a": (1.0, 5.0), "b": (2.0, 3.0), "c": (3.0, 4.0), "d": (4.0, 1.0), "e": (2.0, 3.0), "f": (1.0, 6.0)}
    # c is dominated by b, f by a; b and e tie, so neither dominates the other
    assert pareto_frontier(points) == ["a", "b", "e", "d"]
    assert pareto_frontier({"only": (0.0, 0.0)}) == ["only"]
    assert pareto_frontier({}) == []


def test_renders_in_headless_chromium(report, tmp_path):
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} is missing: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium); set CI to make this a failure")
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}"]
    url = report.resolve().as_uri()
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True).stdout

    table = re.search(r'<table id="metrics-table".*?</table>', dom, re.S)
    assert table, "metrics table missing from the rendered DOM"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(0), re.S).group(1)
    assert body.count("<tr>") == 3
    for img_id in ("pareto-plot", "curves-plot"):
        tag = re.search(rf'<img[^>]*id="{img_id}"[^>]*>', dom)
        assert tag and 'src="data:image/png;base64,' in tag.group(0), img_id

    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,3000", url],
                   capture_output=True, timeout=60, check=True)
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 50_000


def test_seeds_and_causes_tables_in_markdown_and_html(tmp_path):
    from phf.evaluation.causes import causes_table
    from phf.experiment import results_markdown

    root = make_experiment(tmp_path)
    data = json.loads((root / "results.json").read_text())
    arms = data["results"]
    data["results"] = results = {f"{name}-seed{seed}": {**arms[name], "unconditional": metric_block(mean),
                                                        "heldout_loss_deployed": 3.5}
                                 for name, seed, mean in (("mle", 0, 0.03), ("mle", 1, 0.05), ("conditional", 0, 0.01),
                                                          ("conditional", 1, 0.02))}
    results["mle-seed0"]["unconditional"]["causes"] = {"chars": 4000, "count": 20,
                                                      "per_1000_chars": {"E113": 3.0, "E501": 2.0}}
    results["conditional-seed0"]["unconditional"]["causes"] = {"chars": 4000, "count": 4,
                                                              "per_1000_chars": {"E113": 1.0}}
    data["corpus_causes"] = {"chars": 10**6, "count": 700, "per_1000_chars": {"E501": 0.7}}
    (root / "results.json").write_text(json.dumps(data))

    header, rows = seeds_table(results)
    assert header[:3] == ["method", "seeds", "misalignment mean"]
    assert [r[:2] for r in rows] == [["mle", "2"], ["conditional", "2"]]
    assert rows[0][2] == "0.04000 [0.03000, 0.05000]"
    header, rows = causes_table(results, data["corpus_causes"])
    assert header == ["cause", "mle-seed0", "conditional-seed0", "corpus"]
    assert rows[0] == ["E113", "3.00", "1.00", "0.000"] and rows[1] == ["E501", "2.00", "0.00", "0.700"]
    assert rows[-3] == ["all", "5.00", "1.00", "0.700"]
    assert rows[-2] == ["share from causes the corpus shows", "40%", "0%", ""]  # E501 only: 2 of 5
    assert rows[-1] == ["share beyond the corpus's rate of each cause", "86%", "100%", ""]  # (3 + 1.3) / 5

    md = results_markdown(data)
    assert "| conditional | 2 |" in md and "| E113 | 3.00 | 1.00 | 0.000 |" in md
    # results.md opens with the headline and the claims, then the table of arms
    assert md.startswith("**Headline.**") and md.index("**The paper's claims") < md.index("| mle-seed0 |")
    page = write_report(root).read_text()
    assert "Across training seeds" in page and "Misalignment by cause" in page and "share from causes" in page



def _block(mean: float, sem: float | None = 0.001, hit_rate_sem: float | None = 0.01) -> dict:
    """A misalignment block with the standard errors of newer results (None: left out, as in older ones); its hit
    rate is 10 x its mean."""
    block = {"num_samples": 100, "mean": mean, "sem": sem, "median": mean, "expected_max@25": 2 * mean,
             "expected_max@25_sem": None if sem is None else 2 * sem, "hit_rate": 10 * mean,
             "hit_rate_sem": hit_rate_sem}
    return {k: v for k, v in block.items() if v is not None}


def _arms(**methods: list[tuple[float, float]]) -> dict[str, dict]:
    """METHOD-seedN arms from {method: [(misalignment mean, held-out loss) per seed]}; the objective: the method."""
    return {f"{method}-seed{i}": {"objective": method, "tokens_seen": 1000, "unconditional": _block(mean),
                                  "prompted": _block(mean / 2), "heldout_loss_deployed": loss}
            for method, seeds in methods.items() for i, (mean, loss) in enumerate(seeds)}


def test_seed_mean_and_its_standard_error():

    stat = seed_mean([0.03, 0.05], [0.002, 0.004])
    assert stat.mean == pytest.approx(0.04) and (stat.low, stat.high, stat.n) == (0.03, 0.05, 2)
    assert stat.se == pytest.approx(0.0022360680)  # sqrt(0.002^2 + 0.004^2) / 2
    assert stat.spread == pytest.approx(0.02)
    assert seed_mean([0.03], [0.002]).se == pytest.approx(0.002)  # one seed: its own sample standard error
    assert seed_mean([0.03, 0.05], [0.002, None]).se is None  # older results without a standard error
    assert seed_mean([0.03, None], [0.002, 0.004]) is None and seed_mean([]) is None

    results = _arms(mle=[(0.03, 4.0), (0.05, 4.2)])
    results["mle-seed1"]["unconditional"]["hit_rate_sem"] = 0.03
    summary = method_summary(results)["mle"]
    assert summary["arms"] == ["mle-seed0", "mle-seed1"] and summary["seeds"] == 2
    assert summary["unconditional_mean"].se == pytest.approx(0.00070710678)  # sqrt(2 x 0.001^2) / 2
    assert summary["hit_rate"].mean == pytest.approx(0.4)
    assert summary["hit_rate"].se == pytest.approx(0.0158113883)  # sqrt(0.01^2 + 0.03^2) / 2
    assert summary["expected_max"].se == pytest.approx(0.0014142136)
    assert summary["prompted_mean"].mean == pytest.approx(0.02)
    assert summary["heldout_loss"].mean == pytest.approx(4.1) and summary["heldout_loss"].se is None


def test_claims_need_two_standard_errors_and_more_than_the_seed_spread():

    # each method's mean has s.e. sqrt(2 x 0.001^2) / 2 = 0.000707; the difference's: 0.001, so 2 s.e. = 0.002
    results = _arms(unlikelihood=[(0.020, 4.4), (0.020, 4.4)], mle=[(0.030, 4.0), (0.032, 4.0)],
                    conditional=[(0.010, 4.2), (0.011, 4.2)])
    checked = claims(results)
    assert [c["method"] for c in checked] == ["conditional", "unlikelihood"]  # conditional first; mle: the baseline
    conditional = checked[0]
    assert conditional["baseline"] == "mle" and conditional["heldout_loss_change_pct"] == pytest.approx(5.0)
    assert [c["metric"] for c in conditional["comparisons"]] == ["unconditional mean", "hit rate", "expected max@25",
                                                                "prompted mean"]
    mean = conditional["comparisons"][0]
    assert mean["drop"] == pytest.approx(0.0205) and mean["se"] == pytest.approx(0.001)
    assert mean["spread"] == pytest.approx(0.002)  # the larger spread: mle's 0.030-0.032
    assert [c["below"] for c in conditional["comparisons"]] == [True] * 4

    # conditional's seeds 0.005 and 0.045: a drop of 0.006, over 2 s.e. (0.002) but under the spread (0.04)
    spread = claims(_arms(mle=[(0.030, 4.0), (0.032, 4.0)], conditional=[(0.005, 4.2), (0.045, 4.2)]))[0]
    mean = spread["comparisons"][0]
    assert mean["drop"] == pytest.approx(0.006) and mean["drop"] > 2 * mean["se"]
    assert mean["spread"] == pytest.approx(0.04) and mean["below"] is False

    # a drop under 2 s.e.: the seeds agree, but the samples do not tell the means apart
    noisy = _arms(mle=[(0.030, 4.0), (0.030, 4.0)], conditional=[(0.029, 4.2), (0.029, 4.2)])
    assert claims(noisy)[0]["comparisons"][0]["below"] is False

    # older results without hit_rate_sem: that figure cannot be checked (n/a), the others still are
    for m in results.values():
        del m["unconditional"]["hit_rate_sem"]
    below = [c["below"] for c in claims(results)[0]["comparisons"]]
    assert below == [True, None, True, True]
    assert claims(_arms(mle=[(0.03, 4.0)])) == []  # nothing to compare
    single = claims(_arms(mle=[(0.030, 4.0)], conditional=[(0.010, 4.0)]))[0]["comparisons"][0]
    assert single["spread"] is None and single["below"] is True  # one seed each: the standard errors alone decide


def test_finetuning_and_single_seed_methods_against_two_seed_mle():
    # mle's seeds 0.028 and 0.038: a spread of 0.01 that a one-seed method must also beat
    results = _arms(mle=[(0.028, 4.0), (0.038, 4.0)], conditional=[(0.010, 4.2), (0.011, 4.2)],
                    filtering=[(0.027, 4.1)], unlikelihood=[(0.015, 4.3)])
    finetuned = _arms(**{"mle-then-conditional-0.5": [(0.012, 4.1), (0.014, 4.1)]})
    for m in finetuned.values():
        m["objective"] = "conditional"  # a finetuning arm's objective: the one it finetunes with
    every = claims({**results, **finetuned})
    checked = {c["method"]: c for c in every if c["baseline"] == "mle"}
    assert list(checked) == ["conditional", "mle-then-conditional-0.5", "filtering", "unlikelihood"]
    # then the fresh-start claim: conditional from the start (0.0105) against MLE then conditional (0.013)
    fresh = every[-1]
    assert len(every) == 5 and (fresh["method"], fresh["baseline"]) == ("conditional", "mle-then-conditional-0.5")
    assert fresh["comparisons"][0]["drop"] == pytest.approx(0.0025)
    assert fresh["comparisons"][0]["spread"] == pytest.approx(0.002)  # the finetuning arm's seeds
    assert fresh["comparisons"][0]["below"] is True
    assert fresh["heldout_loss_change_pct"] == pytest.approx(100 * 0.1 / 4.1)
    assert checked["mle-then-conditional-0.5"]["baseline"] == "mle"
    assert (checked["mle-then-conditional-0.5"]["seeds"], checked["filtering"]["seeds"]) == (2, 1)
    assert checked["mle-then-conditional-0.5"]["comparisons"][0]["below"] is True
    # one seed against two: mle's spread decides with the standard errors (2 s.e. = 2 sqrt(0.000707^2 + 0.001^2))
    filtering = checked["filtering"]["comparisons"][0]
    assert filtering["drop"] == pytest.approx(0.006) and 2 * filtering["se"] == pytest.approx(0.0024494897)
    assert filtering["spread"] == pytest.approx(0.01) and filtering["below"] is False
    unlikelihood = checked["unlikelihood"]["comparisons"][0]
    assert unlikelihood["spread"] == pytest.approx(0.01) and unlikelihood["below"] is True  # a drop of 0.018
    title, lines = claim_lines(checked["filtering"])
    assert title == "filtering (1 seed) vs mle (2 seeds)"
    assert lines[0].startswith("unconditional mean: no,") and "the spread between mle's seeds = 0.01" in lines[0]
    assert "the larger of the two methods'" in claim_lines(checked["conditional"])[1][0]


def test_standard_errors_come_from_the_metrics_sem_keys():
    results = _arms(mle=[(0.03, 4.0), (0.03, 4.0)], conditional=[(0.01, 4.0), (0.01, 4.0)])
    for m in results.values():  # expected max over 10 samples: its key, and its standard error's, carry the k
        block = m["unconditional"]
        block.pop("expected_max@25_sem")
        # the standard error's key first: the figure's key is found by name, not by its place
        block["expected_max@10_sem"], block["expected_max@10"] = 0.004, block.pop("expected_max@25")
        block["hit_rate_sem"] = 0.02
    summary = method_summary(results)["mle"]
    assert summary["k"] == "10" and summary["expected_max"].se == pytest.approx(0.004 / 2 ** 0.5)
    assert summary["hit_rate"].se == pytest.approx(0.02 / 2 ** 0.5)
    by_metric = {c["metric"]: c for c in claims(results)[0]["comparisons"]}
    assert by_metric["expected max@10"]["se"] == pytest.approx(0.004) and by_metric["hit rate"]["se"] == 0.02


def test_headline_table_and_markdown():

    results = _arms(mle=[(0.030, 4.0), (0.032, 4.2)], conditional=[(0.010, 4.2), (0.011, 4.2)])
    header, rows = headline_table(results)
    assert header[:4] == ["method", "seeds", "unconditional misalignment ± s.e.", "ratio to mle"]
    # the samples' standard error, then the seeds' range, which it does not include
    assert rows[0][:4] == ["mle", "2", "0.03100 ± 0.00071 [0.03000, 0.03200]", "1.00"]
    assert rows[1][:5] == ["conditional", "2", "0.01050 ± 0.00071 [0.01000, 0.01100]", "0.34",
                           "0.105 ± 0.007 [0.100, 0.110]"]
    assert rows[0][7:9] == ["4.1000 [4.0000, 4.2000]", "+0.0%"] and rows[1][7:9] == ["4.2000 [4.2000, 4.2000]", "+2.4%"]
    for m in results.values():  # older results: no standard error of the hit rate
        del m["unconditional"]["hit_rate_sem"]
    md = headline_markdown(results)
    assert "| conditional | 2 | 0.01050 ± 0.00071 [0.01000, 0.01100] | 0.34 | 0.105 ± n/a [0.100, 0.110] |" in md
    assert "- **conditional (2 seeds) vs mle (2 seeds)**" in md
    assert "unconditional mean: yes, 0.0105 vs 0.031 (-66.1%)" in md and "hit rate: n/a" in md
    assert "held-out loss as deployed: +2.4% vs mle" in md
    # without an mle method, the first method is the baseline
    assert "ratio to conditional" in headline_markdown(_arms(conditional=[(0.01, 4.0)], filtering=[(0.02, 4.1)]))


def test_one_colour_per_method():

    arms = ["mle-seed0", "conditional-seed0", "mle-then-conditional-0.5-seed0", "mle-seed1", "conditional-seed1",
            "mle-then-conditional-0.5-seed1", "unlikelihood"]
    assert [method_name(a) for a in arms[:3]] == ["mle", "conditional", "mle-then-conditional-0.5"]
    assert method_name("unlikelihood") == "unlikelihood" and method_name("x-seedling") == "x-seedling"
    assert list(method_arms(arms)) == ["mle", "conditional", "mle-then-conditional-0.5", "unlikelihood"]
    assert list(seed_groups(dict.fromkeys(arms))) == ["mle", "conditional", "mle-then-conditional-0.5"]
    styles = method_styles(arms)
    assert list(styles) == list(method_arms(arms)) and len({s.colour for s in styles.values()}) == 4


def test_frontier_is_computed_on_the_method_means():

    # mle's better seed (0.01, 4.0) dominates conditional; mle's mean (0.03, 4.0) does not
    results = _arms(mle=[(0.01, 4.0), (0.05, 4.0)], conditional=[(0.02, 4.1)], filtering=[(0.04, 4.2), (0.04, 4.2)])
    assert pareto_frontier({a: (m["unconditional"]["mean"], m["heldout_loss_deployed"])
                            for a, m in results.items()}) == ["mle-seed0"]
    points = {p.method: p for p in method_points(results, capability("heldout_loss_deployed", results)[0])}
    assert {m: p.frontier for m, p in points.items()} == {"mle": True, "conditional": True, "filtering": False}
    mle = points["mle"]
    assert (mle.x, mle.y) == (pytest.approx(0.03), pytest.approx(4.0)) and mle.seeds == [(0.01, 4.0), (0.05, 4.0)]
    assert mle.xerr == (pytest.approx(0.00070710678),) * 2  # ± the seed mean's standard error
    assert mle.yerr == (0.0, 0.0)  # held-out loss has no standard error: the seeds' lowest to highest
    assert points["conditional"].xerr == (0.001, 0.001) and points["conditional"].yerr is None  # one seed


def test_seed_band_interpolates_onto_the_points_all_seeds_cover():

    xs, mean, low, high = seed_band([([0, 100, 200], [1.0, 3.0, 5.0]), ([50, 200, 300], [2.0, 2.0, 9.0])])
    assert xs.tolist() == [50, 100, 200]  # the range both seeds cover
    assert mean.tolist() == [2.0, 2.5, 3.5] and low.tolist() == [2.0, 2.0, 2.0] and high.tolist() == [2.0, 3.0, 5.0]
    assert seed_band([([0, 1], [1.0, 2.0]), ([2, 3], [1.0, 2.0])]) is None


def test_headline_comes_before_the_first_plot(tmp_path):
    root = make_experiment(tmp_path)
    data = json.loads((root / "results.json").read_text())
    data["results"] = {f"{arm}-seed{s}": {**m, "unconditional": metric_block(m["unconditional"]["mean"] + s / 100)}
                       for s in (0, 1) for arm, m in data["results"].items()}
    for arm in data["results"]:
        shutil.copytree(root / arm.rpartition("-seed")[0], root / arm)
    (root / "results.json").write_text(json.dumps(data))
    page = write_report(root).read_text()
    headline = page.index('<table id="headline-table">')
    assert headline < page.index("<img") and headline < page.index('id="metrics-table"')
    table = re.search(r'<table id="headline-table">.*?</table>', page, re.S).group(0)
    assert [re.sub("<.*?>", "", r).split("\n")[0] for r in re.findall(r"<tr><td>(.*?)</td>", table)] == \
        ["mle", "conditional", "unlikelihood"]
    assert "<td>0.03500 ± 0.00141 [0.03000, 0.04000]</td>" in table  # mle: 0.03 and 0.04, s.e. sqrt(2 x 0.002^2) / 2
    assert '<ul id="claims"><li class="main"><b>conditional (2 seeds) vs mle (2 seeds)</b>' in page
    assert "Colours and bars" in page and "from the lowest to the highest seed" in page
    for name in ("pareto.png", "curves.png"):
        assert (root / "report" / name).read_bytes().startswith(PNG_MAGIC)


def test_arm_names_read_back_as_their_method():
    from phf.headline import FINETUNED, arm_name, method_name

    assert arm_name("conditional", 1) == "conditional-seed1" and method_name("conditional-seed1") == "conditional"
    finetuned = arm_name("conditional", 0, finetuned_at=0.5)
    assert finetuned == "mle-then-conditional-0.5-seed0"
    assert FINETUNED.match(method_name(finetuned))["method"] == "conditional"
    assert arm_name("mle") == method_name("mle") == "mle"
