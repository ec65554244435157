"""A Hugging Face causal LM run in this process: a phf model folder, any HF model folder, or a hub name.

Sampling is phf's own sampler (`phf.sampling.generate.sample`). Scoring treats every text as a whole
document: log p(text | document start), where the document start is the tokenizer's BOS token, or else
its EOS token (phf documents follow an EOS in training), then the aligned control tokens of a conditional phf model
(the paper's KL evaluation of conditional models). Texts longer than the context window are scored
with a sliding window: every token once, with at least half a window of left context. With guidance
(`phf.sampling.guidance`), both sampling and scoring use the guided next-token distribution
log_softmax(l_aligned + w (l_aligned - l_misaligned)), so a KL measures what guidance costs; with
tags="none", a conditional model is sampled and scored with no control token."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from phf.config import SamplingConfig, build_config
from phf.data.packing import tag_segments
from phf.device import default_device
from phf.errors import PHFError
from phf.lm.base import LanguageModel, TextLogProb
from phf.model_folder import ModelInfo
from phf.sampling.generate import LoadedModel, context_window, load_model, sample


def _load(model: str) -> LoadedModel:
    if Path(model).is_dir() or model.startswith(("/", ".")):  # a path, never to be looked up on the hub
        return load_model(model)
    try:  # a hub name (users online); never a phf model, so unconditional
        hf_model = AutoModelForCausalLM.from_pretrained(model).to(default_device()).eval()
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as e:
        raise PHFError(f"cannot load model {model!r}: no such folder, and the hub says: {e}") from None
    return LoadedModel(hf_model, tokenizer, ModelInfo())


def windows(length: int, first: int, window: int) -> list[tuple[int, int, int]]:
    """(start, end, scored): slices of a sequence of `length` tokens, each at most `window` long, that score
    tokens first..length-1 once each; a slice scores its last `scored` tokens. Slice k starts at k half
    windows: every token keeps at least half a window of left context, and which context it gets depends on
    its position only, never on the tokens after it (a prompt scores the same alone or echoed with more)."""
    stride = max(1, window // 2)
    spans, done, start = [], first, 0
    while done < length:
        end = min(start + window, length)
        spans.append((start, end, end - done))
        done, start = end, start + stride
    return spans


class LocalLM(LanguageModel):
    def __init__(self, model: str | Path, batch_size: int = 32, guidance: float = 0.0, tags: str = "aligned",
                 loaded: LoadedModel | None = None):
        # guidance and tags as in SamplingConfig: a conditional model sampled and scored guided, or with no tag;
        # loaded: `model` already loaded (`load_model`), so that its weights are not loaded a second time
        build_config({"sampling": {"guidance": guidance, "tags": tags}})  # the sampling settings' own rules
        self.name, self.guidance, self.tags = str(model), guidance, tags
        self.loaded = loaded if loaded is not None else _load(str(model))
        self.batch_size = batch_size
        self.window = context_window(self.loaded.model.config)  # tokens per forward pass when scoring
        tok = self.loaded.tokenizer
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id  # (LoadedModel has an EOS)
        self.context = [start] + (self.loaded.control("aligned") if tags == "aligned" else [])
        self.worst_context = [start] + self.loaded.control("worst")  # guidance's contrast: as long as `context`
        if guidance and not self.loaded.conditional:
            raise PHFError(f"{model}: guidance contrasts control tokens; it needs a conditionally trained phf model")
        if self.window <= len(self.context):
            raise PHFError(f"{model}: a context window of {self.window} tokens leaves no room for text")

    def generate(self, prompts: list[str], *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int = 0) -> list[str]:
        # No minimum length: the model's own distribution (KL needs samples of the reference itself).
        cfg = SamplingConfig(max_new_tokens=max_new_tokens, min_new_tokens=0, temperature=temperature, top_p=top_p,
                             batch_size=self.batch_size, seed=seed, guidance=self.guidance, tags=self.tags)
        return sample(self.loaded, cfg, list(prompts), desc=f"sampling {self.name}")

    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of `text` as plain text (a control token's string in it stays text, as in sampling's
        prompts), with each token's (start, end) characters in it."""
        enc = self.loaded.tokenizer(text, add_special_tokens=False, split_special_tokens=True,
                                    return_offsets_mapping=True)
        return enc["input_ids"], [tuple(span) for span in enc["offset_mapping"]]

    @torch.no_grad()
    def token_logprobs(self, sequences: list[list[int]], context: list[int] | None = None) -> list[list[float]]:
        """log p of every token of each sequence, after `context` (default: the document start and, for a
        conditional model, its aligned tags) and the tokens before it."""
        context = self.context if context is None else context
        pieces = []  # (sequence number, window of token ids, how many of its last tokens it scores)
        for number, ids in enumerate(sequences):
            full = context + ids
            spans = windows(len(full), len(context), self.window)
            pieces += [(number, full[a:b], scored) for a, b, scored in spans]
        # Similar lengths share a batch, so little of it is padding.
        order = sorted(range(len(pieces)), key=lambda k: len(pieces[k][1]))
        scores: list[list[float]] = [[] for _ in pieces]
        pad = self.loaded.tokenizer.eos_token_id
        for start in range(0, len(order), self.batch_size):
            chosen = order[start:start + self.batch_size]
            lengths = [len(pieces[k][1]) for k in chosen]
            width = max(lengths)
            # Right padding: real tokens keep positions 0.., and causal attention never sees the pads after them.
            device = self.loaded.model.device
            input_ids = torch.tensor([pieces[k][1] + [pad] * (width - n) for k, n in zip(chosen, lengths, strict=True)],
                                     device=device)
            mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths], device=device)
            logprobs = self._next_token_logprobs(input_ids, mask)
            for row, k in enumerate(chosen):
                _, ids, scored = pieces[k]
                n = len(ids)  # the token at position p is predicted at p - 1
                targets = torch.tensor(ids[n - scored:], device=device)
                scores[k] = logprobs[row, n - scored - 1:n - 1].gather(-1, targets[:, None])[:, 0].tolist()
        out: list[list[float]] = [[] for _ in sequences]
        for (number, _, _), piece_scores in zip(pieces, scores, strict=True):
            out[number] += piece_scores  # a sequence's pieces are listed in order
        return out

    def _next_token_logprobs(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """fp32 log-probabilities (sums over long texts stay accurate); guided when guidance is set. A window that
        starts with the aligned context is contrasted with the same window after the worst tags; the later windows of
        a text longer than the context hold no tags, and are scored unguided, as they are scored unconditioned."""
        logprobs = self.loaded.model(input_ids=input_ids, attention_mask=mask).logits.float().log_softmax(-1)
        if not self.guidance:
            return logprobs
        n = len(self.context)
        worst = input_ids.clone()
        # later windows have no tags to swap
        starts = (input_ids[:, :n] == torch.tensor(self.context, device=input_ids.device)).all(-1)
        worst[starts, :n] = torch.tensor(self.worst_context, device=input_ids.device)
        contrast = self.loaded.model(input_ids=worst, attention_mask=mask).logits.float().log_softmax(-1)
        return (logprobs + self.guidance * (logprobs - contrast)).log_softmax(-1)

    def log_likelihood(self, texts: list[str]) -> list[TextLogProb]:
        ids = [self.tokenize(text)[0] for text in texts]
        return [TextLogProb(sum(lps), len(lps), len(text))
                for text, lps in zip(texts, self.token_logprobs(ids), strict=True)]

    def deployed_log_likelihood(self, segmented: list[list[str]]) -> list[TextLogProb]:
        """log p of texts given as their segments, as a conditional model is sampled: its aligned tags before every
        segment, placed as training placed them (`phf.data.packing.tag_segments`), and not counted."""
        if not self.loaded.conditional or self.guidance or self.tags != "aligned":
            raise ValueError(f"{self.name}: the deployed log-likelihood is that of a conditional model sampled "
                             "with its aligned tags, unguided")
        tags, control = self.loaded.control("aligned"), set(self.loaded.control("all"))
        sequences = [tag_segments([self.tokenize(s)[0] for s in segments], [tags] * len(segments),
                                  self.loaded.line_ends())[0] for segments in segmented]
        out = []
        for segments, ids, lps in zip(segmented, sequences, self.token_logprobs(sequences, self.context[:1]),
                                      strict=True):
            text_lps = [lp for token, lp in zip(ids, lps, strict=True) if token not in control]
            out.append(TextLogProb(sum(text_lps), len(text_lps), sum(map(len, segments))))
        return out
