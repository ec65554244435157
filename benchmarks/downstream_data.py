"""Local downstream data from a corpus's held-out split (documents never trained on): a LAMBADA-format
last-word set from its prose sentences and, for the toxicity corpus, a two-class GLUE-format set in CoLA's
layout (`sentence`, `label`) from its tweets: offensive or hateful (1) against neither (0).

    python benchmarks/downstream_data.py runs/corpora/toxicity.jsonl --out runs/downstream-data
    phf experiment --task toxicity --corpus runs/corpora/toxicity.jsonl ... \\
        --downstream lambada=runs/downstream-data/lambada.jsonl cola=runs/downstream-data/cola

The PII corpus holds the same prose in another order, so its models need the last-word set of its own
held-out split (`--out runs/downstream-pii`); they never saw a tweet, so the tweets task serves as it is.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from phf.data.corpus import split_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a corpus of benchmarks/corpora.py (JSONL with text, label)")
    parser.add_argument("--out", type=Path, default=Path("runs/downstream-data"))
    parser.add_argument("--heldout-fraction", type=float, default=0.05, help="the task's data.heldout_fraction")
    a = parser.parse_args()
    prose, tweets = [], []
    for number, line in enumerate(a.corpus.read_text().splitlines(), 1):
        # the document ids phf gives a one-file corpus, so the split is the one training used
        if split_of(f"{a.corpus.name}:{number}", a.heldout_fraction) != "heldout":
            continue
        record = json.loads(line)
        if record["label"] in ("prose", "clean"):  # clean prose: the PII corpus's documents without personal data
            words = record["text"].rstrip(" .!?:;,").split(" ")
            if len(words) >= 8 and words[-1].isalpha():  # a word to predict, after enough context
                prose.append(" ".join(words))
        elif record["label"] != "pii":
            tweets.append({"sentence": record["text"], "label": int(record["label"] != "neither")})
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "lambada.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in prose))
    if not tweets:
        print(f"{len(prose)} last-word passages -> {a.out}")
        return
    (a.out / "cola").mkdir(exist_ok=True)
    random.Random(0).shuffle(tweets)
    cut = len(tweets) * 2 // 3
    for split, rows in (("train", tweets[:cut]), ("validation", tweets[cut:])):
        (a.out / "cola" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(prose)} last-word passages; {cut} train / {len(tweets) - cut} validation tweets, "
          f"{sum(r['label'] for r in tweets) / len(tweets):.2f} offensive or hateful -> {a.out}")


if __name__ == "__main__":
    main()
