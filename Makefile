# gpuchaos: chaos and load testing for GPU inference workloads.
# `make run` and `make test` set themselves up on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch requirement: users get a default build; CI passes TORCH=torch==2.13.0 (a CPU build
# on its machines). Without an NVIDIA driver the pinned release is the default as well.
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,torch==2.13.0)
EXPERIMENT ?= experiments/gpu-node-loss.yaml
ARGS ?=
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration test-gpu test-k8s lint format clean bench \
	bench-workload bench-load bench-gameday docs docs-serve

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project (with dev tools)

run: $(STAMP) ## Run the default experiment (GPU node loss) on the local platform
	$(BIN)/gpuchaos run $(EXPERIMENT) $(ARGS)

test: $(STAMP) ## Run unit and integration tests (what CI runs)
	$(BIN)/python -m pytest tests/unit tests/integration

test-unit: $(STAMP) ## Run the unit tests only
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP) ## Run the integration tests only (real processes on 127.0.0.1)
	$(BIN)/python -m pytest tests/integration

test-gpu: $(STAMP) ## Run the GPU tests (needs CUDA)
	$(BIN)/python -m pytest -m gpu tests/gpu

test-k8s: $(STAMP) ## Run the tests against a real cluster (KUBECONFIG, GPUCHAOS_K8S_CONTEXT)
	$(BIN)/python -m pytest -m k8s tests/k8s

bench: $(STAMP) ## Scoring 10M and 50M (a 14 h soak) request records vs reading them: time, peak memory (ARGS="--case 50m")
	$(BIN)/python benchmarks/bench_scoring.py $(ARGS)

bench-workload: $(STAMP) ## Reference servers: req/s, tokens/s, latency over batch x concurrency (ARGS=--quick)
	$(BIN)/python benchmarks/bench_workload.py $(ARGS)

bench-load: $(STAMP) ## Recording Locust users vs a plain FastHttpUser side by side on a trivial endpoint (goal >= 0.9)
	$(BIN)/python benchmarks/bench_load.py $(ARGS)

bench-gameday: $(STAMP) ## A game day's reset between experiments vs redeploying the workload, on CPU (goal < 1/4)
	$(BIN)/python benchmarks/bench_gameday_reset.py $(ARGS)

docs: $(STAMP) ## Build the docs site into site/ (strict: a broken link or anchor fails; works offline)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP) ## Serve the docs site on http://127.0.0.1:8000, rebuilt on every change
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

lint: $(STAMP) ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the venv and caches (keeps results/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info site
