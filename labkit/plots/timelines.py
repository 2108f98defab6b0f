"""Figures over the experiment's time axis (seconds since its start), with fault bands shaded.

Why: "what happened when the fault hit" is read off one shared x axis: lines in flight or throughput,
queue depth, success rate per window, and each item's delivery attempts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from labkit._validate import positive
from labkit.metrics import Recording, as_t0
from labkit.plots.inputs import as_records, check_same_length, labelled
from labkit.plots.style import OKABE_ITO, add_fault_bands, figure

__all__ = ["attempts", "queue_depth", "success_rate", "timeline"]


def timeline(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    y_title: str,
    faults: Iterable[Any] | None = None,
    step: bool = False,
    x_title: str = "time since start (s)",
) -> go.Figure:
    """Lines over the experiment's time axis, e.g. in-flight requests or throughput, with fault bands.

    ``series``: ``{name: (t_seconds, values)}``. ``step=True`` draws counts that change in jumps
    (requests in flight) as steps.
    """
    fig = figure(title, x_title, y_title)
    last = 0.0
    for name, (t, y) in labelled("series", series):
        check_same_length(name, t, y)
        fig.add_trace(
            go.Scatter(
                x=list(t), y=list(y), name=name, mode="lines", line=dict(width=2, shape="hv" if step else "linear")
            )
        )
        last = max([last, *t])
    return add_fault_bands(fig, faults, until=last)


def queue_depth(
    queues: Mapping[str, Any],
    *,
    t0: Any = None,
    title: str = "Queue depth",
    faults: Iterable[Any] | None = None,
) -> go.Figure:
    """Messages ready in each queue over time, with fault bands.

    ``queues``: ``{name: QueueDepthSampler | {"t": [...], "messages": [...]} | (t, depth)}``; ``t0``
    (a Clock or monotonic time) is passed to a sampler's ``timeseries``.
    """
    series = {}
    for name, q in labelled("queues", queues):
        if hasattr(q, "timeseries"):
            q = q.timeseries(t0)
        series[name] = (q["t"], q["messages"]) if isinstance(q, Mapping) else q
    return timeline(series, title=title, y_title="messages ready", faults=faults, step=True)


def success_rate(
    recordings: Mapping[str, Any],
    *,
    bin_s: float = 1.0,
    t0: Any = None,
    title: str = "Success rate",
    faults: Iterable[Any] | None = None,
) -> go.Figure:
    """Percentage of requests that succeeded in each ``bin_s`` window (by scheduled time), with fault bands.

    ``recordings``: ``{name: Recording | list of records}``; ``t0`` (a Clock or monotonic time) sets the
    time origin, e.g. ``lab.clock``.
    """
    positive("bin_s", bin_s)
    fig = figure(title, "time since start (s)", "requests succeeded (%)", yaxis_range=[-2, 105])
    last = 0.0
    for name, data in labelled("recordings", recordings):
        rec = data if isinstance(data, Recording) else Recording(as_records(name, data), t0=t0)
        ts = rec.timeseries(bin_s=bin_s, t0=t0)
        centers = [t + bin_s / 2 for t in ts["t"]]
        rates = [None if math.isnan(r) else 100 * r for r in ts["success_rate"]]
        fig.add_trace(go.Scatter(x=centers, y=rates, name=name, mode="lines+markers"))
        last = max([last, *(t + bin_s for t in ts["t"])])
    return add_fault_bands(fig, faults, until=last)


def attempts(
    rows: Mapping[str, Sequence[tuple[float, bool]]],
    *,
    t0: Any = None,
    faults: Iterable[Any] | None = None,
    title: str = "Attempts over time",
    row_title: str = "item",
) -> go.Figure:
    """One row per item (an event, a message), one marker per attempt at its time (s since ``t0``):
    a filled circle for the attempt that succeeded, a cross for each that failed; fault bands shaded.

    ``rows``: ``{name: [(monotonic time, succeeded), ...]}``.
    """
    start = as_t0(t0)
    fig = figure(title, "time since start (s)", row_title, height=max(300, 140 + 14 * len(rows)))
    for ok, name, colour, symbol in (
        (False, "failed attempt", OKABE_ITO["vermillion"], "x"),
        (True, "delivered", OKABE_ITO["bluish green"], "circle"),
    ):
        points = [(t - start, row) for row, tries in labelled("rows", rows) for t, good in tries if good == ok]
        fig.add_trace(
            go.Scatter(
                x=[t for t, _ in points],
                y=[r for _, r in points],
                mode="markers",
                name=name,
                marker=dict(color=colour, symbol=symbol, size=8),
            )
        )
    fig.update_yaxes(autorange="reversed", type="category")
    return add_fault_bands(fig, faults)
