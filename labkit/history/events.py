"""What a history is made of: one :class:`Event` per step of a message's or a request's life.

Why: a checker can only judge what was written down. Each event says *when* (``time.monotonic()``
seconds, the lab's clock), *what* (``kind``), *where* (``process``: the lane of the space-time diagram,
e.g. ``"publisher"``, ``"broker"``, ``"consumer:payments-0"``, ``"client"``) and *about what*: the AMQP
``message_id`` (one message, however often delivered), the ``correlation_id`` (one request or image
across hops) and a ``key`` (what order is kept per: a customer, a routing key, a saga). Anything else
(redelivered flag, requeue, HTTP status, effect name) goes in ``attrs``.

A :class:`History` is the list of events in the order they were recorded, with the groupings the
checker and the diagram need. It is plain data: JSON lines in, JSON lines out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "KEY_HEADER", "Event", "History", "message_key"]

#: Every kind of event, by who records it. Client side: publish, confirm (broker ack), return (unroutable,
#: mandatory), publish-nack, deliver (attrs ``redelivered``, ``dead_lettered``), ack, nack/reject (``requeue``),
#: crash, effect (attrs ``name``, ``applied``), request/response/error (HTTP), saga (attrs ``phase``:
#: do/undo/commit/abort, ``step``). Broker side (optional tap): route (attrs ``queues``), drop (attrs
#: ``reason``), dead-letter (attrs ``reason``, ``queue``).
KINDS = (
    "publish",
    "confirm",
    "return",
    "publish-nack",
    "deliver",
    "ack",
    "nack",
    "reject",
    "crash",
    "effect",
    "request",
    "response",
    "error",
    "saga",
    "route",
    "drop",
    "dead-letter",
)


#: AMQP message header naming the key that order is kept per (a customer, an account); without it the
#: routing key is the key (the order of one queue).
KEY_HEADER = "x-order-key"


def message_key(properties: Any, routing_key: str | None) -> str | None:
    """The key of a message: its ``x-order-key`` header, else its routing key."""
    headers = getattr(properties, "headers", None) or {}
    key = headers.get(KEY_HEADER)
    return str(key) if key is not None else (routing_key or None)


@dataclass(frozen=True)
class Event:
    """One step of one message's or request's life."""

    t: float
    kind: str
    process: str
    message_id: str | None = None
    correlation_id: str | None = None
    key: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if not isinstance(self.process, str) or not self.process:
            raise ValueError(f"process must be a non-empty string (the lane), got {self.process!r}")
        if not isinstance(self.t, (int, float)) or isinstance(self.t, bool):
            raise ValueError(f"t must be a number of seconds, got {self.t!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": self.t, "kind": self.kind, "process": self.process}
        for name in ("message_id", "correlation_id", "key"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.attrs:
            out["attrs"] = self.attrs
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        if not isinstance(data, dict):
            raise ValueError(f"an event must be a JSON object, got {data!r}")
        unknown = set(data) - {"t", "kind", "process", "message_id", "correlation_id", "key", "attrs"}
        if unknown:
            raise ValueError(f"unknown event fields {sorted(unknown)} in {data!r}")
        return cls(**data)

    def describe(self, origin: float = 0.0) -> str:
        """One line of text, e.g. ``0.012 s payments-0 deliver order-3 (redelivered=True)``, with the time
        in seconds since ``origin``."""
        subject = self.message_id or self.correlation_id or self.key or ""
        extras = ", ".join(f"{k}={v}" for k, v in self.attrs.items() if v not in (None, False, "", []) and k != "url")
        return f"{self.t - origin:.3f} s {self.process} {self.kind} {subject}" + (f" ({extras})" if extras else "")


class History:
    """Events in recording order. Iterable, sized, and grouped by message, correlation id or key."""

    def __init__(self, events: Iterable[Event] = ()):
        self._events: list[Event] = []
        #: events recorded by the hooks as bare tuples ``(t, kind, process, message_id, correlation_id, key,
        #: attrs)``: building (and checking) an Event costs microseconds, too much on a publish's hot path,
        #: so tuples become Events only when the history is read.
        self.raw: list[tuple[Any, ...]] = []
        for event in events:
            self.append(event)

    @property
    def events(self) -> list[Event]:
        """Every event, in recording order."""
        if self.raw:
            rows, self.raw = self.raw, []
            self._events.extend(Event(*row) for row in rows)
        return self._events

    def append(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise ValueError(f"event must be a labkit.history.Event, got {event!r}")
        self.events.append(event)

    def add(
        self,
        kind: str,
        process: str,
        *,
        t: float,
        message_id: str | None = None,
        correlation_id: str | None = None,
        key: str | None = None,
        **attrs: Any,
    ) -> Event:
        """Append a new event and return it (for synthetic histories and rare events; hooks use ``raw``)."""
        event = Event(t, kind, process, message_id, correlation_id, key, attrs)
        self.events.append(event)
        return event

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, index: int) -> Event:
        return self.events[index]

    def by(self, field_name: str) -> dict[str, list[Event]]:
        """Events grouped by ``message_id``, ``correlation_id`` or ``key`` (events without it left out),
        groups in order of first appearance."""
        if field_name not in ("message_id", "correlation_id", "key"):
            raise ValueError(f"field_name must be message_id, correlation_id or key, got {field_name!r}")
        groups: dict[str, list[Event]] = {}
        for event in self.events:
            value = getattr(event, field_name)
            if value is not None:
                groups.setdefault(value, []).append(event)
        return groups

    def of(self, kind: str) -> list[Event]:
        """Every event of one kind."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        return [e for e in self.events if e.kind == kind]

    def processes(self) -> list[str]:
        """Every process (lane) in order of first appearance."""
        return list(dict.fromkeys(e.process for e in self.events))

    def where(self, **fields: Any) -> History:
        """A history of the events whose fields equal the given values, e.g. ``where(message_id="m1")``."""
        return History(e for e in self.events if all(getattr(e, k) == v for k, v in fields.items()))

    def without(self, events: Iterable[Event]) -> History:
        """A copy without the given events (by identity): to build a mutant history, e.g. a lost effect."""
        drop = {id(e) for e in events}
        return History(e for e in self.events if id(e) not in drop)

    @classmethod
    def merged(cls, *histories: History) -> History:
        """One history of several (e.g. the client's and the broker tap's), in time order."""
        for h in histories:
            if not isinstance(h, History):
                raise ValueError(f"histories must be labkit.history.History objects, got {h!r}")
        return cls(sorted((e for h in histories for e in h.events), key=lambda e: e.t))

    def to_jsonl(self) -> str:
        return "".join(json.dumps(e.to_dict(), separators=(",", ":")) + "\n" for e in self.events)

    @classmethod
    def from_jsonl(cls, text: str) -> History:
        events = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    events.append(Event.from_dict(json.loads(line)))
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"line {n} of the history is not an event: {exc}") from None
        return cls(events)

    def save(self, directory: str, report: Any = None, *, diagram: Any = None) -> str:
        """Write the run as a result bundle (see :mod:`labkit.history.bundle`); returns the directory."""
        from labkit.history.bundle import save

        return save(directory, self, report, diagram=diagram)

    def __repr__(self) -> str:
        return f"<History {len(self.events)} events, {len(self.by('message_id'))} messages, {len(self.processes())} processes>"
