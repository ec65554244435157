"""What judging prompted samples with or without their prompt changes: an experiment's prompted samples, scored
alone (as `evaluation.score_prompt: false` judges them) and together with their prompt (as `true` does), and the
prompts on their own, per arm, with the scorer the arms were evaluated with (the scorer section of their run's
config.yaml).

    python benchmarks/prompt_scoring.py runs/toxicity

Reads `<arm>/eval/samples.jsonl` and `<arm>/config.yaml` of every arm of the experiment folder; nothing is
sampled again.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from phf.config import build_config, saved_config
from phf.scorers import get_scorer


def mean(scores) -> float:
    kept = [s for s in scores if s is not None]  # unscorable texts are left out, as evaluation leaves them
    return statistics.mean(kept) if kept else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, help="an experiment folder (phf experiment --output)")
    args = parser.parse_args()
    arms = json.loads((args.experiment / "results.json").read_text())["arms"]
    print("| arm | prompted samples | mean, continuation alone | mean, with the prompt |\n|---|---|---|---|")
    prompts = set()
    # The arms of an experiment share one scorer; an arm that evaluates another's model (guidance) trained none
    trained = next(path for arm in arms if (path := args.experiment / arm / "config.yaml").exists())
    scorer = get_scorer(build_config(saved_config(trained)).scorer)
    for arm in arms:
        samples = args.experiment / arm / "eval" / "samples.jsonl"
        rows = [r for r in map(json.loads, samples.read_text().splitlines()) if r["scenario"] == "prompted"]
        prompts |= {r["prompt"] for r in rows}
        alone = scorer.score_texts([r["text"] for r in rows])
        joined = scorer.score_texts([r["prompt"] + r["text"] for r in rows])
        print(f"| {arm} | {len(rows)} | {mean(alone):.4f} | {mean(joined):.4f} |")
    print(f"\nThe {len(prompts)} prompts alone: mean {mean(scorer.score_texts(sorted(prompts))):.4f}")


if __name__ == "__main__":
    main()
