# esser-lab: `make book` builds the book, `make test` runs the tests. Both set up .venv first.
# Run `make help` for the other targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

# The interpreter that creates the virtual environment (Python >= 3.10).
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(VPY) -m pip --disable-pip-version-check --quiet

# Tools run from the virtual environment; notebook kernels start with its interpreter.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Where the chapters write their reproduction cards (see esser_lab/cards.py).
BOOK_CARDS := $(CURDIR)/_build/cards
TEST_CARDS := $(CURDIR)/_build/test-cards
# nbval's per-cell limit, as execute.timeout in _config.yml.
CELL_TIMEOUT := 600
NOTEBOOK_ARGS := $(if $(wildcard notebooks/*.py),notebooks,)
PYTEST_ARGS ?=
LINT_PATHS := esser_lab tests notebooks bench

.PHONY: help install test test-notebook book bench lint format clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# ---------------------------------------------------------------------------------------------
# Set-up: a virtual environment with requirements.txt and esser_lab (editable)
# ---------------------------------------------------------------------------------------------

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else \
	  "esser-lab needs Python >= 3.10; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	@echo "installing requirements.txt into $(VENV) (torch is large: a few minutes the first time)"
	$(PIP) install -r requirements.txt
	$(PIP) install -e . --no-deps
	$(VPY) -m pip check
	touch $@

install: $(STAMP) ## create .venv and install everything (done by the other targets)

# ---------------------------------------------------------------------------------------------
# Tests: unit tests and every chapter, cell by cell (nbval), at tiny scale, in one pytest run
# ---------------------------------------------------------------------------------------------

test: $(STAMP) ## unit tests (tests/) and every chapter (notebooks/) at ESSER_LAB_SCALE=tiny
	ESSER_LAB_SCALE=tiny ESSER_LAB_CARDS=$(TEST_CARDS) \
	  $(VPY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) \
	  $(PYTEST_ARGS) tests $(NOTEBOOK_ARGS) || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5): nothing to run"; \
	  else exit $$rc; fi; }

# tests/conftest.py teaches pytest to read the .py chapters; naming it loads it without the
# unit tests.
test-notebook: $(STAMP) ## one chapter through nbval: make test-notebook NB=notebooks/01_vunet.py
	@[ -n "$(NB)" ] || { echo "usage: make test-notebook NB=notebooks/NN_name.py"; exit 2; }
	ESSER_LAB_SCALE=tiny ESSER_LAB_CARDS=$(TEST_CARDS) \
	  $(VPY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) \
	  $(PYTEST_ARGS) tests/conftest.py $(NB)

# ---------------------------------------------------------------------------------------------
# The book: every chapter executed at the active scale (tiny on a CPU, small with a GPU)
# ---------------------------------------------------------------------------------------------

book: $(STAMP) ## build the site into _build/html (cards in _build/cards); a failing cell fails it
	@echo "scale: $$($(VPY) -c 'from esser_lab.scale import current; print(current().name)')" \
	  "(set ESSER_LAB_SCALE=tiny|small|full to choose)"
	rm -rf $(BOOK_CARDS)
	ESSER_LAB_CARDS=$(BOOK_CARDS) $(VENV)/bin/jupyter-book build --all -W --keep-going .
	@echo "site: $(CURDIR)/_build/html/index.html"
	@echo "cards: $$(ls $(BOOK_CARDS) 2>/dev/null | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------
# Benchmark, lint, clean
# ---------------------------------------------------------------------------------------------

bench: $(STAMP) ## time every chapter at tiny scale: bench/results/{chapters,claims}.csv
	$(VPY) bench/run_chapters.py $(BENCH_ARGS)

lint: $(STAMP) ## ruff check and ruff format --check
	$(VPY) -m ruff check $(LINT_PATHS)
	$(VPY) -m ruff format --check $(LINT_PATHS)

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VPY) -m ruff check --fix $(LINT_PATHS)
	$(VPY) -m ruff format $(LINT_PATHS)

clean: ## remove build outputs and caches (keeps .venv)
	rm -rf _build .pytest_cache .ruff_cache *.egg-info build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv
	rm -rf $(VENV)
