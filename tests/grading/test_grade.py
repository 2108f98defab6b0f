"""`make grade` on fixture submissions: each kind of submission gives the CSV it should, and none stops the run.

The fixture chapter is built into an assignment with the real `make assignments` code (otter generate),
then seven submissions (correct, wrong, partly right, raises and deletes a cell, loops, reads the
hidden checks, crashes its kernel) and a file that is not a notebook are graded by the real workers
(own broker, own kernel, otter-grader), three at a time.
"""
import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from fixture import chapter, submissions
from grading import assignments, grade

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = Path(__file__).with_name("expected_grades.csv")
SLUG = "01-fixture"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "chapters").mkdir()
    nbformat.write(chapter(), root / "chapters" / f"{SLUG}.ipynb")
    assignments.build(root, root / "assignments")
    return root


def test_the_assignment_has_public_checks_and_no_answer(course):
    student = (course / "assignments" / SLUG / "student" / f"{SLUG}.ipynb").read_text()
    assert "SealedNumeric(" in student and "SealedChoice(" in student
    for secret in ("answer=160", "email alone", "Email happens later", "correct=", "worked answer"):
        assert secret not in student
    bundle = course / "assignments" / SLUG / "grading"
    assert (bundle / "autograder.zip").is_file() and (bundle / "manifest.json").is_file()


@pytest.mark.timeout(300)
def test_fixture_submissions_give_the_expected_csv(course, tmp_path):
    student_nb = nbformat.read(course / "assignments" / SLUG / "student" / f"{SLUG}.ipynb", as_version=4)
    folder = tmp_path / "submissions"
    for name, nb in submissions(student_nb).items():
        (folder / name).mkdir(parents=True)
        nbformat.write(nb, folder / name / "my-work.ipynb")  # the file name says nothing; the metadata does
    (folder / "zed-stray.ipynb").write_text("{ not a notebook")
    out = tmp_path / "grades.csv"
    result = subprocess.run(
        [sys.executable, "-m", "grading.grade", str(folder), "--bundles", str(course / "assignments"),
         "--out", str(out), "--jobs", "3", "--cell-timeout", "8", "--timeout", "150"],
        cwd=ROOT, capture_output=True, text=True, timeout=290)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(out) as got, open(EXPECTED) as want:
        assert list(csv.DictReader(got)) == list(csv.DictReader(want))


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="SUBMISSIONS must be a folder"):
        grade.submissions(tmp_path / "nowhere", [])
    with pytest.raises(ValueError, match="bundles must hold"):
        grade.grade_folder(tmp_path, tmp_path)
