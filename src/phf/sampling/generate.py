"""Batched sampling with a KV cache. A conditional model starts every sample from `<|aligned|>`,
may never emit `<|misaligned|>`, and has its control tokens stripped from the text (PHF.md, objective 3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from phf.config import SamplingConfig
from phf.data.tokenizer import control_ids
from phf.training.train import PHF_INFO


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    conditional: bool
    info: dict


def load_model(model_dir: str | Path) -> LoadedModel:
    """A phf model folder (model + tokenizer + phf.json), or any HF causal LM folder (treated as unconditional)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"no model in {model_dir} (config.json missing); train one with `phf train`")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()  # eval: no dropout while sampling
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    info_path = model_dir / PHF_INFO
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return LoadedModel(model, tokenizer, bool(info.get("conditional")), info)


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a JSONL file, one {"text": ...} per line; a bad line is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f'{path}:{number}: expected an object with a string "text" field')
        prompts.append(record["text"])
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


def _context_ids(loaded: LoadedModel, prompt: str) -> list[int]:
    """EOS (documents start after one in training), then `<|aligned|>` for a conditional model, then the prompt.
    A conditional model's prompt gets `<|aligned|>` before each line, as every segment had in training."""
    tok = loaded.tokenizer
    ids = [tok.eos_token_id]
    aligned = control_ids(tok)[0]
    if not prompt:
        return ids + ([aligned] if loaded.conditional else [])
    lines = prompt.splitlines(keepends=True) if loaded.conditional else [prompt]
    for line in lines:
        ids += ([aligned] if loaded.conditional else []) + tok(line, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return ids


@torch.no_grad()
def sample(loaded: LoadedModel, cfg: SamplingConfig, prompts: list[str], desc: str = "sampling") -> list[str]:
    """One continuation per entry of `prompts` ("" = unconditional); control tokens stripped, cut at EOS."""
    tok, model = loaded.tokenizer, loaded.model
    aligned, misaligned = control_ids(tok)
    room = model.config.n_positions - cfg.max_new_tokens  # context the model has positions for
    if room < 2:
        raise ValueError(f"sampling.max_new_tokens ({cfg.max_new_tokens}) leaves no room for a prompt in the "
                         f"model's {model.config.n_positions} positions")
    torch.manual_seed(cfg.seed)
    texts = []
    for start in tqdm(range(0, len(prompts), cfg.batch_size), desc=desc, unit="batch"):
        # A prompt too long for the context keeps its end, the part the continuation follows.
        contexts = [_context_ids(loaded, p)[-room:] for p in prompts[start:start + cfg.batch_size]]
        width = max(map(len, contexts))
        # Left padding: every row's last context token sits at the same position, so generation is batched.
        input_ids = torch.tensor([[tok.eos_token_id] * (width - len(c)) + c for c in contexts])
        attention_mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts])
        out = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, do_sample=True,
            temperature=cfg.temperature, top_p=cfg.top_p, top_k=0, max_new_tokens=cfg.max_new_tokens,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id, use_cache=True,
            suppress_tokens=[misaligned] if loaded.conditional else None,
        )
        for row in out[:, width:].tolist():
            if tok.eos_token_id in row:
                row = row[:row.index(tok.eos_token_id)]
            texts.append(tok.decode([t for t in row if t not in (aligned, misaligned)], skip_special_tokens=False))
    return texts


