# The Makefile is the project's contract: CI runs `make test`, exactly as the README says.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup test lint format demo bench clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

setup: $(INSTALLED) ## Create .venv and install the pinned dependencies

test: setup ## Run the whole test suite
	$(PY) -m pytest -q

lint: setup ## ruff, mypy, cfn-lint and the state-machine checks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(PY) -m incremental_analytics_local.asl_checks infra/template.yaml

format: setup ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: setup ## Run the product end to end on the embedded local AWS (about a minute)
	$(VENV)/bin/incremental-analytics demo --out demo-output

bench: setup ## Print the benchmark figures (no pass/fail)
	$(PY) -m benchmarks.run

clean: ## Remove the virtual environment, caches and demo output
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-output
