"""No measured quantity typed by hand in a chapter's prose: numbers a run measures come through {glue}.

Why: the book promises that what the prose says about a run is true of *that* run, the reader's own
in JupyterLab and the build's in the HTML. A typed "p99 was 180 ms" stays 180 ms when the next run
measures 240. The rule a test can hold (a number carries no label saying "measured"):

- every number with a unit of measurement (ms, s, %, ×, messages, orders/s, MB, ...) in a chapter's
  markdown, outside math, inline code and roles, is a *quantity*;
- a quantity is fine when the chapter's code sets it (the same value appears as a literal in a code
  cell, in the same or a scaled unit: ``0.150`` is 150 ms, ``0.2`` is 20 %): it is a parameter of the
  experiment, not a result;
- any other quantity is a theory, exercise or literature number and must be named in the cell's
  allow-list, an HTML comment that renders nowhere (JupyterLab and the book alike):
  ``<!-- typed: 83 % (product of the four availabilities), 150 ms (Dean's table) -->``;
- everything a run measures is written as ``{glue:text}`name:fmt``` from a ``glue(...)`` in a code cell.

So a measured number can only be typed by hand if its author also lies in the allow-list, where a
reviewer reads it next to its reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]-*.ipynb"))

UNITS = (r"ms|µs|μs|s|seconds?|milliseconds?|minutes?|%|×|MB|KB|kB|B|bytes|messages|events|orders|"
         r"checkouts|requests|calls|images|points|orders/s|req/s|calls/s|messages/s|events/s|/s|"
         r"per second|a second|percentage points")
NUMBER = r"(?<![\w.$/-])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
QUANTITY = re.compile(NUMBER + r"\s?(" + UNITS + r")(?![\w/])")
ALLOW = re.compile(r"<!--\s*typed:(.*?)-->", re.DOTALL)
# Spans that are not prose: display and inline math, inline code, roles ({glue:text}`x`, {cite}`k`,
# {ref}`l`, ...), directive option lines, link targets, HTML comments, directive and fence openers.
NOT_PROSE = re.compile(
    r"\$\$.*?\$\$|\$[^$\n]+\$|\{[\w:-]+\}`[^`]*`|``.*?``|`[^`\n]*`|<!--.*?-->|\]\([^)]*\)"
    r"|^:[\w-]+:.*$|^\s*(?:```|:::).*$", re.DOTALL | re.MULTILINE)
CODE_NUMBER = re.compile(r"(?<![\w.])(\d+(?:_\d{3})*(?:\.\d+)?(?:e-?\d+)?)")
# How a quantity in a unit may appear in code: 150 ms as 150 or 0.150 (seconds), 20 % as 20 or 0.2.
SCALES = {"ms": (1, 0.001), "µs": (1, 1e-6), "μs": (1, 1e-6), "%": (1, 0.01), "percentage points": (1, 0.01),
          "points": (1, 0.01), "MB": (1, 1e6, 2 ** 20), "KB": (1, 1e3, 2 ** 10), "kB": (1, 1e3, 2 ** 10),
          "milliseconds": (1, 0.001), "millisecond": (1, 0.001), "minutes": (1, 60), "minute": (1, 60)}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def code_values(path: Path) -> set[float]:
    """Every numeric literal in the chapter's code cells."""
    return {round(float(literal.replace("_", "")), 9)
            for cell in cells(path) if cell["cell_type"] == "code" for literal in CODE_NUMBER.findall(source(cell))}


def quantities(markdown: str) -> list[tuple[str, list[float]]]:
    """(text, the values code may write it as) of every number with a unit in one markdown cell's prose."""
    prose = NOT_PROSE.sub(" ", markdown)
    found = []
    for m in QUANTITY.finditer(prose):
        value = float(m.group(1).replace(",", ""))
        found.append((m.group(0), [round(value * scale, 9) for scale in SCALES.get(m.group(2), (1,))]))
    return found


def allowed(markdown: str) -> set[str]:
    """The quantities a cell's allow-list names, normalised ("83 %", "0.5 ms")."""
    named = set()
    for comment in ALLOW.findall(markdown):
        named.update(normalise(m.group(0)) for m in QUANTITY.finditer(comment))
    return named


def normalise(text: str) -> str:
    return re.sub(r"\s+", "", text)


def typed_by_hand(path: Path) -> list[str]:
    """The quantities of a chapter's markdown that neither its code sets nor an allow-list names."""
    given = code_values(path)
    found = []
    for cell in cells(path):
        if cell["cell_type"] != "markdown":
            continue
        text = source(cell)
        ok = allowed(text)
        for quantity, values in quantities(text):
            if any(v in given for v in values) or normalise(quantity) in ok:
                continue
            found.append(f"cell {cell.get('id')}: {quantity!r}")
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem[:2])
def test_no_measured_number_is_typed(chapter):
    found = typed_by_hand(chapter)
    assert not found, (
        f"{chapter.name}: numbers with units in the prose that the code does not set. Glue what the run "
        "measures ({glue:text}`name:fmt`); name theory, exercise and literature numbers in the cell's "
        "<!-- typed: ... --> allow-list with their source:\n  " + "\n  ".join(found))


def test_the_rule_catches_a_typed_measurement(tmp_path):
    """The rule fails a typed result, passes a parameter, a glued value and an allow-listed number."""
    nb = {"cells": [
        {"cell_type": "code", "id": "c1", "metadata": {}, "source": ["RATE = 40\nTIMEOUT = 0.150\n"]},
        {"cell_type": "markdown", "id": "m1", "metadata": {},
         "source": ["At 40 orders/s with a 150 ms timeout, p99 was 183 ms, or {glue:text}`p99:.0f` ms; "
                    "$t = 230$ ms in theory, `12 ms` in code, 99.5 % by the book.\n"
                    "<!-- typed: 99.5 % (the exercise's given) -->\n"]},
    ]}
    path = tmp_path / "99-probe.ipynb"
    path.write_text(json.dumps(nb))
    assert typed_by_hand(path) == ["cell m1: '183 ms'"]
