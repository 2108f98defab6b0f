"""Figure builders in one house style: every chapter's plots look alike and read alike.

Why: a reader compares figures across chapters (sync vs async, before vs after a fault), so colours,
units and layout must mean the same thing everywhere. All builders return a plain ``plotly`` ``go.Figure``
(no network: importing this module activates the offline renderer of :mod:`labkit.render`), use the
Okabe-Ito palette (distinguishable with every common colour-vision deficiency), put units in every axis
title, show time in seconds since the experiment's start and latency in milliseconds.

Inputs are what the rest of the kit produces: latencies in seconds, a :class:`labkit.metrics.Recording`
or a list of records, ``(t, y)`` pairs of lists, a :class:`~labkit.metrics.QueueDepthSampler`, fault
bands from ``FaultProxy.bands(t0)``, spans from the lab's tracer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from labkit import alt_text, render
from labkit._validate import non_negative, positive
from labkit.metrics import Recording, as_t0, percentile

__all__ = [
    "OKABE_ITO",
    "COLORS",
    "TEMPLATE",
    "figure",
    "add_fault_bands",
    "timeline",
    "latency_vs",
    "latency_cdf",
    "percentiles",
    "queue_depth",
    "success_rate",
    "measured_vs_predicted",
    "trace_waterfall",
    "attempts",
]

render.activate()

#: The Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008, as recommended by Wong, Nature Methods 2011).
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
#: Series colours in order of use: the first two (blue, vermillion) are the course's "sync vs async" pair.
COLORS = [
    OKABE_ITO[c]
    for c in ("blue", "vermillion", "bluish green", "orange", "reddish purple", "sky blue", "yellow", "black")
]
#: Name of the registered plotly template (applied on top of "simple_white").
TEMPLATE = "labkit"
_FAULT_FILL = OKABE_ITO["vermillion"]
_THEORY_COLOR = OKABE_ITO["black"]
_KIND_COLORS = {
    "client": OKABE_ITO["blue"],
    "server": OKABE_ITO["bluish green"],
    "publish": OKABE_ITO["orange"],
    "queue": OKABE_ITO["sky blue"],
    "consume": OKABE_ITO["reddish purple"],
}

pio.templates[TEMPLATE] = go.layout.Template(
    layout=dict(
        colorway=COLORS,
        font=dict(family="Source Sans Pro, Helvetica, Arial, sans-serif", size=14),
        # The title sits at the top of the figure and the legend just above the plot area, below it: the
        # top margin leaves room for two legend rows between them (tests/book/test_built_book.py checks).
        title=dict(
            x=0.0, xanchor="left", yref="container", y=1.0, yanchor="top", pad=dict(t=10, l=4), font=dict(size=18)
        ),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0.0),
        margin=dict(l=70, r=20, t=92, b=60),
        height=420,
        hovermode="closest",
        xaxis=dict(showgrid=True, gridcolor="#E5E5E5", zeroline=False),
        yaxis=dict(showgrid=True, gridcolor="#E5E5E5", zeroline=False),
    )
)


def figure(title: str, x_title: str, y_title: str, **layout: Any) -> go.Figure:
    """An empty figure in the house style. Axis titles should carry units, e.g. ``"latency (ms)"``."""
    for name, value in (("title", title), ("x_title", x_title), ("y_title", y_title)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    fig = go.Figure()
    fig.update_layout(
        template=f"simple_white+{TEMPLATE}", title_text=title, xaxis_title=x_title, yaxis_title=y_title, **layout
    )
    return fig


def add_fault_bands(fig: go.Figure, bands: Iterable[Any] | None, until: float | None = None) -> go.Figure:
    """Shade the intervals when faults were active and label them.

    ``bands``: dicts from ``FaultProxy.bands(t0)`` (``start``, ``end``, ``label``) or ``(start, end, label)``
    tuples, in seconds since t0; an ``end`` of None (still active) is drawn up to ``until``.
    """
    for i, band in enumerate(bands or ()):
        if isinstance(band, Mapping):
            start, end, label = band.get("start"), band.get("end"), band.get("label", "")
        else:
            try:
                start, end, label = band
            except (TypeError, ValueError):
                raise ValueError(f"bands[{i}] must be a dict or a (start, end, label) tuple, got {band!r}") from None
        if start is None:  # refused by name, not with a TypeError further down
            raise ValueError(f"bands[{i}] has no start, got {band!r}")
        x0 = non_negative(f"bands[{i}].start", start)
        x1 = end if end is not None else (until if until is not None else x0)
        non_negative(f"bands[{i}].end - start", x1 - x0)
        fig.add_vrect(
            x0=x0,
            x1=x1,
            fillcolor=_FAULT_FILL,
            opacity=0.15,
            line_width=0,
            layer="below",
            annotation_text=str(label),
            annotation_position="top left",
            annotation_font=dict(size=11, color=_FAULT_FILL),
        )
    return fig


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
    for name, (t, y) in _items("series", series):
        _same_length(name, t, y)
        fig.add_trace(
            go.Scatter(
                x=list(t), y=list(y), name=name, mode="lines", line=dict(width=2, shape="hv" if step else "linear")
            )
        )
        last = max([last, *t])
    return add_fault_bands(fig, faults, until=last)


def latency_vs(
    x: Sequence[float],
    measured: Mapping[str, Sequence[float]],
    *,
    x_title: str,
    title: str,
    theory: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    y_title: str = "latency (ms)",
    log_y: bool = False,
) -> go.Figure:
    """Measured latency (seconds; drawn in ms) against a parameter, with theory curves as dashed lines.

    ``measured``: ``{"p50": [...], "p99": [...]}`` one value per ``x``; ``theory``: ``{name: (xs, ys)}``
    in the same units (seconds), e.g. an M/M/1 prediction on a fine grid.
    """
    fig = figure(title, x_title, y_title)
    for name, ys in _items("measured", measured):
        _same_length(name, x, ys)
        fig.add_trace(
            go.Scatter(x=list(x), y=_ms(ys), name=f"{name} (measured)", mode="lines+markers", marker=dict(size=8))
        )
    dashes = ("dash", "dot", "dashdot", "longdash")
    for i, (name, (tx, ty)) in enumerate(_items("theory", theory or {}, allow_empty=True)):
        _same_length(name, tx, ty)
        fig.add_trace(
            go.Scatter(
                x=list(tx),
                y=_ms(ty),
                name=f"{name} (theory)",
                mode="lines",
                line=dict(color=_THEORY_COLOR, dash=dashes[i % len(dashes)], width=2),
            )
        )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def latency_cdf(
    latencies: Mapping[str, Any],
    *,
    title: str = "Latency distribution",
    marks: Sequence[float] = (50, 99),
    log_x: bool = False,
) -> go.Figure:
    """Empirical CDF of latency per run (ms on x, fraction of requests on y), with percentile markers.

    ``latencies``: ``{name: Recording | list of records | list of seconds}`` (successful requests only
    for a Recording).
    """
    fig = figure(title, "latency (ms)", "fraction of requests ≤ latency", yaxis_range=[0, 1.02])
    summary = []
    for i, (name, data) in enumerate(_items("latencies", latencies)):
        values = sorted(_ms(_latencies(name, data)))
        n = len(values)
        summary.append(
            f"{name}: {n} requests"
            + "".join(f", p{q:g} {alt_text.number(percentile(values, q))} ms" for q in marks if n)
        )
        color = COLORS[i % len(COLORS)]
        fig.add_trace(
            go.Scatter(
                x=values,
                y=[(k + 1) / n for k in range(n)],
                name=name,
                mode="lines",
                line=dict(color=color, width=2, shape="hv"),
            )
        )
        for q in marks:
            if n:
                v = percentile(values, q)
                fig.add_trace(
                    go.Scatter(
                        x=[v],
                        y=[q / 100],
                        mode="markers+text",
                        text=[f"p{q:g} {v:.1f} ms"],
                        textposition="middle right",
                        marker=dict(color=color, size=9),
                        showlegend=False,
                        name=f"{name} p{q:g}",
                    )
                )
    fig.update_layout(meta={"description": "; ".join(summary)})
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def percentiles(
    latencies: Mapping[str, Any],
    *,
    qs: Sequence[float] = (50, 90, 99),
    title: str = "Latency percentiles",
) -> go.Figure:
    """Grouped bars: for each run, its latency percentiles ``qs`` in ms (inputs as for :func:`latency_cdf`)."""
    fig = figure(title, "percentile", "latency (ms)", barmode="group")
    labels = [f"p{q:g}" for q in qs]
    for name, data in _items("latencies", latencies):
        values = _ms(_latencies(name, data))
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[percentile(values, q) for q in qs],
                name=name,
                texttemplate="%{y:.1f}",
                textposition="outside",
            )
        )
    return fig


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
    for name, q in _items("queues", queues):
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
    for name, data in _items("recordings", recordings):
        rec = data if isinstance(data, Recording) else Recording(_records(name, data), t0=t0)
        ts = rec.timeseries(bin_s=bin_s, t0=t0)
        centers = [t + bin_s / 2 for t in ts["t"]]
        rates = [None if math.isnan(r) else 100 * r for r in ts["success_rate"]]
        fig.add_trace(go.Scatter(x=centers, y=rates, name=name, mode="lines+markers"))
        last = max([last, *(t + bin_s for t in ts["t"])])
    return add_fault_bands(fig, faults, until=last)


def measured_vs_predicted(
    x: Sequence[Any],
    measured: Sequence[float],
    predicted: Sequence[float],
    *,
    tolerance: float = 0.1,
    relative: bool = True,
    x_title: str,
    y_title: str,
    title: str = "Measured vs predicted",
) -> go.Figure:
    """Theory as a line inside its tolerance band; each measurement as a marker, green inside the band
    and vermillion outside, so the verdict is visible at a glance.

    ``tolerance`` is a fraction of the prediction (``relative=True``) or an absolute amount in y units.
    """
    non_negative("tolerance", tolerance)
    _same_length("measured", x, measured)
    _same_length("predicted", x, predicted)
    lo = [p - (abs(p) * tolerance if relative else tolerance) for p in predicted]
    hi = [p + (abs(p) * tolerance if relative else tolerance) for p in predicted]
    band = f"±{tolerance:.0%}" if relative else f"±{tolerance:g}"
    fig = figure(title, x_title, y_title)
    fig.add_trace(
        go.Scatter(
            x=list(x), y=hi, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip", name="upper bound"
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(x),
            y=lo,
            mode="lines",
            line=dict(width=0),
            fill="tonexty",
            fillcolor="rgba(0,0,0,0.08)",
            name=f"tolerance {band}",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(x),
            y=list(predicted),
            mode="lines",
            name="predicted",
            line=dict(color=_THEORY_COLOR, dash="dash", width=2),
        )
    )
    inside = [a <= m <= b for m, a, b in zip(measured, lo, hi)]
    fig.update_layout(
        meta={
            "description": "; ".join(
                f"{k}: measured {alt_text.number(m)}, predicted {alt_text.number(p)}, "
                f"{'within' if ok else 'outside'} the tolerance of {band}"
                for k, m, p, ok in zip(x, measured, predicted, inside)
            )
        }
    )
    fig.add_trace(
        go.Scatter(
            x=list(x),
            y=list(measured),
            mode="markers",
            name="measured",
            marker=dict(
                size=11,
                symbol=["circle" if ok else "x" for ok in inside],
                color=[OKABE_ITO["bluish green"] if ok else OKABE_ITO["vermillion"] for ok in inside],
            ),
            customdata=["within tolerance" if ok else "outside tolerance" for ok in inside],
            hovertemplate="%{x}: %{y:.4g} (%{customdata})<extra></extra>",
        )
    )
    return fig


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
        points = [(t - start, row) for row, tries in _items("rows", rows) for t, good in tries if good == ok]
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


def trace_waterfall(spans: Sequence[Any], *, title: str = "One request, hop by hop") -> go.Figure:
    """A waterfall of one trace: one bar per span (ms since the first span began), indented by depth,
    coloured by kind (client call, server work, publish, time queued, consume)."""
    spans = sorted(spans, key=lambda s: s.start)
    if not spans:
        raise ValueError("spans must contain at least one span (did the request carry a correlation id?)")
    t0 = spans[0].start
    by_id = {s.span_id: s for s in spans}

    def depth(span: Any) -> int:
        d, seen = 0, set()
        while span.parent_id in by_id and span.span_id not in seen:
            seen.add(span.span_id)
            span, d = by_id[span.parent_id], d + 1
        return d

    def label(k: int, span: Any) -> str:  # tick labels are right-aligned, so depth is drawn, not indented
        d = depth(span)
        return f"{'· ' * max(0, d - 1)}{'└ ' if d else ''}{span.name}  [{k}]"

    labels = [label(k, s) for k, s in enumerate(spans, 1)]
    # Five kinds make a legend too wide for one row on a narrow page: it goes under the plot, where it
    # cannot reach the title.
    fig = figure(
        title,
        "time since the request began (ms)",
        "span",
        height=max(300, 130 + 32 * len(spans)),
        barmode="overlay",
        margin=dict(t=60, b=110),
        legend=dict(orientation="h", yref="container", y=0.0, yanchor="bottom", x=0.0, xanchor="left"),
    )
    for kind in dict.fromkeys(s.kind for s in spans):
        idx = [i for i, s in enumerate(spans) if s.kind == kind]
        fig.add_trace(
            go.Bar(
                y=[labels[i] for i in idx],
                x=[((spans[i].end or spans[i].start) - spans[i].start) * 1e3 for i in idx],
                base=[(spans[i].start - t0) * 1e3 for i in idx],
                orientation="h",
                name=kind,
                marker=dict(
                    color=_KIND_COLORS.get(kind, OKABE_ITO["black"]),
                    line=dict(width=[0 if spans[i].ok else 3 for i in idx], color=OKABE_ITO["vermillion"]),
                ),
                hovertemplate="%{y}: %{base:.1f} → +%{x:.1f} ms<extra></extra>",
            )
        )
    fig.update_yaxes(categoryorder="array", categoryarray=labels, autorange="reversed")
    end = max((s.end or s.start) for s in spans)
    first = spans[0]
    fig.update_layout(
        meta={
            "description": (
                f"{len(spans)} spans over {alt_text.number((end - t0) * 1e3)} ms; the first, {first.name}, lasts "
                f"{alt_text.number(((first.end or first.start) - first.start) * 1e3)} ms"
                + "".join(f"; {k}: {sum(s.kind == k for s in spans)}" for k in dict.fromkeys(s.kind for s in spans))
            )
        }
    )
    return fig


# -- input normalisation ------------------------------------------------------------------------------


def _items(name: str, mapping: Any, allow_empty: bool = False) -> list[tuple[str, Any]]:
    if not isinstance(mapping, Mapping) or (not mapping and not allow_empty):
        raise ValueError(f"{name} must be a non-empty dict of {{label: data}}, got {mapping!r}")
    return [(str(k), v) for k, v in mapping.items()]


def _same_length(name: str, a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name} must have as many values as x ({len(a)}), got {len(b)}")


def _records(name: str, data: Any) -> list[Any]:
    records = list(data)
    if not all(hasattr(r, "latency") and hasattr(r, "ok") for r in records):
        raise ValueError(f"{name} must be a Recording or a list of labkit.metrics.Record")
    return records


def _latencies(name: str, data: Any) -> list[float]:
    """Seconds: from a Recording (successful ones), a list of records (successful ones) or of numbers."""
    if isinstance(data, Recording):
        return data.latencies("ok")
    values = list(data)
    if all(hasattr(v, "latency") for v in values):
        return [v.latency for v in values if v.ok]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a Recording, a list of records, or latencies in seconds")
    return values


def _ms(seconds: Iterable[float]) -> list[float]:
    return [s * 1e3 for s in seconds]
