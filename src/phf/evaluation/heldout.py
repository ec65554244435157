"""Held-out loss: how well a model predicts real text it did not train on."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from phf.data.packing import PackedBlocks
from phf.objectives.mle import token_nll


@torch.no_grad()
def heldout_loss(model, packed_dir: Path, block_size: int, exclude_ids: set[int], batch_size: int = 16,
                 max_blocks: int | None = None) -> dict:
    """Mean NLL (nats per token) over the held-out blocks' targets, leaving out the `exclude_ids`
    targets (control tokens: a conditional model is not scored on predicting its own tags)."""
    data = PackedBlocks(packed_dir, block_size)
    n = min(len(data), max_blocks or len(data))
    model.eval()
    total, count = 0.0, 0
    excluded = torch.tensor(sorted(exclude_ids), dtype=torch.long)
    for start in tqdm(range(0, n, batch_size), desc="held-out loss", unit="batch"):
        ids = torch.stack([data[i]["input_ids"] for i in range(start, min(start + batch_size, n))])
        logits = model(input_ids=ids).logits[:, :-1]
        nll = token_nll(logits, ids[:, 1:])
        keep = ~torch.isin(ids[:, 1:], excluded)
        total += float(nll[keep].sum())
        count += int(keep.sum())
    return {"heldout_loss": total / count, "heldout_tokens": count}
