"""PEP8 scorer (PHF.md, Tasks): pycodestyle's default checks; a line's score is the number of
violations reported on it divided by its length in characters (newline included)."""

from __future__ import annotations

import io

import pycodestyle

from phf.scorers.base import Scorer, UnscorableDocument

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
    name = "pep8"

    def __init__(self):
        self.options = pycodestyle.StyleGuide(quiet=True).options  # defaults: ignores E121,E123,E126,E226,E24,E704,W503,W504

    def violations(self, lines: list[str]) -> list[tuple[int, str]]:
        report = _CollectingReport(self.options)
        try:  # a copy of the lines: the Checker strips a BOM from the first one in place
            pycodestyle.Checker(lines=list(lines), options=self.options, report=report).check_all()
        except Exception as e:  # pycodestyle has crashed on odd input (e.g. IndexError in continued_indentation)
            raise UnscorableDocument(f"pycodestyle failed: {type(e).__name__}: {e}") from e
        return report.violations

    @staticmethod
    def lines(text: str) -> list[str]:
        """Physical lines as Python reads them (\n, \r\n, \r), endings kept; unlike str.splitlines,
        a form feed or \x1c does not end a line."""
        return io.StringIO(text, newline="").readlines()

    def score_document(self, text: str) -> tuple[list[str], list[float]]:
        lines = self.lines(text)
        counts = [0] * len(lines)
        for line_number, code in self.violations(lines):
            if code in TOKENIZE_FAILURES:
                raise UnscorableDocument(f"pycodestyle cannot tokenize it ({code} at line {line_number})")
            # W391/W292 may point one past the last line: they belong to the last line.
            counts[min(max(line_number, 1), len(lines)) - 1] += 1
        return lines, [count / len(line) for count, line in zip(counts, lines)]

    def score_text(self, text: str) -> float:
        # A sample that does not tokenize (e.g. an unclosed bracket) counts that as one more violation;
        # one pycodestyle crashes on raises UnscorableDocument.
        if not text:
            return 0.0
        return len(self.violations(self.lines(text))) / len(text)
