# `make demo`: install into .venv and run the main job on the embedded default.
# `make test`: install into .venv (with test extras), lint with ruff and run the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo study compare beyond attributes toxicity pii test clean

$(BIN)/phf: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The main job: MLE against conditional training, two training seeds each, 2M tokens per model, two
# models at a time: about 26 minutes on 2 cores, 28 with the installation. Report: runs/demo/report/index.html
demo: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --methods mle conditional --seeds 0 1 --parallel 2 --output runs/demo \
		training.num_tokens=2000000 evaluation.curve_points=4 evaluation.curve_samples=32

# The paper's whole study: all six objectives and one finetuning arm (MLE for half the tokens, then
# conditional), 1M tokens each, two arms at a time (20 minutes on 2 cores with the previous, lighter evaluation).
study: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --finetune conditional@0.5 --parallel 2 --output runs/study \
		training.num_tokens=1000000 evaluation.curve_points=4 evaluation.curve_samples=32

# MLE against conditional training with the task's full 4M-token budget (about 25 minutes on 2 cores).
compare: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --methods mle conditional --parallel 2 --output runs/compare

# Beyond the paper: graded tokens (K=4), guidance (w=1, w=3; sampling only, on the conditional arm's
# model), tag cooldown, next to conditional and MLE, with KL from an MLE trained on twice the tokens;
# 1024 samples per arm, as the arms differ by little. About 50 minutes on 2 cores.
beyond: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --methods mle conditional conditional-graded conditional-guided-w1 \
		conditional-guided-w3 conditional-cooldown --kl-reference longer-mle --parallel 2 --output runs/beyond \
		training.num_tokens=1000000 evaluation.num_samples=1024 evaluation.kl_samples=128

# The toxicity and PII tasks, all six objectives, 1M tokens each, on corpora built offline from the
# Davidson tweets (shipped in benchmarks/data/davidson/) and Python's documentation prose (benchmarks/corpora.py).
runs/corpora/toxicity.jsonl: $(BIN)/phf benchmarks/corpora.py
	$(BIN)/python benchmarks/corpora.py --out runs/corpora

toxicity: runs/corpora/toxicity.jsonl
	$(BIN)/phf experiment --task toxicity --corpus runs/corpora/toxicity.jsonl --parallel 2 --output runs/toxicity

# Two attributes at once on the toxicity corpus: conditional training on toxicity tokens only, and on
# toxicity and PII tokens together, next to MLE; every arm is scored for both.
attributes: runs/corpora/toxicity.jsonl
	$(BIN)/phf experiment --task toxicity --corpus runs/corpora/toxicity.jsonl --methods mle conditional \
		conditional-with-pii --parallel 2 --output runs/attributes training.num_tokens=1000000

pii: runs/corpora/toxicity.jsonl
	$(BIN)/phf experiment --task pii --corpus runs/corpora/pii.jsonl --parallel 2 --output runs/pii

test: $(BIN)/phf
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

clean:
	rm -rf runs $(VENV)
