"""Red teaming: the pool's draw against hand-computed probabilities, the templates' render and parse, a whole
run with scripted LMs, and `phf redteam` end to end on a tiny trained model."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from phf.cli import main
from phf.config import CONFIG_DIR, load_config
from phf.errors import PHFError
from phf.lm.base import LanguageModel
from phf.redteam import Candidate, Template, draw_examples, pool_probabilities, pool_temperature, run_redteam
from tests.helpers import copied_run, error_of


def pool_of(*scores):
    return [Candidate(f"p{i}", 0, scores=[s]) for i, s in enumerate(scores)]


def test_pool_probabilities_by_hand():
    # scores 0, 0.1, 0.3 at T = 0.1: weights e^0, e^1, e^3
    total = 1 + math.e + math.e ** 3
    assert pool_probabilities([0.0, 0.1, 0.3], 0.1) == pytest.approx([1 / total, math.e / total, math.e ** 3 / total])
    # subtracting the max: scores far from 0 at a small T neither overflow nor lose the ratio
    assert pool_probabilities([1000.0, 1001.0], 1.0) == pytest.approx([1 / (1 + math.e), math.e / (1 + math.e)])
    assert pool_probabilities([0.0, 1.0], 1e-4) == pytest.approx([0.0, 1.0])


def test_draws_follow_the_weights_without_replacement_and_repeat_with_the_seed():
    pool = pool_of(0.0, 0.1, 0.3)
    pool.append(Candidate("unscorable", 0, scores=[None]))  # never shown: it has no score
    p = pool_probabilities([0.0, 0.1, 0.3], 0.1)
    rng = np.random.default_rng(0)
    pairs = [frozenset(c.text for c in draw_examples(pool, 2, 0.1, rng)) for _ in range(20000)]
    assert all(len(pair) == 2 and "unscorable" not in pair for pair in pairs)
    # a pair {i, j} is drawn as i then j or j then i: p_i p_j / (1 - p_i) + p_j p_i / (1 - p_j)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        expected = p[i] * p[j] / (1 - p[i]) + p[j] * p[i] / (1 - p[j])
        assert pairs.count(frozenset({f"p{i}", f"p{j}"})) / len(pairs) == pytest.approx(expected, abs=0.01)
    first = [c.text for c in draw_examples(pool, 2, 0.1, np.random.default_rng(7))]
    assert first == [c.text for c in draw_examples(pool, 2, 0.1, np.random.default_rng(7))]
    assert sorted(c.text for c in draw_examples(pool, 4, 0.1, rng)) == ["p0", "p1", "p2"]  # all there are
    # k = 3 at a T so small that two weights underflow to 0: still three distinct prompts, best first
    assert [c.text for c in draw_examples(pool, 3, 1e-5, rng)] == ["p2", "p1", "p0"]


def test_temperature_is_configured_or_the_spread_of_the_pool():
    assert pool_temperature(pool_of(0.0, 0.1), 0.5) == 0.5
    assert pool_temperature(pool_of(0.0, 0.1, 0.2), None) == pytest.approx(np.std([0.0, 0.1, 0.2]))
    assert pool_temperature(pool_of(0.02, 0.02), None) == 1.0  # equal scores: any T draws uniformly


def test_numbered_list_template_renders_and_parses():
    t = Template.load(CONFIG_DIR / "toxicity" / "redteam.txt")
    query = t.render(["Shut up, you", "two\nlines"])
    assert query.startswith(t.head) and query.endswith("\n1. Shut up, you\n2. two lines\n3.")
    assert t.parse(" You are such a\n4. more") == "You are such a"
    assert t.parse("\n4. the first line was empty") is None  # garbage: dropped and counted
    assert t.parse(" ... !\n") is None and t.parse("") is None


def test_python_signature_template_renders_and_parses():
    t = Template.load(CONFIG_DIR / "pep8" / "redteam.txt")
    query = t.render(["def add(a,b):\n", "def f(x):return x\n"])
    # the answer is started for the red LM ("def"), which a small base LM then completes
    assert query.endswith("\n\ndef add(a,b):\n    pass\n\n\ndef f(x):return x\n\n\ndef")
    assert t.parse("  fetch( url ):\n    pass\n") == "def  fetch( url ):\n"
    assert t.parse(" 1\n\n\nclass Node :\n") == "class Node :\n"  # not a signature, then one
    assert t.parse("x = 1\n    def method(self):\n") is None  # no top-level signature


@pytest.mark.parametrize("text, message", [
    ("no placeholder here", "exactly one placeholder"),
    ("{numbered_list}\nand text after it", "must end the template"),
])
def test_malformed_templates_are_named(tmp_path, text, message):
    path = tmp_path / "t.txt"
    path.write_text(text)
    with pytest.raises(PHFError, match=message):
        Template.load(path)


class ScriptedRedLM(LanguageModel):
    """Writes the next line of a script per query: new prompts, a repeat and garbage."""

    name = "scripted-red"

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, seed=0):
        self.calls += 1
        assert all(p.rstrip().endswith(".") and "1. " in p for p in prompts)  # a numbered list to continue
        # per round: two new prompts, one already in the pool, one without text
        return [f" bad {self.calls}-{i}!\n" for i in range(2)] + [" seed one\n", "\n"][:len(prompts) - 2]

    def log_likelihood(self, texts):
        raise NotImplementedError


class EchoTarget(LanguageModel):
    """Continues each prompt with as many '!' as it holds; '?' prompts get an unscorable continuation."""

    name = "echo-target"

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, seed=0):
        return ["?" if "?" in p else " " + "!" * p.count("!") for p in prompts]

    def log_likelihood(self, texts):
        raise NotImplementedError


class BangScorer:
    """Share of '!' in a text (prompt included); None for texts with '?'."""

    def score_texts(self, texts):
        return [None if "?" in t else t.count("!") / len(t) for t in texts]


def redteam_config(*extra):
    # scored with the prompt, which BangScorer's figures below count (the toxicity task scores continuations alone)
    return load_config("toxicity", None, ["redteam.rounds=3", "redteam.new_prompts_per_round=4",
                                          "redteam.continuations_per_prompt=2", "evaluation.score_prompt=true", *extra])


def test_a_three_round_run_grows_the_pool_and_writes_its_results(tmp_path):
    seeds = ["seed one", "seed two!", "seed three!!", "seed one", "what?"]
    result = run_redteam(EchoTarget(), ScriptedRedLM(), BangScorer(), redteam_config(), seeds, tmp_path)
    saved = json.loads((tmp_path / "redteam.json").read_text())
    assert saved == json.loads(json.dumps(result)) and (tmp_path / "redteam.png").stat().st_size > 0
    # "seed one" + " ": 0 of 9 chars; "seed two!" + " !": 2 of 11; "seed three!!" + " !!": 4 of 15; "what?": None
    assert saved["seed_pool"] == {"prompts": 4, "unscorable_prompts": 1, "pool_max": pytest.approx(4 / 15),
                                  "pool_mean": pytest.approx((0 + 2 / 11 + 4 / 15) / 3)}
    assert [r["round"] for r in saved["rounds"]] == [1, 2, 3]
    assert [r["pool_size"] for r in saved["rounds"]] == [6, 8, 10]
    for r in saved["rounds"]:
        assert (r["new_prompts"], r["dropped_duplicate"], r["dropped_unparsable"]) == (2, 1, 1)
        assert r["round_mean"] == pytest.approx(2 / 10)  # "bad r-i!" + " !", same for every continuation
    pool = {c["text"]: c for c in saved["pool"]}
    assert pool["bad 2-1!"]["round"] == 2 and pool["bad 2-1!"]["continuations"] == [" !", " !"]
    assert pool["what?"]["score"] is None and pool["seed one"]["round"] == 0
    scored = [c["score"] for c in saved["pool"] if c["score"] is not None]
    assert saved["rounds"][-1]["pool_mean"] == pytest.approx(sum(scored) / len(scored))
    assert saved["best"][0] == {"text": "seed three!!", "score": pytest.approx(4 / 15), "round": 0}
    assert saved["redteam"]["rounds"] == 3 and saved["red_lm"] == "scripted-red"


def test_the_command_explains_itself():
    out = subprocess.run([sys.executable, "-m", "phf.cli", "redteam", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "usage: phf redteam" in out and "--red-lm SPEC" in out and "KEY=VALUE" in out and "redteam.rounds" in out


def test_a_missing_template_is_a_clear_error_before_any_sampling(tmp_path):
    cfg = redteam_config(f"redteam.template={tmp_path / 'nope.txt'}")
    with pytest.raises(PHFError, match="red-teaming template not found: .*nope.txt"):
        run_redteam(EchoTarget(), ScriptedRedLM(), BangScorer(), cfg, ["a"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert "red-teaming template not found" in error_of(["redteam", "--model", str(tmp_path), "--task", "toxicity",
                                                         f"redteam.template={tmp_path / 'nope.txt'}"])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_mle_model):
    return copied_run(tiny_mle_model, tmp_path_factory.mktemp("redteam") / "run")  # phf redteam writes beside it


SMALL = ["redteam.rounds=3", "redteam.new_prompts_per_round=4", "redteam.continuations_per_prompt=2",
         "redteam.red_max_new_tokens=16"]  # the tiny model has 32 positions


def test_cli_red_teams_a_tiny_trained_model_with_itself(tiny_model, capsys):
    main(["redteam", "--model", str(tiny_model), *SMALL])
    out = capsys.readouterr().out
    assert "| 0 (seed) | 30 |" in out and "| 3 |" in out and "best prompts" in out
    folder = tiny_model.parent / "redteam"
    result = json.loads((folder / "redteam.json").read_text())
    assert len(result["rounds"]) == 3 and result["red_lm"] == result["target"] == str(tiny_model)
    # the run's config.yaml: the pep8 scorer, its prompts and, beside them, its template
    assert result["scorer"] == "pep8" and result["template"] == str(CONFIG_DIR / "pep8" / "redteam.txt")
    for r in result["rounds"]:  # a tiny model rarely writes a signature: whatever it wrote is accounted for
        assert r["new_prompts"] + r["dropped_unparsable"] + r["dropped_duplicate"] == 4
        # the last example (a header gets a `pass` body; a one-liner such as "def f(x):return x" none), then `def`
        assert r["example_query"].endswith("\n\n\ndef")
    assert (folder / "redteam.png").stat().st_size > 0


def test_cli_takes_seed_prompts_and_a_template_of_ones_own(tiny_model, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"text": "def f(a,b):\\n"}\n{"text": "x=1"}\n')
    template = tmp_path / "list.txt"
    template.write_text("Lines of badly styled code:\n{numbered_list}\n")
    main(["redteam", "--model", str(tiny_model), "--red-lm", str(tiny_model), "--prompts", str(seeds),
          "--output", str(tmp_path / "out"), f"redteam.template={template}", *SMALL])
    result = json.loads((tmp_path / "out" / "redteam.json").read_text())
    assert result["seed_pool"]["prompts"] == 2 and result["template"] == str(template)
    assert result["red_lm"] == result["redteam"]["red_lm"] == str(tiny_model)
    # any first line with a letter or digit is a prompt, so even a tiny model's text grows the pool
    assert result["rounds"][-1]["pool_size"] > 2
    assert all(r["example_query"].startswith("Lines of badly styled code:\n1. ") for r in result["rounds"])
