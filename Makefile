# Two commands on a fresh machine: `make demo` and `make test`. Both start with `make setup`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp

.PHONY: setup data demo test test-portable theory ledger bench report clean

setup: $(STAMP)
	@$(BIN)/python scripts/get_data.py --soft

# Re-install only when the package description changes (idempotent, offline: torch 2.13.0 CPU wheel).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,notebooks]'
	touch $(STAMP)

data: $(STAMP)
	$(BIN)/python scripts/get_data.py

demo: setup data
	$(BIN)/python -m empirical.split_stability --sigma 0.15

test: setup
	$(BIN)/python -m pytest -q theory tests

# The numerics-sensitive tests under every CPU kernel setting (instruction sets, 1 and 2 threads, MKL paths).
test-portable: setup
	PY=$(BIN)/python scripts/test_portable.sh

theory: setup
	$(BIN)/python -m pytest -q theory

ledger: setup
	$(BIN)/python -m theory

bench: setup
	$(BIN)/python -m benchmarks --quick

# Re-render every result table and number of README.md and docs/*.md from results/ (--check: compare only).
report: setup
	$(BIN)/python -m empirical.report

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
