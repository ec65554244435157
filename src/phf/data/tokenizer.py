"""Tokenizer: a byte-level BPE trained on the training split, or a pretrained one, always with
EOS and the two control tokens of conditional training as special tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

EOS = "<|endoftext|>"
ALIGNED = "<|aligned|>"
MISALIGNED = "<|misaligned|>"
CONTROL_TOKENS = (ALIGNED, MISALIGNED)


def train_bpe(texts: Iterable[str], vocab_size: int, out_dir: Path) -> PreTrainedTokenizerFast:
    """GPT-2-style byte-level BPE (no unknown tokens, any text round-trips), saved in HF format."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, *CONTROL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS)
    hf.save_pretrained(out_dir)
    return load_tokenizer(str(out_dir))


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerFast:
    """Load a tokenizer (a path, or a hub name for users online) and make sure it has EOS, a pad
    token and both control tokens. Control tokens added here are new rows of the embedding,
    initialised by `phf.training.model.build_model`."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"cannot load tokenizer {name_or_path!r}: {e}") from None
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer {name_or_path!r} has no EOS token; phf separates documents with it")
    missing = [t for t in CONTROL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def control_ids(tokenizer) -> tuple[int, int]:
    """(aligned id, misaligned id)."""
    return tuple(tokenizer.convert_tokens_to_ids(list(CONTROL_TOKENS)))
