"""Load generation: open loop (arrivals on a schedule) and closed loop (N callers in a loop).

Why open loop by default: real users do not wait for each other. Every request is launched at its
scheduled time as its own task, whether or not earlier ones have finished, and its latency is measured
from that scheduled time (``metrics.Record.latency``). A closed-loop generator quietly slows down when the
system does ("coordinated omission") and hides exactly the queueing the course is about; it is here so a
chapter can show that difference.

Runs are bounded in count (``max_requests``) and time (``duration``); requests still running
``drain_timeout`` seconds after the last one was due are cancelled and recorded as failures with error
``"timeout"`` so nothing keeps running after the call returns.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from tqdm.auto import tqdm

from labkit._validate import integer, non_negative, one_of, positive
from labkit.metrics import Clock, Record, Recording, as_t0, sleep_until
from labkit.theory import rate_segments

__all__ = ["PROCESSES", "RateProfile", "spike", "arrival_times", "open_loop", "closed_loop"]

Op = Callable[[int], Awaitable[dict | None]]

PROCESSES = ("poisson", "constant")
_LATE_START_S = 0.5  # a t0 this far in the past is almost certainly a stale clock


@dataclass(frozen=True)
class RateProfile:
    """A piecewise-constant arrival rate λ(t): contiguous ``(t_start, t_end, rate)`` segments (s, 1/s).

    ``process`` says how arrivals are drawn within it: ``"poisson"`` (independent users) or
    ``"constant"`` (evenly spaced). The same object feeds ``theory.fluid_backlog`` for the prediction.
    """

    segments: tuple[tuple[float, float, float], ...]
    process: str = "poisson"

    def __post_init__(self):
        object.__setattr__(self, "segments", rate_segments(self.segments, "segments", endless=True))
        one_of("process", self.process, PROCESSES)

    @property
    def duration(self) -> float:
        """When the profile ends (s after t0)."""
        return self.segments[-1][1]

    def rate_at(self, t: float) -> float:
        """λ(t); 0 outside the profile."""
        return next((r for t0, t1, r in self.segments if t0 <= t < t1), 0.0)

    def expected_count(self) -> float:
        """∫λ(t)dt: how many requests the profile sends on average."""
        return sum((t1 - t0) * r for t0, t1, r in self.segments)

    def until(self, duration: float) -> RateProfile:
        """The profile cut at ``duration`` seconds."""
        positive("duration", duration)
        cut = tuple((t0, min(t1, duration), r) for t0, t1, r in self.segments if t0 < duration)
        if not cut:
            raise ValueError(f"duration must be > the profile's start {self.segments[0][0]!r}, got {duration!r}")
        return RateProfile(cut, self.process)


def spike(
    base: float, peak: float, start: float, length: float, duration: float, process: str = "poisson"
) -> RateProfile:
    """``base`` req/s, then ``peak`` req/s from ``start`` for ``length`` s, then ``base`` again until ``duration``."""
    non_negative("base", base)
    positive("peak", peak)
    positive("start", start)
    positive("length", length)
    positive("duration - (start + length)", duration - (start + length))
    return RateProfile(((0.0, start, base), (start, start + length, peak), (start + length, duration, base)), process)


def _profile(
    rate: float | None, duration: float | None, arrivals: str | RateProfile, max_requests: int | None
) -> RateProfile:
    """Turn open_loop's (rate, duration, arrivals) arguments into one RateProfile."""
    if isinstance(arrivals, RateProfile):
        if rate is not None:
            raise ValueError(f"rate must be None when arrivals is a RateProfile, got {rate!r}")
        return arrivals if duration is None else arrivals.until(duration)
    if not isinstance(arrivals, str) or arrivals not in PROCESSES:
        raise ValueError(f"arrivals must be one of 'poisson', 'constant' or a RateProfile, got {arrivals!r}")
    if rate is None:
        raise ValueError("rate must be > 0 (requests per second), got None")
    positive("rate", rate)
    if duration is None:
        if max_requests is None:
            raise ValueError("duration must be > 0 (seconds) unless max_requests is given, got None")
        duration = float("inf")
    positive("duration", duration, allow_inf=True)
    return RateProfile(((0.0, duration, rate),), arrivals)


def arrival_times(profile: RateProfile, seed: int | None = 0) -> Iterator[float]:
    """Arrival times (s after t0) drawn from ``profile``, in order.

    Unit-rate points (0, 1, 2, … for constant; cumulative Exp(1) gaps for Poisson) are mapped through the
    inverse of Λ(t) = ∫λ — the standard time-change construction of a non-homogeneous Poisson process
    (Çinlar, *Introduction to Stochastic Processes*, 1975, §4.7) — so one code path serves every profile.
    """
    if not isinstance(profile, RateProfile):
        raise ValueError(f"profile must be a RateProfile (e.g. spike(...)), got {profile!r}")
    rng = random.Random(seed)
    if profile.process == "constant":
        units: Iterator[float] = itertools.count()
    else:
        units = itertools.accumulate(rng.expovariate(1.0) for _ in itertools.count())
    segments = iter(profile.segments)
    t0, t1, rate = next(segments)
    lam_start = 0.0
    for u in units:
        while lam_start + (mass := rate * (t1 - t0) if rate else 0.0) <= u:  # `if rate`: 0 · inf is NaN
            lam_start += mass
            nxt = next(segments, None)
            if nxt is None:
                return
            t0, t1, rate = nxt
        yield t0 + (u - lam_start) / rate


def _describe(exc: BaseException) -> str:
    """A short, groupable error label: "timeout" for timeouts, else the exception's type and message."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Runner:
    """Runs operations as tasks, records each one, and cancels stragglers as "timeout" failures."""

    def __init__(self, op: Op, timeout: float | None, progress: bool | None, total: int | None, desc: str):
        if not callable(op):
            raise ValueError(f"op must be an async function op(i) -> dict | None, got {op!r}")
        if timeout is not None:
            positive("timeout", timeout)
        self.op, self.timeout = op, timeout
        # tqdm.auto: a widget in notebooks, text on a terminal; progress=None hides it when not interactive
        self.bar = tqdm(
            total=total, desc=desc, unit="req", disable=None if progress is None else not progress, leave=False
        )
        self.records: list[Record] = []
        self.tasks: set[asyncio.Task] = set()

    async def run(self, i: int, scheduled: float) -> None:
        start = time.monotonic()
        try:
            call = self.op(i)
            info = await (call if self.timeout is None else asyncio.wait_for(call, self.timeout))
        except asyncio.CancelledError:
            self.records.append(Record(scheduled, start, time.monotonic(), False, "timeout", {}))
            raise
        except Exception as exc:
            self.records.append(Record(scheduled, start, time.monotonic(), False, _describe(exc), {}))
        else:
            info = info if isinstance(info, dict) else {} if info is None else {"result": info}
            self.records.append(Record(scheduled, start, time.monotonic(), True, None, info))
        self.bar.update(1)

    def launch(self, i: int, scheduled: float) -> None:
        task = asyncio.create_task(self.run(i, scheduled))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, drain_timeout: float) -> None:
        """Wait up to drain_timeout for running operations, then cancel (and record) the rest."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=drain_timeout)
        await self.cancel()

    async def cancel(self) -> None:
        pending = set(self.tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        """Cancel whatever still runs and close the progress bar."""
        await self.cancel()
        self.bar.close()


async def open_loop(
    op: Op,
    rate: float | None = None,
    duration: float | None = None,
    arrivals: str | RateProfile = "poisson",
    seed: int | None = 0,
    max_requests: int | None = None,
    progress: bool | None = True,
    t0: Clock | float | None = None,
    timeout: float | None = None,
    drain_timeout: float = 5.0,
) -> Recording:
    """Call ``await op(i)`` at seeded arrival times and record every call.

    ``arrivals`` is ``"poisson"`` or ``"constant"`` at ``rate`` req/s for ``duration`` s, or a
    ``RateProfile`` (e.g. ``spike(...)``; then leave ``rate`` unset, ``duration`` optionally cuts it).
    ``op`` returns a dict kept as the record's ``info`` (or None); raising marks the call failed.
    ``timeout`` bounds each call; ``t0`` (a shared ``Clock``) puts the run on the experiment timeline —
    arrival times count from it, so create the clock just before starting the load and any fault plan.
    """
    if max_requests is not None:
        integer("max_requests", max_requests, 1)
    profile = _profile(rate, duration, arrivals, max_requests)
    if profile.duration == float("inf") and max_requests is None:
        raise ValueError("max_requests must be given (an integer >= 1) for a profile without an end, got None")
    non_negative("drain_timeout", drain_timeout)
    times = list(itertools.islice(arrival_times(profile, seed), max_requests))
    origin = as_t0(t0)
    behind = time.monotonic() - origin - (times[0] if times else 0.0)
    if behind > _LATE_START_S:
        warnings.warn(
            f"t0 is {behind:.1f} s behind the first arrival: every request already due is sent at once "
            "(use a fresh Clock, e.g. lab.mark(), just before the run)",
            RuntimeWarning,
            stacklevel=2,
        )
    runner = _Runner(op, timeout, progress, len(times), "open loop")
    try:
        for i, t in enumerate(times):
            await sleep_until(origin + t)
            runner.launch(i, origin + t)
        await runner.drain(drain_timeout)
    finally:
        await runner.close()
    span = profile.duration if max_requests is None or len(times) < max_requests else None
    return Recording(runner.records, t0=origin, duration=span)


async def closed_loop(
    op: Op,
    concurrency: int,
    duration: float | None = None,
    max_requests: int | None = None,
    think_time: float = 0.0,
    progress: bool | None = True,
    t0: Clock | float | None = None,
    timeout: float | None = None,
    drain_timeout: float = 5.0,
) -> Recording:
    """``concurrency`` callers each call ``op``, wait for the answer, think, and call again.

    Each call is "scheduled" when its caller gets to it, so a slow system is offered less load and its
    latency looks better than what users would see: compare with ``open_loop`` to see the difference.
    """
    integer("concurrency", concurrency, 1)
    if duration is None and max_requests is None:
        raise ValueError("duration or max_requests must be given (> 0), got neither")
    if duration is not None:
        positive("duration", duration)
    if max_requests is not None:
        integer("max_requests", max_requests, 1)
    non_negative("think_time", think_time)
    non_negative("drain_timeout", drain_timeout)
    origin = as_t0(t0)
    deadline = origin + (duration if duration is not None else float("inf"))
    counter = itertools.count()
    runner = _Runner(op, timeout, progress, max_requests, "closed loop")

    async def caller() -> None:
        while time.monotonic() < deadline:
            i = next(counter)
            if max_requests is not None and i >= max_requests:
                return
            await runner.run(i, time.monotonic())
            if think_time:
                await asyncio.sleep(think_time)

    callers = [asyncio.create_task(caller()) for _ in range(concurrency)]
    try:
        await asyncio.wait(
            callers, timeout=None if duration is None else max(0.0, deadline - time.monotonic()) + drain_timeout
        )
    finally:
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await runner.close()
    return Recording(runner.records, t0=origin, duration=duration)
