"""The broker's side of a history (optional, off by default): what only the broker sees.

Why: the client-side recorder (:mod:`labkit.history.recorder`) sees publishes, confirms, deliveries and
acks, which is all the delivery guarantees need and works the same on RabbitMQ. But some of a message's
life happens where no client looks: which queues a publish was routed to, a message dropped because it
was unroutable or because a queue was full (``x-max-length``), a message dead-lettered (rejected,
expired, over its delivery limit). With ``Broker(history="broker-side.tsv")`` (or
``Lab(broker_options={"history": ...})``) the embedded broker writes those events to a file (one tab-separated line each), and
:func:`read` turns the file into a :class:`~labkit.history.History` to merge with the client's.

Cost: off, each hook is one attribute test (``vhost.tap is None``). On, the hot path appends one tuple
to a list: the time, the event, the exchange and routing key, the queues and the message's raw content
header. Formatting happens at most every 0.1 s in a batch, and parsing the header (message id,
correlation id) happens in the reader, not in the broker. bench/history.py measures both.

Times are ``time.monotonic()``; on Linux that clock is shared by all processes, so the broker's events
line up with the kernel's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pamqp.header import ContentHeader

__all__ = ["Tap", "read"]

FLUSH_INTERVAL = 0.1  # seconds between batched writes: what a reader must wait for to see an event


class Tap:
    """Buffers the broker's events and appends them to ``path``, one line each, in batches."""

    def __init__(self, path: str):
        if not isinstance(path, str) or not path:
            raise ValueError(f"history must be a file path for the broker's events, got {path!r}")
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        self._events: list[tuple[Any, ...]] = []
        self._timer: asyncio.TimerHandle | None = None

    def routed(self, msg: Any, queues: list[Any], accepted: bool) -> None:
        """A publish was routed to ``queues`` (none: unroutable) and accepted, or refused by an overflow."""
        names = tuple(q.name for q in queues)
        kind = "route" if names and accepted else "drop"
        reason = None if kind == "route" else ("unroutable" if not names else "queue full (reject-publish)")
        self._add((time.monotonic(), kind, msg.exchange, msg.routing_key, names, reason, msg.header))

    def died(self, queue: Any, msg: Any, reason: str) -> None:
        """A message left ``queue`` for good: dead-lettered (the queue has a dead-letter exchange) or dropped."""
        kind = "dead-letter" if queue.dlx is not None else "drop"
        self._add((time.monotonic(), kind, msg.exchange, msg.routing_key, (queue.name,), reason, msg.header))

    def _add(self, event: tuple[Any, ...]) -> None:
        self._events.append(event)
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)
            except RuntimeError:  # no loop (a test calling the hooks directly): write at once
                self.flush()

    def flush(self) -> None:
        self._timer = None
        events, self._events = self._events, []
        # One tab-separated line per event: cheaper than JSON by several microseconds an event. Exchange and
        # queue names cannot hold a tab or "|" (AMQP name rules); the routing key can hold anything: hex.
        self._file.write(
            "".join(
                f"{t:.6f}\t{kind}\t{exchange}\t{rk.encode().hex()}\t{'|'.join(queues)}\t{reason or ''}\t{header.hex()}\n"
                for t, kind, exchange, rk, queues, reason, header in events
            )
        )
        self._file.flush()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        self._file.close()


def read(path: str) -> Any:
    """The broker's events in ``path`` as a :class:`labkit.history.History` (process "broker")."""
    from labkit.history.events import History, message_key

    history = History()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                t, kind, exchange, rk, queues, reason, raw = line.rstrip("\n").split("\t")
                routing_key = bytes.fromhex(rk).decode()
                header = ContentHeader()
                header.unmarshal(bytes.fromhex(raw))
            except ValueError as exc:
                raise ValueError(f"line {n} of {path} is not a broker event: {exc}") from None
            props = header.properties
            key = message_key(props, routing_key)
            attrs = {"exchange": exchange, "routing_key": routing_key, "queues": queues.split("|") if queues else []}
            if reason:
                attrs["reason"] = reason
            history.add(
                kind,
                "broker",
                t=float(t),
                message_id=props.message_id,
                correlation_id=props.correlation_id,
                key=key,
                **attrs,
            )
    return history
