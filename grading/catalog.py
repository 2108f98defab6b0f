"""Which exercises a chapter notebook has, and which of its cells hold their answers and checks.

Why read the chapter rather than a separate answer key: the chapter already says it. An exercise is a
markdown cell with an ``{exercise}`` directive (its ``:label:`` names it); the code cells after it, up to
the first hide-input cell that calls ``Numeric(...).check(...)`` or ``Choice(...).check(...)``, are
where the learner answers; that check cell holds the answer and the teacher's feedback. An exercise
with no such check (an explanation, a design) is open-ended: graded by hand with the rubric in
``book/instructors.md``. The capstone (chapter 10's ``my_design``) is graded by ``grading.capstone``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Exercise", "exercises", "check_calls", "CAPSTONE_VARIABLE"]

LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)
CAPSTONE_VARIABLE = "my_design"


@dataclass
class Exercise:
    """One gradable part of a chapter. ``checks``: the source of each ``Q(...).check(answer)`` call."""

    label: str
    kind: str  # "auto", "open" (rubric, by hand) or "capstone"
    answer_cells: list[str] = field(default_factory=list)
    check_cell: str | None = None
    checks: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        return len(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_calls(source: str) -> list[str]:
    """The ``Numeric(...).check(x)``/``Choice(...).check(x)`` expressions in ``source``, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check"
                and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name)
                and node.func.value.func.id in ("Numeric", "Choice")):
            found.append((node.lineno, node.col_offset, ast.get_source_segment(source, node)))
    return [text for _, _, text in sorted(found)]


def _is_check_cell(cell: Any) -> bool:
    return (cell.cell_type == "code" and "hide-input" in cell.get("metadata", {}).get("tags", [])
            and bool(check_calls(cell.source)))


def exercises(nb: Any) -> list[Exercise]:
    """The exercises of notebook ``nb`` (nbformat v4), in order, with their cells' ids."""
    found: list[Exercise] = []
    current: Exercise | None = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            labels = LABEL.findall(cell.source) if "{exercise}" in cell.source else []
            if labels:
                found += [Exercise(label, "open") for label in labels]
                current = found[-1]
            elif current is not None and cell.source.lstrip().startswith("#"):
                current = None  # a new section ends the exercise
            continue
        if current is None or current.check_cell is not None:
            continue
        if _is_check_cell(cell):
            current.kind, current.check_cell, current.checks = "auto", cell.id, check_calls(cell.source)
        else:
            current.answer_cells.append(cell.id)
    for exercise in found:
        if exercise.kind == "open":
            exercise.answer_cells = []
    for cell in nb.cells:
        if cell.cell_type == "code" and re.search(rf"^\s*(async\s+def\s+|){CAPSTONE_VARIABLE}\b", cell.source, re.M):
            found.append(Exercise("capstone", "capstone", answer_cells=[cell.id]))
            break
    return found
