# Sync vs Async, Live — the two commands are `make book` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST := $(BIN)/python -m pytest
# Two workers match the 2-core target machine; loadfile keeps each notebook's cells on one worker.
PYTEST_PARALLEL := -n 2 --dist loadfile
# nbval's own cell timeout is 2000 s: a cell stuck on a bug would hold the run for half an hour.
NBVAL := --nbval-lax --nbval-cell-timeout=300

.PHONY: install book lint test lab soak bench student assignments grade hub-links clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[book,test,grade,lint]'
	touch $(STAMP)

# Execute the chapters (cached in _build/.jupyter_cache until they or labkit change) and build the HTML,
# then check in headless Chromium that every figure, widget and formula draws with no network.
book: install
	$(BIN)/jupyter-book build . -W -n --keep-going
	$(PYTEST) -q tests/book/test_built_book.py

# ruff (lint and format) on the lab kit and its tests, mypy on labkit (strict on the broker and the theory, see
# pyproject.toml), and notebooks committed without outputs. The same checks run as pre-commit hooks.
LINT_PATHS := labkit bench tests/labkit tests/broker tests/conformance tests/classroom tests/conftest.py
lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/nbstripout --keep-id --verify chapters/*.ipynb

test: install lint
	$(PYTEST) $(PYTEST_PARALLEL) $(NBVAL) tests chapters

# JupyterLab on the chapters, on 127.0.0.1. Containers and fresh cloud machines run as root, where JupyterLab
# refuses to start without --allow-root: pass it, and say so. LAB_ARGS adds options (e.g. --no-browser --port=8899).
lab: install
	@if [ "$$(id -u)" = 0 ]; then echo "make lab: running as root, so JupyterLab gets --allow-root"; set -- --allow-root; fi; \
	exec $(BIN)/jupyter lab --ip=127.0.0.1 "$$@" $(LAB_ARGS) chapters

# The whole suite N times from a clean clone, shuffled, quiet and beside two busy processes; prints per test how
# often it failed. Not part of `make test` (it takes N × 2 suite runs).
N ?= 5
soak: install
	$(BIN)/python tools/soak.py --runs $(N)

bench: install
	$(BIN)/python bench/broker.py
	$(BIN)/python bench/harness.py
	$(BIN)/python bench/history.py

# Student edition: the book with every solution stripped and every check sealed (HTML, _sources, downloads) into
# _build/student/html, the student notebooks in _build/student/notebooks and the student branch's tree in
# _build/student/repository; launch buttons open that branch. JUPYTERHUB_URL=https://... adds a hub button.
JUPYTERHUB_URL ?=
student: install
	$(BIN)/python book/student.py --root . --out _build/student $(if $(JUPYTERHUB_URL),--jupyterhub-url "$(JUPYTERHUB_URL)")
	$(PYTEST) -q tests/book/test_student.py

# Graded assignments (otter-grader): per chapter the student notebook (public checks, sealed) and the grading
# bundle (hidden checks, autograder.zip, manifest) in _build/assignments. Nothing under */grading goes to students.
assignments: install
	$(BIN)/python -m grading.assignments --root . --out _build/assignments

# Grade a folder of submitted notebooks into grades.csv: one row per student and exercise (points, feedback).
SUBMISSIONS ?=
GRADES ?= grades.csv
grade: install
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=dir [GRADES=grades.csv]"; exit 2; }
	test -d _build/assignments || $(MAKE) assignments
	$(BIN)/python -m grading.grade "$(SUBMISSIONS)" --bundles _build/assignments --out "$(GRADES)"

# nbgitpuller links that open each student notebook on a JupyterHub: make hub-links HUB=https://hub.example.edu
HUB ?=
hub-links: install
	@test -n "$(HUB)" || { echo "usage: make hub-links HUB=https://your-hub"; exit 2; }
	$(BIN)/python book/hub_links.py --hub "$(HUB)" --out _build/hub-links.md

clean:
	rm -rf _build
