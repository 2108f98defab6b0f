"""What the hidden checks call inside the graded kernel.

The hidden check files of a grading bundle (``tests/<exercise>.py``, otter's exception format) hold the
chapter's own check expressions, answers included; they call :func:`judge` here, which re-builds the
questions from ``labkit.exercises`` (not from names the submission could have redefined) and raises
``AssertionError`` with the teacher's feedback when the answer is wrong. This module holds no answer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["judge", "capstone_property"]


def judge(env: dict[str, Any], expression: str) -> None:
    """Evaluate one ``Numeric(...).check(answer)`` expression against the submission's globals ``env``."""
    from labkit import theory
    from labkit.exercises import Choice, Numeric

    namespace = {**env, "Numeric": Numeric, "Choice": Choice, "theory": theory}
    feedback = eval(expression, namespace)  # noqa: S307 - the bundle's own check, on the student's values
    if not feedback.ok:
        raise AssertionError(feedback.message)


def capstone_property(env: dict[str, Any], index: int, run: int) -> None:
    """Property ``index`` of the capstone's hidden run ``run`` held (see ``grading.capstone``)."""
    runs = env.get("__capstone_runs__")
    if not runs:
        raise AssertionError("the capstone was not run: my_design is missing or not an async function")
    outcome = runs[run]
    if outcome["error"]:
        raise AssertionError(f"hidden run {run + 1}: the design raised {outcome['error']}")
    held, detail = outcome["properties"][index]
    if not held:
        raise AssertionError(f"hidden run {run + 1}: {detail}")
