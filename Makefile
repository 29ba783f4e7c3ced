# Every target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test test-slow lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

## demo: offline demo on generated sample months (local lake + DuckDB)
demo: venv
	$(BIN)/taxi-pipeline demo

## test: lint, then the default test suite (slow suites excluded)
test: venv lint
	$(BIN)/pytest

## test-slow: the slow suites only (large files, many kill trials)
test-slow: venv
	$(BIN)/pytest -m slow

lint: venv
	$(BIN)/ruff check pipeline tests bench

## bench: speed and memory against peer engines (several minutes; see bench/README.md)
bench: venv
	$(BIN)/python bench/bench_month.py

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache *.egg-info
