"""A tiny chapter (two exercises, a lab on the grader's broker) and the submissions the tests grade."""
from __future__ import annotations

import nbformat

SETUP = "from labkit.exercises import Choice, Numeric\nfrom labkit.lab import Lab\n\nlab = await Lab.start(seed=0)"
CHAIN_CHECK = ('Numeric("Latency of order -> payment -> email (ms)", answer=160, rel_tol=0, abs_tol=5, unit="ms",\n'
               '        mistakes=[(100, "that is email alone; the caller waits for every step.")]).check(chain_ms)')
PICK_CHECK = ('Choice("Which design keeps email off the critical path?",\n'
              '       {"call": "The caller still waits for email.", "queue": "Email happens later, off the path."},\n'
              '       correct="queue").check(pick)')


def _exercise(label: str, title: str) -> str:
    return (f"```{{exercise}} {title}\n:label: {label}\n\nAnswer below.\n```\n\n"
            f"```{{solution}} {label}\n:class: dropdown\n\nThe teacher's worked answer for {label}.\n```\n")


def chapter() -> nbformat.NotebookNode:
    """The teacher's chapter: exercises with solutions and check cells holding the answers."""
    code, md = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    hidden = {"tags": ["hide-input"]}
    cells = [
        md("# Fixture chapter"),
        code(SETUP),
        md("## Exercises\n\n" + _exercise("fx-chain", "Chain")),
        code("chain_ms = ...  # your answer, in ms"),
        code(CHAIN_CHECK, metadata=hidden),
        md(_exercise("fx-pick", "Pick")),
        code("pick = ...  # your answer"),
        code(PICK_CHECK, metadata=hidden),
        md("## Stop the lab"),
        code("await lab.stop()"),
    ]
    for i, cell in enumerate(cells):
        cell.id = f"fx{i:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _answer(nb: nbformat.NotebookNode, cell_id: str, source: str) -> None:
    next(c for c in nb.cells if c.id == cell_id).source = source


def submissions(student_nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """{student: submitted notebook}, each made from the student notebook the way a learner would."""
    def answered(chain: str, pick: str) -> nbformat.NotebookNode:
        nb = nbformat.from_dict(student_nb)
        _answer(nb, "fx03", chain)
        _answer(nb, "fx06", pick)
        return nb

    cheat = answered("chain_ms = 160", "pick = 'queue'")
    cheat.cells.insert(2, nbformat.v4.new_code_cell(
        "import glob\nleaked = [open(p).read() for p in glob.glob('tests/*.py')]"))
    raises = answered("chain_ms = 1 / 0", "pick = 'b'")
    raises.cells = [c for c in raises.cells if c.id != "fx06"]  # and deletes the other answer cell
    return {
        "ada-correct": answered("chain_ms = 160", "pick = 'queue'"),
        "bob-wrong": answered("chain_ms = 100", "pick = 'call'"),
        "cy-partly": answered("chain_ms = 158", "pick = 'a'"),
        "dee-raises": raises,
        "eve-loops": answered("chain_ms = 160", "while True:\n    pass"),
        "fay-cheats": cheat,
        "hal-crashes": answered("chain_ms = 160", "import os\nos._exit(3)"),  # kills its own kernel
    }
