"""Where phf puts a model it loads."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """Where phf puts a model it loads to train, sample, score or evaluate: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
