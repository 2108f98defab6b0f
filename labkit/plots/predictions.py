"""Measurements against theory: latency against a parameter with theory curves, and a measured vs
predicted verdict inside a tolerance band.

Why: each chapter states a prediction (queueing, fan-out, retries) before it measures; these figures put
the two side by side, theory always drawn in black dashes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from labkit import alt_text
from labkit._validate import non_negative
from labkit.plots.inputs import check_same_length, labelled, to_ms
from labkit.plots.style import OKABE_ITO, figure

__all__ = ["latency_vs", "measured_vs_predicted"]

_THEORY_COLOR = OKABE_ITO["black"]


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
    for name, ys in labelled("measured", measured):
        check_same_length(name, x, ys)
        fig.add_trace(
            go.Scatter(x=list(x), y=to_ms(ys), name=f"{name} (measured)", mode="lines+markers", marker=dict(size=8))
        )
    dashes = ("dash", "dot", "dashdot", "longdash")
    for i, (name, (tx, ty)) in enumerate(labelled("theory", theory or {}, allow_empty=True)):
        check_same_length(name, tx, ty)
        fig.add_trace(
            go.Scatter(
                x=list(tx),
                y=to_ms(ty),
                name=f"{name} (theory)",
                mode="lines",
                line=dict(color=_THEORY_COLOR, dash=dashes[i % len(dashes)], width=2),
            )
        )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


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
    check_same_length("measured", x, measured)
    check_same_length("predicted", x, predicted)
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
