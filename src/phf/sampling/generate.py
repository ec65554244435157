"""Batched sampling with a KV cache, each token drawn by `phf.sampling.nucleus`. A conditional model starts every
sample (and every line of a prompt) from its aligned control tokens, may never emit another level's token, and has
its control tokens stripped from the text (docs/method.md, objective 3); with `sampling.guidance`, it is also
steered away from its worst level."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList, SuppressTokensLogitsProcessor

from phf.config import SamplingConfig
from phf.data.packing import line_end_ids, tag_segments
from phf.device import default_device
from phf.errors import PHFError
from phf.model_folder import ModelInfo
from phf.sampling.guidance import MisalignedGuidance
from phf.sampling.nucleus import NucleusSampler


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    info: ModelInfo
    _line_ends: set[int] | None = field(default=None, repr=False)

    def __post_init__(self):
        # Every context starts with EOS (training puts one before each document) and sampling stops at it: a model
        # whose tokenizer has none (e.g. a Llama folder saved without its special tokens) is refused as it is
        # loaded, not with a traceback mid-sampling.
        if self.tokenizer.eos_token_id is None:
            where = self.tokenizer.name_or_path
            raise PHFError(f"the tokenizer of {where} has no EOS token, which phf starts and ends every document with; "
                           f'set "eos_token" in {where}/tokenizer_config.json to the token that ends its documents '
                           '(e.g. "</s>")')

    @property
    def conditional(self) -> bool:
        return self.info.conditional

    def line_ends(self) -> set[int]:
        if self._line_ends is None:
            self._line_ends = line_end_ids(self.tokenizer)
        return self._line_ends

    def control(self, which: str) -> list[int]:
        """Ids of a conditional model's control tokens: "aligned" (level 0 of each attribute), "worst" or "all"."""
        if not self.conditional:
            return []
        names = getattr(self.info.tokens, which)
        return self.tokenizer.convert_tokens_to_ids(names)


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model")  # one of them: a tokenizer's vocabulary


def load_model(model_dir: str | Path) -> LoadedModel:
    """A phf model folder (model + tokenizer + phf.json), or any HF causal LM folder (treated as unconditional), on
    `default_device()`."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise PHFError(f"no model in {model_dir} (config.json missing); train one with `phf train`")
    if not any((model_dir / name).exists() for name in TOKENIZER_FILES):
        # Without one, transformers may build a tokenizer with no vocabulary: empty samples, scored as aligned.
        raise PHFError(f"no tokenizer in {model_dir} (none of {', '.join(TOKENIZER_FILES)}); save the "
                       "tokenizer the model was trained with into that folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir).to(default_device()).eval()  # eval: no dropout
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # no weights, cut-off weights, unknown model
        raise PHFError(f"cannot load the model in {model_dir}: {str(e).splitlines()[0]}") from None
    info = ModelInfo.read(model_dir)
    context_window(model.config)  # a model whose positions phf cannot tell is refused here, not mid-sampling
    if bad := next((name for name, p in model.named_parameters() if not torch.isfinite(p).all()), None):
        raise PHFError(f"the weights in {model_dir} are not finite (NaN or inf in {bad}): a run that diverged "
                       "was saved there; train it again with a lower training.learning_rate")
    return LoadedModel(model, tokenizer, info)


def context_window(config) -> int:
    """Positions a model has (GPT-2 calls them n_positions, most others max_position_embeddings)."""
    window = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if not window:
        raise PHFError(f"cannot tell the context window of a {type(config).__name__} (no n_positions or "
                       "max_position_embeddings in its config.json)")
    return window


def context_ids(loaded: LoadedModel, prompt: str, level: str | None = "aligned") -> list[int]:
    """EOS (documents start after one in training), then a conditional model's control tokens of `level`
    ("aligned"; "worst" for guidance; None: none), then the prompt. A conditional model's prompt gets them
    before each line, and before the newline that ends it (the next line's, the continuation's), placed as
    training placed every segment's (`phf.data.packing.tag_segments`)."""
    tok = loaded.tokenizer
    tags = loaded.control(level) if level else []
    if not prompt:
        return [tok.eos_token_id, *tags]
    if not loaded.conditional:
        return [tok.eos_token_id, *tok(prompt, add_special_tokens=False, split_special_tokens=True)["input_ids"]]
    lines = prompt.splitlines(keepends=True)
    encoded = [tok(line, add_special_tokens=False, split_special_tokens=True)["input_ids"] for line in lines]
    line_ends = loaded.line_ends()
    ids, _ = tag_segments([*encoded, []], [tags] * (len(lines) + 1), line_ends)
    if tags and encoded[-1][-1:] and encoded[-1][-1] not in line_ends:
        ids = ids[:-len(tags)]  # a prompt ending mid-line: the continuation finishes that line
    return [tok.eos_token_id, *ids]


def left_padded(contexts: list[list[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left padding: every row's last context token sits at the same position, so generation is batched."""
    width = max(map(len, contexts))
    return (torch.tensor([[pad] * (width - len(c)) + c for c in contexts], device=device),
            torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device))


@torch.no_grad()
def sample(loaded: LoadedModel, cfg: SamplingConfig, prompts: list[str], desc: str = "sampling") -> list[str]:
    """One continuation per entry of `prompts` ("" = unconditional); control tokens stripped, cut at EOS."""
    model = loaded.model
    if cfg.guidance and not loaded.conditional:
        raise PHFError("sampling.guidance contrasts control tokens: it needs a model trained with conditional training")
    level = "aligned" if cfg.tags == "aligned" else None
    control, aligned = set(loaded.control("all")), set(loaded.control(level) if level else [])
    suppress = sorted(control - aligned)
    room = context_window(model.config) - cfg.max_new_tokens  # context the model has positions for
    if room < 2:
        raise PHFError(f"sampling.max_new_tokens ({cfg.max_new_tokens}) leaves no room for a prompt in the "
                       f"model's {context_window(model.config)} positions")
    sampler = NucleusSampler(cfg.temperature, cfg.top_p)
    # The sampler's own seed, leaving the caller's random state as it was: training samples mid-run (the
    # misalignment curve), and its dropout and data order must not restart from this seed after each point.
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        return [text for start in tqdm(range(0, len(prompts), cfg.batch_size), desc=desc, unit="batch")
                for text in _sample_batch(loaded, cfg, prompts[start:start + cfg.batch_size], level, room, suppress,
                                          control, sampler)]


def _sample_batch(loaded: LoadedModel, cfg: SamplingConfig, batch: list[str], level: str | None, room: int,
                  suppress: list[int], control: set[int], sampler: NucleusSampler) -> list[str]:
    tok, model = loaded.tokenizer, loaded.model
    # A prompt too long for the context keeps its end, the part the continuation follows.
    input_ids, attention_mask = left_padded([context_ids(loaded, p, level)[-room:] for p in batch],
                                             tok.eos_token_id, model.device)
    processors = [SuppressTokensLogitsProcessor(suppress)] if suppress else []
    if cfg.guidance:
        # The misaligned context has the same length (one tag for one tag), so the same padding.
        misaligned_ids, _ = left_padded([context_ids(loaded, p, "worst")[-room:] for p in batch], tok.eos_token_id,
                                         model.device)
        # Guidance acts on the model's own log-probabilities, before suppression, temperature and top-p.
        processors.insert(0, MisalignedGuidance(model, cfg.guidance, misaligned_ids, attention_mask))
    # The sampler draws the token and comes last; generation is then greedy (do_sample=False), so that
    # transformers adds no warper of its own (not even from the model's generation_config).
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                         logits_processor=LogitsProcessorList([*processors, sampler]),
                         max_new_tokens=cfg.max_new_tokens,
                         min_new_tokens=min(cfg.min_new_tokens, cfg.max_new_tokens),
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id, use_cache=True)
    texts = []
    for row in out[:, input_ids.shape[1]:].tolist():
        if tok.eos_token_id in row:
            row = row[:row.index(tok.eos_token_id)]
        texts.append(tok.decode([t for t in row if t not in control], skip_special_tokens=False))
    return texts


