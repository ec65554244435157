"""Packing: scored documents -> one memory-mapped token stream with a per-token score.

Each token carries the score of the segment it belongs to (docs/method.md, Objectives: R_j = -s(i(j)));
documents are separated by EOS (score 0). The stream is cut into fixed-length blocks when it is
read (`PackedBlocks`), so one packing serves any context length, and RAM does not grow with
the corpus: documents are read, tokenised and appended a batch at a time.

Filtering and conditional training are transforms here, not losses (docs/method.md, Objectives): after them
both train by plain MLE on the packed blocks;
- filtering drops documents with avg_score > threshold;
- conditional training puts its control tokens before each segment (`phf.data.control`: `<|aligned|>`
  if score <= threshold else `<|misaligned|>` in the paper; graded or per-attribute tokens beyond it),
  except for a random `drop_token_fraction` of segments.

Where the previous segment ends a line, the tags go before its newline token rather than after it
(`x = f(a,<|aligned|>\n      b)`): the newline and the next line's indentation stay together, as in
untagged code. After a tag, a model would have to write the indentation without the newline beside it;
a small model then breaks continuation lines (more E128 "continuation line under-indented" than with the
tags before the newline, and than MLE; the figures: docs/method.md, How phf implements it). The tags still
come before every token of their segment.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from filelock import FileLock
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from phf.data.control import ATTRIBUTE_SCORES, ControlScheme, resolve
from phf.data.scored import read_scored, scored_files
from phf.errors import PHFError

PACKING_VERSION = 2  # 2: tags before the previous line's newline; packings of other versions are not reused


@dataclass(frozen=True)
class Transform:
    """What the packer does to the scored corpus. Thresholds are numbers here (percentiles resolved)."""

    filter_threshold: float | None = None  # drop documents with avg_score above it
    control: ControlScheme | None = None  # conditional training: tag segments
    drop_token_fraction: float = 0.0
    seed: int = 0

    def key(self, tokenizer_id: str, scored: dict) -> str:
        """The packed stream's cache key: everything it is built from, the scored data's identity (`scored_info`)
        included, so a data folder scored again from another corpus is never read from an old stream."""
        blob = json.dumps({**asdict(self), "tokenizer": tokenizer_id, "scored": scored, "packing": PACKING_VERSION},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def resolve_threshold(value: float | str, data_dir: Path, column: str) -> float:
    """A number, or 'pNN': the NN-th percentile of the training split's segment scores
    (column 'scores') or documents' average scores (column 'avg_score')."""
    if not isinstance(value, str):
        return float(value)
    values = read_scored(data_dir, "train", [column])[column].combine_chunks()
    if column == "scores":
        values = values.flatten()
    return resolve(value, np.asarray(values))


def line_end_ids(tokenizer) -> set[int]:
    """Ids of the tokens that end a line (their text ends in a newline: "\n", "  \n", "\r\n", ...)."""
    return {i for token, i in tokenizer.get_vocab().items()
            if tokenizer.convert_tokens_to_string([token]).endswith(("\n", "\r"))}


def tag_segments(segments: list[list[int]], tags: list[list[int]], line_ends: set[int]) -> tuple[list[int], list[int]]:
    """One document's segment ids joined with each segment's tags before it: before the token that ends the
    previous segment's line where there is one, else at the segment's start. Returns the ids and, for each,
    the index of the segment it belongs to (a tag belongs to the segment it announces)."""
    ids, owners = [], []
    for index, (segment, tag) in enumerate(zip(segments, tags, strict=True)):
        moved = tag and ids and ids[-1] in line_ends
        line_end = (ids.pop(), owners.pop()) if moved else None
        ids += tag
        owners += [index] * len(tag)
        if line_end:
            ids.append(line_end[0])
            owners.append(line_end[1])
        ids += segment
        owners += [index] * len(segment)
    return ids, owners


def pack(data_dir: Path, split: str, tokenizer, transform: Transform, out_dir: Path, batch_docs: int = 256) -> dict:
    """Pack one split into `out_dir` (tokens.bin, scores.bin, meta.json); returns meta. Reuses a finished packing."""
    out_dir = Path(out_dir)
    meta_path = out_dir / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(out_dir / "lock"):  # two runs packing one stream at once: the second waits, then reuses it
        if meta_path.exists():
            return json.loads(meta_path.read_text())
        return _pack(data_dir, split, tokenizer, transform, out_dir, batch_docs)


def _pack(data_dir: Path, split: str, tokenizer, transform: Transform, out_dir: Path, batch_docs: int) -> dict:
    meta_path = out_dir / "meta.json"
    dtype = np.uint16 if len(tokenizer) <= 2**16 else np.uint32
    eos = tokenizer.eos_token_id
    control = transform.control
    several = control is not None and len(control.tokens) > 1  # tags of scorer.attributes too
    vocab = tokenizer.get_vocab()  # built anew by every call: once here
    tag_ids = {t: vocab.get(t) for tokens in (control.tokens if control else ()) for t in tokens}
    if None in tag_ids.values():
        raise ValueError(f"the tokenizer lacks control tokens {[t for t, i in tag_ids.items() if i is None]}; "
                         "load it with phf.data.tokenizer.load_tokenizer(..., control_tokens)")
    rng = np.random.default_rng(transform.seed)
    line_ends = line_end_ids(tokenizer) if control is not None else set()
    # The Rust tokenizer directly, without offsets (twice as fast on many short segments), and with
    # special tokens encoded as text: a literal "<|endoftext|>" in a document is not EOS.
    encoder = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    encoder.encode_special_tokens = True
    stats = {"documents": 0, "documents_filtered": 0, "tokens": 0, "aligned_tokens": 0,
             "control_tokens": dict.fromkeys(tag_ids, 0)}
    aligned_bound = control.cuts[0][0] if control else 0.0
    files = scored_files(data_dir, split)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    columns = ["texts", "scores", "avg_score"] + ([ATTRIBUTE_SCORES] if several else [])
    with open(out_dir / "tokens.bin.tmp", "wb") as tok_f, open(out_dir / "scores.bin.tmp", "wb") as score_f, \
            tqdm(total=rows, desc=f"packing {split}", unit="doc") as bar:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_docs, columns=columns):
                docs = batch.to_pydict()
                bar.update(len(docs["texts"]))
                keep = [i for i, avg in enumerate(docs["avg_score"])
                        if transform.filter_threshold is None or avg <= transform.filter_threshold]
                stats["documents_filtered"] += len(docs["texts"]) - len(keep)
                segments = [seg for i in keep for seg in docs["texts"][i]]
                encoded = iter(e.ids for e in encoder.encode_batch_fast(segments, add_special_tokens=False))
                ids, scores = [], []
                for i in keep:
                    doc_scores = docs["scores"][i]
                    others = docs[ATTRIBUTE_SCORES][i] if several else [[]] * len(doc_scores)
                    tags = []
                    for score, other_scores in zip(doc_scores, others, strict=True):
                        names = control.tags([score, *other_scores]) if control is not None and \
                            rng.random() >= transform.drop_token_fraction else []
                        for t in names:
                            stats["control_tokens"][t] += 1
                        tags.append([tag_ids[t] for t in names])
                    doc_ids, owners = tag_segments([next(encoded) for _ in doc_scores], tags, line_ends)
                    ids += doc_ids
                    # Tags carry their segment's score (the scorer.name one: the reward of every objective).
                    scores += [doc_scores[o] for o in owners]
                    ids.append(eos)
                    scores.append(0.0)
                ids_arr, scores_arr = np.asarray(ids, dtype=dtype), np.asarray(scores, dtype=np.float32)
                tok_f.write(ids_arr.tobytes())
                score_f.write(scores_arr.tobytes())
                stats["documents"] += len(keep)
                stats["tokens"] += len(ids_arr)
                stats["aligned_tokens"] += int((scores_arr <= aligned_bound).sum())
    if stats["tokens"] == 0:
        raise PHFError(f"packing {split} produced no tokens (every document filtered out?)")
    for name in ("tokens.bin", "scores.bin"):
        os.replace(out_dir / f"{name}.tmp", out_dir / name)
    meta = {**stats, "split": split, "dtype": np.dtype(dtype).name, "transform": asdict(transform),
            "vocab_size": len(tokenizer)}
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


class PackedBlocks(torch.utils.data.Dataset):
    """Fixed-length blocks of a packed stream: {"input_ids", "labels", "scores"} of shape (block_size,).
    The memmap opens lazily, so DataLoader workers each map the file instead of copying it."""

    def __init__(self, packed_dir: Path, block_size: int):
        self.dir = Path(packed_dir)
        self.meta = json.loads((self.dir / "meta.json").read_text())
        self.block_size = block_size
        self._tokens = self._scores = None
        if len(self) == 0:
            raise PHFError(f"{self.dir} holds {self.meta['tokens']} tokens: fewer than one block of {block_size}")

    def __len__(self) -> int:
        return self.meta["tokens"] // self.block_size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self._tokens is None:
            self._tokens = np.memmap(self.dir / "tokens.bin", dtype=self.meta["dtype"], mode="r")
            self._scores = np.memmap(self.dir / "scores.bin", dtype=np.float32, mode="r")
        window = slice(i * self.block_size, (i + 1) * self.block_size)
        ids = torch.from_numpy(self._tokens[window].astype(np.int64))
        return {"input_ids": ids, "labels": ids, "scores": torch.from_numpy(self._scores[window].copy())}
