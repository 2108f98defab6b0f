"""Calibration: how precisely this machine, right now, can time what the reproductions measure.

Why: the checks of chapter 11 compare a live measurement with a simulation and a formula. How close they
can be depends on the machine: an ``asyncio.sleep`` wakes late by the timer slack (more on a loaded
machine), and every HTTP hop costs CPU time that a formula does not know about. Measuring both first lets
the chapter state its tolerances from this run instead of guessing them, and gives the simulations the
measured hop times to draw from, so live and simulated runs share the same network.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from labkit._validate import between, integer, positive
from labkit.metrics import percentile

__all__ = ["Calibration", "calibrate", "binomial_margin", "quantile_band"]


@dataclass(frozen=True)
class Calibration:
    """Timer slack and per-hop cost (seconds), and the hop samples the simulations draw from."""

    slack_p50: float
    slack_p99: float
    hop_p50: float
    hop_p99: float
    hops: tuple[float, ...] = field(repr=False)

    def timing_tolerance(self, scale: float) -> float:
        """Relative error a live time of about ``scale`` seconds may carry: one late wake-up and one slow hop
        at their 99th percentiles, as a fraction of ``scale``."""
        positive("scale", scale)
        return (self.slack_p99 + self.hop_p99) / scale

    def summary(self) -> dict[str, float]:
        """The four numbers in milliseconds, for a table."""
        return {
            "timer slack p50 (ms)": self.slack_p50 * 1e3,
            "timer slack p99 (ms)": self.slack_p99 * 1e3,
            "HTTP hop p50 (ms)": self.hop_p50 * 1e3,
            "HTTP hop p99 (ms)": self.hop_p99 * 1e3,
        }


async def calibrate(lab: Any, samples: int = 200, sleep: float = 0.001) -> Calibration:
    """Measure timer slack (how late ``asyncio.sleep(sleep)`` returns) and the round trip of one HTTP call
    through ``lab.call`` to a service that does no work, ``samples`` times each."""
    integer("samples", samples, 10)
    positive("sleep", sleep)
    slack = []
    for _ in range(samples):
        t = time.monotonic()
        await asyncio.sleep(sleep)
        slack.append(max(0.0, time.monotonic() - t - sleep))
    service = await lab.service(f"calibration-{id(lab):x}", service_time=0.0)
    hops = []
    try:
        for _ in range(samples):
            t = time.monotonic()
            await lab.call(service)
            hops.append(time.monotonic() - t)
    finally:
        await lab.remove(service)
    return Calibration(
        percentile(slack, 50), percentile(slack, 99), percentile(hops, 50), percentile(hops, 99), tuple(hops)
    )


def binomial_margin(p: float, n: int, z: float = 3.0) -> float:
    """Half-width of a z-sigma band for a proportion near ``p`` estimated from ``n`` trials: what chance
    alone may move a measured fraction (e.g. of slow requests) away from the formula."""
    integer("n", n, 1)
    return z * math.sqrt(max(p * (1 - p), 1e-12) / n)


def quantile_band(q: float, n: int, z: float = 3.0) -> tuple[float, float]:
    """The percentile levels (0-100) between which the true distribution's quantiles hold the ``q``-th
    percentile of ``n`` independent draws, unless chance moves it ``z`` sigmas.

    Why not ``q`` ± :func:`binomial_margin`: the sample percentile is wrong when too many or too few draws
    land beyond it, and far in the tail that count is small and skewed (20 of 20,000 beyond a p99.9).
    The Wilson score interval of the share beyond holds z sigmas on both sides; the symmetric band is only
    about 2.3 sigmas on its low side there. Quantiles of a distribution with steps (a few measured hop
    times) keep the guarantee, because the band is on the level, not on the value.
    """
    between("q", q, 0, 100)
    integer("n", n, 1)
    positive("z", z)
    beyond = 1 - q / 100
    spread = z * z / n
    centre = (beyond + spread / 2) / (1 + spread)
    half = z / (1 + spread) * math.sqrt(beyond * (1 - beyond) / n + spread / (4 * n))
    return 100 * (1 - min(1.0, centre + half)), 100 * (1 - max(0.0, centre - half))
