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

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NASTY = "x = '<script>alert(1)</script>' & 1"
CHROMIUM = "/usr/bin/chromium"


def _block(mean: float) -> dict:
    return {"num_samples": 30, "mean": mean, "std": 0.01, "sem": 0.002, "expected_max@25": mean * 2,
            "hit_rate": 0.5, "empty_samples": 0}


def make_experiment(root: Path, with_curves: bool = True) -> Path:
    """Three arms; the third lacks the optional metrics and a curve."""
    arms = {"mle": (0.03, 3.6), "conditional": (0.01, 3.7), "unlikelihood": (0.02, 3.9)}
    results = {}
    for i, (arm, (mean, loss)) in enumerate(arms.items()):
        results[arm] = {"objective": arm, "tokens_seen": 4_000_000, "unconditional": _block(mean),
                        "heldout_loss": loss, "heldout_tokens": 100_000}
        if i < 2:
            results[arm] |= {"prompted": _block(mean * 1.5), "heldout_loss_aligned": loss - 0.1,
                             "diversity": {"distinct_1": 0.3, "distinct_2": 0.6, "distinct_3": 0.8, "self_bleu": 0.4}}
        (root / arm / "eval").mkdir(parents=True)
        samples = [{"scenario": "unconditional", "prompt": "", "text": f"def f{j}():\n    return {j}\n",
                    "score": mean * j / 10} for j in range(30)]
        samples += [{"scenario": "prompted", "prompt": "def g", "text": "(): pass", "score": 0.5},
                    {"scenario": "unconditional", "prompt": "", "text": "unscorable", "score": None}]
        samples[0]["text"] = NASTY
        (root / arm / "eval" / "samples.jsonl").write_text("\n".join(json.dumps(s) for s in samples) + "\n")
        if with_curves and i < 2:
            curve = [{"num_tokens": n, "misalignment": mean * 4_000_000 / n} for n in (250_000, 1_000_000, 4_000_000)]
            (root / arm / "curve.jsonl").write_text("\n".join(json.dumps(c) for c in curve) + "\n")
    data = {"task": "pep8", "methods": list(arms), "wall_seconds": 1234.5, "results": results}
    (root / "results.json").write_text(json.dumps(data))
    return root


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
