"""Build small offline corpora for the toxicity and PII tasks (tests, benchmarks, `make toxicity` / `make pii`).

    python benchmarks/corpora.py --out runs/corpora [--davidson PATH]

toxicity.jsonl  every tweet of Davidson et al. (2017; 24,783 tweets, most offensive by design, crowd
                labels in `label`) mixed with clean English prose: paragraphs of Python's own
                documentation (`pydoc_data.topics`) and the standard library's docstrings.
pii.jsonl       the same clean prose, and a quarter of its documents given one sentence with
                synthetic personal data (Faker names, emails, phone numbers, street addresses,
                dates of birth; Faker comes with scrubadub). No real person's data.

These are stand-ins for the paper's Pile documents, sized for a CPU: the split between tweets and
documentation prose is far cruder than the Pile's mix, so a model can tell them apart by style.
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

from phf.data.corpus import Corpus

DAVIDSON = Path(__file__).resolve().parent / "data" / "davidson" / "labeled_data.csv"  # shipped, MIT (its README)
LABELS = {"0": "hate", "1": "offensive", "2": "neither"}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/corpora"))
    parser.add_argument("--davidson", type=Path, default=DAVIDSON,
                        help="Davidson et al.'s labeled_data.csv (default: the shipped copy)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from faker import Faker

    rng, fake = random.Random(args.seed), Faker("en_US")
    fake.seed_instance(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    labelled = tweets(args.davidson)
    clean = prose(sum(len(t["text"]) for t in labelled))
    toxicity = labelled + [{"text": p, "label": "prose"} for p in clean]
    rng.shuffle(toxicity)
    pii = []
    for p in clean:
        if rng.random() < 0.25:
            sentences = re.split(r"(?<=\.) ", p)
            sentences.insert(rng.randrange(len(sentences) + 1), pii_sentence(fake, rng))
            pii.append({"text": " ".join(sentences), "label": "pii"})
        else:
            pii.append({"text": p, "label": "clean"})
    for name, rows in (("toxicity", toxicity), ("pii", pii)):
        path = args.out / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{path}: {len(rows)} documents, {sum(len(r['text']) for r in rows) / 1e6:.2f}M characters")


if __name__ == "__main__":
    main()
