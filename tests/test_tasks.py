"""The toxicity and PII tasks end to end on a local corpus: score, train, sample, evaluate, report."""

import json

import pytest

from phf.cli import main
from phf.config import load_config, methods_of
from tests.helpers import TINY, write_nl_corpus


@pytest.mark.parametrize("task", ["toxicity", "pii"])
def test_every_recipe_of_the_task_loads(task):
    assert methods_of(task)[:6] == ["mle", "filtering", "conditional", "unlikelihood", "rwr", "awr"]
    assert {"conditional-graded", "conditional-guided-w1", "conditional-guided-w3", "conditional-cooldown"} \
        <= set(methods_of(task))
    for method in methods_of(task):
        assert load_config(task, method).scorer.segmenter == "sentences"


@pytest.mark.parametrize("task", ["toxicity", "pii"])
def test_experiment_runs_end_to_end_on_a_local_corpus(capsys, tmp_path, task):
    corpus = write_nl_corpus(tmp_path / "corpus.jsonl")
    main(["experiment", "--task", task, "--corpus", str(corpus), "--methods", "mle", "conditional",
          "--output", str(tmp_path / "run"), *TINY])
    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    assert list(results) == ["mle", "conditional"]
    scored = json.loads((tmp_path / "run" / "data" / "scored" / "report.json").read_text())
    assert scored["train"]["documents"] + scored["heldout"]["documents"] == 32
    # the corpus has offensive / personal sentences: some segments score above zero, most do not
    assert (0 < scored["train"]["share_segments_zero"] < 1 if task == "pii"
            else scored["train"]["mean_segment_score"] > 0)
    samples = (tmp_path / "run" / "conditional" / "eval" / "samples.jsonl").read_text().splitlines()
    assert all(json.loads(line)["score"] is not None for line in samples)
    assert (tmp_path / "run" / "report" / "index.html").exists()


@pytest.mark.parametrize("task", ["toxicity", "pii"])
def test_a_text_task_scores_its_built_in_corpus_offline(tmp_path, task):
    main(["score", "--task", task, "--data", str(tmp_path), "data.max_documents=200"])
    scored = json.loads((tmp_path / "scored" / "report.json").read_text())
    assert scored["train"]["documents"] + scored["heldout"]["documents"] == 200
    assert scored["train"]["skipped"] == 0
    # a minority of the segments is what the model should not imitate (toxicity: a probability, never 0)
    assert (0.5 < scored["train"]["share_segments_zero"] < 1 if task == "pii"
            else scored["train"]["mean_segment_score"] < 0.2)


def test_no_corpus_says_so(tmp_path):
    with pytest.raises(SystemExit, match="no corpus given: pass --corpus"):
        main(["score", "--task", "pii", "--data", str(tmp_path), "data.corpus=null"])
