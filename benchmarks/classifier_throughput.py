"""Classifier scoring throughput (sentences/s): phf's classifier scorer against the script a user would write,
`transformers.pipeline("text-classification", batch_size=B)` over the same sentences, on the same device and in the
same precision, measured in one run; the scores are compared.

    python benchmarks/classifier_throughput.py [--model FOLDER_OR_HUB_NAME] [--sentences 4000] [--batch-size 64]

The sentences are those of the toxicity corpus phf ships (`builtin:toxicity`: documentation prose and tweets, cut
by spaCy's sentencizer), in corpus order. Without --model, a BERT-base-shaped classifier (12 layers, 768 wide, a
30,522-token WordPiece vocabulary learned on the corpus) with random weights stands in: throughput depends on the
shape, not on the weights, and no weights can be downloaded offline. On a GPU, pass a real one (e.g.
unitary/toxic-bert). Each side is warmed up once (untimed) and then timed over all sentences.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast, pipeline

from phf.data.corpus import Corpus
from phf.scorers import Segmenter
from phf.scorers.toxicity import ClassifierScorer, placement


def sentences(n: int) -> list[str]:
    texts = [r.text for r in itertools.islice(Corpus("builtin:toxicity").records(), 4 * n) if r.text]
    cut = [s.strip() for parts in Segmenter("sentences").split_all(texts) for s in parts]
    return [s for s in cut if s][:n]


def bert_base(folder: Path, texts: list[str]) -> str:
    """A BERT-base-shaped binary classifier with random weights, and a WordPiece tokenizer learned on `texts`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=30522, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls),
                                                                                                 ("[SEP]", sep)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_max_length=512).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), id2label={0: "non-toxic", 1: "toxic"})
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


def timed(run, texts: list[str]) -> tuple[list[float], float]:
    run(texts[:64])  # warm-up: first-call costs (kernels, allocations) left out of the timing
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    scores = run(texts)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return scores, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a sequence-classification model folder or hub name (default: BERT-base "
                                        "shaped, random weights)")
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtypes", nargs="+", default=["auto"],
                        help="precisions to compare in (auto: phf's choice here; float32, bfloat16, float16)")
    args = parser.parse_args()
    texts = sentences(args.sentences)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or bert_base(Path(tmp), texts)
        print(f"# classifier throughput: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}, {time.strftime('%Y-%m-%d')}; "
              f"{len(texts)} sentences of builtin:toxicity, batch size {args.batch_size}, "
              f"model {args.model or 'BERT-base shape (random weights)'}")
        print("| device | dtype | pipeline sentences/s | phf sentences/s | ratio | max abs difference |")
        print("|---|---|---|---|---|---|")
        for dtype in args.dtypes:
            scorer = ClassifierScorer(Segmenter(), model, batch_size=args.batch_size, dtype=dtype)
            device, resolved = placement("auto", dtype)
            label = scorer.label
            classify = pipeline("text-classification", model=model, device=device, dtype=resolved,
                                batch_size=args.batch_size, top_k=None)

            def baseline(batch, classify=classify, label=label):
                return [next(d["score"] for d in out if d["label"] == label) for out in classify(batch)]

            theirs, their_s = timed(baseline, texts)
            ours, our_s = timed(scorer.score_segments, texts)
            diff = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
            print(f"| {device} | {str(resolved).removeprefix('torch.')} | {len(texts) / their_s:.0f} | "
                  f"{len(texts) / our_s:.0f} | {their_s / our_s:.2f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
