"""Segmentation into the units a score is given to (docs/method.md, Tasks): sentences of natural language,
lines of code. Every segmentation is exact: `"".join(segments) == text`, whitespace included."""

from __future__ import annotations

import io
import tokenize
from collections.abc import Iterator
from typing import Literal

from phf.extras import needs

SegmenterName = Literal["sentences", "lines"]
# spaCy refuses a text longer than nlp.max_length (1,000,000 characters) and its memory grows with the length:
# longer documents are split into sentences a piece at a time (a sentence across a cut becomes two segments).
PIECE_CHARS = 100_000


class Segmenter:
    def __init__(self, name: SegmenterName = "sentences", batch_size: int = 256):
        self.name, self.batch_size = name, batch_size
        self._nlp = None

    def split_all(self, texts: list[str]) -> list[list[str]]:
        if self.name == "lines":
            return [lines(text) for text in texts]
        if self._nlp is None:
            with needs("text", "sentence segments (scorer.segmenter=sentences)"):
                import spacy

            # spaCy's rule-based sentencizer: punctuation rules, no model to download.
            self._nlp = spacy.blank("en")
            self._nlp.add_pipe("sentencizer")
        cut = [[piece for _, piece in pieces(text, PIECE_CHARS)] or [text] for text in texts]
        docs = iter(self._nlp.pipe((piece for parts in cut for piece in parts), batch_size=self.batch_size))
        return [[s for piece in parts for s in sentences_of(piece, next(docs))] for parts in cut]


def pieces(text: str, size: int) -> Iterator[tuple[int, str]]:
    """(offset, piece): `text` cut into pieces of at most `size` characters, after a space where there is one."""
    start = 0
    while start < len(text):
        end = len(text) if len(text) - start <= size else text.rfind(" ", start + 1, start + size) + 1 or start + size
        yield start, text[start:end]
        start = end


def lines(text: str) -> list[str]:
    """Physical lines as Python reads them (\n, \r\n, \r), endings kept; unlike str.splitlines, a form
    feed or \x1c does not end a line."""
    return io.StringIO(text, newline="").readlines()


def statements(text: str) -> list[str]:
    """Python's logical lines: a statement together with the physical lines that continue it (inside brackets,
    after a backslash, inside a multi-line string); a comment or blank line outside brackets is one of its own.
    Text Python cannot tokenize is cut into physical lines from the first line it fails on."""
    physical = lines(text)
    ends, depth = [], 0  # ends: 1-based number of each segment's last physical line
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text, newline="").readline):
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth = max(depth - 1, 0)
            elif tok.type == tokenize.NEWLINE or (tok.type == tokenize.NL and depth == 0):
                ends.append(tok.start[0])
    except (tokenize.TokenError, SyntaxError):
        ends += range((ends[-1] if ends else 0) + 1, len(physical) + 1)
    segments, start = [], 0
    for end in sorted(set(ends)):
        if end > start:
            segments.append("".join(physical[start:end]))
            start = end
    if start < len(physical):
        segments.append("".join(physical[start:]))
    return segments or [text]


def sentences_of(text: str, doc) -> list[str]:
    """Cut `text` where spaCy's sentences start, after any whitespace there: the whitespace after a
    sentence (spaCy sometimes opens the next one with it) stays with it, so no segment is blank
    unless the text is, and leading whitespace stays with the first sentence."""
    cuts = []
    for sent in list(doc.sents)[1:]:
        cut = sent.start_char
        while cut < len(text) and text[cut].isspace():
            cut += 1
        if cuts[-1:] != [cut] and cut < len(text):
            cuts.append(cut)
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)] if text else [text]
