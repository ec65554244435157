"""Prompts of the prompted scenario drawn from the held-out split, which no model trained on.

For code, the paper prompted with function signatures (CodeSearchNet's); any Python corpus has its own:
every `def` statement of the held-out documents (decorators left out, the signature dedented to column 0,
as a prompt starts a file), one prompt per distinct signature.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

from phf.data.scored import read_scored
from phf.errors import PHFError
from phf.scorers.segment import statements


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
