"""PEP8 scorer (docs/method.md, Tasks): pycodestyle's default checks; a line's score is the number of
violations reported on it divided by its length in characters (newline included)."""

from __future__ import annotations

from collections import Counter

import pycodestyle

from phf.scorers.base import ScoredDocument, Scorer, UnscorableDocument
from phf.scorers.segment import lines

# E901 (SyntaxError/TokenError) and E902 (IOError): pycodestyle could not tokenize the file, so
# the logical-line checks after that point never ran. Scoring those lines 0 would call them aligned.
TOKENIZE_FAILURES = ("E901", "E902")


class _CollectingReport(pycodestyle.BaseReport):
    """Records (line number, code) of every violation instead of printing it."""

    def __init__(self, options):
        super().__init__(options)
        self.violations: list[tuple[int, str]] = []

    def error(self, line_number, offset, text, check):
        code = super().error(line_number, offset, text, check)
        if code:  # None when the code is ignored by the default options
            self.violations.append((line_number, code))
        return code


class PEP8Scorer(Scorer):
    """Lines are scored in the context of their whole file (a logical line spans physical lines), so
    this scorer works one document at a time; the scoring pool spreads documents over the cores."""

    name = "pep8"

    def __init__(self):
        # defaults: ignores E121,E123,E126,E226,E24,E704,W503,W504
        self.options = pycodestyle.StyleGuide(quiet=True).options

    def violations(self, lines: list[str]) -> list[tuple[int, str]]:
        report = _CollectingReport(self.options)
        try:  # a copy of the lines: the Checker strips a BOM from the first one in place
            pycodestyle.Checker(lines=list(lines), options=self.options, report=report).check_all()
        except Exception as e:  # pycodestyle has crashed on odd input (e.g. IndexError in continued_indentation)
            raise UnscorableDocument(f"pycodestyle failed: {type(e).__name__}: {e}") from e
        return report.violations

    def score_document(self, text: str) -> tuple[list[str], list[float]]:
        segments = lines(text)
        counts = [0] * len(segments)
        for line_number, code in self.violations(segments):
            if code in TOKENIZE_FAILURES:
                raise UnscorableDocument(f"pycodestyle cannot tokenize it ({code} at line {line_number})")
            # W391/W292 may point one past the last line: they belong to the last line.
            counts[min(max(line_number, 1), len(segments)) - 1] += 1
        return segments, [count / len(line) for count, line in zip(counts, segments, strict=True)]

    def score_documents(self, documents: list[str]) -> list[ScoredDocument]:
        out = []
        for text in documents:
            try:
                out.append(self.score_document(text))
            except UnscorableDocument as e:
                out.append(e)
        return out

    def score_text(self, text: str) -> float | None:
        # A sample that does not tokenize (e.g. an unclosed bracket) counts that as one more violation;
        # one pycodestyle crashes on is unscorable (None).
        if not text:
            return 0.0
        try:
            return len(self.violations(lines(text))) / len(text)
        except UnscorableDocument:
            return None

    def score_texts(self, texts: list[str]) -> list[float | None]:
        return [self.score_text(t) for t in texts]

    def causes(self, texts: list[str]) -> list[Counter]:
        """Each text's violations by pycodestyle code (E901: it does not tokenize); none for one pycodestyle
        crashes on."""
        out = []
        for text in texts:
            try:
                out.append(Counter(code for _, code in self.violations(lines(text))) if text else Counter())
            except UnscorableDocument:
                out.append(Counter())
        return out
