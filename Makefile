# The two commands of the README: `make run` and `make test`. Both set up what
# they need: a virtual environment in .venv with the package installed into it
# the way users get it (non-editable, so packaging mistakes show).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOURCES := $(shell find common daemon ctl portal -type f \( -name '*.py' -o -name '*.varlink' -o -name '*.sql' \)) setup.py pyproject.toml

.PHONY: run run-cluster test lint typecheck unit venv clean man completions deb package-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python $(SOURCES)
	$(BIN)/pip install --quiet --quiet --no-deps --force-reinstall . >/dev/null
	$(BIN)/pip install --quiet --quiet '.[test,bench]'
	touch $@

venv: $(VENV)/.installed

run: venv
	scripts/run-dev

run-cluster: venv
	scripts/run-cluster

lint: venv
	$(BIN)/ruff check .
	scripts/typecheck

# The suite runs on TEST_WORKERS processes (pytest-xdist; the tests of the Debian package
# share one, so the packages are built once), under a short temporary folder: the tests'
# unix socket paths must stay within 107 bytes.
TEST_WORKERS ?= 3

unit: venv
	scripts/ensure-postgres
	scripts/ensure-chromium
	scripts/ensure-cockpit
	scripts/ensure-deb-tools
	scripts/ensure-prometheus
	base=$$(mktemp -d /tmp/plt.XXXXXX); status=0; \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --basetemp="$$base" || status=$$?; \
	rm -rf "$$base"; exit $$status

# dist/paragon-licensed_VERSION_ARCH.deb and dist/cockpit-paragon-licensed_VERSION_all.deb
# for Debian 12 (docs/install.md); installs the Debian build tools it needs.
deb:
	scripts/build-deb --out dist

# Builds the package (versions N and N+1), installs, upgrades and purges it in a
# throwaway Debian 12 root, and checks the packaged units (root; part of `make test`).
package-test: venv
	scripts/ensure-deb-tools
	$(BIN)/pytest tests/test_package.py tests/test_systemd_units.py

test: lint unit

# Manual pages (build/man/*.1) and bash/zsh completion (build/completions/{bash,zsh}/),
# generated from the argument parsers; see scripts/man_completions.py.
man: venv
	$(BIN)/python scripts/man_completions.py man build/man

completions: venv
	$(BIN)/python scripts/man_completions.py completions build/completions

clean:
	rm -rf $(VENV) build dist var .pytest_cache .mypy_cache .ruff_cache *.egg-info
