"""The chapter's figures: live, simulated and closed form on one plot each, the published point marked.

Why here and not in the notebook: each figure overlays four sources with the same marker code (live: filled
circle, simulation: open square, closed form: dashed black line, published: star), which would otherwise be
repeated in every cell. All figures are built on :func:`labkit.plots.figure` (house style, units).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from labkit import plots

__all__ = ["overlay"]

_STYLE = {
    "live": dict(mode="markers", marker=dict(size=12, symbol="circle", color=plots.OKABE_ITO["blue"])),
    "simulated": dict(
        mode="markers",
        marker=dict(size=11, symbol="square-open", line=dict(width=2), color=plots.OKABE_ITO["vermillion"]),
    ),
    "closed form": dict(mode="lines", line=dict(color=plots.OKABE_ITO["black"], dash="dash", width=2)),
    "published": dict(
        mode="markers+text",
        textposition="top center",
        marker=dict(size=18, symbol="star", color=plots.OKABE_ITO["orange"], line=dict(width=1, color="black")),
    ),
}


def overlay(
    title: str,
    x_title: str,
    y_title: str,
    series: Sequence[tuple[str, str, Sequence[float], Sequence[float]]],
    *,
    log_x: bool = False,
    log_y: bool = False,
    error_y: dict[str, Sequence[float]] | None = None,
) -> go.Figure:
    """One figure from ``(source, name, x, y)`` series, ``source`` one of live / simulated / closed form /
    published (which sets the marker); ``error_y`` maps a series name to its error bar half-widths."""
    fig = plots.figure(title, x_title, y_title)
    for source, name, x, y in series:
        if source not in _STYLE:
            raise ValueError(f"source must be one of {sorted(_STYLE)}, got {source!r}")
        style: dict[str, Any] = dict(_STYLE[source])
        if source == "closed form" and len([s for s in series if s[0] == "closed form"]) > 1:
            style = {**style, "line": {**style["line"], "color": None}}
        extra: dict[str, Any] = {}
        if error_y and name in error_y:
            extra["error_y"] = dict(type="data", array=list(error_y[name]), visible=True)
        if source == "published":
            extra["text"] = ["published"] * len(x)
        fig.add_trace(go.Scatter(x=list(x), y=list(y), name=name, **style, **extra))
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    return fig
