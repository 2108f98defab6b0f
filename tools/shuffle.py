"""A pytest plugin for ``make soak``: run the suite in a random order that still runs a notebook top to bottom.

Why not pytest-randomly: it shuffles the items inside each file, and an nbval "test" is a notebook cell,
so it would run chapter cells out of order. Here the files are shuffled, and the tests inside a Python
test file; a notebook's cells keep their order. The seed comes from ``--shuffle-seed`` so every
pytest-xdist worker collects the same order (xdist requires it), and it is printed so a failing order
can be replayed.
"""

from __future__ import annotations

import random
from itertools import groupby

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shuffle-seed", type=int, default=None,
                     help="shuffle test files, and tests within Python files, with this seed")


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = config.getoption("--shuffle-seed")
    return None if seed is None else f"shuffled with --shuffle-seed={seed}"


def shuffled(items: list, seed: int) -> list:
    """``items`` with whole files in a random order, and Python tests (not notebook cells) shuffled inside
    their file. Items of one file stay together, so ``--dist loadfile`` still sends a file to one worker."""
    rng = random.Random(seed)
    files = [list(group) for _, group in groupby(items, key=lambda item: item.path)]
    rng.shuffle(files)
    for group in files:
        if group[0].path.suffix == ".py":
            rng.shuffle(group)
    return [item for group in files for item in group]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    seed = config.getoption("--shuffle-seed")
    if seed is not None:
        items[:] = shuffled(items, seed)
