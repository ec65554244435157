"""A GLUE-format task from local data, in CoLA's layout (`sentence`, `label`): Davidson et al.'s tweets that the
built-in toxicity corpus does not hold (so no phf model trained on the built-in corpora saw them), offensive or
hateful (1) against neither (0); two thirds to finetune on, a third to validate on.

    python benchmarks/downstream_data.py --out runs/downstream-data
    phf experiment --task pii ... --downstream lambada=builtin:pii-lastword cola=runs/downstream-data/cola

The last-word sets of the built-in corpora ship with phf (`builtin:pii-lastword`, `builtin:toxicity-lastword`).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from phf.corpora.build import DAVIDSON, tweets
from phf.data.corpus import Corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/downstream-data"))
    parser.add_argument("--examples", type=int, default=1228, help="tweets in the task (train and validation)")
    a = parser.parse_args()
    in_corpus = {r.text for r in Corpus("builtin:toxicity").records()}
    unseen = [t for t in tweets(DAVIDSON) if t["text"] not in in_corpus]
    rows = [{"sentence": t["text"], "label": int(t["label"] != "neither")}
            for t in random.Random(0).sample(unseen, min(a.examples, len(unseen)))]
    cut = len(rows) * 2 // 3
    (a.out / "cola").mkdir(parents=True, exist_ok=True)
    for split, part in (("train", rows[:cut]), ("validation", rows[cut:])):
        (a.out / "cola" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    print(f"{cut} train / {len(rows) - cut} validation tweets, "
          f"{sum(r['label'] for r in rows) / len(rows):.2f} offensive or hateful -> {a.out / 'cola'}")


if __name__ == "__main__":
    main()
