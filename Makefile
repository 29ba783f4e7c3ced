# Every target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv venv-dbt system-deps demo test test-slow test-dbt reliability lint lock lock-dbt bench clean

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

# dbt (the example project examples/dbt and its test) in a venv of its own: dbt pins many
# packages the pipeline's venv pins differently. Exact versions with hashes, as above.
DBT_VENV  := .venv-dbt
DBT_STAMP := $(DBT_VENV)/.installed-stamp

$(DBT_STAMP): requirements-dbt.lock
	$(PYTHON) -m venv $(DBT_VENV)
	$(DBT_VENV)/bin/pip install --quiet --upgrade pip
	$(DBT_VENV)/bin/pip install --quiet --require-hashes -r requirements-dbt.lock
	touch $(DBT_STAMP)

## venv-dbt: the dbt venv (.venv-dbt: dbt-core 1.11, dbt-duckdb, dbt-postgres)
venv-dbt: $(DBT_STAMP)

## lock-dbt: resolve requirements-dbt.in again into requirements-dbt.lock
lock-dbt:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile requirements-dbt.in --generate-hashes --python-version 3.11 \
		--upgrade -o requirements-dbt.lock

## system-deps: Debian packages the tests use (PostgreSQL server, curl), when missing
system-deps:
	bash tools/system-deps.sh

## demo: offline demo on generated sample months (local lake + DuckDB)
demo: venv
	$(BIN)/taxi-pipeline demo

## test: lint, then the default test suite (slow suites excluded)
test: venv venv-dbt system-deps lint
	$(BIN)/pytest

## test-slow: the slow suites only (large files, many kill trials)
test-slow: venv system-deps
	$(BIN)/pytest -m slow

## test-dbt: the dbt example built on DuckDB and PostgreSQL (also part of `test`)
test-dbt: venv venv-dbt system-deps
	$(BIN)/pytest -m dbt

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
	rm -rf $(VENV) $(DBT_VENV) data .pytest_cache .ruff_cache *.egg-info
