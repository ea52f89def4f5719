# Two entry points for a fresh machine: `make book` and `make test`.
# Each creates .venv, installs requirements, and fetches what it needs from the registries.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv data vendor book lab test lint unit-tests bench bench-deps clean results land

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(STAMP)

data: venv
	$(PY) -m snnlib fetch

# The JavaScript for offline pages (MathJax, RequireJS, the widget manager), fetched with npm
# and verified; the book build does the same check itself (book/_ext/offline_assets.py).
vendor:
	bash scripts/fetch_vendor.sh --check vendor || bash scripts/fetch_vendor.sh vendor

book: venv data vendor
	$(VENV)/bin/jupyter-book build book/ -W -n --keep-going

# JupyterLab on the chapters with the project's kernel. jupyter-config/ keeps it offline: it
# listens on localhost only, opens no browser, and fetches no news, updates or extensions.
lab: venv data
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter-config $(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks

lint: venv
	$(VENV)/bin/ruff check .

unit-tests: venv data
	$(VENV)/bin/pytest -q

# The book is built first so that tests/test_book.py checks the rendered pages. The tests run in
# TEST_WORKERS processes (pytest-xdist; TEST_WORKERS=0 runs them in this one), a test module or a
# notebook per worker, so that a notebook's cells run in order in one kernel (nbval's rule).
TEST_WORKERS ?= auto
test: venv data vendor lint book
	$(VENV)/bin/pytest -q --nbval -n $(TEST_WORKERS) --dist loadscope

# Every output derived from the committed records, regenerated all or nothing (scripts/regenerate.py): the
# README's findings and tables, its figures (results/figures) and the analysis chapters, re-executed. Run it
# after adding records to results/ (make land FROM=folder does it after landing), then `make test`.
# the chapters it re-executes: CHAPTERS in scripts/regenerate.py (make land uses the same list)
results: venv data
	$(PY) scripts/regenerate.py

# Seals FROM, lands its finished runs of the design (whole or not at all) and regenerates, in one process:
# stopping it (Ctrl-C, or killing make) stops all of it and leaves every file whole.
land: venv data
	$(PY) scripts/land_records.py $(FROM) --dest results --regenerate

bench-deps: venv
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-bench.txt

bench: venv data
	$(PY) -m snnlib bench --json results/bench/training_step.json
	$(PY) -m snnlib bench --scaling --repeats 3 --steps 5 --json results/bench/scaling.json

clean:
	rm -rf _build book/_build
