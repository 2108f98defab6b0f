"""``make assignments``: for each chapter, the student assignment and the grading bundle.

    python -m grading.assignments [--root .] [--out _build/assignments] [--capstone-runs 3] [--seed N]

For chapter ``NN-slug`` it writes:

- ``NN-slug/student/NN-slug.ipynb``: the student notebook (solutions stripped, checks sealed: the same
  notebook as the student edition's), with its public checks inside;
- ``NN-slug/grading/autograder.zip``: the hidden checks as otter-grader test files (``otter generate``;
  the same zip is a Gradescope autograder), and ``NN-slug/grading/manifest.json``: the exercises, their
  points and cells, the capstone's hidden runs. Nothing under ``grading/`` goes to students.

Why generate rather than keep otter "master" notebooks: the chapters stay readable books; the check cells
they already have become the hidden checks (:mod:`grading.catalog`), so there is one place to edit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from book import student
from grading import capstone, catalog
from labkit.sealed import notebook_constants

__all__ = ["build", "build_chapter", "hidden_check_files"]

HEADER = ('"""Hidden check {name}: grading bundle only (it holds the answer)."""\n'
          "from otter.test_files import test_case\n\nOK_FORMAT = False\n")


def _auto_check(exercise: catalog.Exercise) -> str:
    cases = "".join(
        f"\n\n@test_case(hidden=True, points=1)\ndef check_{i}(env):\n"
        f"    from grading.hidden import judge\n    judge(env, {expression!r})\n"
        for i, expression in enumerate(exercise.checks, 1))
    return HEADER.format(name=exercise.label) + f"name = {exercise.label!r}\npoints = {exercise.points}\n" + cases


def _capstone_checks(properties: list[str], runs: int) -> dict[str, str]:
    files = {}
    for index, prop in enumerate(properties):
        name = f"capstone: {prop}"
        cases = "".join(
            f"\n\n@test_case(hidden=True)\ndef run_{run + 1}(env):\n"
            f"    from grading.hidden import capstone_property\n    capstone_property(env, {index}, {run})\n"
            for run in range(runs))
        files[f"capstone-{index + 1}"] = HEADER.format(name=name) + f"name = {name!r}\npoints = 1\n" + cases
    return files


def _capstone_properties(nb: Any) -> list[str]:
    """The capstone report's property names, as chapter 10 lists them (``PROPERTIES``)."""
    names = notebook_constants(c.source for c in nb.cells if c.cell_type == "code").get("PROPERTIES")
    return list(names) if names else [f"property {i}" for i in range(1, 5)]


def hidden_check_files(nb: Any, runs: int) -> dict[str, str]:
    """``{file stem: source}`` of the hidden checks of chapter notebook ``nb``."""
    files = {}
    for exercise in catalog.exercises(nb):
        if exercise.kind == "auto":
            files[exercise.label] = _auto_check(exercise)
        elif exercise.kind == "capstone":
            files.update(_capstone_checks(_capstone_properties(nb), runs))
    return files


def build_chapter(path: Path, out: Path, capstone_runs: int = 3, seed: int | None = None) -> dict[str, Any]:
    """Write the student notebook and the grading bundle of the chapter at ``path``; return its manifest."""
    from otter.generate import main as otter_generate

    path, slug = Path(path), Path(path).stem
    nb = nbformat.read(path, as_version=4)
    target = Path(out) / slug
    if target.exists():
        shutil.rmtree(target)
    (target / "student").mkdir(parents=True)
    (target / "grading").mkdir()
    nbformat.write(student.student_notebook(nb, slug), target / "student" / f"{slug}.ipynb")
    exercises = catalog.exercises(nb)
    runs = capstone.draw_runs(capstone_runs, seed) if any(e.kind == "capstone" for e in exercises) else []
    manifest = {
        "assignment": slug,
        "cells": [c.id for c in nb.cells],
        "exercises": [e.to_dict() | {"points": e.points} for e in exercises if e.kind != "capstone"],
        "capstone": {"variable": catalog.CAPSTONE_VARIABLE, "runs": runs,
                     "properties": _capstone_properties(nb),
                     "answer_cells": next(e.answer_cells for e in exercises if e.kind == "capstone")}
        if runs else None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tests = Path(tmp) / "tests"
        tests.mkdir()
        for stem, source in hidden_check_files(nb, capstone_runs).items():
            (tests / f"{stem}.py").write_text(source)
        config = Path(tmp) / "otter_config.json"
        config.write_text(json.dumps({"name": slug, "show_hidden": True}))
        with contextlib.redirect_stdout(io.StringIO()):
            otter_generate(tests_dir=str(tests), output_path=str(target / "grading" / "autograder.zip"),
                           config=str(config), no_requirements=True, no_environment=True)
    (target / "grading" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def build(root: Path, out: Path, capstone_runs: int = 3, seed: int | None = None,
          chapters: list[str] | None = None) -> list[dict[str, Any]]:
    """Every chapter of the book at ``root`` (or those whose stem is in ``chapters``) into ``out``."""
    paths = sorted(Path(root, "chapters").glob("*.ipynb"))
    if not paths:
        raise ValueError(f"root must hold chapters/*.ipynb, got {root}")
    return [build_chapter(p, out, capstone_runs, seed) for p in paths if chapters is None or p.stem in chapters]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the course repository")
    parser.add_argument("--out", default="_build/assignments")
    parser.add_argument("--capstone-runs", type=int, default=3, help="hidden runs of the capstone")
    parser.add_argument("--seed", type=int, help="draw the capstone's hidden runs reproducibly")
    args = parser.parse_args(argv)
    for manifest in build(Path(args.root), Path(args.out), args.capstone_runs, args.seed):
        auto = sum(e["points"] for e in manifest["exercises"])
        opened = sum(e["kind"] == "open" for e in manifest["exercises"])
        extra = f", capstone under {len(manifest['capstone']['runs'])} hidden runs" if manifest["capstone"] else ""
        print(f"{manifest['assignment']}: {auto} auto-graded checks, {opened} open-ended{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
