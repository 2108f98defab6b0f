"""Latency distributions: the empirical CDF per run and grouped percentile bars, in milliseconds.

Why: sync and async differ most in the tail, so runs are compared by their whole distribution and by
named percentiles, never by a mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from labkit import alt_text
from labkit.metrics import percentile
from labkit.plots.inputs import as_latencies, labelled, to_ms
from labkit.plots.style import COLORS, figure

__all__ = ["latency_cdf", "percentiles"]


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
    for i, (name, data) in enumerate(labelled("latencies", latencies)):
        values = sorted(to_ms(as_latencies(name, data)))
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
    for name, data in labelled("latencies", latencies):
        values = to_ms(as_latencies(name, data))
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
