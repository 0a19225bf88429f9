# The two set-up commands of the README. Both create .venv/ on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

# llama.cpp builds from source. A native build (-march=native) on this machine's CPU emits AMX tile
# instructions the hypervisor traps (SIGILL in Gemma's Q4_K layers), and pip's wheel cache would hand
# that build to every later venv: build the portable AVX2 variant, and never take it from the cache.
LLAMA := llama-cpp-python[server]==0.3.36

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --quiet --no-cache-dir '$(LLAMA)'

# Installs the package (torch==2.13.0 is pinned: pip takes the CPU wheel on this machine's disk) and
# classifies a handful of texts through the cascade on the embedded default: nothing to start by hand.
demo: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/cascade demo

test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m pytest

.PHONY: demo test
