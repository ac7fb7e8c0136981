# The two commands of the README: `make run` and `make test`. Both set up what
# they need: a virtual environment in .venv with the package installed into it
# the way users get it (non-editable, so packaging mistakes show).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOURCES := $(shell find common daemon ctl portal -type f \( -name '*.py' -o -name '*.varlink' -o -name '*.sql' \)) setup.py pyproject.toml

.PHONY: run run-cluster test lint typecheck unit venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python $(SOURCES)
	$(BIN)/pip install --quiet --quiet --no-deps --force-reinstall . >/dev/null
	$(BIN)/pip install --quiet --quiet '.[test]'
	touch $@

venv: $(VENV)/.installed

run: venv
	scripts/run-dev

run-cluster: venv
	scripts/run-cluster

lint: venv
	$(BIN)/ruff check .
	scripts/typecheck

unit: venv
	scripts/ensure-postgres
	scripts/ensure-prometheus
	$(BIN)/pytest

test: lint unit

clean:
	rm -rf $(VENV) build var .pytest_cache .mypy_cache .ruff_cache *.egg-info
