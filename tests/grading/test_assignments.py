"""make assignments on the real chapters: student notebooks without answers, hidden checks for every exercise."""
from pathlib import Path

import nbformat
import pytest

from book import student
from grading import assignments, capstone, catalog

ROOT = Path(__file__).resolve().parents[2]

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem[:2])
def test_student_notebook_has_no_solution_answer_or_check_of_the_chapter(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    secrets = student.notebook_secrets(nb)
    hidden = assignments.hidden_check_files(nb, runs=2)
    nbformat.write(student.student_notebook(nb, path.stem), tmp_path / path.name)
    assert student.leaks(tmp_path, secrets) == []
    # nor a line of a hidden check (its answers, mistakes and feedback)
    assert student.leaks(tmp_path, list(hidden.values()), min_len=50) == []
    exercises = [e for e in catalog.exercises(nb) if e.kind == "auto"]
    assert all(e.label in hidden and e.answer_cells for e in exercises)
    assert exercises or not any("{exercise}" in c.source for c in nb.cells)


def test_chapter_10_grades_the_capstone_per_property_under_hidden_runs():
    nb = nbformat.read(ROOT / "chapters" / "10-choosing.ipynb", as_version=4)
    hidden = assignments.hidden_check_files(nb, runs=3)
    assert [k for k in hidden if k.startswith("capstone")] == [f"capstone-{i}" for i in range(1, 5)]
    assert "no duplicate notifications" in hidden["capstone-4"] and hidden["capstone-4"].count("def run_") == 3
    runs = capstone.draw_runs(3, seed=7)
    assert runs == capstone.draw_runs(3, seed=7) and runs != capstone.draw_runs(3, seed=8)
    assert all(r["PROCESSOR_DOWN"][0] < r["PROCESSOR_DOWN"][1] <= r["LOAD_END"] for r in runs)
    with pytest.raises(ValueError, match="count must be a positive int"):
        capstone.draw_runs(0)
