"""A stored message: raw content-header bytes plus body, decoded only when the broker must look inside.

Why: the broker forwards most messages untouched, so the content header stays the exact bytes the
publisher sent (pamqp would re-encode floats as 32-bit and change integer widths). Properties are
decoded lazily, only when routing or queue semantics need them (headers exchange, priority,
expiration, reply-to), and re-encoded only when the broker must rewrite headers (x-death,
x-delivery-count, x-stream-offset, direct reply-to). One Message object lives in exactly one queue,
so its per-queue state (position, redelivered, deadline, delivery count) can live on it; fan-out
copies share the bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import commands
from pamqp.header import ContentHeader

_FLAGS = struct.Struct(">H")
HEADERS_FLAG, PRIORITY_FLAG, REPLY_TO_FLAG, EXPIRATION_FLAG, USER_ID_FLAG = 8192, 2048, 512, 256, 16


class Message:
    """One message as one queue holds it: the publisher's exact header bytes and body, plus its state there.

    Properties are decoded only on demand (``properties``) and re-encoded only by ``rewrite``; the per-queue
    state (position ``seq``, ``redelivered``, ``expires_at``, return and failure counts, the store record)
    lives on the object, so fan-out gives each queue its own ``copy`` sharing the bytes.
    """

    __slots__ = (
        "exchange",
        "routing_key",
        "header",
        "body",
        "seq",
        "redelivered",
        "expires_at",
        "returns",
        "failures",
        "deaths",
        "store_id",
        "_props",
    )

    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.header = header
        self.body = body
        self.seq = 0
        self.redelivered = False
        self.expires_at: float | None = None
        self.returns = 0  # times handed back unacknowledged (quorum delivery limit)
        self.failures = 0  # of those, failed deliveries: reject with requeue, consumer gone (RabbitMQ 4.3)
        self.deaths: list[dict[str, Any]] | None = None  # the broker's own x-death history (RabbitMQ 4.x keeps one)
        self.store_id = 0  # its record in the broker's log (store.py); 0 = not persisted
        self._props: commands.Basic.Properties | None = None

    def copy(self) -> Message:
        """A new queue entry sharing the bytes (fan-out delivers one message to many queues)."""
        other = Message(self.exchange, self.routing_key, self.header, self.body)
        other._props = self._props
        other.deaths = self.deaths
        return other

    @property
    def flags(self) -> int:
        flags: int = _FLAGS.unpack_from(self.header, 12)[0]
        return flags

    @property
    def properties(self) -> commands.Basic.Properties:
        if self._props is None:
            content = ContentHeader()
            content.unmarshal(self.header)
            self._props = content.properties
        return self._props

    @property
    def headers(self) -> dict[str, Any]:
        if not self.flags & HEADERS_FLAG:
            return {}
        return self.properties.headers or {}

    @property
    def priority(self) -> int:
        return (self.properties.priority or 0) if self.flags & PRIORITY_FLAG else 0

    @property
    def expiration(self) -> str | None:
        return self.properties.expiration if self.flags & EXPIRATION_FLAG else None

    @property
    def size(self) -> int:
        return len(self.body)

    def rewrite(self, properties: commands.Basic.Properties) -> None:
        """Replace the properties (the one place the header bytes are re-encoded)."""
        self._props = properties
        self.header = ContentHeader(body_size=len(self.body), properties=properties).marshal()

    def with_properties(self, properties: commands.Basic.Properties) -> Message:
        """A copy carrying new properties (the stored original stays unchanged)."""
        other = self.copy()
        other.redelivered = self.redelivered
        other.rewrite(properties)
        return other


def writable_headers(props: commands.Basic.Properties) -> dict[str, Any]:
    """The headers table of ``props`` (from clone_properties), created if it has none, to write to."""
    if props.headers is None:
        props.headers = {}
    return props.headers


def clone_properties(props: commands.Basic.Properties) -> commands.Basic.Properties:
    """A shallow copy of properties with an independent headers table."""
    new = commands.Basic.Properties()
    for name in props.__slots__:
        setattr(new, name, getattr(props, name))
    new.headers = dict(props.headers or {})
    return new
