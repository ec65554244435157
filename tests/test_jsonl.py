"""JSONL files phf reads back from its own outputs: a record cut off by a kill is dropped, other damage is named."""

from __future__ import annotations

import json

import pytest

from phf.errors import PHFError
from phf.jsonl import output_records
from phf.report import write_report
from tests.helpers import make_experiment


def test_a_cut_off_last_record_is_dropped_and_blank_lines_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n\n{"step": 2}\n{"step": 3, "lo')
    assert output_records(path) == [{"step": 1}, {"step": 2}]
    path.write_text("")
    assert output_records(path) == []


def test_a_bad_record_before_the_last_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "curve.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(PHFError, match=r"curve\.jsonl:2: not valid JSON"):
        output_records(path)


def test_report_reads_curves_and_samples_cut_off_by_a_kill(tmp_path):
    root = make_experiment(tmp_path)
    for path in (root / "mle" / "curve.jsonl", root / "mle" / "eval" / "samples.jsonl"):
        path.write_text(path.read_text() + json.dumps({"num_tokens": 5_000_000})[:9])
    page = write_report(root).read_text()
    assert page.count('class="samples"') == 3 and "only the final points are shown" not in page
