"""The space-time diagram of a history: one lane per process, an arrow per message hop, marks for trouble.

Why: a counterexample is a story in time across processes ("delivered to consumer 0, charged, consumer 0
died before its ack, redelivered to consumer 1, charged again"), and Lamport's space-time diagram is
how that story is drawn: time runs left to right, each process is a horizontal lane, and a message is
an arrow from the lane that sent it to the lane that received it.

- A message goes publisher → broker (at its confirm, if the publisher asked for one; at once without)
  → consumer (at the delivery). The time it waits in the queue is the gap between the two arrows; a
  delivery arrow is drawn short (1.5 % of the time axis), so 200 events do not become a fan of lines.
- Acks, nacks and rejects are thin grey arrows back to the broker.
- HTTP calls are arrows from the client to the service it called and back. Only the client's clock is
  recorded, so the request is drawn arriving half-way between the request and the response.
- Marks: ✕ crash, ◆ redelivery, ★ duplicate effect (an applied effect for a message that already had
  one), ● effect, ○ effect skipped as a duplicate, ■ saga step (hollow: undone).

Markers are one trace per kind and arrows one trace per kind (with gaps), so 200 events draw as a
handful of traces and stay readable; every mark has a hover text. :attr:`SpaceTime.text` is the
diagram's text alternative (the same events in words), shown under the figure in a notebook.
"""

from __future__ import annotations

import html
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

from labkit import plots, render
from labkit.history.events import Event, History

__all__ = ["SpaceTime", "diagram"]

BROKER = "broker"
_GREY = "#999999"
_ARROWS = {  # kind of arrow -> (legend name, colour, width, dash)
    "publish": ("publish", plots.OKABE_ITO["orange"], 1.5, "solid"),
    "deliver": ("delivery", plots.OKABE_ITO["blue"], 1.5, "solid"),
    "redeliver": ("redelivery", plots.OKABE_ITO["vermillion"], 2.0, "solid"),
    "settle": ("ack / nack", _GREY, 1.0, "dot"),
    "http": ("HTTP call", plots.OKABE_ITO["bluish green"], 1.5, "solid"),
}
_MARKS = {  # kind of mark -> (legend name, colour, symbol, size)
    "crash": ("crash", plots.OKABE_ITO["vermillion"], "x-thin-open", 16),
    "redelivered": ("redelivered", plots.OKABE_ITO["vermillion"], "diamond", 10),
    "duplicate": ("duplicate effect", plots.OKABE_ITO["vermillion"], "star", 16),
    "effect": ("effect", plots.OKABE_ITO["black"], "circle", 8),
    "skipped": ("effect skipped (duplicate)", plots.OKABE_ITO["black"], "circle-open", 9),
    "saga": ("saga step", plots.OKABE_ITO["reddish purple"], "square", 9),
    "undo": ("saga step undone", plots.OKABE_ITO["reddish purple"], "square-open", 10),
    "failure": ("refused / error", plots.OKABE_ITO["vermillion"], "triangle-down", 10),
}


class SpaceTime:
    """A drawn history: ``figure`` (plotly) and ``text`` (its text alternative)."""

    def __init__(self, figure: go.Figure, text: str):
        self.figure = figure
        self.text = text

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        self.figure.show()
        display(
            HTML(
                "<details><summary>Text alternative of the diagram</summary><pre>"
                f"{html.escape(self.text)}</pre></details>"
            )
        )

    def to_html(self, path: str) -> None:
        """Write a standalone HTML page (plotly.js written once beside it, so it opens offline)."""
        body = self.figure.to_html(full_html=False, include_plotlyjs="directory")
        script = os.path.join(os.path.dirname(os.path.abspath(path)), "plotly.min.js")
        if not os.path.exists(script):
            shutil.copyfile(render.plotlyjs_path(), script)
        with open(path, "w", encoding="utf-8") as f:
            f.write(
                "<!doctype html><html><head><meta charset='utf-8'><title>space-time diagram</title></head>"
                f"<body>{body}<details open><summary>Text alternative</summary><pre>{html.escape(self.text)}"
                "</pre></details></body></html>"
            )


def _lanes(events: list[Event]) -> list[str]:
    """Senders first (publishers, clients), then the broker, then receivers, each in order of appearance."""
    senders, receivers = [], []
    for e in events:
        target = e.attrs.get("target") if e.kind in ("request", "response", "error") else None
        if e.kind in ("publish", "confirm", "return", "publish-nack", "request", "response", "error"):
            senders.append(e.process)
        elif e.process != BROKER:
            receivers.append(e.process)
        if target:
            receivers.append(target)
    needs_broker = any(e.kind in ("publish", "deliver") for e in events) or any(e.process == BROKER for e in events)
    lanes = list(dict.fromkeys(senders))
    lanes += [BROKER] if needs_broker and BROKER not in lanes else []
    return lanes + [p for p in dict.fromkeys(receivers) if p not in lanes]


def diagram(
    events: History | Iterable[Event],
    *,
    title: str = "Space-time diagram",
    t0: float | None = None,
    highlight: str | None = None,
) -> SpaceTime:
    """Draw ``events`` (a history or a counterexample). ``t0``: the time axis origin (default: the first
    event); ``highlight``: a message id or key whose arrows are drawn thicker."""
    events = sorted(events, key=lambda e: e.t)
    if not events:
        raise ValueError("events must not be empty: there is nothing to draw")
    origin = events[0].t if t0 is None else float(t0)
    lanes = _lanes(events)
    row = {lane: i for i, lane in enumerate(lanes)}
    arrows: dict[str, tuple[list, list, list]] = {k: ([], [], []) for k in _ARROWS}
    marks: dict[str, tuple[list, list, list]] = {k: ([], [], []) for k in _MARKS}

    def arrow(kind: str, t1: float, lane1: str, t2: float, lane2: str, text: str) -> None:
        xs, ys, texts = arrows[kind]
        xs += [t1 - origin, t2 - origin, None]
        ys += [row[lane1], row[lane2], None]
        texts += [text, text, None]

    def mark(kind: str, t: float, lane: str, text: str) -> None:
        xs, ys, texts = marks[kind]
        xs.append(t - origin)
        ys.append(row[lane])
        texts.append(text)

    last: dict[str | None, float] = {}  # message id -> time of its latest event (where a redelivery starts)
    hop = 0.015 * ((events[-1].t - events[0].t) or 1.0)  # how long a delivery arrow is drawn
    applied: Counter[tuple[str | None, str | None]] = Counter()
    requests: dict[str | None, Event] = {}
    for e in events:
        m = e.message_id
        label = e.describe()
        if e.kind == "publish":
            pass  # drawn when the broker answers, or below if it never does
        elif e.kind in ("confirm", "return", "publish-nack"):
            sent = last.get(m, e.t)
            arrow("publish", sent, e.process, e.t, BROKER, label)
            if e.kind != "confirm":
                mark("failure", e.t, BROKER, label)
        elif e.kind == "deliver":  # the wait in the queue is not drawn: the arrow leaves the broker just before
            redelivered = e.attrs.get("redelivered")
            sent = max(last.get(m, e.t), e.t - hop)
            arrow("redeliver" if redelivered else "deliver", sent, BROKER, e.t, e.process, label)
            if redelivered:
                mark("redelivered", e.t, e.process, label)
        elif e.kind in ("ack", "nack", "reject"):
            arrow("settle", e.t, e.process, e.t, BROKER, label)
            if e.kind != "ack":
                mark("failure", e.t, e.process, label)
        elif e.kind == "crash":
            mark("crash", e.t, e.process, label)
        elif e.kind == "effect":
            subject = (m or e.correlation_id, e.attrs.get("name"))
            if not e.attrs.get("applied", True):
                mark("skipped", e.t, e.process, label)
            else:
                applied[subject] += 1
                mark("duplicate" if applied[subject] > 1 else "effect", e.t, e.process, label)
        elif e.kind == "request":
            requests[e.correlation_id] = e
        elif e.kind in ("response", "error"):
            sent_req = requests.pop(e.correlation_id, None)
            target = e.attrs.get("target") or (sent_req.attrs.get("target") if sent_req else None)
            if sent_req is not None and target:
                middle = (sent_req.t + e.t) / 2
                arrow("http", sent_req.t, e.process, middle, target, sent_req.describe())
                arrow("http", middle, target, e.t, e.process, label)
            if e.kind == "error" or not 200 <= e.attrs.get("status", 200) < 300:
                mark("failure", e.t, e.process, label)
        elif e.kind == "saga":
            mark("undo" if e.attrs.get("phase") == "undo" else "saga", e.t, e.process, label)
        elif e.process == BROKER:  # broker tap: route, drop, dead-letter
            mark("failure" if e.kind in ("drop", "dead-letter") else "saga", e.t, BROKER, label)
        if m is not None:
            last[m] = e.t
    # publishes the broker never answered (no confirms): the client does not know when they arrived, so
    # they are drawn arriving at once
    answered = {e.message_id for e in events if e.kind in ("confirm", "return", "publish-nack")}
    for e in events:
        if e.kind == "publish" and e.message_id not in answered:
            arrow("publish", e.t, e.process, e.t, BROKER, e.describe())

    fig = plots.figure(
        title,
        "time since the first event (s)",
        "process",
        height=max(300, 170 + 55 * len(lanes)),
        legend=dict(orientation="h", yanchor="top", y=-0.3, xanchor="left", x=0.0),
        margin=dict(t=50, b=140),
    )
    for kind, (xs, ys, texts) in arrows.items():
        if not xs:
            continue
        name, colour, width, dash = _ARROWS[kind]
        heads = [9 if (i % 3) == 1 else 0 for i in range(len(xs))]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=name,
                text=texts,
                hoverinfo="text",
                line=dict(color=colour, width=width, dash=dash),
                marker=dict(symbol="arrow", size=heads, angleref="previous", color=colour),
            )
        )
    for kind, (xs, ys, texts) in marks.items():
        if not xs:
            continue
        name, colour, symbol, size = _MARKS[kind]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name=name,
                text=texts,
                hoverinfo="text",
                marker=dict(symbol=symbol, size=size, color=colour, line=dict(width=2, color=colour)),
            )
        )
    fig.update_yaxes(tickvals=list(range(len(lanes))), ticktext=lanes, autorange="reversed", showgrid=True)
    return SpaceTime(fig, _text(events, lanes, origin, marks))


def _text(events: list[Event], lanes: list[str], origin: float, marks: dict[str, tuple[list, list, list]]) -> str:
    counts = {k: len(v[0]) for k, v in marks.items() if v[0]}
    summary = ", ".join(f"{n} {_MARKS[k][0]}" for k, n in counts.items()) or "no marks"
    messages = len({e.message_id for e in events if e.message_id})
    lines = [
        f"{len(events)} events, {messages} messages, lanes: {', '.join(lanes)}.",
        f"Marks: {summary}.",
        "Events in time order (seconds since the first):",
    ]
    lines += [
        f"  {e.t - origin:7.3f} s  {e.process:<22} {e.kind:<12} "
        f"{e.message_id or e.correlation_id or e.key or ''}" + (f"  {_attrs(e.attrs)}" if _attrs(e.attrs) else "")
        for e in events
    ]
    return "\n".join(lines)


def _attrs(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in attrs.items() if v not in (None, False, "", []) and k != "url")
