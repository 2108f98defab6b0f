"""The recorder: one switch, and the hooks labkit's publishers, consumers and HTTP calls go through.

Why one module-level switch: recording must cost nothing when it is off, so every hook site in labkit
reads ``recorder.active`` (one attribute load) and does nothing else when it is ``None``. When a
history is recording, the hooks turn what the client sees on the wire (aiormq's frames: a publish and
its confirm, return or nack; a delivery with its ``redelivered`` flag; the ack, nack or reject; an HTTP
request and its answer) into :class:`~labkit.history.events.Event` s. Everything is recorded on the
client side, so a history of a run on RabbitMQ is the same kind of history as one on the embedded
broker. (What only the broker sees, such as routing and drops, is the optional broker tap's job:
:mod:`labkit.broker.tap`.)

    with history.record() as h:        # or: h = history.start(); ...; history.stop()
        ...run the experiment...
    history.check(h, history.EffectivelyOnce(effect="charge"))

Handlers report their side effects with :func:`effect` (the ledger does it for a charge); within a
consumer's handler the message it is about is known, so ``effect("charge")`` is enough.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from labkit.history.events import KEY_HEADER, History

__all__ = [
    "KEY_HEADER",
    "active",
    "lane",
    "record",
    "start",
    "stop",
    "effect",
    "saga",
    "on_publish",
    "on_published",
    "on_deliver",
    "on_settle",
    "on_crash",
    "on_http",
]

#: The history being recorded, or None (recording off: every hook returns at once).
active: History | None = None

# The message a consumer's handler is working on: (process, message_id, correlation_id, key). Each aiormq
# delivery runs in a task of its own, so setting it in on_deliver scopes it to that message's handling.
_handling: ContextVar[tuple[str, str | None, str | None, str | None] | None] = ContextVar(
    "labkit_history_handling", default=None
)


@contextmanager
def record(into: History | None = None) -> Iterator[History]:
    """Record into ``into`` (or a new history) inside the ``with`` block; the previous state comes back."""
    global active
    previous = active
    history = start(into)
    try:
        yield history
    finally:
        active = previous


def start(into: History | None = None) -> History:
    """Start recording into ``into`` (or a new history) and return it; :func:`stop` ends it."""
    global active
    if into is not None and not isinstance(into, History):
        raise ValueError(f"into must be a History or None, got {into!r}")
    active = History() if into is None else into
    return active


def stop() -> History | None:
    """Stop recording; return the history that was recording (None if none was)."""
    global active
    history, active = active, None
    return history


def lane(process: str | None, default: str) -> str:
    """``process``, else the consumer whose handler is running, else ``default``: who is acting."""
    return process or (_handling.get() or (default,))[0]


# -- hooks (called only while ``active`` is set) ------------------------------------------------------------


def _row(kind: str, process: str, props: Any, routing_key: str, attrs: dict[str, Any]) -> tuple[Any, ...]:
    """One event as a bare tuple of strings and numbers: cheap to build, and (holding no containers but an
    all-atomic dict) left alone by the garbage collector, which would otherwise re-scan every recorded
    message's properties and cost more than the recording itself."""
    if props is None:
        return (time.monotonic(), kind, process, None, None, routing_key or None, attrs)
    headers = props.headers
    key = headers.get(KEY_HEADER) if headers else None
    return (
        time.monotonic(),
        kind,
        process,
        props.message_id,
        props.correlation_id,
        routing_key or None if key is None else str(key),
        attrs,
    )


def on_publish(process: str, routing_key: str, properties: Any, exchange: str = "") -> None:
    """A publish leaves ``process`` (before the broker has answered)."""
    if active is not None:
        active.raw.append(
            _row("publish", process, properties, routing_key, {"exchange": exchange, "routing_key": routing_key})
        )


_ANSWERS = {"Ack": "confirm", "PublishError": "return", "Nack": "publish-nack", "DeliveryError": "publish-nack"}


def on_published(process: str, routing_key: str, properties: Any, outcome: Any) -> None:
    """The broker's answer to a publish: ``outcome`` is what ``basic_publish`` returned (Basic.Ack with
    confirms, None without) or the exception it raised (PublishError: returned; DeliveryError: nacked)."""
    if active is None or outcome is None:
        return  # off, or no confirms: the client never learns what became of the message
    kind = _ANSWERS.get(type(outcome).__name__)
    extra = {} if kind is not None else {"error": repr(outcome)}  # a timeout or a dropped connection: unconfirmed
    active.raw.append(_row(kind or "publish-nack", process, properties, routing_key, extra))


def on_deliver(process: str, message: Any) -> None:
    """A message reaches a consumer (``redelivered``; ``dead_lettered`` with the reason if it came through a
    dead-letter exchange); it becomes the subject of the handler's :func:`effect` calls."""
    if active is None:
        return
    delivery, props = message.delivery, message.header.properties
    attrs: dict[str, Any] = {"redelivered": bool(delivery.redelivered)}
    deaths = props.headers.get("x-death") if props.headers else None
    if deaths:  # it reached this queue by dead-lettering: say why (the latest death comes first)
        attrs["dead_lettered"] = str(deaths[0].get("reason"))
    row = _row("deliver", process, props, delivery.routing_key, attrs)
    active.raw.append(row)
    _handling.set((process, row[3], row[4], row[5]))


def on_settle(kind: str, process: str, message: Any, requeue: bool | None = None) -> None:
    """The consumer acks, nacks or rejects a message."""
    if active is None:
        return
    active.raw.append(
        _row(
            kind,
            process,
            message.header.properties,
            message.delivery.routing_key,
            {} if requeue is None else {"requeue": bool(requeue)},
        )
    )


def on_crash(process: str, message: Any = None) -> None:
    """A consumer dies (its connection closes with messages unacknowledged)."""
    if active is None:
        return
    props = message.header.properties if message is not None else None
    active.add(
        "crash",
        process,
        t=time.monotonic(),
        message_id=getattr(props, "message_id", None),
        correlation_id=getattr(props, "correlation_id", None),
    )


def on_http(
    kind: str,
    process: str | None,
    url: str,
    correlation_id: str | None,
    *,
    target: str | None = None,
    status: int | None = None,
    error: str | None = None,
) -> None:
    """An HTTP request leaves ``process`` (default: the consumer whose handler calls, else "client"), or
    its response (or error) comes back. ``target`` is the lane of the service called (its name, or the
    proxy it goes through)."""
    if active is None:
        return
    process = lane(process, "client")
    extra: dict[str, Any] = {"url": url, "target": target}
    if status is not None:
        extra["status"] = status
    if error is not None:
        extra["error"] = error
    active.add(kind, process, t=time.monotonic(), correlation_id=correlation_id, key=correlation_id, **extra)


# -- what handlers and stories call -------------------------------------------------------------------------


def effect(
    name: str,
    *,
    applied: bool = True,
    message_id: str | None = None,
    correlation_id: str | None = None,
    key: str | None = None,
    process: str | None = None,
) -> None:
    """Note a side effect (a charge, a notification). Inside a consumer's handler it is about the message
    being handled unless ``message_id``/``correlation_id`` say otherwise; ``applied=False`` records an
    effect that was skipped as a duplicate."""
    if active is None:
        return
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty effect name, got {name!r}")
    where, mid, cid, k = _handling.get() or (None, None, None, None)
    if (message_id is not None or correlation_id is not None) and (message_id is None or message_id != mid):
        mid, cid, k = message_id, correlation_id, key  # about another message than the one being handled
    active.add(
        "effect",
        process or where or "effects",
        t=time.monotonic(),
        message_id=mid,
        correlation_id=cid,
        key=key if key is not None else k,
        name=name,
        applied=bool(applied),
    )


def saga(phase: str, saga_id: str, step: str | None = None, *, process: str | None = None) -> None:
    """A saga moves: ``phase`` "do" a step, "undo" (compensate) a step, "commit" or "abort". ``process``
    defaults to the consumer whose handler moves it, else "saga"."""
    if active is None:
        return
    process = lane(process, "saga")
    if phase not in ("do", "undo", "commit", "abort"):
        raise ValueError(f"phase must be do, undo, commit or abort, got {phase!r}")
    if phase in ("do", "undo") and not step:
        raise ValueError(f"a {phase!r} needs the step it is about, got step={step!r}")
    active.add("saga", process, t=time.monotonic(), key=saga_id, phase=phase, step=step)
