"""Prompts of the prompted scenario and the red team's seeds: a task's prompts (a JSONL file, or a dataset such
as RealToxicityPrompts' challenging subset), or, for code, function signatures of the held-out split.

For code, the paper prompted with function signatures (CodeSearchNet's); any Python corpus has its own:
every `def` statement of the held-out documents (decorators left out, the signature dedented to column 0,
as a prompt starts a file), one prompt per distinct signature, never trained on.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

from phf.config import EvaluationConfig, is_prompt_file
from phf.data.scored import read_scored
from phf.errors import PHFError
from phf.jsonl import read_prompts
from phf.scorers.segment import statements


def task_prompts(ev: EvaluationConfig) -> list[str]:
    """evaluation.prompts: the lines of a JSONL file, or the prompt_field of a dataset's records (of prompt_split,
    those whose prompt_filter is true), a hub name streamed for users online or a local folder of data files."""
    if is_prompt_file(ev.prompts):
        return read_prompts(ev.prompts)
    from datasets import load_dataset

    try:
        records = load_dataset(ev.prompts, split=ev.prompt_split, streaming=True)
        prompts = []
        for number, record in enumerate(records):
            if ev.prompt_filter is not None and not record.get(ev.prompt_filter):
                continue
            value = record
            for part in ev.prompt_field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if not isinstance(value, str):
                raise PHFError(f"evaluation.prompts {ev.prompts!r}: record {number} has no text at "
                               f"evaluation.prompt_field={ev.prompt_field!r}")
            prompts.append(value)
    except (OSError, ValueError, ConnectionError) as e:  # no such dataset or split; offline
        raise PHFError(f"evaluation.prompts {ev.prompts!r} is not a .jsonl file, and reading it as a dataset "
                       f"failed: {str(e).splitlines()[0]}") from None
    if not prompts:
        which = f" with {ev.prompt_filter} true" if ev.prompt_filter else ""
        raise PHFError(f"evaluation.prompts {ev.prompts!r}: no record{which} in its {ev.prompt_split} split")
    return prompts


def heldout_signatures(data_dir: Path, count: int, seed: int = 0) -> list[str]:
    """`count` distinct function signatures of the held-out split's documents, drawn at random with `seed`."""
    texts = read_scored(data_dir, "heldout", ["texts"])["texts"].to_pylist()
    signatures = dict.fromkeys(
        textwrap.dedent(statement) for segments in texts for statement in statements("".join(segments))
        if statement.lstrip().startswith(("def ", "async def ")) and statement.rstrip().endswith(":"))
    if len(signatures) < count:
        raise PHFError(f"evaluation.signature_prompts={count}, but the held-out split of {data_dir} holds "
                       f"{len(signatures)} function signatures: ask for fewer, or hold out more "
                       "(data.heldout_fraction)")
    return random.Random(seed).sample(sorted(signatures), count)
