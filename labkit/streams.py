"""Stream queues: declare one, and read it from an offset without consuming it.

Why: a classic queue hands each message to one consumer and forgets it once acknowledged; a stream
(``x-queue-type: stream``) is an append-only log that every reader reads from an offset of its choice
-- ``"first"`` (the whole history), ``"next"`` (only what comes after it attached), a timestamp, or a
numeric offset -- so a consumer added later can replay history and backfill a new read model. Both
RabbitMQ and the embedded broker require stream readers to use manual acks and a prefetch (acks only
return credit) and tag each delivery with the ``x-stream-offset`` header.

    await declare_stream(channel, "orders-history")
    reader = await StreamReader(lab.amqp_url, "orders-history", offset="first").start()
    entries = await reader.wait_for(100)      # [Entry(offset, message_id, body, ...), ...] in log order
    await reader.stop()
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage

from labkit._validate import integer, non_negative, positive
from labkit._validate import queue_name as check_queue_name
from labkit.lifecycle import AmqpWorker, wait_until

__all__ = ["OFFSET_SPECS", "Entry", "StreamReader", "declare_stream", "queue_name"]

#: The named offsets a reader may start from (besides a numeric offset and a timezone-aware datetime).
OFFSET_SPECS = ("first", "last", "next")

#: Header carrying a delivery's position in the stream.
OFFSET_HEADER = "x-stream-offset"


@dataclass(frozen=True)
class Entry:
    """One message read from a stream, with its position in the log."""

    offset: int
    message_id: str | None
    body: bytes
    routing_key: str
    headers: dict[str, Any] = field(default_factory=dict)


async def declare_stream(
    channel: aiormq.abc.AbstractChannel, queue: str, *, max_age: str | None = None, max_length_bytes: int | None = None
) -> None:
    """Declare a stream queue (durable, as streams must be); ``max_age`` like ``"1h"`` and
    ``max_length_bytes`` are its retention limits."""
    queue_name(queue)
    arguments: dict[str, Any] = {"x-queue-type": "stream"}
    if max_age is not None:
        if not isinstance(max_age, str) or not max_age[:-1].isdigit() or max_age[-1:] not in "YMDhms":
            raise ValueError(f"max_age must be a number followed by one of Y M D h m s (e.g. '1h'), got {max_age!r}")
        arguments["x-max-age"] = max_age
    if max_length_bytes is not None:
        arguments["x-max-length-bytes"] = integer("max_length_bytes", max_length_bytes, 1)
    await channel.queue_declare(queue, durable=True, arguments=arguments)


class StreamReader(AmqpWorker):
    """Read ``queue`` (a stream) from ``offset`` on a connection of its own, keeping every entry in order.

    Reading is non-destructive: any number of readers, started at any time, each see the log from their
    own offset. ``entries`` grows as messages arrive; ``on_entry`` (optional, a plain function) is called
    for each one, e.g. to apply it to a read model.
    """

    def __init__(
        self,
        amqp_url: str,
        queue: str,
        *,
        offset: Any = "next",
        prefetch: int = 100,
        on_entry: Any = None,
        name: str | None = None,
    ):
        # Streams refuse readers without a prefetch (acks only return credit), so one is required here.
        super().__init__(
            amqp_url, name=name or f"stream reader {queue}@{offset}", prefetch=integer("prefetch", prefetch, 1, 65535)
        )
        self.queue = queue_name(queue)
        self.offset = _offset(offset)
        if on_entry is not None and not callable(on_entry):
            raise ValueError(f"on_entry must be a function on_entry(entry) or None, got {on_entry!r}")
        self.on_entry = on_entry
        self.entries: list[Entry] = []
        self._arrived = asyncio.Event()

    def subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        return [(self.queue, {OFFSET_HEADER: self.offset})]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Entry]:
        """Wait until at least ``count`` entries have arrived (a liveness bound, not a speed goal) and
        return them all; raises ``TimeoutError`` naming how many came."""
        integer("count", count, 0)
        await wait_until(
            lambda: len(self.entries) >= count,
            timeout=timeout,
            what=lambda: f"{self.name}: {count} entries ({len(self.entries)} of {count} entries came)",
        )
        return list(self.entries)

    async def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> list[Entry]:
        """Wait until no entry has arrived for ``quiet`` seconds (at most ``timeout``) and return them all:
        for readers whose expected count is unknown, such as one started at a timestamp."""
        non_negative("quiet", quiet)
        positive("timeout", timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(quiet, max(0.0, deadline - loop.time())))
            except asyncio.TimeoutError:
                break
        return list(self.entries)

    def __repr__(self) -> str:
        return f"<StreamReader {self.name} entries={len(self.entries)} running={self.running}>"

    async def handle(self, message: DeliveredMessage) -> None:
        props = message.header.properties
        headers = dict(props.headers or {})
        offset = headers.get(OFFSET_HEADER, -1)
        entry = Entry(
            offset if isinstance(offset, int) else -1,
            props.message_id,
            bytes(message.body),
            message.routing_key or "",
            headers,
        )
        self.entries.append(entry)
        if self.on_entry is not None:
            self.on_entry(entry)
        self._arrived.set()
        await message.channel.basic_ack(message.delivery_tag or 0)  # returns credit; nothing is removed


def queue_name(queue: Any) -> str:
    """``queue`` if it is a usable queue name, else a ValueError naming the argument."""
    return check_queue_name("queue", queue)


def _offset(offset: Any) -> Any:
    """Validate a start offset: "first", "last", "next", an integer >= 0, or a timezone-aware datetime."""
    if isinstance(offset, str) and offset in OFFSET_SPECS:
        return offset
    if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
        return offset
    if isinstance(offset, datetime.datetime) and offset.tzinfo is not None:
        return offset
    raise ValueError(
        f"offset must be one of {', '.join(OFFSET_SPECS)}, an integer >= 0 or a timezone-aware datetime, got {offset!r}"
    )
