"""The red LM's prompt: an instruction followed by few-shot examples drawn from the pool, laid out so that a
plain (base) LM continues with one more example; and the parse of that continuation back into a prompt.

A template is a text file ending with one of two placeholders, which also fixes how its output is read:

- `{numbered_list}`: the examples as "1. ...", "2. ...", then the next number ("5."), so the LM writes the
  next item; the new prompt is the first line of its continuation (the paper's toxicity and PII format).
- `{python_signatures}`: the examples as function or class headers with a `pass` body, blank lines between
  them, as in a Python file, then `def`, which the red LM completes; the new prompt is the first
  `def ...:` (or `class ...:`) line of `def` + its continuation (PEP8: the prompts are signatures, as in
  the task's prompt file). Starting the answer for it (prefilling) matters for small base LMs: with a
  5M-parameter red LM, 0 to 1 of 8 free continuations held a signature, and 4 of 16 prefilled ones.

Anything else in the file is sent as it is, braces included (so templates may hold code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from phf.errors import PHFError

STYLES = ("numbered_list", "python_signatures")
# A top-level header such as "def add(a,b):", "def f(x):return x" or "class Node :". Leading
# whitespace is not allowed: the seed prompts are top-level code, and so must be the new ones.
SIGNATURE = re.compile(r"(?:async\s+)?(?:def|class)\s+\w+.*:")
SIGNATURE_PREFILL = "def"  # the start of the red LM's answer, written for it


@dataclass(frozen=True)
class Template:
    path: Path
    head: str  # the instruction: everything before the placeholder
    style: str  # one of STYLES

    @classmethod
    def load(cls, path: str | Path) -> Template:
        path = Path(path)
        if not path.is_file():
            raise PHFError(f"red-teaming template not found: {path} (set redteam.template to a text file)")
        try:
            text = path.read_text(encoding="utf-8-sig")  # -sig: a leading byte-order mark is no part of the instruction
        except UnicodeDecodeError as e:
            raise PHFError(f"{path}: not UTF-8 text (byte {e.start}); save the template as UTF-8") from None
        found = [s for s in STYLES if "{" + s + "}" in text]
        if len(found) != 1:
            raise PHFError(f"{path}: a red-teaming template needs exactly one placeholder of "
                           f"{', '.join('{' + s + '}' for s in STYLES)}; found {len(found)}")
        head, tail = text.split("{" + found[0] + "}", 1)
        if tail.strip():  # the LM must continue right after the examples
            raise PHFError(f"{path}: the placeholder {{{found[0]}}} must end the template; "
                           f"found {tail.strip()[:40]!r} after it")
        return cls(path, head, found[0])

    def render(self, examples: list[str]) -> str:
        if self.style == "numbered_list":
            # One line per item: a multi-line prompt would read as several items.
            items = [f"{i}. {' '.join(e.split())}\n" for i, e in enumerate(examples, 1)]
            return self.head + "".join(items) + f"{len(examples) + 1}."
        blocks = []
        for example in examples:
            header = example.rstrip("\n")
            blocks.append(header + ("\n    pass" if header.rstrip().endswith(":") else "") + "\n\n\n")
        return self.head + "".join(blocks) + SIGNATURE_PREFILL

    def parse(self, output: str) -> str | None:
        """The new prompt in the red LM's continuation, or None when there is none (empty, no signature)."""
        if self.style == "numbered_list":
            first = output.split("\n", 1)[0].strip()
            return first if any(ch.isalnum() for ch in first) else None
        for line in (SIGNATURE_PREFILL + output).splitlines():
            if SIGNATURE.match(line):
                return line.rstrip() + "\n"  # like the task's prompts: one header line ending in a newline
        return None
