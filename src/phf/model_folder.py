"""A phf model folder: what `phf train` leaves and every other command reads.

A model folder is a plain Hugging Face model (config.json, weights, tokenizer files) plus `phf.json`, a
`ModelInfo` saying how the model was trained. Sampling needs it to deploy the model as trained (a conditional
model starts from its aligned tokens and never writes the others; docs/method.md, objective 3), finetuning
(`model.init_from`) counts the tokens already seen, and evaluation reports the objective.

Written by `phf train` into the final model (`<run>/model/`), every checkpoint and every snapshot. Read by
`phf sample`, `phf evaluate`, `phf serve`, `phf redteam` and `LocalLM` (through `phf.sampling.load_model`),
by `phf train` for `model.init_from`, and by `phf experiment`. A folder without it is any Hugging Face causal
LM, sampled unconditionally. This module imports nothing of phf, so reading a model never loads the trainer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from phf.errors import PHFError

MODEL_DIR = "model"  # a run folder's final model
INFO_FILE = "phf.json"


@dataclass(frozen=True)
class ControlTokens:
    """A conditional model's control tokens, by role: `aligned` (level 0 of each attribute: what a sample
    starts from), `worst` (the last level of each: what guidance steers away from) and `all` (never sampled)."""

    attributes: list[str]
    aligned: list[str]
    worst: list[str]
    all: list[str]


# phf.json written before graded and multi-attribute tokens named no tokens: they were the paper's two.
PAPER_TOKENS = ControlTokens([], ["<|aligned|>"], ["<|misaligned|>"], ["<|aligned|>", "<|misaligned|>"])


@dataclass(frozen=True)
class ModelInfo:
    objective: str | None = None  # None: not trained by phf
    scorer: str | None = None
    conditional: bool = False
    init_from: str | None = None  # the model it was finetuned from
    control_tokens: ControlTokens | None = None  # a conditional model's
    tokens_seen: int | None = None  # init_from's included; None: not known (not trained by phf)
    settings: dict = field(default_factory=dict)  # the objective's settings (objective.*, less its name)
    corpus: str | None = None  # data.corpus
    extra: dict = field(default_factory=dict, compare=False)  # keys of later phf versions, kept on rewrite

    @property
    def tokens(self) -> ControlTokens:
        """The control tokens of a conditional model (the paper's two when its phf.json predates them)."""
        return self.control_tokens or PAPER_TOKENS

    def seen(self, tokens: int) -> ModelInfo:
        return replace(self, tokens_seen=tokens)

    def write(self, folder: str | Path) -> None:
        fields = asdict(self)
        extra = fields.pop("extra")
        if self.control_tokens is None:
            del fields["control_tokens"]
        (Path(folder) / INFO_FILE).write_text(json.dumps({**extra, **fields}, indent=1))

    @classmethod
    def read(cls, folder: str | Path) -> ModelInfo:
        """The folder's phf.json, or the info of a model phf did not train when it has none."""
        path = Path(folder) / INFO_FILE
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
            tokens = raw.pop("control_tokens", None)
            known = {k: raw.pop(k) for k in ("objective", "scorer", "conditional", "init_from", "tokens_seen",
                                             "settings", "corpus") if k in raw}
            return cls(**known, control_tokens=ControlTokens(**tokens) if tokens else None, extra=raw)
        except (ValueError, TypeError, AttributeError) as e:
            raise PHFError(f"{path} is not a phf model record ({e}); it says how the model was trained: "
                           "restore it from the run's checkpoints, or delete it to use the folder as a plain "
                           "model") from None


def has_model(folder: str | Path) -> bool:
    """A folder holding a model phf finished training (its phf.json is written last)."""
    return (Path(folder) / INFO_FILE).exists()


def model_fingerprint(folder: str | Path) -> list:
    """What changes when a model is trained again at the same path: the size and modification time of its weights
    and config. A hub name or an endpoint has none ([]): if the model behind such a name changes, nothing here
    can tell. Evaluations, red teaming and KL's cached reference samples record it, and are redone when it
    changes."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = [f for f in folder.iterdir() if f.name == "config.json" or f.suffix in (".safetensors", ".bin")]
    return sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files)
