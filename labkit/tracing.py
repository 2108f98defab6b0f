"""Correlation ids and spans: follow one request across synchronous and asynchronous hops.

Why: the course's central comparison (a caller waiting on a chain of HTTP calls vs. a caller that
publishes and moves on) is easiest to *see* as a waterfall of one request. Every hop carries the same
correlation id -- in the ``X-Correlation-ID`` HTTP header or the AMQP ``correlation_id`` property -- plus
the id of the span that caused it, so the lab can rebuild the tree afterwards.

This is deliberately tiny (a list of spans in memory, one per hop). OpenTelemetry's SDK would give real
context propagation (W3C ``traceparent``) and exporters, at the cost of a dependency and more ceremony in
the notebooks; the course only needs one process's spans in a plot.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from labkit._validate import integer, one_of

__all__ = [
    "CORRELATION_HEADER",
    "PARENT_HEADER",
    "PARENT_AMQP_HEADER",
    "Span",
    "Tracer",
    "activate",
    "current",
    "from_http",
    "http_headers",
    "new_id",
]

#: HTTP header carrying the correlation id (the de-facto convention; also what many gateways use).
CORRELATION_HEADER = "X-Correlation-ID"
#: HTTP header carrying the span id of the caller, so spans form a tree.
PARENT_HEADER = "X-Parent-Span-ID"
#: AMQP message header carrying the span id of the publisher (the correlation id travels in the
#: standard ``correlation_id`` property).
PARENT_AMQP_HEADER = "x-parent-span-id"

KINDS = ("client", "server", "publish", "consume", "queue")


def new_id() -> str:
    """A fresh random id (32 hex characters) for a correlation id or a span."""
    return uuid.uuid4().hex


@dataclass
class Span:
    """One timed piece of work for one request: ``start``/``end`` are clock seconds."""

    correlation_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start: float
    end: float | None = None
    ok: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None while the span is open."""
        return None if self.end is None else self.end - self.start


class Tracer:
    """Collects spans in memory (bounded), keyed by correlation id.

    Times are ``time.monotonic()`` seconds, the clock of :mod:`labkit.metrics`, so spans line up with
    the load timeline.
    """

    def __init__(self, max_spans: int = 100_000):
        self.max_spans = integer("max_spans", max_spans, 1)
        self._spans: list[Span] = []
        self.dropped = 0
        # Spans started but not yet finished: span id -> correlation id, and a count per correlation id.
        # A reader waits for a trace's open spans to reach zero before reading it (:meth:`open_spans`).
        self._open: dict[str, str] = {}
        self._open_per_trace: collections.Counter[str] = collections.Counter()

    def start(
        self,
        name: str,
        kind: str,
        correlation_id: str | None = None,
        parent_id: str | None = None,
        **attributes: Any,
    ) -> Span:
        """Open a span (call :meth:`finish` with it). Without a correlation id it continues the trace of
        the span made :func:`current` by :func:`activate` (if any), else it starts a new trace."""
        one_of("kind", kind, KINDS)
        if correlation_id is None:
            correlation_id, parent_id = current()
        span = Span(
            correlation_id=correlation_id or new_id(),
            span_id=new_id()[:16],
            parent_id=parent_id,
            name=name,
            kind=kind,
            start=time.monotonic(),
            attributes=dict(attributes),
        )
        self._open[span.span_id] = span.correlation_id
        self._open_per_trace[span.correlation_id] += 1
        return span

    def finish(self, span: Span, ok: bool = True, **attributes: Any) -> Span:
        """Close ``span`` now and keep it (the oldest are dropped beyond ``max_spans``)."""
        span.end = time.monotonic()
        span.ok = bool(ok)
        span.attributes.update(attributes)
        self.add(span)
        correlation_id = self._open.pop(span.span_id, None)
        if correlation_id is not None:
            self._open_per_trace[correlation_id] -= 1
            if not self._open_per_trace[correlation_id]:
                del self._open_per_trace[correlation_id]
        return span

    def open_spans(self, correlation_id: str) -> int:
        """How many spans of this trace were started and are not finished yet. A trace read while this is
        above zero misses the work still under way (e.g. a consumer that has done its side effect but not
        yet acknowledged): wait for zero first."""
        return self._open_per_trace.get(correlation_id, 0)

    def add(self, span: Span) -> None:
        """Keep a finished span (used directly for spans timed elsewhere, e.g. time spent queued)."""
        if len(self._spans) >= self.max_spans:
            n = max(1, len(self._spans) // 10)
            del self._spans[:n]
            self.dropped += n
        self._spans.append(span)

    def trace(self, correlation_id: str) -> list[Span]:
        """All spans of one request, earliest first."""
        return sorted((s for s in self._spans if s.correlation_id == correlation_id), key=lambda s: s.start)

    def correlation_ids(self) -> list[str]:
        """Every correlation id seen, in order of first appearance."""
        return list(dict.fromkeys(s.correlation_id for s in self._spans))

    def clear(self) -> None:
        """Forget all spans (e.g. between experiments)."""
        self._spans.clear()
        self.dropped = 0

    @property
    def spans(self) -> list[Span]:
        """All kept spans, in the order they finished."""
        return list(self._spans)


_current: ContextVar[tuple[str, str] | None] = ContextVar("labkit_current_span", default=None)


def current() -> tuple[str | None, str | None]:
    """``(correlation_id, span_id)`` of the span active in this task, or ``(None, None)``."""
    return _current.get() or (None, None)


@contextmanager
def activate(span: Span | None) -> Iterator[Span | None]:
    """Make ``span`` current while user code runs (a service's or consumer's ``handler``), so the calls
    and publishes it makes continue the same trace without passing ids around. None: no change."""
    token = _current.set((span.correlation_id, span.span_id) if span is not None else _current.get())
    try:
        yield span
    finally:
        _current.reset(token)


def http_headers(correlation_id: str, parent_id: str | None = None) -> dict[str, str]:
    """The HTTP headers that carry a trace to the next hop."""
    headers = {CORRELATION_HEADER: correlation_id}
    if parent_id:
        headers[PARENT_HEADER] = parent_id
    return headers


def from_http(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(correlation_id, parent_span_id)`` from incoming HTTP headers (either may be None)."""
    return headers.get(CORRELATION_HEADER), headers.get(PARENT_HEADER)
