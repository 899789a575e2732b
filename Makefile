# Every target that needs Python depends on `install`, so each one works as the very first command
# on a fresh machine. The stamp file makes repeated runs cheap.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 30
# Real JavaScript clients (Alpaca's and Dapr's SDKs) for tests/js, pinned by its lockfile.
NPM ?= npm
JS_DIR := tests/js
JS_STAMP := $(JS_DIR)/node_modules/.installed

.PHONY: install js test run lint bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# Without node/npm, or offline, the install is skipped with a note and tests/js skips itself
# with the reason: the JavaScript clients are an extra check, never a requirement.
js: $(JS_STAMP)

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@if command -v node >/dev/null 2>&1 && command -v $(NPM) >/dev/null 2>&1; then \
		if $(NPM) ci --prefix $(JS_DIR) --no-audit --no-fund --loglevel=error; then touch $@; \
		else echo "note: npm ci failed (offline?): tests/js will be skipped" >&2; fi; \
	else echo "note: node or npm not found: tests/js will be skipped" >&2; fi

test: install js
	$(BIN)/python -m pytest -q

run: install
	$(BIN)/alpaca-md run --embedded --duration $(DURATION)

lint: install
	$(BIN)/ruff check alpaca_cli tests bench
	$(BIN)/ruff format --check alpaca_cli tests bench
	$(BIN)/mypy

# A seeded random fault soak (tests/soak.py), not part of `make test`: a few minutes of runs and
# step commands meeting signals, gateway faults, feed drops and state damage; it prints its seed.
SOAK_SECONDS ?= 180
SOAK_SEED ?=
soak: install
	$(BIN)/python -m tests.soak --seconds $(SOAK_SECONDS) $(if $(SOAK_SEED),--seed $(SOAK_SEED))

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache $(JS_DIR)/node_modules
