"""The chapters read as a lab protocol: every visible code cell is short, or says on its first line why not.

A visible cell is a code cell without the ``hide-input`` or ``remove-input`` tag: the reader sees its
source. At most ``MAX_LINES`` lines (set-up, run, plot, check); plumbing belongs in labkit, with tests.
A longer cell starts with ``# longer: <the reason>`` (a figure whose traces are the lesson, say).
"""

import json
from pathlib import Path

import pytest

CHAPTERS = sorted((Path(__file__).parents[2] / "chapters").glob("*.ipynb"))
MAX_LINES = 15
HIDDEN = {"hide-input", "remove-input"}
REASON = "# longer:"


def too_long(notebook: dict) -> list[str]:
    """The visible code cells over MAX_LINES lines with no reason given, as 'id (n lines)'."""
    found = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code" or HIDDEN & set(cell.get("metadata", {}).get("tags", [])):
            continue
        lines = "".join(cell["source"]).strip("\n").splitlines()
        reason = lines[0].removeprefix(REASON).strip() if lines and lines[0].startswith(REASON) else ""
        if len(lines) > MAX_LINES and not reason:
            found.append(f"{cell.get('id')} ({len(lines)} lines)")
    return found


def test_there_are_chapters_to_check():
    assert len(CHAPTERS) >= 10


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_visible_code_cells_are_short_or_say_why(chapter):
    long_cells = too_long(json.loads(chapter.read_text(encoding="utf-8")))
    assert not long_cells, (
        f"{chapter.name}: visible code cells over {MAX_LINES} lines: {long_cells}. Move the plumbing into "
        f"labkit (with a test), split the cell, or start it with '{REASON} <why this cell is better long>'."
    )


def _cell(source: str, tags: tuple[str, ...] = ()) -> dict:
    return {"cell_type": "code", "id": "c", "metadata": {"tags": list(tags)}, "source": source}


def test_the_rule_counts_visible_code_only_and_wants_a_reason_not_just_the_marker():
    long = "x = 1\n" * (MAX_LINES + 1)
    assert too_long({"cells": [_cell("x = 1\n" * MAX_LINES)]}) == []
    assert too_long({"cells": [_cell(long)]}) == [f"c ({MAX_LINES + 1} lines)"]
    assert too_long({"cells": [_cell(long, ("hide-input",)), _cell(long, ("remove-input",))]}) == []
    assert too_long({"cells": [{"cell_type": "markdown", "metadata": {}, "source": long}]}) == []
    assert too_long({"cells": [_cell("# longer: the traces are the lesson\n" + long)]}) == []
    assert too_long({"cells": [_cell("# longer:\n" + long)]}) == [f"c ({MAX_LINES + 2} lines)"]
