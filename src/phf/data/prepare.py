"""From a scored corpus to training inputs: the tokenizer and the packed streams of one objective."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
from filelock import FileLock

from phf.config import Config
from phf.data.control import control_tokens
from phf.data.packing import pack
from phf.data.scored import scored_files, scored_info
from phf.data.tokenizer import load_tokenizer, train_bpe
from phf.files import BUILT_FROM, is_built_from, write_built_from
from phf.objectives import method_of


def training_texts(data_dir: Path, max_chars: int) -> Iterator[str]:
    """Documents of the training split, in order, until `max_chars` characters."""
    seen = 0
    for path in scored_files(data_dir, "train"):
        for batch in pq.ParquetFile(path).iter_batches(64, columns=["texts"]):
            for texts in batch.column("texts").to_pylist():
                text = "".join(texts)
                yield text
                seen += len(text)
                if seen >= max_chars:
                    return


def prepare_tokenizer(cfg: Config, data_dir: Path):
    """The configured pretrained tokenizer, or a BPE trained once on the training split and kept in
    `data_dir/tokenizer-bpeN` (trained again when the data it records was since scored otherwise), with the control
    tokens the objective uses (a graded or multi-attribute scheme adds its own)."""
    if cfg.tokenizer.pretrained:
        return load_tokenizer(cfg.tokenizer.pretrained, control_tokens(cfg))
    out = Path(data_dir) / f"tokenizer-bpe{cfg.tokenizer.vocab_size}"
    inputs = {"scored": scored_info(data_dir), "train_chars": cfg.tokenizer.train_chars}
    # Two runs starting at once on a fresh data folder: one trains the tokenizer, the other waits for it.
    with FileLock(Path(data_dir) / f"{out.name}.lock"):
        # (one trained before phf recorded this is kept: BPE training is the same on the same data)
        if (out / BUILT_FROM).exists() and not is_built_from(out, inputs):
            print(f"{out} was trained on data scored otherwise than {data_dir} holds now: trained again")
            shutil.rmtree(out)
        if not (out / "tokenizer.json").exists():
            print(f"training a {cfg.tokenizer.vocab_size}-token byte-level BPE on the training split -> {out}")
            train_bpe(training_texts(data_dir, cfg.tokenizer.train_chars), cfg.tokenizer.vocab_size, out)
            write_built_from(out, inputs)
    return load_tokenizer(str(out), control_tokens(cfg))


def tokenizer_id_of(tokenizer) -> str:
    """A name for a tokenizer that changes with its vocabulary, merges and added tokens: the packed streams' cache
    key, so text is never read back as tokenized by another tokenizer (one trained again at the same path, a
    model's own)."""
    return "sha256:" + hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def prepare_packed(cfg: Config, data_dir: Path, tokenizer, streams: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Packed streams (cached by transform), by name:
    train           the training split as the objective sees it;
    heldout         the held-out split as it is: never filtered, no control tokens, the same for every objective;
    heldout_tagged  conditional only: the held-out split with its true control tokens (none dropped);
    heldout_deployed  conditional only: the held-out split with the aligned tokens before every segment, as the
                    model is sampled (the deployed capability);
    train_untagged  conditional with objective.cooldown_fraction: the training split without control tokens.
    `streams`: only those of these names (None: all)."""
    method = method_of(cfg)
    wanted = method.streams(cfg, method.transform(cfg, data_dir))
    dirs, tokenizer_id, scored = {}, tokenizer_id_of(tokenizer), scored_info(data_dir)
    for name, (split, transform) in wanted.items():
        if streams is not None and name not in streams:
            continue
        dirs[name] = Path(data_dir) / "packed" / f"{split}-{transform.key(tokenizer_id, scored)}"
        pack(data_dir, split, tokenizer, transform, dirs[name])
    return dirs
