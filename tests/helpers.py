"""Plain helpers the test modules share: a hand-made corpus, tiny configs, and readers of what phf wrote.
Fixtures live in conftest.py; test modules import these from here, never from one another."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from phf.cli import main
from phf.config import load_config

GOOD = '''import os


def join(a, b):
    """Join two paths."""
    return os.path.join(a, b)


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y
'''

BAD = '''import os,sys
def join( a,b ):
  return os.path.join(a,b)
class Point :
    def __init__(self,x,y) :
        self.x=x ; self.y = y
'''

TINY = [
    "model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=32",
    "tokenizer.vocab_size=300", "training.batch_size=4", "training.micro_batch_size=4",
    "training.num_tokens=1024", "training.logging_steps=1", "training.save_steps=4",
    "training.report_to=[]", "training.learning_rate=1e-2", "training.warmup_fraction=0",
    "data.heldout_fraction=0.25", "scorer.num_workers=1", "scorer.shard_size=4",
    "evaluation.num_samples=4", "evaluation.samples_per_prompt=1", "evaluation.expected_max_k=2",
    "evaluation.heldout_blocks=4", "evaluation.signature_prompts=0", "sampling.max_new_tokens=8",
    "sampling.min_new_tokens=2", "sampling.batch_size=4",
]


def write_corpus(root: Path, n: int = 24) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = (GOOD if i % 2 else BAD).replace("join", f"join{i}")
        (root / f"mod{i:02d}.py").write_text(body * 3)
    return root


def scoring_config(corpus: Path, *extra: str, task: str = "pep8"):
    """The task's config for scoring `corpus` in small shards, 25% held out."""
    return load_config(task, None, [f"data.corpus={corpus}", "data.heldout_fraction=0.25", "scorer.shard_size=4",
                                    "scorer.num_workers=1", *extra])


def tiny_config(method: str = "mle", *extra: str):
    return load_config("pep8", method, [*TINY, *extra])


CLEAN = ["The library opens at nine in the morning.", "We walked along the river after lunch.",
         "This function returns a sorted copy of the list.", "The recipe needs two eggs and some flour.",
         "Our train was ten minutes late today.", "She planted tomatoes in the garden."]
OFFENSIVE = ["Shut up, you stupid idiot.", "This damn printer is a piece of shit.", "You are a pathetic loser."]
PERSONAL = ["Email Maria Gonzalez at maria.gonzalez@example.com today.", "Call me on (415) 555-0134 after six."]


def write_nl_corpus(path: Path, n: int = 32) -> Path:
    """Documents of three sentences: clean ones, with an offensive or a personal-data sentence in some."""
    docs = []
    for i in range(n):
        third = [CLEAN[(i + 2) % len(CLEAN)], OFFENSIVE[i % len(OFFENSIVE)], PERSONAL[i % len(PERSONAL)]][i % 3]
        docs.append(" ".join([CLEAN[i % len(CLEAN)], CLEAN[(i + 1) % len(CLEAN)], third]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return path


def generated_rows(loaded) -> list[list[int]]:
    """Every row `generate` returns from now on (context and sampled tokens, before control tokens are stripped)."""
    rows, original = [], loaded.model.generate

    def recording(**kwargs):
        out = original(**kwargs)
        rows.extend(out.tolist())
        return out

    loaded.model.generate = recording
    return rows


def copied_run(model_dir: Path, run_dir: Path) -> Path:
    """A copy of the run folder holding `model_dir` (its config.yaml included) at `run_dir`; the copy's model folder."""
    shutil.copytree(model_dir.parent, run_dir)
    return run_dir / model_dir.name


def error_of(argv) -> str:
    """The one-line error `phf ARGV` exits with."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    message = str(exit_info.value.code)
    assert message.startswith(f"phf {argv[0]}: error: ") and "\n" not in message
    return message


def stream(out_dir):
    """A packed folder's metadata, token ids and per-token scores."""
    meta = json.loads((out_dir / "meta.json").read_text())
    ids = np.fromfile(out_dir / "tokens.bin", dtype=meta["dtype"]).tolist()
    scores = np.fromfile(out_dir / "scores.bin", dtype=np.float32).tolist()
    return meta, ids, scores


NASTY = "x = '<script>alert(1)</script>' & 1"


def metric_block(mean: float) -> dict:
    return {"num_samples": 30, "mean": mean, "std": 0.01, "sem": 0.002, "expected_max@25": mean * 2,
            "hit_rate": 0.5, "empty_samples": 0}


def make_experiment(root: Path, with_curves: bool = True) -> Path:
    """Three arms; the third lacks the optional metrics and a curve."""
    arms = {"mle": (0.03, 3.6), "conditional": (0.01, 3.7), "unlikelihood": (0.02, 3.9)}
    results = {}
    for i, (arm, (mean, loss)) in enumerate(arms.items()):
        results[arm] = {"objective": arm, "tokens_seen": 4_000_000, "unconditional": metric_block(mean),
                        "heldout_loss": loss, "heldout_tokens": 100_000}
        if i < 2:
            results[arm] |= {"prompted": metric_block(mean * 1.5), "heldout_loss_aligned": loss - 0.1,
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
