"""What happened in an experiment: one record per operation, and queue depth over time.

Why: every chapter's plot and assertion is computed from these objects, so they define what "latency"
means in the course. Latency is measured from the time an operation was *scheduled* to be sent, not from
when it actually started: if the load generator or the system falls behind, the waiting counts (no
coordinated omission, as in Gil Tene's "How NOT to Measure Latency" and wrk2). All times are
``time.monotonic()`` seconds (the clock asyncio's event loop uses); a ``Clock`` fixes the experiment's
t0 so load, faults and metrics share one timeline and plots can show "seconds since the start".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit._validate import between, non_negative, one_of, positive, queue_name

__all__ = ["Clock", "as_t0", "sleep_until", "Record", "Recording", "QueueDepthSampler", "percentile"]


class Clock:
    """The experiment's monotonic clock: ``t0`` is when the experiment started (``time.monotonic()``)."""

    def __init__(self, t0: float | None = None):
        self.t0 = time.monotonic() if t0 is None else non_negative("t0", t0)

    def now(self) -> float:
        """Seconds since t0."""
        return time.monotonic() - self.t0

    def at(self, t: float) -> float:
        """The monotonic time of experiment time ``t``."""
        return self.t0 + t

    def __repr__(self) -> str:
        return f"Clock(t0={self.t0:.6f}, now={self.now():.3f}s)"


def as_t0(t0: Clock | float | None) -> float:
    """Normalise a t0 argument (a Clock, a monotonic time, or None for "now") to a monotonic time."""
    if t0 is None:
        return time.monotonic()
    if isinstance(t0, Clock):
        return t0.t0
    return non_negative("t0", t0)


_SPIN_S = 0.001


async def sleep_until(when: float) -> None:
    """Return as close after monotonic time ``when`` as the event loop allows.

    asyncio's timers fire up to ~1 ms late (epoll rounds its timeout up to whole milliseconds), which
    alone would put the send-time error's median near 1 ms. So sleep until 1 ms before, then yield to the
    loop (``sleep(0)``, other tasks keep running) until due: p90 send error drops to ~0.1 ms for at most
    1 ms of yielding per call. Load generation and fault schedules both wait with it.
    """
    non_negative("when", when)
    loop = asyncio.get_running_loop()  # loop.time() is time.monotonic(), the clock of every Record
    delay = when - _SPIN_S - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
    while loop.time() < when:  # noqa: ASYNC110 -- spinning to a point in time, not waiting for an event
        await asyncio.sleep(0)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between order statistics (numpy's default).

    NaN for an empty list, so a plot of an empty time bin shows a gap instead of failing.
    """
    between("q", q, 0, 100)
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(slots=True)
class Record:
    """One operation: when it was due, when it really started and ended, and how it went.

    ``info`` carries what the operation returned (e.g. which service answered, a correlation id).
    """

    scheduled: float
    start: float
    end: float
    ok: bool
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def latency(self) -> float:
        """What the caller experienced: end − scheduled (includes any lateness of the sender)."""
        return self.end - self.scheduled

    @property
    def send_error(self) -> float:
        """How late the load generator started the operation: start − scheduled."""
        return self.start - self.scheduled

    @property
    def service_time(self) -> float:
        """end − start: the latency a coordinated-omission-prone tool would have reported."""
        return self.end - self.start


_INCLUDE = ("ok", "failed", "all")
_BY = ("scheduled", "start", "end")


class Recording:
    """All records of one experiment, with the statistics the chapters plot and assert.

    ``t0`` is the experiment start (defaults to the earliest scheduled time) and ``duration`` the
    intended length of the run (defaults to the span from t0 to the last end); throughput divides by it.
    """

    def __init__(
        self,
        records: Iterable[Record],
        t0: Clock | float | None = None,
        duration: float | None = None,
    ):
        self.records: list[Record] = list(records)
        bad = next((r for r in self.records if not isinstance(r, Record)), None)
        if bad is not None:
            raise ValueError(f"records must be labkit.metrics.Record objects, got {bad!r}")
        self.records.sort(key=lambda r: r.scheduled)
        if t0 is None:
            self.t0 = self.records[0].scheduled if self.records else 0.0
        else:
            self.t0 = as_t0(t0)
        if duration is None:
            last = max((r.end for r in self.records), default=self.t0)
            duration = last - self.t0
        self.duration = non_negative("duration", duration)

    # -- selection -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def select(self, include: str = "ok") -> list[Record]:
        """Records that succeeded (``"ok"``), failed (``"failed"``) or all of them (``"all"``)."""
        one_of("include", include, _INCLUDE)
        if include == "all":
            return list(self.records)
        want = include == "ok"
        return [r for r in self.records if r.ok is want]

    def window(self, t_start: float, t_end: float, by: str = "scheduled") -> Recording:
        """Records whose ``by`` time lies in [t_start, t_end) seconds after t0, as a new Recording."""
        non_negative("t_start", t_start)
        positive("t_end - t_start", t_end - t_start, allow_inf=True)
        one_of("by", by, _BY)
        lo, hi = self.t0 + t_start, self.t0 + t_end
        picked = [r for r in self.records if lo <= getattr(r, by) < hi]
        span = min(t_end, max(self.duration, t_start)) - t_start
        return Recording(picked, t0=self.t0 + t_start, duration=span)

    def group_by(self, key: str) -> dict[Any, Recording]:
        """Split by ``record.info[key]`` (e.g. which path a request took); missing keys group under None."""
        groups: dict[Any, list[Record]] = {}
        for r in self.records:
            groups.setdefault(r.info.get(key), []).append(r)
        return {k: Recording(v, t0=self.t0, duration=self.duration) for k, v in groups.items()}

    # -- statistics ------------------------------------------------------------------------------------

    def latencies(self, include: str = "ok") -> list[float]:
        """Latencies (end − scheduled) in seconds of the selected records."""
        return [r.latency for r in self.select(include)]

    def percentile(self, q: float, include: str = "ok") -> float:
        """q-th latency percentile (0-100) in seconds; NaN if nothing was selected."""
        return percentile(self.latencies(include), q)

    def mean(self, include: str = "ok") -> float:
        """Mean latency in seconds; NaN if nothing was selected."""
        values = self.latencies(include)
        return sum(values) / len(values) if values else math.nan

    def success_rate(self) -> float:
        """Fraction of operations that succeeded; NaN for an empty recording."""
        return sum(r.ok for r in self.records) / len(self.records) if self.records else math.nan

    def throughput(self, include: str = "ok") -> float:
        """Selected operations per second over the recording's duration; NaN if the duration is 0."""
        return len(self.select(include)) / self.duration if self.duration > 0 else math.nan

    def errors(self) -> Counter:
        """How many operations failed with each error string."""
        return Counter(r.error for r in self.records if not r.ok)

    def send_errors(self) -> list[float]:
        """Per-operation send-time error (start − scheduled) in seconds: the generator's own lateness."""
        return [r.send_error for r in self.records]

    def send_error_percentile(self, q: float) -> float:
        """q-th percentile of the send-time error in seconds."""
        return percentile(self.send_errors(), q)

    def timeseries(self, bin_s: float = 1.0, t0: Clock | float | None = None, by: str = "scheduled") -> dict:
        """Per-bin statistics, binned by each record's ``by`` time relative to t0.

        Returns plain lists (plotly-ready): ``t`` (bin start, s), ``count``, ``ok``, ``failed``,
        ``success_rate``, ``rate`` (operations per second), ``p50``/``p95``/``p99`` latency of the
        successful operations (s; NaN in bins without successes).
        """
        positive("bin_s", bin_s)
        one_of("by", by, _BY)
        origin = self.t0 if t0 is None else as_t0(t0)
        span = max([self.duration + self.t0 - origin] + [getattr(r, by) - origin for r in self.records])
        n_bins = max(1, math.ceil(span / bin_s - 1e-9))
        bins: list[list[Record]] = [[] for _ in range(n_bins)]
        for r in self.records:
            k = math.floor((getattr(r, by) - origin) / bin_s + 1e-9)  # t = 0.1 belongs to [0.1, 0.2)
            if 0 <= k < n_bins:
                bins[k].append(r)
        out: dict[str, list] = {
            key: [] for key in ("t", "count", "ok", "failed", "success_rate", "rate", "p50", "p95", "p99")
        }
        for k, b in enumerate(bins):
            good = [r.latency for r in b if r.ok]
            out["t"].append(k * bin_s)
            out["count"].append(len(b))
            out["ok"].append(len(good))
            out["failed"].append(len(b) - len(good))
            out["success_rate"].append(len(good) / len(b) if b else math.nan)
            out["rate"].append(len(b) / bin_s)
            for q in (50, 95, 99):
                out[f"p{q}"].append(percentile(good, q))
        return out

    def in_flight(self, bin_s: float = 1.0, t0: Clock | float | None = None) -> dict[str, list]:
        """Time-averaged number of operations in progress (from scheduled time to end) in each bin.

        The measured L of Little's law: over a whole run, its mean equals the arrival rate times the mean
        latency (L = λW), which a chapter can check against ``throughput("all") * mean("all")``.
        Returns ``t`` (bin start, s) and ``in_flight``.
        """
        positive("bin_s", bin_s)
        origin = self.t0 if t0 is None else as_t0(t0)
        span = max([self.duration + self.t0 - origin] + [r.end - origin for r in self.records])
        n_bins = max(1, math.ceil(span / bin_s - 1e-9))
        busy = [0.0] * n_bins  # operation-seconds inside each bin
        for r in self.records:
            lo, hi = max(0.0, r.scheduled - origin), min(n_bins * bin_s, r.end - origin)
            k = math.floor(lo / bin_s)
            while lo < hi and k < n_bins:
                edge = min(hi, (k + 1) * bin_s)
                busy[k] += edge - lo
                lo, k = edge, k + 1
        return {"t": [k * bin_s for k in range(n_bins)], "in_flight": [b / bin_s for b in busy]}

    def summary(self) -> dict[str, float]:
        """The headline numbers of a run (latencies and send error in milliseconds)."""
        return {
            "n": len(self.records),
            "success_rate": self.success_rate(),
            "throughput_per_s": self.throughput(),
            "p50_ms": self.percentile(50) * 1e3,
            "p95_ms": self.percentile(95) * 1e3,
            "p99_ms": self.percentile(99) * 1e3,
            "mean_ms": self.mean() * 1e3,
            "send_error_p99_ms": self.send_error_percentile(99) * 1e3,
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"Recording(n={s['n']}, success_rate={s['success_rate']:.3f}, p50={s['p50_ms']:.2f} ms, "
            f"p99={s['p99_ms']:.2f} ms, throughput={s['throughput_per_s']:.1f}/s)"
        )


class QueueDepthSampler:
    """Samples a queue's ready-message count at a fixed interval with a passive ``queue.declare``.

    Why passive declare: it is plain AMQP 0-9-1, so it reads the depth the same way on RabbitMQ and on the
    embedded broker (no management API), and it counts *ready* messages only, as RabbitMQ does. Give it a
    channel of its own: a passive declare of a missing queue closes the channel (404), after which the
    sampler stops and ``stop()`` re-raises that error.
    """

    def __init__(self, channel, queue: str, interval: float = 0.1, t0: Clock | float | None = None):
        self.channel = channel
        self.queue = queue_name("queue", queue)
        self.interval = positive("interval", interval)
        self.t0 = as_t0(t0)
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, messages ready, consumers)
        self.error: BaseException | None = None
        self._task: asyncio.Task | None = None

    async def sample(self) -> tuple[float, int, int]:
        """Take one sample now and keep it."""
        ok = await self.channel.queue_declare(self.queue, passive=True)
        point = (time.monotonic(), ok.message_count, ok.consumer_count)
        self.samples.append(point)
        return point

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        try:
            while True:
                await self.sample()
                k += 1
                # sleep to the next tick of a fixed grid so slow samples do not make the series drift
                k = max(k, math.ceil((loop.time() - start) / self.interval))
                await asyncio.sleep(max(0.0, start + k * self.interval - loop.time()))
        except Exception as exc:
            self.error = exc

    async def start(self) -> QueueDepthSampler:
        """Start sampling in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"queue-depth:{self.queue}")
        return self

    async def stop(self) -> None:
        """Stop sampling; re-raise the error that ended sampling early, if any."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    async def __aenter__(self) -> QueueDepthSampler:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def timeseries(self, t0: Clock | float | None = None) -> dict[str, list]:
        """``t`` (seconds since t0), ``messages`` (ready) and ``consumers``, as plotly-ready lists."""
        origin = self.t0 if t0 is None else as_t0(t0)
        return {
            "t": [t - origin for t, _, _ in self.samples],
            "messages": [m for _, m, _ in self.samples],
            "consumers": [c for _, _, c in self.samples],
        }

    def max(self) -> int:
        """Deepest the queue got while sampled (0 if no samples)."""
        return max((m for _, m, _ in self.samples), default=0)
