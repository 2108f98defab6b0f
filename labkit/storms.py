"""Retry storms, measured from a run's traces: when each request's attempts went out, and how bunched.

Why: chapter 03 compares plain exponential backoff with full jitter. Both retry the same number of times;
what differs is *when*: plain backoff sends every waiting request's retry at the same instants, a wave
that hits the recovering service all at once. These functions turn the spans of a run into the numbers
that show it.

    calls = attempts(lab.tracer, "order -> email link", t0)     # {correlation id: [attempt times]}
    retries = sorted(t for ts in calls.values() for t in ts[1:])
    peak_rate(retries, window=0.05)                              # retries/s in the 3 busiest 50 ms
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable

from labkit._validate import integer, positive
from labkit.tracing import Tracer

__all__ = ["attempts", "binned", "peak_rate"]


def attempts(tracer: Tracer, span_name: str, t0: float) -> dict[str, list[float]]:
    """Start times (seconds since ``t0``) of every span called ``span_name``, per correlation id, sorted:
    for a client's call to a downstream, the first is the call and the rest are its retries."""
    calls: dict[str, list[float]] = collections.defaultdict(list)
    for span in tracer.spans:
        if span.name == span_name:
            calls[span.correlation_id].append(span.start - t0)
    return {cid: sorted(ts) for cid, ts in calls.items()}


def binned(times: Iterable[float], width: float, duration: float) -> list[int]:
    """How many of ``times`` fall in each ``width``-second bin of ``[0, duration)``."""
    positive("width", width)
    positive("duration", duration)
    bins = [0] * math.ceil(duration / width)
    for t in times:
        if 0 <= t < duration:
            bins[min(int(t / width), len(bins) - 1)] += 1
    return bins


def peak_rate(times: Iterable[float], window: float, peaks: int = 3) -> float:
    """Mean rate (per second) in the ``peaks`` busiest ``window``-second stretches, found one after the other.

    Sliding windows, so a burst is not split by bin edges; several peaks, not one, because a single pause
    of a busy machine can bunch up any retries once, while plain backoff bunches them at every wave.
    """
    positive("window", window)
    integer("peaks", peaks, 1)
    left, found = sorted(times), []
    for _ in range(peaks):
        best, where, j = 0, 0, 0
        for i, t in enumerate(left):
            while left[j] <= t - window:
                j += 1
            if i - j + 1 > best:
                best, where = i - j + 1, j
        found.append(best)
        del left[where : where + best]
    return sum(found) / len(found) / window
