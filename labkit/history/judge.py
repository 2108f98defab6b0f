"""Judge a guarantee a learner states: does it accept the runs the design must accept and reject the rest?

Why: "which guarantee does this design need?" has a checkable answer that never has to be written
down: the stated guarantee is run through the history checker on recorded runs whose fate is known
(runs the design must accept, runs it must reject), and the feedback says which run it misjudged and
why, in the checker's words. The answer itself appears nowhere in the notebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labkit.exercises import Feedback
from labkit.history.checker import GUARANTEES, Property, check, guarantee
from labkit.history.events import History

__all__ = ["judge_guarantee"]

_UNANSWERED = (
    "Not answered yet: set the guarantee your design needs, by name (one of "
    + ", ".join(repr(n) for n in GUARANTEES)
    + ") or as a property, and run the cell again."
)


def _properties(stated: Any, effect: str | None) -> list[Property]:
    items = stated if isinstance(stated, (list, tuple)) else [stated]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(guarantee(item.strip().lower(), effect))
        elif isinstance(item, Property):
            out.append(item)
        else:
            raise ValueError(f"stated must be a guarantee name, a history property or a list of them, got {item!r}")
    return out


def judge_guarantee(
    stated: Any, *, must_hold: Mapping[str, History], must_fail: Mapping[str, History], effect: str | None = None
) -> Feedback:
    """Feedback on ``stated`` (a name from ``GUARANTEES``, a property, or a list): every property must hold
    on each run of ``must_hold``, and some property must fail on each run of ``must_fail`` (both keyed by
    a description of the run). A name is judged with ``effect`` as what counts as processing."""
    if stated is None or stated is ... or (isinstance(stated, str) and not stated.strip()):
        return Feedback("unanswered", _UNANSWERED)
    try:
        props = _properties(stated, effect)
    except ValueError as exc:
        return Feedback("incorrect", str(exc))
    for run, h in must_hold.items():
        report = check(h, *props)
        broken = next((v for v in report if not v.held), None)
        if broken is not None:
            return Feedback(
                "incorrect",
                f"Too strict: your guarantee rejects the {run}, which the design must "
                f"accept ({broken.property} fails on {broken.subject}: {broken.reason}).",
            )
    for run, h in must_fail.items():
        report = check(h, *props)
        if report.passed:
            hint = (
                ""
                if any(getattr(p, "effect", 1) is not None for p in props)
                else " (A guarantee that counts acks cannot see a side effect done twice: count the effect.)"
            )
            return Feedback(
                "incorrect", f"Too weak: your guarantee accepts the {run}, which the design must reject.{hint}"
            )
    return Feedback("correct", f"Your guarantee accepts {_join(must_hold)} and rejects {_join(must_fail)}.")


def _join(runs: Sequence[str] | Mapping[str, Any]) -> str:
    names = [f"the {r}" for r in runs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
