# The Makefile is the project's contract: CI runs `make lint` and `make test`, exactly as the README says.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := node_modules/.installed
SAM_VENV ?= .venv-sam
SAM := $(SAM_VENV)/bin/sam

.DEFAULT_GOAL := help
.PHONY: help setup test lint format demo bench clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

# AWS's own ASL validator (the AWS Toolkit's language service), pinned by package-lock.json.
$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# sam validate --lint: aws-sam-cli pins its own boto3 and cfn-lint, so it lives in a virtual environment of its own.
$(SAM): constraints-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r constraints-sam.txt
	touch $@

setup: $(INSTALLED) $(NODE_INSTALLED) ## Create .venv and node_modules with the pinned dependencies

test: setup ## Run the whole test suite
	$(PY) -m pytest -q

lint: setup $(SAM) ## ruff, mypy, cfn-lint, sam validate --lint and the state-machine checks (AWS's rules, IAM, ASL service)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint infra/template.yaml
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint
	$(PY) -m incremental_analytics_local.asl_checks infra/template.yaml

format: setup ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: setup ## Run the product end to end on the embedded local AWS (about a minute)
	$(VENV)/bin/incremental-analytics demo --out demo-output

bench: setup ## Print the benchmark figures (no pass/fail)
	$(PY) -m benchmarks.run

clean: ## Remove the virtual environment, caches and demo output
	rm -rf $(VENV) $(SAM_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-output
