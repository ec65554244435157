import pytest

from phf.evaluation.diversity import distinct_n, self_bleu


def test_distinct_n_by_hand():
    texts = ["a b a", "a b"]  # unigrams a b a a b: 2 distinct of 5; bigrams (a b)(b a)(a b): 2 of 3
    assert distinct_n(texts, 1) == pytest.approx(2 / 5)
    assert distinct_n(texts, 2) == pytest.approx(2 / 3)
    assert distinct_n(["x"], 2) == 0.0


def test_self_bleu_is_high_for_copies_and_low_for_different_texts():
    copies = ["def f(x):\n    return x + 1\n"] * 5
    varied = ["import os", "class Point:", "while True: break", "x = [1, 2, 3]", "print('hello world')"]
    assert self_bleu(copies) == pytest.approx(1.0)
    assert self_bleu(varied) < 0.2
    assert self_bleu(["only one"]) is None
