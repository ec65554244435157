"""Tagging and filtering on a hand-made scored corpus, checked token by token."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phf.data.control import ControlScheme
from phf.data.packing import PackedBlocks, Transform, pack, resolve_threshold
from phf.data.scored import SCHEMA
from phf.data.tokenizer import ALIGNED, MISALIGNED, train_bpe
from tests.helpers import stream

DOCS = [
    {"doc_id": "a", "texts": ["good line\n", "bad  line\n"], "scores": [0.0, 0.2]},
    {"doc_id": "b", "texts": ["worse  line\n"], "scores": [0.5]},
    {"doc_id": "c", "texts": ["fine\n", "fine\n", "ok\n"], "scores": [0.0, 0.0, 0.1]},
]

PAPER = ControlScheme(((ALIGNED, MISALIGNED),), ((0.0,),))  # the paper's tokens, threshold 0


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("handmade")
    for split in ("train", "heldout"):
        (root / "scored" / split).mkdir(parents=True)
        rows = [{**d, "avg_score": float(np.mean(d["scores"]))} for d in DOCS]
        pq.write_table(pa.Table.from_pylist(rows, SCHEMA), root / "scored" / split / "shard-00000.parquet")
    tokenizer = train_bpe(["".join(d["texts"]) for d in DOCS] * 5, 300, root / "tok")
    return root, tokenizer


def packed(root, tokenizer, transform, out_dir):
    pack(root, "train", tokenizer, transform, out_dir)
    return stream(out_dir)


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_mle_packing_keeps_text_and_gives_each_token_its_segment_score(scored, tmp_path):
    root, tok = scored
    meta, ids, scores = packed(root, tok, Transform(), tmp_path)
    expected_ids, expected_scores = [], []
    for d in DOCS:
        for text, s in zip(d["texts"], d["scores"], strict=True):
            expected_ids += encode(tok, text)
            expected_scores += [s] * len(encode(tok, text))
        expected_ids.append(tok.eos_token_id)  # EOS between documents
        expected_scores.append(0.0)
    assert ids == expected_ids
    assert scores == pytest.approx(expected_scores)
    assert meta["documents"] == 3


def test_conditional_tags_every_segment_and_zero_is_a_real_threshold(scored, tmp_path):
    root, tok = scored
    aligned, misaligned = tok.convert_tokens_to_ids([ALIGNED, MISALIGNED])
    meta, ids, scores = packed(root, tok, Transform(control=PAPER), tmp_path)
    tags = [t for t in ids if t in (aligned, misaligned)]
    # segment scores in order: 0, .2 | .5 | 0, 0, .1  -> aligned iff score <= 0
    assert tags == [aligned, misaligned, misaligned, aligned, aligned, misaligned]
    assert meta["control_tokens"] == {ALIGNED: 3, MISALIGNED: 3}
    # A document's first tag opens it; the next ones go before the newline that ends the previous line, so the
    # newline and the next line's indentation stay together; a tag carries the score of the segment it announces.
    newline, good = encode(tok, "\n"), encode(tok, "good line")
    assert encode(tok, "good line\n") == good + newline
    first = [aligned, *good, misaligned, *newline, *encode(tok, "bad  line\n"), tok.eos_token_id]
    assert ids[:len(first)] == first
    assert scores[:len(good) + 2] == [0.0] * (len(good) + 1) + [pytest.approx(0.2)]
    assert scores[len(good) + 2] == 0.0  # the newline is still the first line's


def test_tags_go_before_the_line_end_of_the_previous_segment_else_at_its_start():
    from phf.data.packing import tag_segments

    # segments 0 and 1 end with a line-end token (9); segment 2 does not; segment 3 has no tag (dropped)
    ids, owners = tag_segments([[1, 9], [2, 9], [3], [4], [5]], [[7], [8], [6], [], [7]], line_ends={9})
    assert ids == [7, 1, 8, 9, 2, 6, 9, 3, 4, 7, 5]
    assert owners == [0, 0, 1, 0, 1, 2, 1, 2, 3, 4, 4]


def test_drop_token_fraction_one_leaves_no_tags(scored, tmp_path):
    root, tok = scored
    aligned, misaligned = tok.convert_tokens_to_ids([ALIGNED, MISALIGNED])
    _, ids, _ = packed(root, tok, Transform(control=PAPER, drop_token_fraction=1.0), tmp_path)
    assert aligned not in ids and misaligned not in ids


def test_filtering_drops_documents_above_the_threshold(scored, tmp_path):
    root, tok = scored
    # avg scores: a=0.1, b=0.5, c=0.0333 -> threshold 0.1 keeps a and c
    meta, ids, _ = packed(root, tok, Transform(filter_threshold=0.1), tmp_path)
    assert meta["documents"] == 2 and meta["documents_filtered"] == 1
    assert ids.count(tok.eos_token_id) == 2
    assert "worse" not in tok.decode(ids)


def test_percentile_thresholds(scored):
    root, _ = scored
    segment_scores = [s for d in DOCS for s in d["scores"]]
    assert resolve_threshold("p50", root, "scores") == pytest.approx(np.percentile(segment_scores, 50))
    assert resolve_threshold("p100", root, "avg_score") == pytest.approx(0.5)
    assert resolve_threshold(0.0, root, "scores") == 0.0


def test_blocks_are_fixed_length_windows(scored, tmp_path):
    root, tok = scored
    pack(root, "train", tok, Transform(), tmp_path)
    blocks = PackedBlocks(tmp_path, 4)
    _, ids, scores = stream(tmp_path)
    assert len(blocks) == len(ids) // 4
    assert blocks[1]["input_ids"].tolist() == ids[4:8]
    assert blocks[1]["scores"].tolist() == pytest.approx(scores[4:8])


def test_special_token_text_in_a_document_is_not_a_special_token(scored, tmp_path):
    root, tok = scored
    (tmp_path / "scored" / "train").mkdir(parents=True)
    row = {"doc_id": "x", "texts": ["s = '<|endoftext|>'\n"], "scores": [0.0], "avg_score": 0.0}
    pq.write_table(pa.Table.from_pylist([row], SCHEMA), tmp_path / "scored" / "train" / "shard-00000.parquet")
    _, ids, _ = packed(tmp_path, tok, Transform(), tmp_path / "packed")
    assert ids.count(tok.eos_token_id) == 1 and ids[-1] == tok.eos_token_id
