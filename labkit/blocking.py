"""A blocking call next to an event loop: the call itself, and a ticker that shows the loop stall.

Why a module of its own: chapter 01 shows what a blocking client does to the one thread that runs every
coroutine. The lesson is *where* the call runs (on the loop's thread or in a worker thread); the ticker
that measures the stall and the figure that draws it are the instrument, and live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import plotly.graph_objects as go

from labkit import plots
from labkit._validate import positive

__all__ = ["blocking_post", "ticker", "ticks_while", "as_series", "ticker_figure"]

Ticks = list[tuple[float, float]]


def blocking_post(url: str, timeout: float = 10.0) -> bytes:
    """What ``requests.post(url)`` does: this thread stops until the answer arrives."""
    request = urllib.request.Request(url, data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
        return body


async def ticker(ticks: Ticks, period: float = 0.01) -> None:
    """Wake up every ``period`` s and record (when, how long the tick really took)."""
    positive("period", period)
    last = time.monotonic()
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        ticks.append((now, now - last))
        last = now


async def ticks_while(
    work: Callable[[], Awaitable[Any]], period: float = 0.01, settle: float = 0.1
) -> tuple[Any, Ticks]:
    """Run ``work()`` with the ticker going; return its outcome and the ticks, timed from the call.

    The ticker runs ``settle`` s before and after the work, so the figure shows the loop's normal
    rhythm on both sides of a stall; it is cancelled even when the work raises.
    """
    ticks: Ticks = []
    tick = asyncio.ensure_future(ticker(ticks, period))
    try:
        await asyncio.sleep(settle)
        started = time.monotonic()
        outcome = await work()
        await asyncio.sleep(settle)
    finally:
        tick.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick
    return outcome, [(t - started, gap) for t, gap in ticks]


def as_series(ticks: Ticks) -> tuple[list[float], list[float]]:
    """(start of each tick, its length in ms): drawn as steps, a stall is one long, high tick."""
    return [t - gap for t, gap in ticks], [gap * 1000 for _, gap in ticks]


def ticker_figure(runs: Mapping[str, Ticks]) -> go.Figure:
    """How long each of the ticker's naps really took, one step trace per run."""
    return plots.timeline(
        {name: as_series(ticks) for name, ticks in runs.items()},
        title="The ticker: how long each 10 ms tick really took",
        y_title="tick (ms)",
        x_title="time since the blocking call started (s)",
        step=True,
    )
