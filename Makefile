# Every target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv system-deps demo test test-slow reliability lint lock bench clean

# Exact versions with their hashes (requirements.lock, made by `make lock`), then the
# project itself without resolving anything again.
$(STAMP): requirements.lock setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

## lock: resolve setup.cfg's dependencies (runtime, test, bench) again into requirements.lock
lock:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile setup.cfg --extra test --extra bench --generate-hashes \
		--python-version 3.11 --upgrade -o requirements.lock

venv: $(STAMP)

## system-deps: Debian packages the tests use (PostgreSQL server, curl), when missing
system-deps:
	bash tools/system-deps.sh

## demo: offline demo on generated sample months (local lake + DuckDB)
demo: venv
	$(BIN)/taxi-pipeline demo

## test: lint, then the default test suite (slow suites excluded)
test: venv system-deps lint
	$(BIN)/pytest

## test-slow: the slow suites only (large files, many kill trials)
test-slow: venv system-deps
	$(BIN)/pytest -m slow

## reliability: every fault case and kill trial (slow ones included), with a summary line
reliability: venv system-deps
	$(BIN)/pytest -m "fault_case or kill_trial"

## lint: ruff, and import-linter's contracts (layers import only downward, no cycles)
lint: venv
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/lint-imports

## bench: speed and memory against peer engines (several minutes; see bench/README.md)
bench: venv system-deps
	$(BIN)/python bench/bench_month.py

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache *.egg-info
