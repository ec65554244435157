"""Segmentation into the units a score is given to (PHF.md, Tasks): sentences of natural language,
lines of code. Every segmentation is exact: `"".join(segments) == text`, whitespace included."""

from __future__ import annotations

import io
import tokenize
from typing import Literal

SegmenterName = Literal["sentences", "lines"]


class Segmenter:
    def __init__(self, name: SegmenterName = "sentences", batch_size: int = 256):
        self.name, self.batch_size = name, batch_size
        self._nlp = None

    def split_all(self, texts: list[str]) -> list[list[str]]:
        if self.name == "lines":
            return [lines(text) for text in texts]
        if self._nlp is None:
            import spacy

            # spaCy's rule-based sentencizer: punctuation rules, no model to download.
            self._nlp = spacy.blank("en")
            self._nlp.add_pipe("sentencizer")
        return [sentences_of(text, doc) for text, doc in zip(texts, self._nlp.pipe(texts, batch_size=self.batch_size))]


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
    return [text[a:b] for a, b in zip(bounds, bounds[1:])] if text else [text]
