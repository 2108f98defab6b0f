"""One traced request as a waterfall: a bar per span, indented by depth, coloured by kind.

Why: the checkout's path mixes a synchronous edge with an asynchronous spine; a waterfall shows where a
request's time goes, hop by hop, and which hop failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from labkit import alt_text
from labkit.plots.style import OKABE_ITO, figure

__all__ = ["trace_waterfall"]

_KIND_COLORS = {
    "client": OKABE_ITO["blue"],
    "server": OKABE_ITO["bluish green"],
    "publish": OKABE_ITO["orange"],
    "queue": OKABE_ITO["sky blue"],
    "consume": OKABE_ITO["reddish purple"],
}


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
