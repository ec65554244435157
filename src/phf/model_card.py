"""A model folder's card (`README.md`, with the Hugging Face Hub's metadata header): what phf trained, how to
sample it as it was trained to be sampled without phf, and its evaluation figures once `phf evaluate` has run.

Written beside phf.json by `phf train` (the model, every checkpoint and snapshot) and rewritten with the figures
by `phf evaluate` when it evaluates into the model's own run folder (`<run>/eval/`).
"""

from __future__ import annotations

from pathlib import Path

from phf.files import write_atomic
from phf.metrics_table import table
from phf.model_folder import ModelInfo
from phf.sampling.generate import context_window

CARD = "README.md"
PAPER = "[Korbak et al. 2023, Pretraining Language Models with Human Preferences](https://arxiv.org/abs/2302.08582)"

SNIPPET = '''```python
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path = "{path}"  # this folder, or its name on the Hub
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path).eval()
start = tokenizer.convert_tokens_to_ids({start})
control = set(tokenizer.convert_tokens_to_ids({control}))
out = model.generate(torch.tensor([start]), attention_mask=torch.ones(1, len(start), dtype=torch.long),
                     do_sample=True, temperature={temperature}, top_p={top_p}, top_k=0, min_new_tokens={min_new},
                     max_new_tokens={max_new}, pad_token_id=tokenizer.eos_token_id,
                     suppress_tokens={never})
new = out[0, len(start):].tolist()
new = new[:new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new
print(tokenizer.decode([t for t in new if t not in control]))
```'''


def _settings(info: ModelInfo) -> str:
    return ", ".join(f"{k} {v}" for k, v in info.settings.items()) or "no settings"


def _sampling(info: ModelInfo, model_config, sampling, path: str) -> str:
    eos = "<|endoftext|>"
    tokens = info.tokens if info.conditional else None
    start = [eos, *(tokens.aligned if tokens else [])]
    never = sorted(set(tokens.all) - set(tokens.aligned)) if tokens else []
    how = (f"A conditional model is deployed as it was trained: every sample starts from `{eos}` and the aligned "
           f"control token{'s' if len(tokens.aligned) > 1 else ''} {', '.join(f'`{t}`' for t in tokens.aligned)}; "
           f"{', '.join(f'`{t}`' for t in never)} {'is' if len(never) == 1 else 'are'} never sampled; control tokens "
           "are removed from the text. A prompt gets the aligned tokens before each of its lines."
           if tokens else f"An unconditional model: samples start from `{eos}`, as its training documents did.")
    snippet = SNIPPET.format(path=path, start=start, control=list(tokens.all) if tokens else [],
                             never=f"tokenizer.convert_tokens_to_ids({never})" if never else "None",
                             temperature=sampling.temperature, top_p=sampling.top_p,
                             min_new=min(sampling.min_new_tokens, sampling.max_new_tokens),
                             max_new=sampling.max_new_tokens)
    return (f"{how} Sampled as phf samples it (temperature {sampling.temperature}, top-p {sampling.top_p}, "
            f"no top-k, {sampling.min_new_tokens} to {sampling.max_new_tokens} new tokens; context "
            f"{context_window(model_config)} positions):\n\n{snippet}\n\nWith phf: `phf sample --model {path}`.")


def _figures(metrics: dict) -> str:
    header, rows = table({"this model": metrics}, brief=True)
    lines = [f"| {name} | {value} |" for name, value in zip(header[1:], rows[0][1:], strict=True)
             if value != "n/a" and not name.startswith("ratio to")]
    return ("Measured by `phf evaluate` (`eval/metrics.json` of its run folder); misalignment is the scorer's score of "
            "the samples, lower is better:\n\n| metric | value |\n|---|---|\n" + "\n".join(lines))


def card_text(info: ModelInfo, model_config, sampling, path: str, metrics: dict | None = None) -> str:
    tags = ["phf", "pretraining-with-human-feedback", *([info.objective] if info.objective else [])]
    tokens_seen = f"{info.tokens_seen:,}" if info.tokens_seen is not None else "unknown"
    parts = [
        "---\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n"
        + "".join(f"- {t}\n" for t in tags) + "---",
        f"# A {info.objective} language model trained with phf",
        f"Pretrained with human feedback ({PAPER}) by phf: every segment of the corpus was scored by a reward "
        "function, and the training objective used the scores.",
        "| | |\n|---|---|\n"
        f"| objective | {info.objective} ({_settings(info)}) |\n"
        f"| scorer (misalignment, higher is worse) | {info.scorer} |\n"
        f"| corpus | {info.corpus or 'n/a'} |\n"
        f"| tokens seen | {tokens_seen} |\n"
        f"| finetuned from | {info.init_from or 'none (trained from scratch)'} |\n"
        f"| architecture | {type(model_config).__name__.removesuffix('Config')}, "
        f"{getattr(model_config, 'num_hidden_layers', '?')} layers x {getattr(model_config, 'hidden_size', '?')} |",
        "## How to sample it\n\n" + _sampling(info, model_config, sampling, path),
    ]
    if metrics:
        parts.append("## Evaluation\n\n" + _figures(metrics))
    return "\n\n".join(parts) + "\n"


def write_card(folder: str | Path, info: ModelInfo, sampling, metrics: dict | None = None) -> None:
    """The card of a phf model folder (its config.json saved), from `info` (its phf.json) and `metrics`."""
    from transformers import AutoConfig

    folder = Path(folder)
    write_atomic(folder / CARD, card_text(info, AutoConfig.from_pretrained(folder), sampling, str(folder), metrics))

