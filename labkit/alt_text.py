"""A text alternative for every figure, written from the figure's own data.

Why: a plotly figure is an SVG a screen reader cannot read, and a reader who cannot see it loses the
experiment's result. The renderer (:mod:`labkit.render`) puts the text from :func:`describe` on each
figure as ``role="img"``/``aria-label`` and in a visually hidden paragraph. It is generated from the
data, so it says what *this* run measured, for every figure, including those a chapter builds by hand:

    "Caller latency by service time. latency (ms) against payment's service time (ms). awaited: rises
    from 6.1 at 5 to 203 at 200 (lowest 6.1, highest 203). publish: from 1.2 at 5 to 1.3 at 200 ..."

A builder that knows better (e.g. measured against predicted) puts its own sentence in
``layout.meta["description"]``; it goes first, and the data summary follows it.
"""

from __future__ import annotations

import base64
import math
import re
from array import array
from typing import Any

__all__ = ["describe", "short", "number"]

#: At most this many categories or traces are named one by one; the rest are counted.
MAX_ITEMS = 8
#: The aria-label is cut to this many characters (the hidden paragraph keeps the whole text).
SHORT_CHARS = 400
# plotly >= 6 may ship arrays as {"dtype": "f8", "bdata": base64}; array-module typecodes per dtype.
_TYPECODES = {
    "f8": "d",
    "f4": "f",
    "i1": "b",
    "u1": "B",
    "i2": "h",
    "u2": "H",
    "i4": "i",
    "u4": "I",
    "i8": "q",
    "u8": "Q",
}
_UNIT = re.compile(r"\(([^()]*)\)\s*$")


def number(value: Any) -> str:
    """A number as a reader would say it: three significant figures, no exponent for everyday sizes."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "no value"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.2e}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _values(data: Any) -> list[Any]:
    if data is None:
        return []
    if isinstance(data, dict) and "bdata" in data:
        values = array(_TYPECODES.get(data.get("dtype", "f8"), "d"))
        values.frombytes(base64.b64decode(data["bdata"]))
        return list(values)
    if isinstance(data, (list, tuple)):
        return list(data)
    return [data]


def _numbers(values: list[Any]) -> list[float | None]:
    return [v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None for v in values]


def _title(layout: dict, *path: str) -> str:
    node: Any = layout
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node = node.get("text")
    return str(node).strip() if node else ""


def _unit(axis_title: str) -> str:
    m = _UNIT.search(axis_title)
    if not m or not m.group(1) or "scale" in m.group(1) or m.group(1) in ("fraction", "count"):
        return ""
    return f" {m.group(1)}"


def _line(name: str, xs: list[Any], ys: list[Any], x_unit: str, y_unit: str) -> str:
    """first → last, lowest and highest of one series of points."""
    points = [(x, y) for x, y in zip(xs or range(len(ys)), _numbers(ys)) if y is not None]
    if not points:
        return f"{name}: no values"
    if len(points) == 1:
        ((x, y),) = points
        return f"{name}: {number(y)}{y_unit} at {number(x)}{x_unit}"
    (x0, y0), (x1, y1) = points[0], points[-1]
    lo = min(points, key=lambda p: p[1])
    hi = max(points, key=lambda p: p[1])
    trend = "rises" if y1 > y0 else "falls" if y1 < y0 else "stays"
    text = (
        f"{name}: {_count(len(points), 'point')}; {trend} from {number(y0)}{y_unit} at {number(x0)}{x_unit} "
        f"to {number(y1)}{y_unit} at {number(x1)}{x_unit}"
    )
    if hi[1] not in (y0, y1) or lo[1] not in (y0, y1):
        text += f"; highest {number(hi[1])}{y_unit} at {number(hi[0])}{x_unit}, lowest {number(lo[1])}{y_unit}"
    return text


def _bars(name: str, trace: dict, x_unit: str, y_unit: str) -> str:
    """Each bar's category and value (a horizontal bar with a base: its start and length)."""
    horizontal = trace.get("orientation") == "h"
    cats = _values(trace.get("y" if horizontal else "x"))
    vals = _numbers(_values(trace.get("x" if horizontal else "y")))
    unit = x_unit if horizontal else y_unit
    bases = _numbers(_values(trace.get("base"))) if isinstance(trace.get("base"), (list, tuple, dict)) else []
    items = []
    for i, (cat, val) in enumerate(zip(cats or range(len(vals)), vals)):
        if val is None:
            continue
        base = bases[i] if i < len(bases) else None
        if base is not None:
            items.append(f"{cat} from {number(base)} to {number(base + val)}{unit}")
        else:
            items.append(f"{cat} {number(val)}{unit}")
    more = f" and {len(items) - MAX_ITEMS} more" if len(items) > MAX_ITEMS else ""
    return f"{name}: " + ", ".join(items[:MAX_ITEMS]) + more if items else f"{name}: no values"


def _trace(trace: dict, layout: dict, index: int) -> str | None:
    if trace.get("visible") in (False, "legendonly"):
        return None
    name = str(trace.get("name") or f"series {index + 1}")
    x_unit = _unit(_title(layout, "xaxis", "title"))
    y_unit = _unit(_title(layout, "yaxis", "title"))
    if trace.get("type") == "bar":
        return _bars(name, trace, x_unit, y_unit)
    if trace.get("showlegend") is False and not trace.get("name"):
        return None  # helper lines without a name say nothing on their own
    if trace.get("mode") == "lines" and (trace.get("line") or {}).get("width") == 0:
        return None  # the edges of a shaded band: the builder's own description states the band
    xs, ys = _values(trace.get("x")), _values(trace.get("y"))
    if not ys and xs:  # a histogram or a rug: the values are on x
        return _line(name, list(range(len(xs))), xs, "", x_unit)
    if xs and all(isinstance(x, str) for x in xs):  # categorical x
        vals = _numbers(ys)
        items = [f"{x} {number(y)}{y_unit}" for x, y in zip(xs, vals) if y is not None]
        more = f" and {len(items) - MAX_ITEMS} more" if len(items) > MAX_ITEMS else ""
        return f"{name}: " + ", ".join(items[:MAX_ITEMS]) + more
    if xs and ys and all(isinstance(y, str) for y in ys):  # categorical y, numeric x (a timeline of states)
        nums = [x for x in _numbers(xs) if x is not None]
        span = f" between {number(min(nums))}{x_unit} and {number(max(nums))}{x_unit}" if nums else ""
        return f"{name}: {_count(len(ys), 'point')} on {_count(len(set(ys)), 'row')}{span}"
    return _line(name, xs, ys, x_unit, y_unit)


def describe(fig: Any) -> str:
    """What a figure shows and its key numbers, in sentences, from its data (a go.Figure or its dict)."""
    if hasattr(fig, "to_plotly_json"):
        fig = fig.to_plotly_json()
    if not isinstance(fig, dict):
        raise ValueError(f"fig must be a plotly figure or its dict, got {type(fig).__name__}")
    layout = fig.get("layout") or {}
    parts = []
    title = _title(layout, "title")
    parts.append(f"Figure: {title}." if title else "Figure.")
    meta = layout.get("meta")
    if isinstance(meta, dict) and meta.get("description"):
        parts.append(str(meta["description"]).rstrip(".") + ".")
    x_title, y_title = _title(layout, "xaxis", "title"), _title(layout, "yaxis", "title")
    if x_title and y_title:
        parts.append(f"{y_title} against {x_title}.")
    traces = [t for t in (_trace(t, layout, i) for i, t in enumerate(fig.get("data") or [])) if t]
    parts += [t + "." for t in traces[:MAX_ITEMS]]
    if len(traces) > MAX_ITEMS:
        parts.append(f"{len(traces) - MAX_ITEMS} more series.")
    x_unit = _unit(x_title)
    notes = [a for a in layout.get("annotations") or [] if a.get("text")]
    for band in (s for s in layout.get("shapes") or [] if s.get("type") == "rect" and s.get("xref", "x") == "x"):
        label = next((str(a["text"]) for a in notes if a.get("x") in (band.get("x0"), band.get("x1"))), "shaded")
        parts.append(f"Band {label}: from {number(band.get('x0'))} to {number(band.get('x1'))}{x_unit}.")
    if not traces:
        parts.append("No data.")
    return " ".join(parts)


def short(text: str, limit: int = SHORT_CHARS) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis if cut."""
    if limit < 10:
        raise ValueError(f"limit must be at least 10, got {limit!r}")
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if text[limit - 1] != " ":  # the cut fell inside a word: drop that word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"
