"""Tag cooldown (MeCo, Gao et al. 2025): conditional training for most of the run, then the last share of
the token budget on the same corpus without control tokens. It measures what conditioning costs (the
cooled model is a plain LM again) and what it keeps (does the aligned token still steer it?)."""

from __future__ import annotations

import numpy as np
import torch


class CooldownSchedule(torch.utils.data.Dataset):
    """The blocks of a whole run in training order: item k is the k-th sequence the run trains on. Steps
    before the switch draw tagged blocks, the last `fraction` of the steps untagged ones; each phase walks
    through fresh seeded permutations of its stream. The Trainer reads it in order
    (`train_sampling_strategy="sequential"`), so step s gets the same blocks with any number of processes
    (each takes its share of every batch) and after a resume."""

    def __init__(self, tagged, untagged, steps: int, batch_size: int, fraction: float, seed: int):
        self.phases, self.seed = (tagged, untagged), seed
        self.switch_step = round((1 - fraction) * steps)
        self.switch, self.length = self.switch_step * batch_size, steps * batch_size
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        phase, j = (0, k) if k < self.switch else (1, k - self.switch)
        blocks = self.phases[phase]
        epoch, i = divmod(j, len(blocks))
        if (phase, epoch) not in self._orders:
            self._orders[(phase, epoch)] = np.random.default_rng([self.seed, phase, epoch]).permutation(len(blocks))
        return blocks[int(self._orders[(phase, epoch)][i])]
