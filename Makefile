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
PYTEST_ARGS ?=
# Tests, tiny runs and CI never download: every Python process they start (notebook kernels,
# DataLoader workers, DDP children) refuses non-local connections (tests/offline/sitecustomize.py); `make book` applies it when the scale is tiny (at small/full a
# chapter may fetch published weights with their checksums).
OFFLINE := PYTHONPATH=$(CURDIR)/tests/offline ESSER_LAB_OFFLINE=1
# CI's small pass: every chapter at `small` sizes on the CPU, 3 training steps, data and evaluation
# sets capped, pretrained networks as seeded stand-ins. It proves the small code path runs; its
# numbers mean nothing and go nowhere (_build/small-cards, _build/executed-small).
# The MALLOC_ settings keep glibc from returning every large activation buffer to the kernel and
# faulting it in again on the next pass (measured: a VUNet pass over 256 figures at 64 px took
# 17.2 s of CPU with the defaults, 10.3 s with these; system time 10.6 s → 1.3 s).
SMALL_CPU := ESSER_LAB_SCALE=small ESSER_LAB_DEVICE=cpu ESSER_LAB_MAX_STEPS=3 \
  ESSER_LAB_MAX_SAMPLES=256 ESSER_LAB_PRETRAINED=stand-in ESSER_LAB_THREADS=1 \
  MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736
LINT_PATHS := esser_lab tests notebooks bench book/_ext

.PHONY: help install test test-pretrained chapters chapters-small test-notebook book bench bench-peers bench-seeds lint format clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# ---------------------------------------------------------------------------------------------
# Offline site: the JavaScript a page runs (widget manager, RequireJS, MathJax) comes from the npm
# registry at set-up time and is served by the site itself, so no page loads anything from a CDN.
# `npm pack` fetches each package's tarball only (no node_modules, no install scripts); the files
# a page needs are copied into $(VENDOR)/ (git-ignored), which _config.yml lists in
# html_static_path (so they land in _build/html/_static/) and names in nb_ipywidgets_js and
# mathjax_path. Changing a version below re-vendors on the next `make install` / `make book`.
# ---------------------------------------------------------------------------------------------

NPM ?= npm
VENDOR := _vendor
# @jupyter-widgets/html-manager 1.0.x embeds ipywidgets 8 (widget protocol 2); 1.0.15 is built on
# the same @jupyter-widgets/base 6.0.12 and controls 5.0.13 as ipywidgets 8.1.9's own front end.
HTML_MANAGER_VERSION := 1.0.15
REQUIREJS_VERSION := 2.3.7
MATHJAX_VERSION := 3.2.2
VENDOR_STAMP := $(VENDOR)/.vendored-$(HTML_MANAGER_VERSION)-$(REQUIREJS_VERSION)-$(MATHJAX_VERSION)
VENDOR_TMP := $(VENDOR).partial
WIDGETS_SETUP := $(VENDOR)/jupyter-widgets/setup.js
VENDOR_FILES := $(VENDOR_STAMP) $(WIDGETS_SETUP)

# Runs on a page between RequireJS and the widget manager (nb_ipywidgets_js in _config.yml).
define WIDGETS_SETUP_JS
// Written by `make vendor` (Makefile). Loaded after require.js, before embed-amd.js.
(function () {
  var here = document.currentScript.src.replace(/[^/]*$$/, "");
  // The manager's stylesheet finds its icon fonts next to the module it thinks it came from:
  // point that module (and the manager's asset path) at this folder, not at the page's folder.
  window.require.config({ paths: { "@jupyter-widgets/html-manager/dist": here.slice(0, -1) } });
  window.__jupyter_widgets_assets_path__ = here;
  // ipywidgets 8's HTML, HTMLMath and Label views typeset with MathJax 2's API, which MathJax 3
  // lacks (TypeError: MathJax.Hub is undefined). Widgets are drawn on window load, after the
  // (deferred) MathJax 3 has started: give it that one call.
  document.addEventListener("DOMContentLoaded", function () {
    var mathjax = window.MathJax;
    if (!mathjax || mathjax.Hub || !mathjax.startup) return;
    mathjax.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        mathjax.startup.promise.then(function () {
          return mathjax.typesetPromise(element ? [element] : undefined);
        });
      },
    };
  });
})();
endef
export WIDGETS_SETUP_JS

# Built in $(VENDOR_TMP) and renamed at the end, so a failed download leaves no half folder.
# Widgets: the AMD embed bundle and its icon fonts (setup.js is written below). MathJax: the
# all-TeX CHTML component, its fonts, and the menu, accessibility and speech parts it loads on
# demand.
$(VENDOR_STAMP):
	@command -v $(NPM) >/dev/null 2>&1 || { echo "make vendor: '$(NPM)' not found." \
	  "The site's widget and maths JavaScript come from the npm registry at set-up time:" \
	  "install Node.js and npm (Debian: apt-get install -y npm) or run make NPM=/path/to/npm." >&2; \
	  exit 1; }
	rm -rf $(VENDOR) $(VENDOR_TMP)
	mkdir -p $(VENDOR_TMP)/npm/html-manager $(VENDOR_TMP)/npm/requirejs $(VENDOR_TMP)/npm/mathjax \
	  $(VENDOR_TMP)/jupyter-widgets $(VENDOR_TMP)/requirejs $(VENDOR_TMP)/mathjax/output/chtml/fonts
	cd $(VENDOR_TMP)/npm && $(NPM) pack --loglevel=error \
	  @jupyter-widgets/html-manager@$(HTML_MANAGER_VERSION) requirejs@$(REQUIREJS_VERSION) \
	  mathjax@$(MATHJAX_VERSION) >/dev/null || { echo "make vendor: npm pack failed" \
	  "(it needs the npm registry; see npm's message above)" >&2; exit 1; }
	tar -xzf $(VENDOR_TMP)/npm/jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION).tgz \
	  -C $(VENDOR_TMP)/npm/html-manager --strip-components=1
	tar -xzf $(VENDOR_TMP)/npm/requirejs-$(REQUIREJS_VERSION).tgz \
	  -C $(VENDOR_TMP)/npm/requirejs --strip-components=1
	tar -xzf $(VENDOR_TMP)/npm/mathjax-$(MATHJAX_VERSION).tgz \
	  -C $(VENDOR_TMP)/npm/mathjax --strip-components=1
	cd $(VENDOR_TMP)/npm/html-manager && cp package.json dist/embed-amd.js \
	  dist/*.woff2 dist/*.woff dist/*.ttf dist/*.eot dist/*.svg ../../jupyter-widgets/
	cd $(VENDOR_TMP)/npm/requirejs && cp package.json require.js ../../requirejs/
	cd $(VENDOR_TMP)/npm/mathjax && cp LICENSE package.json es5/tex-chtml-full.js ../../mathjax/ \
	  && cp -r es5/a11y es5/ui es5/sre ../../mathjax/ \
	  && cp -r es5/output/chtml/fonts/woff-v2 ../../mathjax/output/chtml/fonts/
	rm -rf $(VENDOR_TMP)/npm
	touch $(VENDOR_TMP)/$(notdir $(VENDOR_STAMP))
	mv $(VENDOR_TMP) $(VENDOR)
	@echo "vendored into $(VENDOR)/: @jupyter-widgets/html-manager@$(HTML_MANAGER_VERSION)," \
	  "requirejs@$(REQUIREJS_VERSION), mathjax@$(MATHJAX_VERSION) ($$(du -sh $(VENDOR) | cut -f1))"

# Written whenever this Makefile changes (no download).
$(WIDGETS_SETUP): $(VENDOR_STAMP) Makefile
	printf '%s\n' "$$WIDGETS_SETUP_JS" > $@

.PHONY: vendor browser-test
vendor: $(VENDOR_FILES) ## fetch the site's widget and maths JS from npm (install/book do it)

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

install: $(STAMP) $(VENDOR_FILES) ## create .venv, install everything, vendor the site's JS

# ---------------------------------------------------------------------------------------------
# Tests: the unit tests, then every chapter executed once at tiny scale (book/_ext/execute.py)
# ---------------------------------------------------------------------------------------------

test: $(STAMP) ## unit tests (tests/), then every chapter executed once at tiny (2 at a time)
	$(OFFLINE) ESSER_LAB_SCALE=tiny ESSER_LAB_CARDS=$(TEST_CARDS) \
	  $(VPY) -m pytest -m "not browser" $(PYTEST_ARGS) tests || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5): nothing to run"; \
	  else exit $$rc; fi; }
	$(MAKE) --no-print-directory chapters

# The chapters run once per CI run: book/_ext/execute.py stores them in the book's jupyter-cache
# (with a stamp of the sources) and `make book` renders those outputs instead of executing again.
chapters: $(STAMP) ## execute every chapter once at tiny (JOBS at a time, default 2) for the book
	$(OFFLINE) ESSER_LAB_SCALE=tiny ESSER_LAB_CARDS=$(BOOK_CARDS) \
	  $(VPY) book/_ext/execute.py $(if $(JOBS),--jobs $(JOBS),)

chapters-small: $(STAMP) ## every chapter at small sizes on the CPU, 3 steps, capped data (CI)
	$(OFFLINE) $(SMALL_CPU) ESSER_LAB_CARDS=$(CURDIR)/_build/small-cards \
	  $(VPY) book/_ext/execute.py --no-cache --outputs $(CURDIR)/_build/executed-small \
	  $(if $(JOBS),--jobs $(JOBS),) $(CHAPTERS)

# tests/conftest.py teaches pytest to read the .py chapters; naming it loads it without the
# unit tests.
test-notebook: $(STAMP) ## one chapter through nbval: make test-notebook NB=notebooks/01_vunet.py
	@[ -n "$(NB)" ] || { echo "usage: make test-notebook NB=notebooks/NN_name.py"; exit 2; }
	$(OFFLINE) ESSER_LAB_SCALE=tiny ESSER_LAB_CARDS=$(TEST_CARDS) \
	  $(VPY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) \
	  $(PYTEST_ARGS) tests/conftest.py $(NB)

# ---------------------------------------------------------------------------------------------
# The book: every chapter executed at the active scale (tiny on a CPU, small with a GPU)
# ---------------------------------------------------------------------------------------------

book: $(STAMP) $(VENDOR_FILES) ## build the site into _build/html (cards in _build/cards); a failing cell fails it
	@scale=$$($(VPY) -c 'from esser_lab.scale import current; print(current().name)'); \
	  echo "scale: $$scale (set ESSER_LAB_SCALE=tiny|small|full to choose)"; \
	  if [ "$$scale" = tiny ]; then export $(OFFLINE); fi; \
	  set -x; \
	  ESSER_LAB_CARDS=$(BOOK_CARDS) $(VPY) book/_ext/execute.py --check; \
	  rm -rf _build/html _build/jupyter_execute; \
	  ESSER_LAB_CARDS=$(BOOK_CARDS) $(VENV)/bin/jupyter-book build --all -W --keep-going .
	@echo "site: $(CURDIR)/_build/html/index.html"
	@echo "cards: $$(ls $(BOOK_CARDS) 2>/dev/null | tr '\n' ' ')"

# The built site in headless Chromium (Debian's chromium + chromium-driver), offline: every chapter
# loads with its figures, maths and widgets, search works, screenshots go to _build/screenshots/.
# Uses the _build/html of an earlier `make book`; never builds or executes a chapter itself.
browser-test: $(STAMP) ## check the built site in headless Chromium (after make book): tests/browser
	@[ -f _build/html/index.html ] || { echo "make browser-test: _build/html/index.html is missing;" \
	  "run make book first (the browser tests check the built site, they do not build it)" >&2; \
	  exit 1; }
	$(VPY) -m pytest -m browser $(PYTEST_ARGS) tests/browser

# The Hugging Face loaders (chapter 16's CLIP and MiDaS, chapter 17's text encoders) against the
# real `transformers` classes, on tiny random models the tests build (offline). `transformers` is
# an extra, not in requirements.txt (see there): installed for this run, removed after, so the
# chapters' import time stays as recorded. `make test` skips these tests (importorskip).
PRETRAINED_TESTS = $(shell grep -rl 'importorskip("transformers")' tests)
# the extra's requirement as pyproject.toml states it (one place for its version range)
PRETRAINED_EXTRA = $(shell sed -n 's/^pretrained = \["\(.*\)"\]$$/\1/p' pyproject.toml)
test-pretrained: $(STAMP) ## the transformers-based loaders' tests (installs the extra, removes it)
	@[ -n "$(PRETRAINED_EXTRA)" ] || { echo "pyproject.toml: no 'pretrained' extra found" >&2; exit 1; }
	$(PIP) install '$(PRETRAINED_EXTRA)'
	$(OFFLINE) ESSER_LAB_SCALE=tiny $(VPY) -m pytest -q -rs $(PRETRAINED_TESTS); rc=$$?; \
	  $(PIP) uninstall -y transformers; exit $$rc

# ---------------------------------------------------------------------------------------------
# Colab: the chapters as .ipynb, and the local branch that holds them (book/_ext/colab.py).
# The GitHub repository and the branch's name come from _config.yml (repository: url, colab_branch).
# ---------------------------------------------------------------------------------------------

COLAB_OUT := _build/colab

.PHONY: colab publish-colab colab-bootstrap
colab: $(STAMP) ## every chapter in _toc.yml as a Colab notebook (installing esser_lab at HEAD): _build/colab/notebooks/NN_name.ipynb, and its student edition (solutions removed) in _build/colab/student/
	$(VPY) book/_ext/colab.py build --out $(COLAB_OUT)

# Commits with git plumbing only: the checkout's HEAD, index and working tree stay as they are.
# The notebooks pin the commit they come from (git rev-parse HEAD): push it before the branch.
# Refuses uncommitted changes to the chapters' sources (ALLOW_DIRTY=1 publishes them anyway).
publish-colab: colab ## commit those notebooks, pinned to HEAD, to the local colab branch (deploy: git push origin main colab)
	$(VPY) book/_ext/colab.py publish --out $(COLAB_OUT) $(if $(ALLOW_DIRTY),--allow-dirty,)

colab-bootstrap: $(STAMP) ## (re)write every chapter's first code cell, the Colab install cell
	$(VPY) book/_ext/colab.py bootstrap

# ---------------------------------------------------------------------------------------------
# Benchmark, lint, clean
# ---------------------------------------------------------------------------------------------

bench: $(STAMP) ## time every chapter at tiny scale: bench/results/{chapters,claims}.csv
	$(VPY) bench/run_chapters.py $(BENCH_ARGS)

# diffusers is a benchmark-only dependency: the book and the tests never need it
bench-peers: $(STAMP) ## esser_lab vs diffusers on the same models and weights: bench/results/peers.csv
	$(VPY) -m pip install --quiet "diffusers>=0.30,<1"
	$(VPY) bench/peers.py $(BENCH_ARGS)

bench-seeds: $(STAMP) ## chapter 4 over seeds 0-3 (RoDi vs AE vs VAE): bench/results/rodi_seeds.csv
	$(VPY) bench/rodi_seeds.py $(BENCH_ARGS)

lint: $(STAMP) ## ruff check and ruff format --check
	$(VPY) -m ruff check $(LINT_PATHS)
	$(VPY) -m ruff format --check $(LINT_PATHS)

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VPY) -m ruff check --fix $(LINT_PATHS)
	$(VPY) -m ruff format $(LINT_PATHS)

clean: ## remove build outputs and caches (keeps .venv)
	rm -rf _build .pytest_cache .ruff_cache *.egg-info build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv (and the vendored JavaScript)
	rm -rf $(VENV) $(VENDOR) $(VENDOR_TMP)
