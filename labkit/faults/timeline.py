"""Faults on the experiment's timeline: a plan of fault windows in, shaded bands out.

Why: an experiment states its faults as windows in seconds after t0 (``(2, 5, DOWN)``: the link is down
from 2 s to 5 s), and its figures shade when each fault was really active. Both are bookkeeping about
time, apart from how :class:`labkit.faults.FaultProxy` breaks a link; the proxy runs the switches and
records an :class:`Activation` for each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from labkit._validate import non_negative, positive
from labkit.faults.toxics import Toxic, check_toxic

__all__ = ["DOWN", "Activation", "Switch", "bands", "switches"]

#: In a :meth:`FaultProxy.schedule` plan, ``(t_start, t_end, DOWN)`` takes the link down for that window.
DOWN: Final = "down"

#: One switch of a plan: ``(t, on, fault)``, at ``t`` seconds after t0 switch ``fault`` on (1) or off (0).
Switch = tuple[float, int, Toxic | Literal["down"]]


@dataclass
class Activation:
    """When a toxic was switched on and off, or the link went down and up again (``fault`` is ``DOWN``).

    Monotonic seconds; ``end`` is None while still active."""

    fault: Toxic | Literal["down"]
    start: float
    end: float | None = None


def switches(plan: Iterable[tuple[float, float, Toxic | Literal["down"]]]) -> list[Switch]:
    """The switches of ``[(t_start, t_end, toxic or DOWN), ...]`` in the order to make them.

    Each window switches on at ``t_start`` and off at ``t_end`` (never, if ``math.inf``); at equal times
    switches off come before switches on. Refuses a malformed entry by its index.
    """
    events: list[Switch] = []
    for i, item in enumerate(plan):
        try:
            t_start, t_end, toxic = item
        except (TypeError, ValueError):
            raise ValueError(f"plan[{i}] must be a (t_start, t_end, toxic) tuple, got {item!r}") from None
        non_negative(f"plan[{i}].t_start", t_start)
        positive(f"plan[{i}].t_end - t_start", t_end - t_start, allow_inf=True)
        if toxic != DOWN:
            check_toxic(toxic, f"plan[{i}].toxic", also="or DOWN")
        events.append((t_start, 1, toxic))
        if t_end != float("inf"):
            events.append((t_end, 0, toxic))
    events.sort(key=lambda e: (e[0], e[1]))  # at equal times switch off before switching on
    return events


def bands(name: str, activations: Iterable[Activation], origin: float) -> list[dict]:
    """``[{"label", "kind", "start", "end"}]`` for each activation, in seconds after ``origin`` (monotonic).

    The label names the proxy (``name``) and the fault; ``end`` is None while the fault is still active.
    """
    return [
        {
            "label": f"{name}: {'down' if a.fault == DOWN else repr(a.fault)}",
            "kind": "down" if a.fault == DOWN else type(a.fault).__name__,
            "start": a.start - origin,
            "end": None if a.end is None else a.end - origin,
        }
        for a in activations
    ]
