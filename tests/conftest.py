"""Shared fixtures: a small hand-made Python corpus scored once per session, and one tiny MLE model trained on it.
The plain helpers (tiny configs, the corpus writers, readers) are in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from phf.data.scoring import score_corpus
from tests.helpers import scoring_config, tiny_config, write_corpus


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, corpus_dir) -> Path:
    out = tmp_path_factory.mktemp("data")
    score_corpus(scoring_config(corpus_dir), out)
    return out


@pytest.fixture(scope="session")
def tiny_mle_model(tmp_path_factory, data_dir) -> Iterator[Path]:
    """The model folder of one `tiny_config()` MLE run on `data_dir`, trained once for every test that only uses
    such a model. Shared: read it only. A test that writes beside it (`phf evaluate` or `phf redteam` without
    --output write into its run folder) or changes it works on a copy, `helpers.copied_run`."""
    from phf.training.train import train

    model_dir = train(tiny_config(), data_dir, tmp_path_factory.mktemp("tiny-mle") / "run")
    before = _files(model_dir.parent)
    yield model_dir
    assert _files(model_dir.parent) == before, "a test wrote into the shared tiny_mle_model run folder: copy it"


def _files(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))

