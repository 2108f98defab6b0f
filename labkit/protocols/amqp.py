"""A broker hop: an AMQP echo worker, and a client for RPC (direct reply-to) and one-way confirmed publishes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq
from pamqp.commands import Basic

from labkit._validate import amqp_url as check_amqp_url
from labkit._validate import integer, non_negative, queue_name
from labkit.lifecycle import AmqpWorker, delivery_tag
from labkit.protocols._common import check_bytes, work

__all__ = ["REPLY_TO", "AmqpClient", "AmqpEchoWorker"]

REPLY_TO = "amq.rabbitmq.reply-to"


class AmqpEchoWorker(AmqpWorker):
    """Consumes ``queue`` on its own connection; after ``work_time`` per message, answers requests that
    carry a ``reply_to`` (RPC) and just acknowledges the others (one-way). ``done`` counts messages.

    The queue is exclusive: it belongs to this worker and disappears with its connection (clients on
    other connections may still publish to it)."""

    def __init__(self, amqp_url: str, queue: str, work_time: float = 0.0, prefetch: int = 100):
        super().__init__(
            amqp_url, name=f"echo worker {queue}", prefetch=integer("prefetch", prefetch, 1, 65535), confirms=False
        )
        self.queue = queue_name("queue", queue)
        self.work_time = non_negative("work_time", work_time)
        self.done = 0
        self._tasks: set[asyncio.Task] = set()

    async def declare(self, channel: aiormq.abc.AbstractChannel) -> None:
        await channel.queue_declare(self.queue, exclusive=True)

    def subscriptions(self) -> list[tuple[str, None]]:
        return [(self.queue, None)]

    async def handle(self, message: aiormq.abc.DeliveredMessage) -> None:
        # Work on messages concurrently, as the HTTP and gRPC servers do with requests.
        task = asyncio.ensure_future(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: aiormq.abc.DeliveredMessage) -> None:
        await work(self.work_time)
        props = message.header.properties
        if props.reply_to:
            await self.send(
                message.body,
                routing_key=props.reply_to,
                properties=Basic.Properties(correlation_id=props.correlation_id),
            )
        await message.channel.basic_ack(delivery_tag(message))
        self.done += 1

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()


class AmqpClient:
    """RPC (``call``: direct reply-to) and one-way confirmed publishes (``send``) to an
    :class:`AmqpEchoWorker`'s ``queue``. ``reuse=False``: a new AMQP connection for every call."""

    def __init__(self, amqp_url: str, queue: str, reuse: bool = True):
        self.amqp_url, self.queue, self.reuse = (
            check_amqp_url("amqp_url", amqp_url),
            queue_name("queue", queue),
            bool(reuse),
        )
        self._session: _AmqpSession | None = None

    async def start(self) -> AmqpClient:
        if self.reuse:
            self._session = await _AmqpSession.open(self.amqp_url)
        return self

    async def _with_session(self, use: Callable[[_AmqpSession], Awaitable[Any]]) -> Any:
        if self._session is not None:
            return await use(self._session)
        session = await _AmqpSession.open(self.amqp_url)
        try:
            return await use(session)
        finally:
            await session.stop()

    async def call(self, data: bytes) -> bytes:
        """Request/response over the broker: the worker's answer (the same bytes)."""
        data = check_bytes("data", data)
        return await self._with_session(lambda s: s.rpc(self.queue, data))

    async def send(self, data: bytes) -> bytes:
        """One-way: returns (the payload) once the broker has confirmed the publish, not when it is done."""
        data = check_bytes("data", data)
        await self._with_session(lambda s: s.channel.basic_publish(data, routing_key=self.queue))
        return data

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.stop()
            self._session = None


class _AmqpSession:
    """One connection with a confirming channel that also consumes direct replies."""

    def __init__(self, connection: aiormq.abc.AbstractConnection, channel: aiormq.abc.AbstractChannel):
        self.connection, self.channel = connection, channel
        self.pending: dict[str, asyncio.Future] = {}

    @classmethod
    async def open(cls, url: str) -> _AmqpSession:
        connection = await aiormq.connect(url)
        try:
            session = cls(connection, await connection.channel())
            await session.channel.basic_consume(REPLY_TO, session._on_reply, no_ack=True)
        except BaseException:
            await connection.close()
            raise
        return session

    async def _on_reply(self, message: aiormq.abc.DeliveredMessage) -> None:
        future = self.pending.pop(message.header.properties.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def rpc(self, queue: str, data: bytes) -> bytes:
        correlation_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        try:
            await self.channel.basic_publish(
                data, routing_key=queue, properties=Basic.Properties(reply_to=REPLY_TO, correlation_id=correlation_id)
            )
            return await future
        finally:
            self.pending.pop(correlation_id, None)

    async def stop(self) -> None:
        for future in self.pending.values():
            future.cancel()
        await self.connection.close()
