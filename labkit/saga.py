"""A saga's memory: the state timeline of every order, and the check that every failure was undone.

Why: in the hybrid checkout the customer has paid before fulfillment even sees the order, so when
fulfillment later fails there is no transaction to roll back. A saga {Garcia-Molina & Salem 1987} undoes
the earlier steps with compensating actions instead (refund the payment, release the stock), driven by
events. A saga is only correct if *every* failed order ends compensated, exactly once -- which is what
:class:`OrderLog` records and :meth:`OrderLog.problems` checks.

The states of one order, and the transitions the log accepts::

    placed ──> fulfilled
       └─────> fulfillment failed ──> refunded ──────┐
                                  └─> stock released ┴─> compensated (once both are done)

Anything else (a refund of an order that never failed, a second refund) is kept as a *violation*
rather than raised, because the log is written from consumers: raising there would only requeue the
message and hide the bug.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from labkit.history import recorder
from labkit.metrics import Clock, as_t0

__all__ = ["COMPENSATIONS", "STATES", "OrderLog"]

#: What undoes each step that happened before the asynchronous spine: step -> (action, state it leads to).
COMPENSATIONS: dict[str, tuple[str, str]] = {
    "payment": ("refund", "refunded"),
    "inventory": ("release", "stock released"),
}

STATES = ("placed", "fulfilled", "fulfillment failed", "refunded", "stock released", "compensated")

_REQUIRES = {  # state -> the states that must have been reached before it
    "placed": set(),
    "fulfilled": {"placed"},
    "fulfillment failed": {"placed"},
    "refunded": {"placed", "fulfillment failed"},
    "stock released": {"placed", "fulfillment failed"},
}
_EXCLUDES = {"fulfilled": {"fulfillment failed"}, "fulfillment failed": {"fulfilled"}}  # rule each other out
_UNDONE = {state for _, state in COMPENSATIONS.values()}
#: What each state means to a saga checker (:class:`labkit.history.SagasComplete`): (phase, step) moves.
_MOVES: dict[str, list[tuple[str, str | None]]] = {
    "placed": [("do", step) for step in COMPENSATIONS],
    "fulfilled": [("commit", None)],
    "fulfillment failed": [("abort", None)],
    **{state: [("undo", step)] for step, (_, state) in COMPENSATIONS.items()},
}


class OrderLog:
    """``(time, state)`` per order (monotonic seconds), in the order the states were reached."""

    def __init__(self) -> None:
        self._events: dict[str, list[tuple[float, str]]] = {}
        #: transitions the state machine does not allow: ``(order, state, states before)``
        self.violations: list[tuple[str, str, tuple[str, ...]]] = []

    def record(self, order: str, state: str, at: float | None = None) -> None:
        """Note that ``order`` reached ``state`` (now, or at monotonic time ``at``)."""
        if not isinstance(order, str) or not order:
            raise ValueError(f"order must be a non-empty order id, got {order!r}")
        if state not in _REQUIRES:
            raise ValueError(f"state must be one of {list(_REQUIRES)}, got {state!r}")
        for phase, step in _MOVES[state]:  # the saga's moves, for a recorded history (no-op when off)
            recorder.saga(phase, order, step)
        events = self._events.setdefault(order, [])
        before = {s for _, s in events}
        if state in before or not _REQUIRES[state] <= before or before & _EXCLUDES.get(state, set()):
            self.violations.append((order, state, tuple(s for _, s in events)))
            return
        now = time.monotonic() if at is None else at
        events.append((now, state))
        if state in _UNDONE and _UNDONE <= before | {state}:
            events.append((now, "compensated"))

    def state(self, order: str) -> str | None:
        """The latest state of ``order`` (None if never seen)."""
        events = self._events.get(order)
        return events[-1][1] if events else None

    def timeline(self, order: str, t0: Clock | float | None = None) -> list[tuple[float, str]]:
        """``(seconds since t0, state)`` of one order; t0 defaults to when it was placed."""
        events = self._events.get(order, [])
        base = (events[0][0] if events else 0.0) if t0 is None else as_t0(t0)
        return [(t - base, s) for t, s in events]

    @property
    def orders(self) -> list[str]:
        """Every order seen, in the order they were placed."""
        return list(self._events)

    def count(self, state: str) -> int:
        """How many orders reached ``state`` (at any point)."""
        if state not in STATES:
            raise ValueError(f"state must be one of {list(STATES)}, got {state!r}")
        return sum(1 for events in self._events.values() if any(s == state for _, s in events))

    def problems(self, orders: Iterable[str] | None = None) -> dict[str, Any]:
        """What makes the saga wrong: failed orders not (yet) compensated, fulfilled orders that were
        also undone, and transitions the state machine refused. Empty lists mean correct."""
        chosen = self.orders if orders is None else list(orders)
        states = {o: {s for _, s in self._events.get(o, [])} for o in chosen}
        return {
            "not compensated": [o for o, s in states.items() if "fulfillment failed" in s and "compensated" not in s],
            "undone although fulfilled": [o for o, s in states.items() if "fulfilled" in s and s & _UNDONE],
            "unfinished": [o for o, s in states.items() if not s & {"fulfilled", "compensated"}],
            "violations": list(self.violations),
        }

    def clear(self) -> None:
        self._events.clear()
        self.violations.clear()

    def __repr__(self) -> str:
        return (
            f"<OrderLog orders={len(self._events)} fulfilled={self.count('fulfilled')} "
            f"compensated={self.count('compensated')} violations={len(self.violations)}>"
        )
