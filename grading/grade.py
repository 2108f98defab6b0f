"""``make grade SUBMISSIONS=dir``: every submitted notebook of a folder into one CSV.

    python -m grading.grade SUBMISSIONS [--bundles _build/assignments] [--out grades.csv] [--jobs 2]
                                        [--cell-timeout 60] [--timeout 600]

A submission is ``SUBMISSIONS/<student>/<anything>.ipynb`` (one folder per student, as an LMS export
unpacks) or ``SUBMISSIONS/<student>.ipynb``. Which chapter it answers comes from the notebook's
``metadata.labkit.assignment`` (set by ``make assignments``), else from a chapter name in its file name.

The CSV has one row per student and exercise: ``student, assignment, exercise, points, max_points,
feedback``. Each submission is graded by its own worker process (``grading.worker``): its own broker,
its own kernel; ``--jobs`` of them at a time. A worker past ``--timeout`` is killed with every process it
started, and that submission's exercises get 0 with the reason; nothing a submission does stops the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import psutil

from grading import worker

__all__ = ["grade_folder", "submissions", "write_csv"]

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["student", "assignment", "exercise", "points", "max_points", "feedback"]


def submissions(folder: Path, assignments: list[str]) -> list[tuple[str, str | None, Path]]:
    """(student, assignment or None, path) for every notebook under ``folder``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"SUBMISSIONS must be a folder of notebooks, got {folder}")
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        relative = path.relative_to(folder)
        student = relative.parts[0] if len(relative.parts) > 1 else path.stem
        found.append((student, _assignment(path, assignments), path))
    return found


def _assignment(path: Path, assignments: list[str]) -> str | None:
    try:
        mark = nbformat.read(path, as_version=4).metadata.get("labkit", {}).get("assignment")
    except Exception:  # unreadable: the worker reports it; the file name may still say which chapter
        mark = None
    if mark in assignments:
        return mark
    return next((a for a in assignments if a in path.name), None)


def _kill_tree(pid: int) -> None:
    """Kill process ``pid`` and everything it started (kernel, broker), children first."""
    try:
        parent = psutil.Process(pid)
        family = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=5)


def _grade_one(path: Path, bundle: Path, cell_timeout: float, timeout: float, protect: list[str]) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "AMQP_URL"}  # never a shared RabbitMQ
    command = [sys.executable, "-m", "grading.worker", str(path), str(bundle), "--cell-timeout", str(cell_timeout)]
    command += [arg for p in protect for arg in ("--protect", p)]
    # cwd: `-m grading.worker` imports from the repository root; own session: killable as a group
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        proc.communicate()
        return _all_zero(bundle, f"the submission ran past the {timeout:g} s limit and was stopped")
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return _all_zero(bundle, f"grading failed: {tail[0][:200]}")


def _all_zero(bundle: Path, reason: str) -> list[dict]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return [worker.row(expected, 0, reason) for expected in worker.expected_rows(manifest)]


def grade_folder(folder: Path, bundles: Path, jobs: int = 2, cell_timeout: float = 60.0,
                 timeout: float = 600.0) -> list[dict[str, Any]]:
    """The CSV rows for every submission under ``folder`` (see the module docstring)."""
    bundles = Path(bundles).resolve()
    assignments = sorted(p.parent.parent.name for p in bundles.glob("*/grading/manifest.json"))
    if not assignments:
        raise ValueError(f"bundles must hold <chapter>/grading/manifest.json (run `make assignments`), got {bundles}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    protect = [str(bundles / a / "grading") for a in assignments]
    work = submissions(folder, assignments)

    def one(item: tuple[str, str | None, Path]) -> list[dict[str, Any]]:
        student, assignment, path = item
        if assignment is None:
            return [{"student": student, "assignment": "", "exercise": "", "points": 0, "max_points": 0,
                     "feedback": f"{path.name} is not one of the assignments ({', '.join(assignments)})"}]
        rows = _grade_one(path, bundles / assignment / "grading", cell_timeout, timeout, protect)
        return [{"student": student, "assignment": assignment, **row} for row in rows]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return [row for rows in pool.map(one, work) for row in rows]


def write_csv(rows: list[dict[str, Any]], out: Path) -> None:
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", help="a folder of submitted notebooks")
    parser.add_argument("--bundles", default="_build/assignments", help="what `make assignments` wrote")
    parser.add_argument("--out", default="grades.csv")
    parser.add_argument("--jobs", type=int, default=2, help="submissions graded at once")
    parser.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per submission")
    args = parser.parse_args(argv)
    rows = grade_folder(Path(args.submissions), Path(args.bundles), args.jobs, args.cell_timeout, args.timeout)
    write_csv(rows, Path(args.out))
    print(f"{len(rows)} rows, {len({r['student'] for r in rows})} students -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
