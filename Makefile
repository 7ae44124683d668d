# The two commands of the README: `make run` (the TUI on resnet20 + Fashion-MNIST)
# and `make test`. Both set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench setup data clean

run: setup data
	$(BIN)/pfs tui

test: setup data
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check engine sample_models pfs_tui tests bench
	$(BIN)/lint-imports --no-cache

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $@

data: setup
	tools/get-fashion-mnist.sh $(BIN)/python

bench: setup data
	$(BIN)/python bench/bench_learn.py
	$(BIN)/python bench/bench_search.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
