"""Tokenizer: a byte-level BPE trained on the training split, or a pretrained one, always with
EOS and the two control tokens of conditional training as special tokens (and, for graded or
multi-attribute conditional training, its own control tokens: `phf.data.control`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from phf.errors import PHFError

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


def missing_tokens(vocab, control_tokens: Iterable[str] = ()) -> list[str]:
    """The paper's two control tokens and `control_tokens` that `vocab` lacks: what load_tokenizer adds."""
    return [t for t in dict.fromkeys([*CONTROL_TOKENS, *control_tokens]) if t not in vocab]


def load_tokenizer(name_or_path: str, control_tokens: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Load a tokenizer (a path, or a hub name for users online) and make sure it has EOS, a pad
    token, the paper's two control tokens and `control_tokens`. Control tokens added here are new
    rows of the embedding, initialised by `phf.training.model.build_model`."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        raise PHFError(f"cannot load tokenizer {name_or_path!r}: {e}") from None
    if tokenizer.eos_token is None:
        raise PHFError(f"tokenizer {name_or_path!r} has no EOS token; phf separates documents with it: set "
                       f'"eos_token" in its tokenizer_config.json to the token that ends its documents (e.g. "</s>")')
    missing = missing_tokens(tokenizer.get_vocab(), control_tokens)
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
