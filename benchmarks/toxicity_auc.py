"""How well the toxicity scorers agree with people: the Davidson et al. (2017) hate-speech tweets.

    python benchmarks/toxicity_auc.py                                   # profanity, all 24,783 tweets
    python benchmarks/toxicity_auc.py --scorers profanity classifier --model path/to/model --limit 2000

Each tweet was labelled by at least three crowd workers as hate speech, offensive or neither. A tweet
is toxic when the majority said hate speech or offensive (`class` 0 or 1); the share of workers who
did is a graded human score. Whole tweets are scored (no sentence splitting): the labels are per
tweet. Prints a markdown table: ROC AUC against the majority label, Spearman correlation with the
workers' share, the share of tweets a scorer calls toxic (score > 0.5) and its throughput.

The Davidson tweets are in alt-profanity-check's training data. As a check on text no scorer was
trained on, the last column is the share of clean English sentences (Python's documentation prose,
the prose of phf's built-in corpora) that a scorer calls toxic: a false-positive rate on uncontaminated data.
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from phf.config import ScorerConfig
from phf.corpora.build import DAVIDSON as DEFAULT_DATA  # shipped with phf, MIT (its README)
from phf.corpora.build import prose
from phf.scorers import Segmenter, get_scorer

CONTAMINATION = ("alt-profanity-check was trained on data that includes this very dataset (Davidson et al.), "
                 "so its AUC here is contaminated: optimistic, not an estimate of its accuracy on new text.")


def load_tweets(path: Path, limit: int | None) -> tuple[list[str], list[int], list[float]]:
    """Tweets, majority labels (1 = hate speech or offensive) and the share of workers who said so."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if limit is not None and limit < len(rows):
        rows = random.Random(0).sample(rows, limit)  # the file is sorted by text: a seeded sample, not the head
    labels = [int(int(r["class"]) in (0, 1)) for r in rows]
    shares = [(int(r["hate_speech"]) + int(r["offensive_language"])) / int(r["count"]) for r in rows]
    return [r["tweet"] for r in rows], labels, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="Davidson's labeled_data.csv (default: %(default)s)")
    parser.add_argument("--scorers", nargs="+", default=["profanity"], choices=["profanity", "detoxify", "classifier"])
    parser.add_argument("--model", help="classifier: a sequence-classification model folder or hub name")
    parser.add_argument("--label", help="classifier: the label whose probability is the score")
    parser.add_argument("--detoxify-model", default="original",
                        help="detoxify: original, unbiased or a checkpoint file")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, help="score a seeded random sample of this many tweets")
    args = parser.parse_args()
    if "classifier" in args.scorers and not args.model:
        parser.error("--scorers classifier needs --model")

    tweets, labels, shares = load_tweets(args.data.resolve(), args.limit)
    print(f"{len(tweets)} tweets from {args.data.resolve()}; {sum(labels) / len(labels):.1%} toxic by majority "
          "(hate speech or offensive)\n")
    clean = [s for ss in Segmenter().split_all(prose(300_000)) for s in ss if len(s.split()) >= 5]
    print(f"{len(clean)} clean sentences of Python's documentation prose\n")
    rows = []
    for name in args.scorers:
        model = args.detoxify_model if name == "detoxify" else args.model if name == "classifier" else None
        scorer = get_scorer(ScorerConfig(name=name, model=model, label=args.label, batch_size=args.batch_size))
        start = time.perf_counter()  # loading the model is not part of the throughput
        scores = scorer.score_texts(tweets)
        seconds = time.perf_counter() - start
        false_positive = sum(s > 0.5 for s in scorer.score_texts(clean)) / len(clean)
        rows.append((name, roc_auc_score(labels, scores), spearmanr(scores, shares).statistic,
                     sum(s > 0.5 for s in scores) / len(scores), len(tweets) / seconds, false_positive))

    print("| scorer | ROC AUC (majority label) | Spearman (workers' share) | positive rate (score > 0.5) | tweets/s "
          "| clean prose called toxic |")
    print("|---|---|---|---|---|---|")
    for name, auc, rho, positive, speed, false_positive in rows:
        print(f"| {name}{' (contaminated)' if name == 'profanity' else ''} | {auc:.3f} | {rho:.3f} | {positive:.1%} "
              f"| {speed:,.0f} | {false_positive:.2%} |")
    if "profanity" in args.scorers:
        print(f"\nNote: {CONTAMINATION}")


if __name__ == "__main__":
    main()
