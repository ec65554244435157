"""phf.json, the record of how a model was trained: written and read back, older records, bad records, and
reading a model without the trainer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from phf.errors import PHFError
from phf.model_folder import INFO_FILE, PAPER_TOKENS, ControlTokens, ModelInfo


def test_a_record_reads_back_as_written_and_keeps_keys_it_does_not_know(tmp_path):
    info = ModelInfo("conditional", "pep8", True, "runs/mle/snapshot-0.5",
                     ControlTokens(["pep8"], ["<|aligned|>"], ["<|misaligned|>"], ["<|aligned|>", "<|misaligned|>"]),
                     tokens_seen=4096)
    info.write(tmp_path)
    assert ModelInfo.read(tmp_path) == info
    raw = json.loads((tmp_path / INFO_FILE).read_text())
    (tmp_path / INFO_FILE).write_text(json.dumps({**raw, "written_by": "a later phf"}))
    read = ModelInfo.read(tmp_path)
    read.seen(8192).write(tmp_path)
    assert json.loads((tmp_path / INFO_FILE).read_text()) == {**raw, "tokens_seen": 8192, "written_by": "a later phf"}


def test_folders_without_a_record_or_with_an_old_one(tmp_path):
    plain = ModelInfo.read(tmp_path)  # any Hugging Face model
    assert (plain.objective, plain.conditional, plain.tokens_seen) == (None, False, None)
    # written before graded tokens: conditional, without control_tokens, so the paper's two
    (tmp_path / INFO_FILE).write_text(json.dumps({"objective": "conditional", "conditional": True, "tokens_seen": 10}))
    assert ModelInfo.read(tmp_path).tokens == PAPER_TOKENS


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"control_tokens": {"aligned": []}}', '{"colour": 1}'])
def test_a_bad_record_is_an_error_naming_the_file(tmp_path, text):
    (tmp_path / INFO_FILE).write_text(text)
    if text == '{"colour": 1}':  # an unknown key alone is kept, not refused (a later phf may write more)
        assert ModelInfo.read(tmp_path).extra == {"colour": 1}
        return
    with pytest.raises(PHFError, match=f"{tmp_path / INFO_FILE} is not a phf model record"):
        ModelInfo.read(tmp_path)


def test_sampling_and_local_models_do_not_load_the_trainer():
    code = ("import sys, phf.sampling.generate, phf.lm.local, phf.lm.server; "
            "print(sorted(m for m in sys.modules if m in "
            "('transformers.trainer', 'phf.training.train', 'accelerate')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_saved_model_folder_has_a_card_whose_snippet_samples_it_as_deployed(data_dir, tmp_path):
    """The card (README.md) says what was trained and how to sample it without phf; its snippet runs as it is,
    starts from the aligned tag and never writes a control token; `phf evaluate` adds the figures."""
    import re

    from phf.evaluation.evaluate import evaluate
    from phf.training.train import train
    from tests.helpers import tiny_config

    cfg = tiny_config("conditional", "sampling.max_new_tokens=12", "sampling.min_new_tokens=4")
    model_dir = train(cfg, data_dir, tmp_path / "run")
    folders = [model_dir, *sorted((tmp_path / "run").glob("checkpoint-*"))]
    assert len(folders) > 1
    for folder in folders:
        card = (folder / "README.md").read_text()
        assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-generation\n")
        assert "| objective | conditional (threshold 0.0, drop_token_fraction 0.1" in card
        assert f"| tokens seen | {json.loads((folder / INFO_FILE).read_text())['tokens_seen']:,} |" in card
        assert "never sampled" in card and "## Evaluation" not in card
    card = (model_dir / "README.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", card, re.S)
    assert "['<|endoftext|>', '<|aligned|>']" in snippet and "suppress_tokens=tokenizer.convert_tokens_to_ids(['<|mis" \
        in snippet
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and "<|" not in out.stdout
    evaluate(model_dir, cfg, tmp_path / "elsewhere", data_dir)  # another folder's evaluation: the card is kept
    assert "## Evaluation" not in (model_dir / "README.md").read_text()
    metrics = evaluate(model_dir, cfg, tmp_path / "run" / "eval", data_dir)
    card = (model_dir / "README.md").read_text()
    assert f"| misalignment mean ± s.e. | {metrics['unconditional']['mean']:.5f} ±" in card
    assert f"| held-out loss (deployed) | {metrics['heldout_loss_deployed']:.4f} |" in card
