"""The experiment report: files, metrics, escaping, the Pareto frontier, and a real headless-browser render."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from phf.report import pareto_frontier, write_report
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
    from phf.report import seeds_table

    root = make_experiment(tmp_path)
    data = json.loads((root / "results.json").read_text())
    results = data["results"]
    for name, seed, mean in (("mle", 0, 0.03), ("mle", 1, 0.05), ("conditional", 0, 0.01), ("conditional", 1, 0.02)):
        results[f"{name}-seed{seed}"] = {**results[name], "unconditional": metric_block(mean),
                                         "heldout_loss_deployed": 3.5}
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
    page = write_report(root).read_text()
    assert "Across training seeds" in page and "Misalignment by cause" in page and "share from causes" in page
