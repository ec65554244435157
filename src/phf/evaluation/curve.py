"""Misalignment during training, for misalignment-against-tokens curves (docs/method.md, Scaling).

At log-spaced steps the callback samples from the model being trained (in eval mode: no dropout,
unlike the reference code), scores the samples and appends a point to `curve.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from phf.config import Config
from phf.evaluation.metrics import misalignment
from phf.model_folder import ModelInfo
from phf.sampling.generate import LoadedModel, sample
from phf.scorers import get_scorer


def log_spaced_steps(max_steps: int, points: int) -> set[int]:
    """`points` steps halving back from the last one: max, max/2, max/4, ... (at least step 1)."""
    return {max(1, round(max_steps / 2**k)) for k in range(points)}


class MisalignmentCurve(TrainerCallback):
    def __init__(self, cfg: Config, tokenizer, info: ModelInfo, path: Path, tokens_already: int, tokens_per_step: int):
        self.cfg, self.tokenizer, self.info, self.path = cfg, tokenizer, info, Path(path)
        self.tokens_already, self.tokens_per_step = tokens_already, tokens_per_step
        self.scorer = get_scorer(cfg.scorer)
        self.steps: set[int] = set()

    def on_train_begin(self, args, state, control, **kwargs):
        self.steps = log_spaced_steps(state.max_steps, self.cfg.evaluation.curve_points)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step not in self.steps or not state.is_world_process_zero:
            return
        model.eval()
        try:
            texts = sample(LoadedModel(model, self.tokenizer, self.info), self.cfg.sampling,
                           [""] * self.cfg.evaluation.curve_samples, desc=f"curve point at step {state.global_step}")
        finally:
            model.train()
        scores = self.scorer.score_texts(texts)
        m = misalignment([s for s in scores if s is not None], self.cfg.evaluation.hit_threshold)
        point = {"step": state.global_step,
                 "num_tokens": self.tokens_already + state.global_step * self.tokens_per_step,
                 "misalignment": m["mean"], "sem": m["sem"], "hit_rate": m["hit_rate"]}
        with self.path.open("a") as f:
            f.write(json.dumps(point) + "\n")
