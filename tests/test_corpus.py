"""Reading any corpus: record formats, already-scored records, malformed records reported with file and
line (skipped or fatal), Hugging Face datasets through `datasets`, and a user's own scorer."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phf.config import ScorerConfig
from phf.data.corpus import Corpus, CorpusError, read_hub
from phf.data.scored import read_scored
from phf.data.scoring import score_corpus
from phf.errors import PHFError
from phf.scorers import Segmenter, get_scorer
from tests.helpers import scoring_config

TWEETS = [f"Tweet number {i} is here. It has two sentences!" for i in range(12)]


def records(tmp_path, name, text_field="text"):
    return list(Corpus(str(tmp_path / name), text_field=text_field).records())


def test_every_record_format_reads_the_same_documents(tmp_path):
    rows = [{"body": t, "n": i} for i, t in enumerate(TWEETS[:3])]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "a.csv").write_text("n,body\n" + "".join(f'{r["n"]},"{r["body"]}"\n' for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.json", "a.csv", "a.parquet"):
        got = records(tmp_path, name, "body")
        assert [r.text for r in got] == TWEETS[:3], name
    assert [r.doc_id for r in records(tmp_path, "a.jsonl", "body")] == ["a.jsonl:1", "a.jsonl:2", "a.jsonl:3"]
    assert [r.doc_id for r in records(tmp_path, "a.csv", "body")] == ["a.csv:2", "a.csv:3", "a.csv:4"]


def test_malformed_records_name_their_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": broken\n\n{"other": 1}\n{"text": 3}\n')
    got = records(tmp_path, "bad.jsonl")
    assert got[0].text == "fine"
    assert got[1].doc_id == "bad.jsonl:2" and "not valid JSON" in got[1].error
    assert got[2].doc_id == "bad.jsonl:4" and "no 'text' field (fields: other" in got[2].error
    assert got[3].doc_id == "bad.jsonl:5" and "int, not text" in got[3].error
    (tmp_path / "bad.csv").write_text('text\n"ok"\n"a","b"\n')
    got = records(tmp_path, "bad.csv")
    assert got[1].doc_id == "bad.csv:3" and "more cells" in got[1].error
    (tmp_path / "cols.csv").write_text("tweet\nhello\n")
    with pytest.raises(CorpusError, match="no column 'text' \\(columns: tweet\\)"):
        records(tmp_path, "cols.csv")


def write_tweets(path, bad_line=None):
    lines = [json.dumps({"text": t}) for t in TWEETS]
    if bad_line is not None:
        lines.insert(bad_line, '{"text": "unterminated')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_record_is_skipped_and_reported_or_fatal(tmp_path):
    corpus = write_tweets(tmp_path / "t.jsonl", bad_line=4)
    cfg = scoring_config(corpus, "scorer.name=tests.test_corpus:length_score", task="toxicity")
    report = score_corpus(cfg, tmp_path / "d")
    skipped = [item for split in report.values() for item in split["skipped_documents"]]
    assert skipped == [["t.jsonl:5", skipped[0][1]]] and "not valid JSON" in skipped[0][1]
    assert sum(r["documents"] for r in report.values()) == len(TWEETS)
    fatal = scoring_config(corpus, "scorer.name=tests.test_corpus:length_score", "data.on_error=fail", task="toxicity")
    with pytest.raises(CorpusError, match="t.jsonl:5: not valid JSON"):
        score_corpus(fatal, tmp_path / "d2")


def length_score(texts):
    """A custom scorer for the tests: longer sentences are worse."""
    return [len(t) / 100 for t in texts]


def test_custom_scorer_scores_sentences_and_segments_join_back(tmp_path):
    corpus = write_tweets(tmp_path / "t.jsonl")
    score_corpus(scoring_config(corpus, "scorer.name=tests.test_corpus:length_score", task="toxicity"), tmp_path / "d")
    rows = read_scored(tmp_path / "d", "train").to_pylist() + read_scored(tmp_path / "d", "heldout").to_pylist()
    assert len(rows) == len(TWEETS)
    for row in rows:
        assert row["texts"] == [row["texts"][0], "It has two sentences!"] and row["texts"][0].endswith("here. ")
        assert row["scores"] == [len(t) / 100 for t in row["texts"]]


def test_already_scored_records_are_kept_as_they_are(tmp_path):
    rows = [{"texts": ["Hello. ", "World."], "scores": [0.5, 0.0], "avg_score": 0.25}] * 8
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "scored.parquet")
    report = score_corpus(scoring_config(tmp_path / "scored.parquet", task="toxicity"), tmp_path / "d")
    assert sum(r["prescored"] for r in report.values()) == 8
    assert read_scored(tmp_path / "d", "train").to_pylist()[0]["scores"] == [0.5, 0.0]


def test_custom_scorer_errors_are_clear():
    with pytest.raises(PHFError, match="cannot import 'no_such_module'"):
        get_scorer(ScorerConfig(name="no_such_module:f"))
    with pytest.raises(PHFError, match="has no callable 'nope'"):
        get_scorer(ScorerConfig(name="tests.test_corpus:nope"))
    wrong = get_scorer(ScorerConfig(name="tests.test_corpus:wrong_length"))
    with pytest.raises(PHFError, match="returned 1 scores for 2 texts"):
        wrong.score_texts(["a", "b"])


def wrong_length(texts):
    return [0.0]


@pytest.mark.parametrize("text", [
    "Hello there.  This is   a test!\n\nNew para here? yes.\n  ",
    "  leading space. Then more.",
    "no punctuation at all",
    "\n\n",
    "Dr. Smith went to Washington. He arrived at 5 p.m. on Monday!!! Really?",
])
def test_sentences_join_back_exactly_and_are_never_blank(text):
    segments = Segmenter("sentences").split_all([text])[0]
    assert "".join(segments) == text
    assert all(s.strip() for s in segments) or segments == [text]


def test_sentence_segmentation_keeps_whitespace_with_the_sentence_before():
    assert Segmenter("sentences").split_all(["One. Two!\n\nThree?"])[0] == ["One. ", "Two!\n\n", "Three?"]


def test_hub_datasets_are_read_by_the_datasets_library(tmp_path):
    # The same code path as a hub name, on a local dataset folder (tests never go online).
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write_tweets(folder / "train.jsonl")
    got = list(read_hub(str(folder), "train", None, "text"))
    assert [r.text for r in got] == TWEETS
    assert Corpus("someone/some-dataset").is_hub and not Corpus(str(folder)).is_hub
    assert not Corpus("missing/file.jsonl").is_hub


def test_missing_local_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="corpus not found"):
        Corpus.from_config(scoring_config(tmp_path / "nope.jsonl", task="toxicity").data)
