"""Chapter 10's capstone, graded under seeds and fault schedules the student never sees.

Why: in the notebook the checker always uses the same timeline (processor down 0.4-1.2 s, notifier down
1.2-1.8 s, spike 1.8-2.2 s), so a design could be tuned to that one run. The grading bundle draws its own
runs when ``make assignments`` builds it (:func:`draw_runs`, stored only in the bundle), and the graded
kernel runs the learner's ``my_design`` through ``labkit.capstone.check_design`` once per run
(:func:`run_hidden`). A property's score is the share of runs in which it held.

The schedule is set through the capstone module's public timeline constants (``PROCESSOR_DOWN``,
``NOTIFIER_DOWN``, ``SPIKE``, ``LOAD_END``) for the length of one run, then restored.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

__all__ = ["draw_runs", "run_hidden", "cell_source"]


def draw_runs(count: int = 3, seed: int | None = None) -> list[dict[str, Any]]:
    """``count`` runs with their own seed and fault timeline (``seed`` makes the draw reproducible)."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    rng = random.Random(seed)
    runs = []
    for _ in range(count):
        processor_start = round(rng.uniform(0.2, 0.7), 2)
        processor_end = round(processor_start + rng.uniform(0.5, 0.9), 2)
        notifier_start = round(rng.uniform(0.2, processor_end), 2)
        notifier_end = round(notifier_start + rng.uniform(0.4, 0.7), 2)
        spike_start = round(rng.uniform(0.3, 1.8), 2)
        spike_end = round(spike_start + rng.uniform(0.3, 0.5), 2)
        runs.append({
            "seed": rng.randrange(1, 10_000),
            "PROCESSOR_DOWN": (processor_start, processor_end),
            "NOTIFIER_DOWN": (notifier_start, notifier_end),
            "SPIKE": (spike_start, spike_end),
            "LOAD_END": round(max(processor_end, notifier_end, spike_end) + 0.4, 2),
        })
    return runs


@contextlib.contextmanager
def _timeline(run: dict[str, Any]) -> Iterator[None]:
    from labkit import capstone

    names = ("PROCESSOR_DOWN", "NOTIFIER_DOWN", "SPIKE", "LOAD_END")
    saved = {name: getattr(capstone, name) for name in names}
    try:
        for name in names:
            value = run[name]
            setattr(capstone, name, tuple(value) if isinstance(value, list) else value)
        yield
    finally:
        for name, value in saved.items():
            setattr(capstone, name, value)


async def run_hidden(design: Any, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check ``design`` once per run; each outcome: ``error`` (or None) and ``properties`` [(held, detail)]."""
    from labkit import capstone
    from labkit.lab import Lab

    if not callable(design):
        return []
    outcomes = []
    for run in runs:
        with _timeline(run):
            lab = await Lab.start(seed=run["seed"])
            try:
                report = await capstone.check_design(lab, design, name="hidden run", seed=run["seed"])
                outcomes.append({"error": None,
                                 "properties": [(p.held, f"{p.name}: {p.detail}") for p in report.properties]})
            except Exception as exc:  # the design's own failure is a verdict, not a grader crash
                outcomes.append({"error": f"{type(exc).__name__}: {exc}", "properties": []})
            finally:
                await lab.stop()
    return outcomes


def cell_source(runs: list[dict[str, Any]], variable: str) -> str:
    """The cell the worker appends to a graded chapter 10: it runs the hidden timelines on ``variable``."""
    return ("from grading.capstone import run_hidden as __run_hidden\n"
            f"__capstone_runs__ = await __run_hidden(globals().get({variable!r}), {runs!r})\n")
