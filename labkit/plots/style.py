"""The house style every figure is built on: palette, plotly template, empty figure, fault bands.

Why: a reader compares figures across chapters (sync vs async, before vs after a fault), so colours,
units and layout must mean the same thing everywhere; every builder in :mod:`labkit.plots` starts from
:func:`figure` and shades faults with :func:`add_fault_bands`. Importing this module activates the
offline renderer of :mod:`labkit.render` (no network).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from labkit import render
from labkit._validate import non_negative

__all__ = ["OKABE_ITO", "COLORS", "TEMPLATE", "figure", "add_fault_bands"]

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
