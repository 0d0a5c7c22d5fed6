# anydepth: every workflow starts here. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# infer: CKPT (official .pth, transformers dir or anydepth .ckpt), INPUT (image, dir or list.txt), OUTPUT
CKPT ?=
INPUT ?=
OUTPUT ?= outputs/depth
INPUT_SIZE ?= 518

.DEFAULT_GOAL := help
.PHONY: help install test lint benchmark infer clean

help:  ## list every target
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install anydepth editable with dev extras (instant when up to date)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: install  ## run the test suite (offline, CPU; gpu-marked tests skip without CUDA)
	WANDB_MODE=offline $(BIN)/python -m pytest -q

lint: install  ## ruff check of the package, tests and benchmarks
	$(BIN)/ruff check src tests benchmarks

benchmark: install  ## speed ratios as JSON: model vs transformers, batched losses vs a per-sample loop
	$(BIN)/python benchmarks/model_speed.py
	$(BIN)/python benchmarks/loss_speed.py

infer: install  ## depth maps: make infer CKPT=depth_anything_v2_vits.pth INPUT=photos/ [OUTPUT=outputs/depth]
	@test -n "$(CKPT)" -a -n "$(INPUT)" || { echo "usage: make infer CKPT=<checkpoint> INPUT=<image|dir|list.txt> [OUTPUT=dir]"; exit 2; }
	$(BIN)/anydepth infer --checkpoint $(CKPT) --input $(INPUT) --output $(OUTPUT) --input-size $(INPUT_SIZE)

clean:  ## remove the virtual environment, caches and outputs
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info outputs
