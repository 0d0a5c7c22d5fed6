# anydepth: every workflow starts here. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test lint benchmark clean

help:  ## list every target
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install anydepth (editable, with dev extras); instant when up to date

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: install  ## run the test suite (offline, CPU)
	$(BIN)/python -m pytest -q

lint: install  ## ruff check of the package, tests and benchmarks
	$(BIN)/ruff check src tests benchmarks

benchmark: install  ## anydepth vs transformers model speed, printed as JSON
	$(BIN)/python benchmarks/model_speed.py

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
