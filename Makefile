# `make demo`: install into .venv and run the main job (the PII task, on the corpus phf ships).
# `make test`: install into .venv (with test extras), lint with ruff and run the test suite.
# `make check-core`: install the core alone (no extras) into .venv-core and run the PEP8 pipeline on it.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo pep8 study compare beyond attributes toxicity pii test check-core clean

$(BIN)/phf: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,test]'
	touch $@

# The main job, on the PII task and the corpus phf ships (documentation prose, a quarter of its documents given a
# sentence of synthetic personal data): MLE, conditional training and filtering, two training seeds each, and MLE
# then conditional training (the switch at half the budget), 500k tokens per model, two models at a time, each
# evaluated on 512 unconditional and 192 prompted samples, held-out loss, last-word accuracy on the corpus's
# held-out prose and misalignment at 4 points of training. Report: runs/demo/report/index.html.
# ARGS adds config overrides, e.g. `make demo ARGS=training.bf16=false` (fp32 where bf16 would be used).
demo: $(BIN)/phf
	$(BIN)/phf experiment --task pii --methods mle conditional filtering --seeds 0 1 --finetune conditional@0.5 \
		--parallel 2 --output runs/demo --downstream lambada=builtin:pii-lastword \
		training.num_tokens=500000 evaluation.num_samples=512 evaluation.samples_per_prompt=8 \
		evaluation.curve_points=4 evaluation.curve_samples=64 $(ARGS)

# The PEP8 task on the standard library: MLE against conditional training, two training seeds each, 2M tokens per
# model (about 26 minutes on 2 cores with bf16). At this scale it does not show the paper's result: see the README.
pep8: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --methods mle conditional --seeds 0 1 --parallel 2 --output runs/pep8 \
		training.num_tokens=2000000 evaluation.curve_points=4 evaluation.curve_samples=32 $(ARGS)

# The paper's whole study on PEP8: all six objectives and one finetuning arm (MLE for half the tokens, then
# conditional), 1M tokens each, two arms at a time (20 minutes on 2 cores with the previous, lighter evaluation).
study: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --finetune conditional@0.5 --parallel 2 --output runs/study \
		training.num_tokens=1000000 evaluation.curve_points=4 evaluation.curve_samples=32 $(ARGS)

# PEP8: MLE against conditional training with the task's full 4M-token budget (about 25 minutes on 2 cores).
compare: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --methods mle conditional --parallel 2 --output runs/compare $(ARGS)

# Beyond the paper, on PEP8: graded tokens (K=4), guidance (w=1, w=3; sampling only, on the conditional arm's
# model), tag cooldown, next to conditional and MLE, with KL from an MLE trained on twice the tokens;
# 1024 samples per arm, as the arms differ by little. About 50 minutes on 2 cores.
beyond: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --methods mle conditional conditional-graded conditional-guided-w1 \
		conditional-guided-w3 conditional-cooldown --kl-reference longer-mle --parallel 2 --output runs/beyond \
		training.num_tokens=1000000 evaluation.num_samples=1024 evaluation.kl_samples=128 $(ARGS)

# The toxicity and PII tasks, all six objectives, 1M tokens each, on the corpora phf ships (phf/corpora). The PII
# study, the fuller form of the main job, also red-teams every arm (10 rounds, the MLE arm's model as the red LM).
toxicity: $(BIN)/phf
	$(BIN)/phf experiment --task toxicity --parallel 2 --output runs/toxicity $(ARGS)

pii: $(BIN)/phf
	$(BIN)/phf experiment --task pii --parallel 2 --redteam --output runs/pii $(ARGS)

# Two attributes at once on the toxicity corpus: conditional training on toxicity tokens only, and on
# toxicity and PII tokens together, next to MLE; every arm is scored for both.
attributes: $(BIN)/phf
	$(BIN)/phf experiment --task toxicity --methods mle conditional conditional-with-pii --parallel 2 \
		--output runs/attributes training.num_tokens=1000000 $(ARGS)

test: $(BIN)/phf
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

# What `pip install phf` alone gives a user: score, train, sample and evaluate PEP8; one line naming the extra where
# a command needs one (tests/core_install.sh).
check-core:
	rm -rf .venv-core
	$(PYTHON) -m venv .venv-core
	.venv-core/bin/pip install --quiet --upgrade pip
	.venv-core/bin/pip install --quiet -c constraints.txt .
	PATH="$(CURDIR)/.venv-core/bin:$$PATH" bash tests/core_install.sh

clean:
	rm -rf runs $(VENV) .venv-core
