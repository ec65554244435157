import pytest

from phf.config import ScorerConfig
from phf.scorers import UnscorableDocument, get_scorer

pep8 = get_scorer(ScorerConfig(name="pep8"))


def test_line_scores_are_violations_per_character():
    text = "import os\ndef f( x ):\n  return x\n"
    texts, scores = pep8.score_document(text)
    assert texts == ["import os\n", "def f( x ):\n", "  return x\n"]
    # line 2: E302 (expected 2 blank lines), E201, E202 -> 3 violations over 12 characters
    # line 3: E111 (indentation not a multiple of four) -> 1 over 11
    assert scores == [0.0, 3 / 12, 1 / 11]


def test_clean_code_scores_zero_and_segments_join_back():
    text = "\ufeffx = 1\r\ny = [1,\x0c 2]\n"  # BOM, CRLF and a form feed inside a line
    texts, scores = pep8.score_document(text)
    assert "".join(texts) == text
    assert len(texts) == 2  # a form feed does not end a line for Python
    assert scores[0] == 0.0


def test_file_that_does_not_tokenize_is_unscorable_not_aligned():
    with pytest.raises(UnscorableDocument, match="E90"):
        pep8.score_document("x = '''never closed\ny = 1\n")


def test_sample_score_counts_tokenize_failure_as_violation():
    assert pep8.score_text("") == 0.0
    assert pep8.score_text("x = 1\n") == 0.0
    assert pep8.score_text("x = (1,\n") > 0


def test_a_pycodestyle_crash_is_unscorable_not_aligned(monkeypatch):
    import pycodestyle

    def crash(self):  # pycodestyle 2.15 raises IndexError in continued_indentation on some model samples
        raise IndexError("list assignment index out of range")

    monkeypatch.setattr(pycodestyle.Checker, "check_all", crash)
    with pytest.raises(UnscorableDocument, match="pycodestyle failed: IndexError"):
        pep8.score_document("x = 1\n")
    assert pep8.score_texts(["x = 1\n"]) == [None]
    assert pep8.score_documents(["x = 1\n"])[0].args[0].startswith("pycodestyle failed")


def test_statements_join_continuation_lines_and_keep_comments_and_blanks_apart():
    from phf.scorers.segment import statements

    text = ('x = f(a,\n      b)  # two lines\n# a comment\n\ns = """doc\nmore"""\ny = 1 + \\\n    2\n'
            "def g():\n    return [1,\n            2]\nz")
    segments = statements(text)
    assert "".join(segments) == text
    assert segments == ["x = f(a,\n      b)  # two lines\n", "# a comment\n", "\n", 's = """doc\nmore"""\n',
                        "y = 1 + \\\n    2\n", "def g():\n", "    return [1,\n            2]\n", "z"]
    assert statements("") == [""]
    # From the first line Python cannot tokenize on, physical lines.
    broken = "a = 1\nb = (2,\nc = 3\n"
    assert "".join(statements(broken)) == broken and statements(broken)[0] == "a = 1\n"


def test_causes_count_each_violation_code():
    from collections import Counter

    assert pep8.causes(["import os\ndef f( x ):\n  return x\n", "", "x = 1\n"]) == [
        Counter({"E302": 1, "E201": 1, "E202": 1, "E111": 1}), Counter(), Counter()]
    assert pep8.causes(["x = (1,\n"])[0]["E901"] == 1  # does not tokenize
