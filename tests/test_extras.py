"""The core install and the extras: what needs a missing extra stops in one line that names it; the core alone
scores, trains, samples and evaluates the PEP8 task (tests/core_install.sh, run with the extras' modules hidden)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from phf.extras import EXTRAS, MissingExtra, needs
from phf.scorers import Segmenter

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_module_of_the_extra_is_named_with_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scrubadub", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r"^scorer pii needs phf's 'text' extra \(scrubadub is not installed\): "
                                           r"pip install 'phf\[text\]'$"):
        with needs("text", "scorer pii"):
            import scrubadub.detectors  # noqa: F401
    # a module that is no part of the extra (a broken install, a bug) keeps its own error
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        with needs("text", "scorer pii"):
            import no_such_module  # noqa: F401


def test_sentences_need_the_text_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)
    with pytest.raises(MissingExtra, match=r"pip install 'phf\[text\]'"):
        Segmenter("sentences").split_all(["One. Two."])
    assert Segmenter("lines").split_all(["a\nb\n"]) == [["a\n", "b\n"]]  # lines need nothing


def test_the_core_alone_runs_the_pep8_pipeline_and_names_missing_extras(tmp_path):
    """Every process of the script (phf's scoring workers too) starts with the extras' modules hidden."""
    hidden = sorted(set().union(*EXTRAS.values()))
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({hidden!r}))\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "tests" / "core_install.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for extra in ("text", "eval", "remote", "tensorboard", "ray"):
        assert f"pip install 'phf[{extra}]'" in done.stdout
