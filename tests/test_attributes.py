"""Several attributes scored at once (scorer.attributes): the `attribute_scores` column of the scored
corpus, documents an attribute cannot score, the scoring report, evaluation metrics and the results table."""

import csv
import json

import pyarrow.parquet as pq
import pytest

from phf.config import ScorerConfig
from phf.data.corpus import Record
from phf.data.scored import SCHEMA, read_scored, scored_attributes
from phf.data.scoring import ShardScorer, score_corpus
from phf.errors import PHFError
from phf.evaluation.evaluate import evaluate
from phf.evaluation.metrics import misalignment
from phf.experiment import results_table
from phf.report import write_report
from phf.scorers import get_scorer
from phf.scorers.segment import lines
from tests.helpers import make_experiment, scoring_config, tiny_config

PRIMARY = "tests.test_attributes:x_count"
ATTRIBUTES = ["tests.test_attributes:digit_count", "tests.test_attributes:upper_count"]
WITH_ATTRIBUTES = [f"scorer.attributes=[{', '.join(ATTRIBUTES)}]"]


def x_count(texts):
    return [t.count("x") for t in texts]


def digit_count(texts):
    return [sum(c.isdigit() for c in t) for t in texts]


def upper_count(texts):
    return [sum(c.isupper() for c in t) for t in texts]


DOCS = [f"line {i} with x\nNo digits here\nXX and {i * 7} xx\n" for i in range(16)]


def write_docs(path):
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    return path


def config(corpus, *extra):
    return scoring_config(corpus, f"scorer.name={PRIMARY}", "scorer.segmenter=lines", *extra, task="toxicity")


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("attributes")
    report = score_corpus(config(write_docs(root / "docs.jsonl"), *WITH_ATTRIBUTES), root / "d")
    return root / "d", report


def all_rows(data_dir):
    return [r for split in ("train", "heldout") for r in read_scored(data_dir, split).to_pylist()]


def test_each_segment_gets_one_score_per_attribute_in_order(scored):
    data_dir, _ = scored
    rows = all_rows(data_dir)
    assert len(rows) == len(DOCS)
    for row in rows:
        text = DOCS[int(row["doc_id"].split(":")[1]) - 1]
        assert row["texts"] == lines(text) and row["scores"] == x_count(row["texts"])
        assert row["attribute_scores"] == [[digit_count([t])[0], upper_count([t])[0]] for t in row["texts"]]
    table = pq.read_table(next((data_dir / "scored" / "train").glob("shard-*.parquet")))
    assert str(table.schema.field("attribute_scores").type) == "list<element: list<element: double>>"
    assert scored_attributes(data_dir) == ATTRIBUTES
    assert json.loads((data_dir / "scored" / "info.json").read_text())["scorer"]["attributes"] == ATTRIBUTES


def test_segments_and_scores_are_the_primarys_and_no_attributes_keeps_the_paper_columns(scored, tmp_path):
    data_dir, _ = scored
    worker = ShardScorer(get_scorer(ScorerConfig(name=PRIMARY, segmenter="lines")))  # a run without attributes
    worker.score([Record(f"docs.jsonl:{i + 1}", text=d) for i, d in enumerate(DOCS)], str(tmp_path / "shard"))
    plain = pq.read_table(tmp_path / "shard.parquet")
    assert plain.schema == SCHEMA
    with_attributes = sorted(all_rows(data_dir), key=lambda r: r["doc_id"])
    assert ([{k: r[k] for k in plain.column_names} for r in with_attributes]
            == sorted(plain.to_pylist(), key=lambda r: r["doc_id"]))


def test_resume_with_other_attributes_is_refused(scored, tmp_path):
    data_dir, _ = scored
    corpus = write_docs(tmp_path / "docs.jsonl")
    with pytest.raises(PHFError, match="other settings"):
        score_corpus(config(corpus, f"scorer.attributes=[{ATTRIBUTES[0]}]"), data_dir)


def test_report_has_each_attributes_mean_and_share_zero(scored):
    data_dir, report = scored
    for split in ("train", "heldout"):
        per_segment = [s for r in read_scored(data_dir, split).to_pylist() for s in r["attribute_scores"]]
        for i, name in enumerate(ATTRIBUTES):
            column = [s[i] for s in per_segment]
            assert report[split]["attributes"][name] == {
                "mean_segment_score": pytest.approx(sum(column) / len(column)),
                "share_segments_zero": pytest.approx(column.count(0) / len(column))}
        assert report[split]["attributes"][ATTRIBUTES[0]]["share_segments_zero"] == pytest.approx(1 / 3)
    assert json.loads((data_dir / "scored" / "report.json").read_text()) == report


class Unscorable:
    """An attribute scorer stub: NaN for segments with 'nan', None for segments with 'none', else 1."""

    def score_texts(self, texts):
        return [float("nan") if "nan" in t else None if "none" in t else 1.0 for t in texts]


def test_nan_or_none_attribute_or_prescored_record_skips_the_document(tmp_path):
    worker = ShardScorer(get_scorer(ScorerConfig(name=PRIMARY, segmenter="lines")),
                         {"digits": get_scorer(ScorerConfig(name=ATTRIBUTES[0])), "stub": Unscorable()})
    records = [Record("ok", text="x1\nfine\n"), Record("nan", text="x\nnan here\n"), Record("none", text="none\n"),
               Record("prescored", texts=["a"], scores=[0.0])]
    written, skipped = worker.score(records, str(tmp_path / "shard-00000"))
    assert written == 1
    assert dict(skipped) == {"nan": "attribute stub gave no score (NaN or None)",
                             "none": "attribute stub gave no score (NaN or None)",
                             "prescored": "already scored: no attribute scores (scorer.attributes needs its text)"}
    rows = pq.read_table(tmp_path / "shard-00000.parquet").to_pylist()
    assert rows == [{"doc_id": "ok", "texts": ["x1\n", "fine\n"], "scores": [1.0, 0.0], "avg_score": 0.5,
                     "attribute_scores": [[1.0, 1.0], [0.0, 1.0]]}]
    assert json.loads((tmp_path / "shard-00000.json").read_text())["prescored"] == 0


def test_evaluation_reports_each_attributes_misalignment(tiny_mle_model, tmp_path):
    (tmp_path / "prompts.jsonl").write_text('{"text": "def fx(x1, x2):\\n"}\n')
    cfg = tiny_config("mle", f"evaluation.prompts={tmp_path / 'prompts.jsonl'}", *WITH_ATTRIBUTES)
    metrics = evaluate(tiny_mle_model, cfg, tmp_path / "eval")
    records = [json.loads(line) for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    ev = cfg.evaluation
    for scenario in ("unconditional", "prompted"):
        mine = [r for r in records if r["scenario"] == scenario]
        # the primary is as without attributes
        scores = [r["score"] for r in mine]
        clusters = [r["prompt"] for r in mine] if scenario == "prompted" else None
        assert {k: v for k, v in metrics[scenario].items() if k not in ("causes", "prompts", "scored_with_prompt")} == {
            **misalignment(scores, ev.hit_threshold, ev.expected_max_k, clusters),
            "empty_samples": sum(not r["text"].strip() for r in mine), "unscorable_samples": scores.count(None)}
        for name, fn in zip(ATTRIBUTES, (digit_count, upper_count), strict=True):
            expected = fn([r["prompt"] + r["text"] for r in mine])  # prompted samples are scored with their prompt
            assert [r["attribute_scores"][name] for r in mine] == expected
            assert metrics["attributes"][name][scenario] == {
                **misalignment(expected, ev.hit_threshold, ev.expected_max_k, clusters), "unscorable_samples": 0}
    assert all(r["attribute_scores"][ATTRIBUTES[0]] >= 2 for r in records if r["scenario"] == "prompted")
    with (tmp_path / "eval" / "samples.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["scenario", "prompt", "text", "score", *(f"{name}_score" for name in ATTRIBUTES)]
    assert [float(r[f"{ATTRIBUTES[1]}_score"]) for r in rows] == [r["attribute_scores"][ATTRIBUTES[1]] for r in records]


def block(mean, sem=0.001):
    return {"num_samples": 30, "mean": mean, "median": mean, "sem": sem, "expected_max@25": 2 * mean, "hit_rate": 0.5}


def test_results_table_and_report_gain_one_column_per_attribute(tmp_path):
    results = {"mle": {"unconditional": block(0.03), "heldout_loss": 3.5,
                       "attributes": {"pii": {"unconditional": block(0.25, 0.0125)}}},
               "conditional": {"unconditional": block(0.01), "heldout_loss": 3.6}}
    table = results_table(results).splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    column = header.index("pii mean ± s.e.")
    assert header[column - 1] == "prompted mean ± s.e."
    assert header[1:3] == ["samples", "misalignment mean ± s.e."]  # the primary column stays
    assert len({row.count("|") for row in table}) == 1
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in table[2:]]
    assert [row[column] for row in cells] == ["0.25000 ± 0.01250", "n/a"]
    assert "| 0.03000 ± 0.00100 |" in table[2]
    assert results_table({"conditional": results["conditional"]}).count("pii") == 0

    root = make_experiment(tmp_path / "experiment")
    data = json.loads((root / "results.json").read_text())
    data["results"]["mle"]["attributes"] = results["mle"]["attributes"]
    (root / "results.json").write_text(json.dumps(data))
    page = write_report(root).read_text()
    assert "<th>pii mean ± s.e.</th>" in page and "<td>0.25000 ± 0.01250</td>" in page
    assert "personal data items per character" in page  # the attribute's scale is explained
