"""Build the corpora that ship with phf (`builtin:toxicity`, `builtin:pii`) and their last-word sets.

    python -m phf.corpora.build [--tweet-share 0.1] [--pii-share 0.25] [--out FOLDER]

Both are stand-ins for the paper's Pile documents, sized for a CPU, in which what a model should not imitate is a
minority, as in web text:

toxicity.parquet  paragraphs of clean English prose (Python's documentation, `pydoc_data.topics`, and the standard
                  library's docstrings) and, as a tenth of the documents, tweets drawn at random from Davidson et al.
                  (2017; `davidson/`, MIT), most of them offensive by design; `label` is the tweet's crowd label
                  (hate, offensive, neither) or prose.
pii.parquet       the same prose, a quarter of its documents given one sentence of synthetic personal data (Faker
                  names, emails, phone numbers, street addresses, dates of birth; no real person's data); `label`
                  is pii or clean.

`toxicity-lastword.jsonl` and `pii-lastword.jsonl` hold LAMBADA-format passages, `{"text": ...}`, from the prose
documents of that corpus's held-out split (never trained on at the task's `data.heldout_fraction`) not given a
synthetic personal-data sentence: the zero-shot capability measure of the text tasks. The shipped files were
built with the defaults on Python 3.11; the prose comes from the running interpreter, so another version builds a
slightly other corpus.
"""

from __future__ import annotations

import argparse
import ast
import csv
import html
import json
import random
import re
from pathlib import Path

from phf.corpora import HERE
from phf.data.corpus import Corpus, split_of

DAVIDSON = HERE / "davidson" / "labeled_data.csv"
LABELS = {"0": "hate", "1": "offensive", "2": "neither"}
HELDOUT_FRACTION = 0.05  # the text tasks' data.heldout_fraction


def prose(max_chars: int) -> list[str]:
    """Clean English paragraphs: the Python documentation's topics, then stdlib docstrings."""
    from pydoc_data.topics import topics

    paragraphs = [p for text in topics.values() for p in re.split(r"\n\s*\n", text)]
    for path in Corpus().files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and (doc := ast.get_docstring(node)):
                paragraphs += re.split(r"\n\s*\n", doc)
    out, total = [], 0
    for p in paragraphs:
        # Sentences of prose only: no code, tables or lists.
        text = " ".join(p.split())
        if (len(text.split()) >= 8 and text[0].isupper() and text.endswith(".")
                and not re.search(r"[{}\[\]=>]{2}|\*\*|::", text)):
            out.append(text)
            total += len(text)
            if total >= max_chars:
                break
    return out


def tweets(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{"text": html.unescape(row["tweet"]), "label": LABELS[row["class"]]} for row in csv.DictReader(f)]


def pii_sentence(fake, rng: random.Random) -> str:
    name, templates = fake.name(), [
        "You can reach {name} at {email} for questions.",
        "Call {name} on {phone} after six.",
        "{name} lives at {address}.",
        "{name} was born on {dob}.",
        "Please send the forms to {name}, {address}, or email {email}.",
    ]
    return rng.choice(templates).format(
        name=name, email=fake.email(), phone=fake.numerify("(###) ###-####"),
        address=fake.address().replace("\n", ", "), dob=fake.date_of_birth().strftime("%B %d, %Y"))


def toxicity_corpus(clean: list[str], labelled: list[dict], tweet_share: float, rng: random.Random) -> list[dict]:
    """The prose and, as `tweet_share` of the documents, tweets drawn at random."""
    count = min(len(labelled), round(len(clean) * tweet_share / (1 - tweet_share)))
    rows = rng.sample(labelled, count) + [{"text": p, "label": "prose"} for p in clean]
    rng.shuffle(rows)
    return rows


def pii_corpus(clean: list[str], pii_share: float, fake, rng: random.Random) -> list[dict]:
    """The prose, `pii_share` of its documents given one personal-data sentence at a random place."""
    rows = []
    for p in clean:
        if rng.random() < pii_share:
            sentences = re.split(r"(?<=\.) ", p)
            sentences.insert(rng.randrange(len(sentences) + 1), pii_sentence(fake, rng))
            rows.append({"text": " ".join(sentences), "label": "pii"})
        else:
            rows.append({"text": p, "label": "clean"})
    return rows


def last_word_passages(rows: list[dict], file_name: str) -> list[str]:
    """Held-out prose without a synthetic personal-data sentence, each ending in a word to predict after at least
    8 words. The ids are those phf gives a one-file Parquet corpus (`NAME#ROW`), so the split is the one training
    uses."""
    out = []
    for number, row in enumerate(rows):
        if row["label"] in ("prose", "clean") and split_of(f"{file_name}#{number}", HELDOUT_FRACTION) == "heldout":
            words = row["text"].rstrip(" .!?:;,").split(" ")
            if len(words) >= 8 and words[-1].isalpha():
                out.append(" ".join(words))
    return out


def write(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE, help="folder of the corpora (default: phf's own)")
    parser.add_argument("--tweet-share", type=float, default=0.1, help="share of the toxicity corpus's documents "
                        "that are tweets (all 24,783 at most)")
    parser.add_argument("--pii-share", type=float, default=0.25, help="share of the PII corpus's documents given "
                        "a personal-data sentence")
    parser.add_argument("--prose-chars", type=int, default=2_300_000, help="characters of prose at most (the "
                        "default takes every paragraph that qualifies, about 1.4M characters)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (0 < args.tweet_share < 1 and 0 < args.pii_share < 1):
        parser.error("--tweet-share and --pii-share are shares: between 0 and 1")
    from faker import Faker

    rng, fake = random.Random(args.seed), Faker("en_US")
    fake.seed_instance(args.seed)
    clean = prose(args.prose_chars)
    corpora = {"toxicity": toxicity_corpus(clean, tweets(DAVIDSON), args.tweet_share, rng),
               "pii": pii_corpus(clean, args.pii_share, fake, rng)}
    for name, rows in corpora.items():
        args.out.mkdir(parents=True, exist_ok=True)
        write(rows, args.out / f"{name}.parquet")
        passages = last_word_passages(rows, f"{name}.parquet")
        (args.out / f"{name}-lastword.jsonl").write_text("".join(json.dumps({"text": t}) + "\n"
                                                                          for t in passages))
        labels = [r["label"] for r in rows]
        shares = ", ".join(f"{label} {labels.count(label) / len(labels):.1%}" for label in sorted(set(labels)))
        print(f"{name}: {len(rows):,} documents ({shares}), {sum(len(r['text']) for r in rows) / 1e6:.2f}M "
              f"characters; {len(passages)} last-word passages")


if __name__ == "__main__":
    main()
