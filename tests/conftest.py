"""Shared fixtures: a small hand-made Python corpus, scored once per session, and tiny configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from phf.config import load_config
from phf.data.scoring import score_corpus

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


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, corpus_dir) -> Path:
    out = tmp_path_factory.mktemp("data")
    score_corpus(scoring_config(corpus_dir), out)
    return out


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
    import json

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
