# Sync vs Async, Live — the two commands are `make book` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST := $(BIN)/python -m pytest
# Two workers match the 2-core target machine; loadfile keeps each notebook's cells on one worker.
PYTEST_PARALLEL := -n 2 --dist loadfile

.PHONY: install book test lab soak bench student clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[book,test]'
	touch $(STAMP)

# Execute the chapters (cached in _build/.jupyter_cache until they or labkit change) and build the HTML,
# then check in headless Chromium that every figure, widget and formula draws with no network.
book: install
	$(BIN)/jupyter-book build . -W -n --keep-going
	$(PYTEST) -q tests/book/test_built_book.py

test: install
	$(PYTEST) $(PYTEST_PARALLEL) --nbval-lax tests chapters

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

# Student edition: the book with every solution stripped (HTML, _sources, downloads) into _build/student/html,
# plus stripped notebooks in _build/student/notebooks. Reuses the chapters' executions from `make book`.
student: install
	$(BIN)/python book/student.py --root . --out _build/student
	$(PYTEST) -q tests/book/test_student.py

clean:
	rm -rf _build
