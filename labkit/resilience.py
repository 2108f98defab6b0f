"""The cures of the cascading-failure chapter, as parts a service uses: a bounded waiting line with a
concurrency limit (admission, load shedding) and a circuit breaker per downstream.

Why separate from :mod:`labkit.services`: each is a small state machine with rules worth testing on its
own; the service only asks them "may this request start?" and "may this call go out?".
"""

from __future__ import annotations

import asyncio
import collections
import enum
import time

from labkit._validate import integer, positive

__all__ = ["BREAKER_TRANSITIONS", "Admission", "BreakerState", "CircuitBreaker"]


class Admission:
    """A concurrency limit with a bounded, first-come-first-served waiting line, resizable while running.

    asyncio.Semaphore cannot change its size nor report how many wait, both of which the lessons need.
    """

    def __init__(self, capacity: int | None, queue_limit: int | None):
        self.capacity = capacity
        self.queue_limit = queue_limit
        self.busy = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> bool:
        """Wait for a slot; False means "line full, turn this request away"."""
        if self.capacity is None or (self.busy < self.capacity and not self._waiters):
            self.busy += 1
            return True
        if self.queue_limit is not None and len(self._waiters) >= self.queue_limit:
            return False
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # release() hands its slot over, so busy is already counted
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()
            else:
                self._waiters.remove(fut)
            raise
        return True

    def release(self) -> None:
        if self._waiters and (self.capacity is None or self.busy <= self.capacity):
            self._waiters.popleft().set_result(None)
        else:
            self.busy -= 1

    def resize(self, capacity: int | None, queue_limit: int | None) -> None:
        self.capacity, self.queue_limit = capacity, queue_limit
        while self._waiters and (capacity is None or self.busy < capacity):
            self.busy += 1
            self._waiters.popleft().set_result(None)


class BreakerState(str, enum.Enum):
    """A circuit breaker's states (a ``str``: ``BreakerState.OPEN == "open"``)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


#: The moves a breaker may make; any other is a bug, and :meth:`CircuitBreaker._to` says so.
BREAKER_TRANSITIONS: dict[BreakerState, frozenset[BreakerState]] = {
    BreakerState.CLOSED: frozenset({BreakerState.OPEN}),  # failure_threshold failures in a row
    BreakerState.OPEN: frozenset({BreakerState.HALF_OPEN}),  # reset_timeout has passed
    BreakerState.HALF_OPEN: frozenset({BreakerState.CLOSED, BreakerState.OPEN}),  # the trial's outcome
}


class CircuitBreaker:
    """Stops calling a failing downstream for a while, so callers fail fast instead of piling up.

    Closed: calls go through; ``failure_threshold`` consecutive failures open it. Open: calls fail at
    once (no network) for ``reset_timeout`` seconds, then it is half-open: one trial call goes through,
    whose success closes it and whose failure opens it again. While open, outcomes of calls that went out
    before it opened are ignored: they tell nothing about the downstream now. ``transitions`` keeps
    ``(time, state)`` (monotonic seconds) so a chapter can shade the open periods on a timeline.
    """

    def __init__(self, failure_threshold: int = 5, reset_timeout: float = 1.0):
        self.failure_threshold = integer("failure_threshold", failure_threshold, 1)
        self.reset_timeout = positive("reset_timeout", reset_timeout)
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.transitions: list[tuple[float, BreakerState]] = []
        self._trial_running = False

    def allow(self) -> bool:
        """May a call go out now? (In half-open state only one trial at a time.)"""
        if self.state is BreakerState.OPEN and time.monotonic() - self.opened_at >= self.reset_timeout:
            self._to(BreakerState.HALF_OPEN)
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record(self, ok: bool) -> None:
        """The outcome of a call that :meth:`allow` let through."""
        if self.state is BreakerState.OPEN:
            return  # a call from before it opened: no news about the downstream now
        if self.state is BreakerState.HALF_OPEN:
            self._trial_running = False
            self.failures = 0 if ok else self.failures + 1
            self._trip() if not ok else self._to(BreakerState.CLOSED)
            return
        self.failures = 0 if ok else self.failures + 1
        if self.failures >= self.failure_threshold:
            self._trip()

    def open_bands(self, t0: float, label: str = "circuit open") -> list[tuple[float, float | None, str]]:
        """``(start, end, label)`` of each open period in seconds since ``t0`` (end None if still open),
        ready for ``plots.add_fault_bands``."""
        bands: list[tuple[float, float | None, str]] = []
        start = None
        for t, state in self.transitions:
            if state is BreakerState.OPEN and start is None:
                start = t
            elif state is BreakerState.CLOSED and start is not None:
                bands.append((start - t0, t - t0, label))
                start = None
        if start is not None:
            bands.append((start - t0, None, label))
        return bands

    def _trip(self) -> None:
        self.opened_at = time.monotonic()
        self._to(BreakerState.OPEN)

    def _to(self, state: BreakerState) -> None:
        if state not in BREAKER_TRANSITIONS[self.state]:
            raise RuntimeError(f"circuit breaker cannot go from {self.state.value} to {state.value}")
        self.state = state
        self.transitions.append((time.monotonic(), state))
