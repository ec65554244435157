"""Peak memory of `phf score` as the corpus grows: it streams, so memory should stay flat.

    python benchmarks/scoring_memory.py [--scorer profanity] [--factors 1 4]

The corpus is the toxicity corpus phf ships (`builtin:toxicity`), written
1x and 4x over into one JSONL file (each copy a new set of documents). Each size is scored in a
fresh process; the script prints the peak resident memory of the main process (reading the corpus,
queueing shards) and of the largest worker (scoring), from `getrusage`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phf.data.corpus import Corpus

MEASURE = """
import json, resource, sys
from pathlib import Path

from phf.data.corpus import Corpus
from phf.config import load_config
from phf.data.scoring import score_corpus
corpus, scorer, out = sys.argv[1:4]
cfg = load_config("toxicity", None, [f"data.corpus={corpus}", f"scorer.name={scorer}", "data.suffixes=[.jsonl]"])
report = score_corpus(cfg, Path(out))
print(json.dumps({"documents": report["train"]["documents"] + report["heldout"]["documents"],
                  "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scorer", default="profanity")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    lines = [json.dumps({"text": r.text}) for r in Corpus("builtin:toxicity").records()]
    print("| corpus | documents | file MB | main process peak MB | largest worker peak MB | seconds |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for factor in args.factors:
            corpus = Path(tmp) / f"x{factor}.jsonl"
            with corpus.open("w") as f:
                for copy in range(factor):  # each copy is new text, so no document repeats
                    f.writelines(json.dumps({"text": json.loads(line)["text"] + f" ({copy})"}) + "\n" for line in lines)
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", MEASURE, str(corpus), args.scorer, f"{tmp}/data{factor}"],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"| {factor}x | {r['documents']} | {corpus.stat().st_size / 1e6:.1f} | {r['main_mb']:.0f} | "
                  f"{r['worker_mb']:.0f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
