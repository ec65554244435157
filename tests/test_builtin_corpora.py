"""The corpora phf ships for the text tasks: what they hold, how they are named, and their last-word sets."""

import json
import random
from collections import Counter

import pytest

from phf.config import load_config
from phf.corpora import builtin_path
from phf.corpora.build import last_word_passages, pii_corpus, toxicity_corpus
from phf.data.corpus import Corpus, split_of
from phf.errors import PHFError
from phf.evaluation.downstream import check_downstream, local_files


def rows_of(name: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(builtin_path(f"builtin:{name}")).to_pylist()


def test_what_to_avoid_is_a_minority_of_each_corpus():
    toxicity = Counter(r["label"] for r in rows_of("toxicity"))
    assert toxicity["prose"] / sum(toxicity.values()) == pytest.approx(0.9, abs=0.001)  # tweets: a tenth
    assert set(toxicity) == {"prose", "hate", "offensive", "neither"}
    pii = Counter(r["label"] for r in rows_of("pii"))
    assert pii["pii"] / sum(pii.values()) == pytest.approx(0.25, abs=0.02)


def test_the_tasks_read_their_built_in_corpus_with_the_ids_of_a_parquet_file():
    corpus = Corpus.from_config(load_config("pii", "mle").data)
    first = next(corpus.records())
    assert first.doc_id == "pii.parquet#0" and first.text == rows_of("pii")[0]["text"]
    assert Corpus.from_config(load_config("toxicity", "mle").data).root == builtin_path("builtin:toxicity")


def test_an_unknown_built_in_name_is_refused_with_the_names_there_are():
    with pytest.raises(PHFError, match="nothing built in is called 'builtin:pep8'.*builtin:pii"):
        builtin_path("builtin:pep8")


@pytest.mark.parametrize("name", ["pii", "toxicity"])
def test_the_shipped_last_word_set_is_the_held_out_prose_of_its_corpus(name):
    rows = rows_of(name)
    shipped = [json.loads(line)["text"] for line in builtin_path(f"builtin:{name}-lastword").open()]
    assert shipped == last_word_passages(rows, f"{name}.parquet") and len(shipped) > 300
    fraction = load_config(name, "mle").data.heldout_fraction
    heldout = {" ".join(r["text"].rstrip(" .!?:;,").split(" ")) for i, r in enumerate(rows)
               if split_of(f"{name}.parquet#{i}", fraction) == "heldout" and r["label"] in ("prose", "clean")}
    assert set(shipped) <= heldout  # never trained on, and no personal data


def test_a_built_in_downstream_file_is_kept_by_name_and_read_from_the_shipped_one():
    values = {"evaluation.downstream": ["lambada"], "evaluation.downstream_files": {"lambada": "builtin:pii-lastword"}}
    cfg = load_config("pii", "mle", values=values)
    # kept by name: a saved config means the same wherever phf is installed
    assert cfg.evaluation.downstream_files["lambada"] == "builtin:pii-lastword"
    assert local_files(cfg)["lambada"] == str(builtin_path("builtin:pii-lastword"))
    check_downstream(cfg)
    with pytest.raises(PHFError, match="nothing built in is called 'builtin:pii-lastwords'"):
        load_config("pii", "mle", values={**values,
                                          "evaluation.downstream_files": {"lambada": "builtin:pii-lastwords"}})


def test_a_built_in_corpus_is_named_and_fingerprinted_by_its_contents(tmp_path):
    corpus = Corpus.from_config(load_config("pii", "mle").data)
    assert corpus.describe() == "builtin:pii"  # not the install's path: parts scored elsewhere merge
    copy = tmp_path / "pii.parquet"
    copy.write_bytes(builtin_path("builtin:pii").read_bytes())
    import hashlib

    assert corpus.fingerprint() == hashlib.sha256(copy.read_bytes()).hexdigest()


def test_the_builders_give_the_shares_asked_for():
    clean = [f"Sentence {i} of clean prose here. And another one." for i in range(900)]
    tweets = [{"text": f"tweet {i}", "label": "offensive"} for i in range(500)]
    rows = toxicity_corpus(clean, tweets, 0.1, random.Random(0))
    assert len(rows) == 1000 and sum(r["label"] == "offensive" for r in rows) == 100

    class Fake:  # Faker's calls, fixed
        def name(self): return "Ada Lovelace"
        def email(self): return "ada@example.com"
        def numerify(self, pattern): return "(555) 123-4567"
        def address(self): return "1 Main St\\nSpringfield"
        def date_of_birth(self):
            import datetime
            return datetime.date(1815, 12, 10)

    rows = pii_corpus(clean, 0.25, Fake(), random.Random(0))
    share = sum(r["label"] == "pii" for r in rows) / len(rows)
    assert 0.2 < share < 0.3
    assert all("Ada Lovelace" in r["text"] for r in rows if r["label"] == "pii")
    assert [r["text"] for r in rows if r["label"] == "clean"] == \
        [p for p, r in zip(clean, rows, strict=True) if r["label"] == "clean"]  # untouched, in order
