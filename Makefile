# The two set-up commands of the README. Both create .venv/ on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installs the package (torch==2.13.0 is pinned: pip takes the CPU wheel on this machine's disk) and
# classifies a handful of texts through the cascade on the embedded default: nothing to start by hand.
demo: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/cascade demo

test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m pytest

.PHONY: demo test
