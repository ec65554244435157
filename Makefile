# `make demo`: install into .venv and run the main job on the embedded default.
# `make test`: install into .venv (with test extras) and run the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test clean

$(BIN)/phf: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/phf
	$(BIN)/phf experiment --task pep8 --methods mle conditional --parallel 2 --output runs/demo

test: $(BIN)/phf
	$(BIN)/python -m pytest

clean:
	rm -rf runs $(VENV)
