"""Local downstream data from the toxicity corpus's held-out split (documents never trained on): a LAMBADA-format
last-word set from its prose sentences, and a two-class GLUE-format set in CoLA's layout (`sentence`, `label`)
from its tweets: offensive or hateful (1) against neither (0).

    python benchmarks/downstream_data.py runs/corpora/toxicity.jsonl --out runs/downstream-data
    phf experiment --task toxicity --corpus runs/corpora/toxicity.jsonl ... \\
        --downstream lambada=runs/downstream-data/lambada.jsonl cola=runs/downstream-data/cola
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from phf.data.corpus import split_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="the toxicity corpus of benchmarks/corpora.py (JSONL with text, label)")
    parser.add_argument("--out", type=Path, default=Path("runs/downstream-data"))
    parser.add_argument("--heldout-fraction", type=float, default=0.05, help="the task's data.heldout_fraction")
    a = parser.parse_args()
    prose, tweets = [], []
    for number, line in enumerate(a.corpus.read_text().splitlines(), 1):
        # the document ids phf gives a one-file corpus, so the split is the one training used
        if split_of(f"{a.corpus.name}:{number}", a.heldout_fraction) != "heldout":
            continue
        record = json.loads(line)
        if record["label"] == "prose":
            words = record["text"].rstrip(" .!?:;,").split(" ")
            if len(words) >= 8 and words[-1].isalpha():  # a word to predict, after enough context
                prose.append(" ".join(words))
        else:
            tweets.append({"sentence": record["text"], "label": int(record["label"] != "neither")})
    (a.out / "cola").mkdir(parents=True, exist_ok=True)
    (a.out / "lambada.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in prose))
    random.Random(0).shuffle(tweets)
    cut = len(tweets) * 2 // 3
    for split, rows in (("train", tweets[:cut]), ("validation", tweets[cut:])):
        (a.out / "cola" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(prose)} last-word passages; {cut} train / {len(tweets) - cut} validation tweets, "
          f"{sum(r['label'] for r in tweets) / len(tweets):.2f} offensive or hateful -> {a.out}")


if __name__ == "__main__":
    main()
