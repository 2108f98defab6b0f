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

import aiormq
from pamqp.commands import Basic

from labkit._validate import integer, non_negative, positive
from labkit.lifecycle import publish_message

__all__ = ["RETRYABLE", "Publisher"]

#: What a dropped or refused connection looks like to a publisher (retried after a reconnect).
RETRYABLE = (ConnectionError, OSError, asyncio.TimeoutError, aiormq.exceptions.AMQPError,
             aiormq.exceptions.ChannelInvalidStateError)


class _QuietResets(logging.Filter):
    """Drop aiormq's warning (with a traceback) for a connection the server reset: while a publisher runs,
    a reset is an expected event it handles (it counts it in ``errors`` and reconnects), not news."""

    def __init__(self) -> None:
        super().__init__()
        self.users = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, aiormq.exceptions.AMQPConnectionError)
                    and isinstance(exc.__cause__, ConnectionResetError))


_quiet = _QuietResets()


class Publisher:
    """Publish to the default exchange on its own connection; reconnect and retry on failure."""

    def __init__(self, amqp_url: str, *, confirms: bool = True, max_attempts: int = 100, backoff: float = 0.02,
                 timeout: float = 2.0):
        """``max_attempts`` per message; ``backoff`` seconds between attempts; ``timeout`` per attempt."""
        if not isinstance(amqp_url, str) or not amqp_url.startswith(("amqp://", "amqps://")):
            raise ValueError(f"amqp_url must start with amqp:// or amqps://, got {amqp_url!r}")
        self.amqp_url = amqp_url
        self.confirms = bool(confirms)
        self.max_attempts = integer("max_attempts", max_attempts, 1)
        self.backoff = non_negative("backoff", backoff)
        self.timeout = positive("timeout", timeout)
        #: message ids whose publish returned without error, in order
        self.sent: list[str] = []
        #: failed attempts (each followed by a reconnect and a retry) and connections opened
        self.errors = 0
        self.connections = 0
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._quieting = False

    async def start(self) -> Publisher:
        if _quiet.users == 0:
            logging.getLogger("aiormq.connection").addFilter(_quiet)
        _quiet.users += 1
        self._quieting = True
        try:
            await self._connect()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        await self._drop()
        if self._quieting:
            self._quieting = False
            _quiet.users -= 1
            if _quiet.users == 0:
                logging.getLogger("aiormq.connection").removeFilter(_quiet)

    async def publish(self, routing_key: str, body: bytes, *, message_id: str) -> int:
        """Publish until it succeeds (confirmed by the broker, with confirms; written to the socket,
        without); return the number of attempts. Raises the last error after ``max_attempts``."""
        if not isinstance(routing_key, str) or not isinstance(body, (bytes, bytearray)):
            raise ValueError(f"routing_key must be a str and body bytes, got {routing_key!r} and "
                             f"{type(body).__name__}")
        if not isinstance(message_id, str) or not message_id:
            raise ValueError(f"message_id must be a non-empty string, got {message_id!r}")
        props = Basic.Properties(message_id=message_id, delivery_mode=2)
        for attempt in range(1, self.max_attempts + 1):
            try:
                if self._channel is None or self._channel.is_closed:
                    await self._connect()
                await publish_message(self._channel, body, routing_key=routing_key, properties=props,
                                      timeout=self.timeout, process="publisher")
            except RETRYABLE:
                self.errors += 1
                await self._drop()
                if attempt == self.max_attempts:
                    raise
                await asyncio.sleep(self.backoff)
                continue
            self.sent.append(message_id)
            return attempt
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _connect(self) -> None:
        await self._drop()
        self._connection = await asyncio.wait_for(aiormq.connect(self.amqp_url), self.timeout)
        self.connections += 1
        self._channel = await self._connection.channel(publisher_confirms=self.confirms)

    async def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            try:
                await asyncio.wait_for(connection.close(), self.timeout)
            except RETRYABLE:
                pass  # the connection is already broken: nothing more to release

    def __repr__(self) -> str:
        return (f"<Publisher confirms={self.confirms} sent={len(self.sent)} errors={self.errors} "
                f"connections={self.connections}>")
