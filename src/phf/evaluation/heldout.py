"""Held-out loss: how well a model predicts real text it did not train on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from phf.data.packing import PackedBlocks
from phf.objectives.nll import model_token_nll


def evenly_spread(count: int, at_most: int) -> np.ndarray:
    """At most `at_most` distinct indices of `count` items, spread evenly from the first to the last."""
    return np.unique(np.linspace(0, count - 1, min(count, at_most)).round().astype(int))


@torch.no_grad()
def heldout_loss(model, packed_dir: Path, block_size: int, exclude_ids: set[int], aligned_threshold: float,
                 batch_size: int = 16, max_blocks: int | None = None) -> dict:
    """Mean NLL (nats per token) over the held-out blocks' targets, leaving out `exclude_ids` targets
    (control tokens: a conditional model is not scored on predicting its own tags); also over the
    targets of aligned segments only (segment score <= aligned_threshold)."""
    data = PackedBlocks(packed_dir, block_size)
    # Blocks spread evenly over the split: its first blocks are a few files, whose style may be unusual.
    picked = evenly_spread(len(data), max_blocks or len(data))
    model.eval()
    sums = {"all": [0.0, 0], "aligned": [0.0, 0]}
    excluded = torch.tensor(sorted(exclude_ids), dtype=torch.long)
    for start in tqdm(range(0, len(picked), batch_size), desc="held-out loss", unit="batch"):
        blocks = [data[int(i)] for i in picked[start:start + batch_size]]
        ids = torch.stack([b["input_ids"] for b in blocks])
        scores = torch.stack([b["scores"] for b in blocks])[:, 1:]
        nll, _ = model_token_nll(model, ids.to(model.device))
        nll = nll.cpu()
        keep = ~torch.isin(ids[:, 1:], excluded)
        for name, mask in (("all", keep), ("aligned", keep & (scores <= aligned_threshold))):
            sums[name][0] += float(nll[mask].sum())
            sums[name][1] += int(mask.sum())
    return {"loss": sums["all"][0] / sums["all"][1], "tokens": sums["all"][1],
            "loss_aligned": sums["aligned"][0] / max(sums["aligned"][1], 1)}
