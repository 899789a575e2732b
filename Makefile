# Every target that needs Python depends on `install`, so each one works as the very first command
# on a fresh machine. The stamp file makes repeated runs cheap.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 30

.PHONY: install test run lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

run: install
	$(BIN)/alpaca-md run --embedded --duration $(DURATION)

lint: install
	$(BIN)/ruff check alpaca_cli tests bench
	$(BIN)/ruff format --check alpaca_cli tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
