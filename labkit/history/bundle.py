"""A run as a result bundle: the history, the verdicts and the diagram in one directory.

Why: a verdict should outlive the kernel. A bundle can be attached to a bug report, diffed between runs,
and re-checked later (with other properties, too) without running the experiment again:

    h.save("runs/naive", report, diagram=drawn)   # history.jsonl, verdicts.json, diagram.html
    h2, verdicts = load("runs/naive")
    check(h2, EffectivelyOnce(effect="charge"))    # the same verdict, from the file alone
"""

from __future__ import annotations

import json
import os
from typing import Any

from labkit.history.checker import Report, Verdict
from labkit.history.events import History
from labkit.history.spacetime import SpaceTime
from labkit.history.spacetime import diagram as draw

__all__ = ["HISTORY_FILE", "VERDICTS_FILE", "DIAGRAM_FILE", "save", "load"]

HISTORY_FILE, VERDICTS_FILE, DIAGRAM_FILE = "history.jsonl", "verdicts.json", "diagram.html"


def save(directory: str, history: History, report: Report | None = None, *, diagram: SpaceTime | None = None) -> str:
    """Write ``history`` (JSON lines), ``report``'s verdicts (JSON; ``[]`` without one) and a diagram
    (``diagram``, else the first failure's counterexample, else the whole history) into ``directory``."""
    if not isinstance(directory, (str, os.PathLike)) or not str(directory):
        raise ValueError(f"directory must be a path, got {directory!r}")
    if not isinstance(history, History):
        raise ValueError(f"history must be a labkit.history.History, got {history!r}")
    if report is not None and not isinstance(report, Report):
        raise ValueError(f"report must be a labkit.history.Report or None, got {report!r}")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, HISTORY_FILE), "w", encoding="utf-8") as f:
        f.write(history.to_jsonl())
    with open(os.path.join(directory, VERDICTS_FILE), "w", encoding="utf-8") as f:
        json.dump(report.to_dict() if report is not None else [], f, indent=1)
    if diagram is None and len(history):
        failed = next((v for v in report if not v.held), None) if report is not None else None
        events = failed.counterexample if failed is not None else history
        diagram = draw(events, title=f"counterexample: {failed.property}" if failed else "history")
    if diagram is not None:
        diagram.to_html(os.path.join(directory, DIAGRAM_FILE))
    return str(directory)


def load(directory: str) -> tuple[History, list[Verdict]]:
    """Read a bundle back: the history and the verdicts saved with it (re-check with :func:`check`)."""
    path = os.path.join(directory, HISTORY_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"directory must hold a saved history ({HISTORY_FILE}), got {directory!r}")
    with open(path, encoding="utf-8") as f:
        history = History.from_jsonl(f.read())
    verdicts: list[dict[str, Any]] = []
    if os.path.isfile(os.path.join(directory, VERDICTS_FILE)):
        with open(os.path.join(directory, VERDICTS_FILE), encoding="utf-8") as f:
            verdicts = json.load(f)
    return history, [Verdict.from_dict(v) for v in verdicts]
