"""Inputs a careful user's probes broke: files that start with a UTF-8 byte-order mark, records nested deeper than
Python can parse, recipes that give a key twice, and a Hugging Face model folder whose tokenizer has no EOS token.
Each reads as meant, costs its own record only, or stops with one line naming the file and the problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from phf.config import ConfigError, load_config, parse_override
from phf.data.corpus import Corpus, CorpusError
from phf.data.scoring import score_corpus
from phf.errors import PHFError
from phf.jsonl import read_prompts
from phf.redteam import Template
from tests.helpers import TINY, error_of, scoring_config

BOM = b"\xef\xbb\xbf"
DEEP = 100_000  # levels of nesting: far past Python's recursion limit (1000)


def texts(path) -> list[str | None]:
    return [r.text for r in Corpus(str(path), suffixes=(".txt",)).records()]


# --- a byte-order mark ---------------------------------------------------------------------------------------

def test_every_corpus_format_reads_a_file_that_starts_with_a_byte_order_mark(tmp_path):
    rows = [{"text": "first"}, {"text": "second"}]
    (tmp_path / "c.jsonl").write_bytes(BOM + "".join(json.dumps(r) + "\n" for r in rows).encode())
    (tmp_path / "c.json").write_bytes(BOM + json.dumps(rows).encode())
    (tmp_path / "c.csv").write_bytes(BOM + b"text,n\nfirst,1\nsecond,2\n")
    for name in ("c.jsonl", "c.json", "c.csv"):
        records = list(Corpus(str(tmp_path / name)).records())
        assert [(r.text, r.error) for r in records] == [("first", None), ("second", None)], name
    (tmp_path / "c.txt").write_bytes(BOM + b"a whole document\n")
    assert texts(tmp_path / "c.txt") == ["a whole document\n"]


def test_a_byte_order_mark_keeps_bad_bytes_and_lines_named_as_before(tmp_path):
    (tmp_path / "c.jsonl").write_bytes(BOM + b'{"text": "fine"}\n{"text": "b\xffd"}\n')
    records = list(Corpus(str(tmp_path / "c.jsonl")).records())
    assert [(r.doc_id, r.text, r.error) for r in records] == [("c.jsonl:1", "fine", None),
                                                               ("c.jsonl:2", None, "not UTF-8")]


def test_prompt_files_and_red_teaming_templates_read_past_a_byte_order_mark(tmp_path):
    (tmp_path / "p.jsonl").write_bytes(BOM + b'{"text": "def f():"}\n{"text": "def g():"}\n')
    assert read_prompts(tmp_path / "p.jsonl") == ["def f():", "def g():"]
    (tmp_path / "t.txt").write_bytes(BOM + b"Write more questions.\n{numbered_list}\n")
    assert Template.load(tmp_path / "t.txt").head == "Write more questions.\n"


def test_a_recipe_reads_the_same_with_a_byte_order_mark_whatever_the_locale(tmp_path):
    """Read as UTF-8 (with or without a mark), never in the locale's encoding: under LC_ALL=C without UTF-8
    mode, Python's default for a file is ASCII."""
    recipe = tmp_path / "mine.yaml"
    recipe.write_bytes(BOM + "# réglages\ntraining: {seed: 7}\n".encode())
    code = f"from phf.config import load_config; print(load_config('pep8', {str(recipe)!r}).training.seed)"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "7", out.stderr[-2000:]


# --- a record nested thousands deep --------------------------------------------------------------------------

def deep(levels: int = DEEP) -> str:
    return "[" * levels + "]" * levels


def test_a_record_nested_too_deep_costs_that_record_only_named_at_its_line(tmp_path):
    lines = [json.dumps({"text": "first"}), '{"text": "a", "meta": ' + deep() + "}",
             '{"text": ' + deep() + "}", json.dumps({"text": "last"})]
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    records = list(Corpus(str(tmp_path / "c.jsonl")).records())
    assert [r.text for r in records] == ["first", None, None, "last"]
    assert [r.doc_id for r in records if r.error] == ["c.jsonl:2", "c.jsonl:3"]
    assert all("nested too deep" in r.error for r in records if r.error)


def test_a_json_file_nested_too_deep_is_named(tmp_path):
    (tmp_path / "c.json").write_text('[{"text": "a", "meta": ' + deep() + "}]")
    with pytest.raises(CorpusError, match=r"c\.json: nested too deep"):
        list(Corpus(str(tmp_path / "c.json")).records())


def test_scoring_skips_and_reports_a_record_nested_too_deep_and_scores_the_rest(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    code = ["import os\n", "def f(a, b):\n    return a+b\n", "x = 1\n", "class C :\n    pass\n", "y=2\n", "z = 3\n"]
    lines = [json.dumps({"text": c}) for c in code]
    lines.insert(3, '{"text": "w = 4\\n", "meta": ' + deep() + "}")
    (root / "code.jsonl").write_text("\n".join(lines) + "\n")
    (root / "deep.json").write_text('[{"text": ' + deep() + "}]")
    report = score_corpus(scoring_config(root, "data.suffixes=[.jsonl,.json]", "data.heldout_fraction=0.5"),
                          tmp_path / "d")
    skipped = dict(item for split in report.values() for item in split["skipped_documents"])
    assert set(skipped) == {"code.jsonl:4", "deep.json"} and all("nested too deep" in why for why in skipped.values())
    assert report["train"]["documents"] + report["heldout"]["documents"] == len(code)
    # data.on_error=fail stops at it, naming it
    with pytest.raises(CorpusError, match=r"code\.jsonl:4: nested too deep"):
        score_corpus(scoring_config(root, "data.suffixes=[.jsonl]", "data.on_error=fail"), tmp_path / "e")


def test_a_prompt_nested_too_deep_is_an_error_naming_its_line(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"text": "def f():"}\n{"text": ' + deep() + "}\n")
    with pytest.raises(PHFError, match=r"p\.jsonl:2: nested too deep"):
        read_prompts(tmp_path / "p.jsonl")


# --- a key given twice in a recipe ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, line", [
    ("training:\n  seed: 1\n  learning_rate: 1.0e-3\n  seed: 2\n", 4),  # in a section
    ("training: {seed: 1}\nmodel: {n_layer: 2}\ntraining: {seed: 2}\n", 3),  # a whole section
    ("objective:\n  name: conditional\n  threshold: 0.0\n  threshold: 0.5\n", 4),
])
def test_a_key_given_twice_in_a_recipe_is_an_error_naming_the_key_the_file_and_the_line(tmp_path, text, line):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(text)
    key = text.splitlines()[line - 1].split(":")[0].strip()
    with pytest.raises(ConfigError, match=rf"mine\.yaml:{line}: duplicate key '{key}'"):
        load_config("pep8", str(recipe))
    with pytest.raises(ConfigError, match="duplicate key"):  # as a preset, too
        load_config("pep8", "mle", preset=str(recipe))


def test_a_key_given_twice_in_a_task_or_a_base_recipe_and_in_an_override_is_refused(tmp_path):
    (tmp_path / "base.yaml").write_text("sampling: {top_p: 0.9, top_p: 0.5}\n")
    (tmp_path / "child.yaml").write_text("extends: base\n")
    with pytest.raises(ConfigError, match=r"base\.yaml:1: duplicate key 'top_p'"):
        load_config("pep8", str(tmp_path / "child.yaml"))
    (tmp_path / "task.yaml").write_text("scorer: {name: pep8}\nscorer: {name: pii}\n")
    with pytest.raises(ConfigError, match=r"task\.yaml:2: duplicate key 'scorer'"):
        load_config(str(tmp_path / "task.yaml"))
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        parse_override("objective={name: conditional, name: mle}")
    message = error_of(["train", f"--method={tmp_path / 'child.yaml'}"])
    assert "base.yaml:1: duplicate key 'top_p'" in message


def test_keys_given_once_and_yaml_merge_keys_still_load(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("training: &t {seed: 5, learning_rate: 1.0e-3}\nevaluation: {num_samples: 8}\n"
                      "sampling: {top_p: 0.9}\n")
    cfg = load_config("pep8", str(recipe))
    assert (cfg.training.seed, cfg.evaluation.num_samples, cfg.sampling.top_p) == (5, 8, 0.9)
    assert parse_override("objective={<<: {name: mle, x: 1}, x: 2}") == {"objective": {"name": "mle", "x": 2}}


# --- a model folder whose tokenizer has no EOS ---------------------------------------------------------------

@pytest.fixture
def llama_without_eos(tmp_path):
    """A tiny Llama folder as some conversions leave one: "</s>" in the vocabulary, but no BOS or EOS named in
    config.json or the tokenizer's config."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path / "llama"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(["def f(x):\n    return x\n"] * 10, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items()
                                                    if k not in ("bos_token_id", "eos_token_id")}))
    assert tokenizer.eos_token is None and tokenizer.bos_token is None
    return folder


def test_a_model_whose_tokenizer_has_no_eos_is_refused_in_one_line_saying_how_to_mend_it(llama_without_eos, tmp_path):
    from phf.lm.local import LocalLM

    folder = llama_without_eos
    out = tmp_path / "s.jsonl"
    for command, output in (("sample", out), ("evaluate", tmp_path / "eval")):
        message = error_of([command, "--model", str(folder), "--output", str(output), *TINY])
        assert f"the tokenizer of {folder} has no EOS token" in message
        assert f'set "eos_token" in {folder}/tokenizer_config.json' in message
    with pytest.raises(PHFError, match="has no EOS token"):
        LocalLM(folder)
    # as the message says: name the EOS in tokenizer_config.json, and the folder samples
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "eos_token": "</s>"}))
    from phf.cli import main

    main(["sample", "--model", str(folder), "-n", "2", "--output", str(out), *TINY])
    assert len(out.read_text().splitlines()) == 2
    assert LocalLM(folder).log_likelihood(["def f(x):"])[0].tokens > 0


def test_a_recipe_or_template_that_is_not_utf8_is_one_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_bytes(b"training:\n  seed: 1  # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not UTF-8 text \(byte 26\)"):
        load_config("pep8", str(recipe))
    template = tmp_path / "t.txt"
    template.write_bytes(b"Write \xff\n{examples}")
    with pytest.raises(PHFError, match="t.txt: not UTF-8 text"):
        Template.load(template)
