"""Grade one submission, isolated: its own embedded broker, its own kernel, a time limit per cell.

    python -m grading.worker SUBMISSION.ipynb BUNDLE_DIR [--cell-timeout 60] [--protect DIR ...]

prints one JSON list of rows ``{exercise, points, max_points, feedback}`` on stdout. ``grading.grade``
runs one worker process per submission (and kills it, with everything it started, past the
submission's time limit).

How a submission is graded: the worker starts an embedded broker (``labkit.broker``, a child that exits
with the worker) and points ``AMQP_URL`` at it, so the chapter's ``Lab`` uses it and no two submissions
share a broker or a RabbitMQ; it puts the guard (``grading.guard``) in front of the notebook and, for the
capstone, the hidden runs (``grading.capstone``) after it; otter-grader executes it (nbclient, the cell
time limit, an interrupt on timeout so the next cells still run) and runs the hidden checks. Then each
exercise gets 0 with the reason when the submission read the hidden checks, deleted its answer cell, or
its answer cell raised or ran out of time; otherwise otter's points and the checks' feedback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from grading import capstone, guard

__all__ = ["grade", "expected_rows", "row"]

ROOT = Path(__file__).resolve().parents[1]
CAPSTONE_MARK = "# grading: the capstone's hidden runs"
GRADER_CELL_TIMEOUT = 300.0
ERROR_LINE = re.compile(r"^(\w+(?:Error|Exception|Interrupt)|AssertionError): (.*)", re.M | re.S)


def _feedback(message: str | None) -> str:
    """The reason a failed otter test gives (its exception's message, without otter's frame)."""
    if not message:
        return "failed"
    match = ERROR_LINE.search(message)
    if not match:
        return message.strip().splitlines()[-1]
    kind, text = match[1], match[2].strip()
    return text if kind == "AssertionError" else f"{kind}: {text}"


def _cell_errors(nb: Any) -> dict[str, str]:
    """``{cell id: what went wrong}`` for the executed cells that ended in an error."""
    errors = {}
    for cell in nb.cells if nb is not None else []:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                name, value = output.get("ename", "Error"), output.get("evalue", "")
                errors[cell.get("id", "")] = name if not value else f"{name}: {value}"
    return errors


def _graded_copy(nb: Any, manifest: dict, log: Path, protected: list[str]) -> Any:
    """``nb`` with the guard first and, for the capstone, the hidden runs last."""
    nb = nbformat.from_dict(nb)
    nb.cells.insert(0, nbformat.v4.new_code_cell(guard.cell_source(str(log), protected)))
    if manifest.get("capstone"):
        cap = manifest["capstone"]
        nb.cells.append(nbformat.v4.new_code_cell(
            f"{CAPSTONE_MARK}\n" + capstone.cell_source(cap["runs"], cap["variable"])))
    return nb


def expected_rows(manifest: dict) -> list[dict[str, Any]]:
    rows = [{"exercise": e["label"], "max_points": e["points"], "answer_cells": e["answer_cells"]}
            for e in manifest["exercises"] if e["kind"] == "auto"]
    if manifest.get("capstone"):
        rows += [{"exercise": f"capstone: {p}", "max_points": 1, "answer_cells": manifest["capstone"]["answer_cells"]}
                 for p in manifest["capstone"]["properties"]]
    return rows


def _run_otter(path: Path, bundle: Path, cell_timeout: float, submitted: set[str]) -> tuple[Any, str | None]:
    """Otter's own non-containerized grading of ``path``; (results, crash).

    The submitted cells (ids in ``submitted``) get ``cell_timeout`` each; the cells otter and the worker
    add (otter's set-up and hidden checks, the guard, the capstone's hidden runs) get ``GRADER_CELL_TIMEOUT``.
    """
    import otter.execute
    from otter.api import grade_submission
    from traitlets.config import Config

    def timeout_for(cell: Any) -> float:
        return cell_timeout if cell.get("id") in submitted else max(cell_timeout, GRADER_CELL_TIMEOUT)

    def config() -> Config:
        return Config({"ExecutePreprocessor": {"timeout_func": timeout_for, "interrupt_on_timeout": True}})

    otter.execute.Config = config  # grade_notebook builds its nbclient config from this name
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return grade_submission(str(path), str(bundle / "autograder.zip"), quiet=True), None
    except Exception as exc:  # a dead kernel, an unreadable notebook: the whole submission is affected
        name = type(exc).__name__
        reason = "the kernel died (the submission crashed it)" if "DeadKernel" in name else f"{name}: {exc}"
        return None, reason


def grade(submission: Path, bundle: Path, cell_timeout: float = 60.0, protect: list[str] = ()) -> list[dict]:
    """The rows of one submission (see the module docstring)."""
    from labkit.broker.process import BrokerProcess

    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    expected = expected_rows(manifest)
    try:
        nb = nbformat.read(submission, as_version=4)
    except Exception as exc:  # not a notebook: every exercise is affected
        return [row(r, 0, f"the submission is not a readable notebook ({type(exc).__name__})") for r in expected]
    present = {c.get("id") for c in nb.cells}
    loop = asyncio.new_event_loop()
    broker = loop.run_until_complete(BrokerProcess.start())
    try:
        with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
            log = Path(tmp) / "guard.log"
            log.touch()
            graded = Path(tmp) / "submission" / Path(submission).name
            graded.parent.mkdir()
            nbformat.write(_graded_copy(nb, manifest, log, [str(bundle), *protect]), graded)
            # The kernel inherits this environment: its Lab uses this broker; it can import grading.hidden.
            os.environ.update(AMQP_URL=broker.url, LABKIT_STATIC="1",
                              PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
            results, crash = _run_otter(graded, Path(bundle), cell_timeout, present)
            reads = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    finally:
        loop.run_until_complete(broker.stop())
        loop.close()
    errors = _cell_errors(getattr(results, "notebook", None))
    return [_judge_row(r, results, crash, reads, present, errors, cell_timeout) for r in expected]


def row(expected: dict, points: float, feedback: str) -> dict[str, Any]:
    """One CSV row's grading part; points as 0, 1 or a fraction with up to 4 decimals."""
    points = round(float(points), 4)
    return {"exercise": expected["exercise"], "points": int(points) if points.is_integer() else points,
            "max_points": expected["max_points"], "feedback": feedback}


def _judge_row(expected: dict, results: Any, crash: str | None, reads: list[dict], present: set,
               errors: dict[str, str], cell_timeout: float) -> dict[str, Any]:
    name = expected["exercise"]
    if crash:
        return row(expected, 0, crash)
    # A hidden check file read affects its exercise; any other read of the bundle affects them all.
    mine = [r["path"] for r in reads if not r["path"].endswith(".py") or Path(r["path"]).stem in _stems(name)]
    if mine:
        return row(expected, 0, f"the submission read the hidden checks ({Path(mine[0]).name})")
    missing = [c for c in expected["answer_cells"] if c not in present]
    if missing:
        return row(expected, 0, f"the answer cell was deleted ({', '.join(missing)})")
    for cell in expected["answer_cells"]:
        if cell in errors:
            if errors[cell].startswith("KeyboardInterrupt"):
                return row(expected, 0, f"the answer cell ran past the {cell_timeout:g} s limit and was stopped")
            return row(expected, 0, f"the answer cell raised {errors[cell]}")
    test = results.results.get(name) if results is not None else None
    if test is None:
        return row(expected, 0, "the hidden check did not run")
    failed = [_feedback(r.message) for r in test.test_case_results if not r.passed]
    return row(expected, test.score, "correct" if not failed else " | ".join(dict.fromkeys(failed)))


def _stems(name: str) -> set[str]:
    """The hidden check files that belong to exercise ``name``."""
    return {name} if not name.startswith("capstone") else {f"capstone-{i}" for i in range(1, 10)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submission")
    parser.add_argument("bundle", help="the chapter's grading bundle (manifest.json, autograder.zip)")
    parser.add_argument("--cell-timeout", type=float, default=60.0)
    parser.add_argument("--protect", action="append", default=[], help="more paths the submission must not read")
    args = parser.parse_args(argv)
    rows = grade(Path(args.submission), Path(args.bundle), args.cell_timeout, args.protect)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
