"""A publisher that survives a dropped broker connection: reconnect and retry, with or without confirms.

Why: ``basic_publish`` without publisher confirms returns as soon as the bytes are handed to the socket.
If the connection drops a moment later, messages that were "sent" are gone and nobody knows. With
confirms, a publish returns only when the broker has taken responsibility for the message (basic.ack),
so a publish that raised or timed out is known to be unconfirmed and can be sent again: nothing is lost,
at the price of an occasional duplicate (the broker got it, but its ack was lost with the connection) --
which is why the consumer must be idempotent.

Both modes here retry what they *know* failed, so comparing them isolates what confirms add:

    pub = await Publisher(proxy_url, confirms=True).start()
    await pub.publish("orders", b"...", message_id="order-17")   # returns after the broker's ack
    pub.sent        # message ids whose publish returned: what the application believes was delivered
    await pub.stop()
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiormq
from pamqp.commands import Basic

from labkit._validate import integer, non_negative, positive
from labkit.lifecycle import CONNECTION_ERRORS, AmqpWorker

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["RETRYABLE", "Publisher"]

#: What a dropped or refused connection looks like to a publisher (retried after a reconnect).
RETRYABLE = CONNECTION_ERRORS


class _QuietResets(logging.Filter):
    """Drop aiormq's warning (with a traceback) for a connection the server reset: while a publisher runs,
    a reset is an expected event it handles (it counts it in ``errors`` and reconnects), not news."""

    def __init__(self) -> None:
        super().__init__()
        self.users = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, aiormq.exceptions.AMQPConnectionError) and isinstance(exc.__cause__, ConnectionResetError)
        )


_quiet = _QuietResets()


class Publisher(AmqpWorker):
    """Publish to the default exchange on its own connection; reconnect and retry on failure."""

    def __init__(
        self,
        amqp_url: str,
        *,
        confirms: bool = True,
        max_attempts: int = 100,
        backoff: float = 0.02,
        timeout: float = 2.0,
        persistent: bool = True,
    ):
        """``max_attempts`` per message; ``backoff`` seconds between attempts; ``timeout`` per attempt
        (and per connect); ``persistent``: delivery_mode 2 (kept on disk by a durable queue) or 1."""
        super().__init__(
            amqp_url,
            name=f"publisher (confirms {'on' if confirms else 'off'})",
            confirms=confirms,
            connect_timeout=positive("timeout", timeout),
        )
        self.max_attempts = integer("max_attempts", max_attempts, 1)
        self.backoff = non_negative("backoff", backoff)
        self.timeout = positive("timeout", timeout)
        self.delivery_mode = 2 if persistent else 1
        #: message ids whose publish returned without error, in order
        self.sent: list[str] = []
        #: failed attempts (each followed by a reconnect and a retry) and connections opened
        self.errors = 0
        self.connections = 0
        self._quieting = False

    async def start(self) -> Self:
        if not self._quieting:
            if _quiet.users == 0:
                logging.getLogger("aiormq.connection").addFilter(_quiet)
            _quiet.users += 1
            self._quieting = True
        return await super().start()

    async def connect(self) -> aiormq.abc.AbstractChannel:
        channel = await super().connect()
        self.connections += 1
        return channel

    async def stop(self) -> None:
        await super().stop()
        if self._quieting:
            self._quieting = False
            _quiet.users -= 1
            if _quiet.users == 0:
                logging.getLogger("aiormq.connection").removeFilter(_quiet)

    async def publish(self, routing_key: str, body: bytes, *, message_id: str) -> int:
        """Publish until it succeeds (confirmed by the broker, with confirms; written to the socket,
        without); return the number of attempts. Raises the last error after ``max_attempts``."""
        if not isinstance(routing_key, str) or not isinstance(body, (bytes, bytearray)):
            raise ValueError(f"routing_key must be a str and body bytes, got {routing_key!r} and {type(body).__name__}")
        if not isinstance(message_id, str) or not message_id:
            raise ValueError(f"message_id must be a non-empty string, got {message_id!r}")
        props = Basic.Properties(message_id=message_id, delivery_mode=self.delivery_mode)
        for attempt in range(1, self.max_attempts + 1):
            try:
                if self._channel is None or self._channel.is_closed:
                    await self.connect()
                await self.send(body, routing_key=routing_key, properties=props, timeout=self.timeout)
            except RETRYABLE:
                self.errors += 1
                await self.disconnect()
                if attempt == self.max_attempts:
                    raise
                await asyncio.sleep(self.backoff)
                continue
            self.sent.append(message_id)
            return attempt
        raise AssertionError("unreachable")  # the loop returns or raises

    def __repr__(self) -> str:
        return (
            f"<Publisher confirms={self.confirms} sent={len(self.sent)} errors={self.errors} "
            f"connections={self.connections}>"
        )
