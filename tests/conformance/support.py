"""What the conformance tests share: a per-test client, an inbox for deliveries, a wire tap.

Why: every behaviour test needs the same plumbing (open a connection, declare uniquely named queues,
collect deliveries, wait for a broker-side channel close, delete what it made on a shared RabbitMQ).
Keeping it here lets each test read as the one behaviour it asserts. Everything goes through the
aiormq client (and, for the wire tap, pamqp's decoder), never through broker internals, so the same
assertions run unchanged against the embedded broker and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import aiormq
import pamqp.frame
from aiormq.abc import DeliveredMessage
from aiormq.connection import TCPTransportFactory
from pamqp import commands as spec
from pamqp.heartbeat import Heartbeat
from yarl import URL

from labkit.lifecycle import wait_until

WAIT = 5.0
"""Seconds to wait for something that should happen (generous: a loaded 2-core machine)."""

QUIET = 0.2
"""Seconds to wait when asserting that nothing arrives."""


def unique(kind: str) -> str:
    """A name no other test (or concurrent engineer) uses on a shared broker."""
    return f"conf.{kind}.{uuid.uuid4().hex[:16]}"


def props(**kwargs: Any) -> spec.Basic.Properties:
    """Basic.Properties; a shorthand because nearly every test sets one or two."""
    return spec.Basic.Properties(**kwargs)


def text(messages: list[DeliveredMessage]) -> list[str]:
    """Bodies as strings, to compare delivery order with one assert."""
    return [m.body.decode() for m in messages]


class Inbox:
    """A consumer callback that keeps deliveries in arrival order.

    Why: tests assert "the next n deliveries are ..." and "nothing more arrives within QUIET"; an
    asyncio.Queue behind the callback expresses both without sleeps sprinkled through the tests.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        self.consumer_tag: str | None = None

    async def __call__(self, message: DeliveredMessage) -> None:
        self._queue.put_nowait(message)

    async def take(self, n: int = 1, timeout: float = WAIT) -> list[DeliveredMessage]:
        """The next ``n`` deliveries; fails the test if they do not all arrive within ``timeout``."""
        got: list[DeliveredMessage] = []
        try:
            async with asyncio.timeout(timeout):
                while len(got) < n:
                    got.append(await self._queue.get())
        except TimeoutError:
            raise AssertionError(f"expected {n} deliveries, got {len(got)}: {text(got)}") from None
        return got

    async def nothing(self, wait: float = QUIET) -> None:
        """Assert that no (further) delivery arrives within ``wait`` seconds."""
        await asyncio.sleep(wait)
        leftover = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        assert not leftover, f"unexpected deliveries: {text(leftover)}"

    async def drain(self, wait: float = QUIET) -> list[DeliveredMessage]:
        """Every delivery that arrived within ``wait`` seconds (none is an answer too)."""
        await asyncio.sleep(wait)
        return [self._queue.get_nowait() for _ in range(self._queue.qsize())]

    def count(self) -> int:
        """Deliveries received but not yet taken."""
        return self._queue.qsize()


async def closed_by_broker(channel: aiormq.abc.AbstractChannel, timeout: float = WAIT) -> BaseException:
    """Wait until the broker closes ``channel`` and return the exception aiormq made of its Close."""
    try:
        async with asyncio.timeout(timeout):
            await channel.closing
    except TimeoutError:
        raise AssertionError("the broker did not close the channel") from None
    except BaseException as exc:  # aiormq sets the close reason as the future's exception
        return exc
    raise AssertionError("the channel closed without an error")


class WireTap(TCPTransportFactory):
    """A transport that records every byte the broker sends, for assertions about frames.

    Why: a few behaviours are invisible through aiormq's API (the server's Connection.Tune proposal,
    heartbeats, how a large body is split into frames, the order of Basic.Return and Basic.Ack, the
    reply code of a Connection.Close during the handshake). Pass ``transport_factory=tap`` to
    ``aiormq.connect`` and read ``tap.frames()`` afterwards.
    """

    def __init__(self) -> None:
        self.received = bytearray()

    async def create(self, url: URL, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await super().create(url, **kwargs)
        return _RecordingReader(reader, self.received), writer

    def frames(self) -> list[tuple[int, Any, int]]:
        """(channel, frame, size on the wire) for every complete frame received so far."""
        out, data = [], bytes(self.received)
        while data:
            size, channel, frame = pamqp.frame.unmarshal(data)
            out.append((channel, frame, size))
            data = data[size:]
        return out

    async def wait_for(self, frame_type: type, timeout: float = WAIT) -> None:
        """Wait until a frame of ``frame_type`` has arrived; fail the test after ``timeout``."""
        await wait_until(
            lambda: any(isinstance(frame, frame_type) for _, frame, _ in self.frames()),
            timeout=timeout,
            what=f"a {frame_type.__name__} frame from the broker",
            interval=0.02,
        )

    def heartbeats(self) -> int:
        """How many heartbeat frames the broker sent."""
        return sum(isinstance(frame, Heartbeat) for _, frame, _ in self.frames())


class _RecordingReader:
    """Delegates to a StreamReader and appends what aiormq reads to a shared buffer."""

    def __init__(self, reader: asyncio.StreamReader, sink: bytearray) -> None:
        self._reader, self._sink = reader, sink

    async def readexactly(self, n: int) -> bytes:
        data = await self._reader.readexactly(n)
        self._sink += data
        return data

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        self._sink += data
        return data

    def at_eof(self) -> bool:
        return self._reader.at_eof()


class Client:
    """One test's view of one broker: the connections it opens and the names it declares.

    ``close()`` closes every connection and, on a shared RabbitMQ, deletes every queue and exchange
    the test declared through it (an embedded broker is discarded with the test instead).
    """

    def __init__(self, url: str, kind: str) -> None:
        self.url, self.kind = url, kind
        self._connections: list[aiormq.Connection] = []
        self._queues: set[str] = set()
        self._exchanges: set[str] = set()
        self._admin: aiormq.abc.AbstractChannel | None = None

    async def connect(self, url: str | None = None, **kwargs: Any) -> aiormq.Connection:
        """Open a connection (to ``url`` or the broker under test) that close() will close."""
        connection = await aiormq.connect(url or self.url, **kwargs)
        self._connections.append(connection)
        return connection

    async def channel(self, connection: aiormq.Connection | None = None, **kwargs: Any):
        """A new channel on ``connection`` (default: a new connection); confirms are on by default."""
        connection = connection or await self.connect()
        return await connection.channel(**kwargs)

    async def admin(self) -> aiormq.abc.AbstractChannel:
        """A confirming channel for setup steps; reopened if a test made the broker close it."""
        if self._admin is None or self._admin.is_closed:
            self._admin = await self.channel()
        return self._admin

    def queue_name(self) -> str:
        """A unique queue name that close() deletes on RabbitMQ."""
        name = unique("q")
        self._queues.add(name)
        return name

    def exchange_name(self) -> str:
        """A unique exchange name that close() deletes on RabbitMQ."""
        name = unique("x")
        self._exchanges.add(name)
        return name

    async def queue(self, name: str | None = None, **kwargs: Any) -> str:
        """Declare a queue (unique name unless given) and return its name. Durable unless the test says
        otherwise: RabbitMQ 4.3 refuses transient non-exclusive queues, and close() deletes it."""
        if not kwargs.get("exclusive"):
            kwargs.setdefault("durable", True)
        ok = await (await self.admin()).queue_declare(name if name is not None else self.queue_name(), **kwargs)
        self._queues.add(ok.queue)
        return ok.queue

    async def exchange(self, exchange_type: str, **kwargs: Any) -> str:
        """Declare an exchange with a unique name and return the name."""
        name = self.exchange_name()
        await (await self.admin()).exchange_declare(name, exchange_type=exchange_type, **kwargs)
        return name

    async def publish(self, routing_key: str, *bodies: str, exchange: str = "", **properties: Any) -> None:
        """Publish each body with publisher confirms, so the messages are enqueued on return."""
        channel = await self.admin()
        for body in bodies:
            await channel.basic_publish(
                body.encode(), exchange=exchange, routing_key=routing_key, properties=props(**properties)
            )

    async def consume(self, channel, queue: str, **kwargs: Any) -> Inbox:
        """Start a consumer whose deliveries collect in the returned Inbox."""
        inbox = Inbox()
        ok = await channel.basic_consume(queue, inbox, **kwargs)
        inbox.consumer_tag = ok.consumer_tag
        return inbox

    async def dead_letter_sink(self) -> tuple[str, str]:
        """A fanout exchange and the queue bound to it: point x-dead-letter-exchange here to catch."""
        exchange = await self.exchange("fanout")
        queue = await self.queue()
        await (await self.admin()).queue_bind(queue, exchange)
        return exchange, queue

    async def get_all(self, queue: str) -> list[DeliveredMessage]:
        """Drain ``queue`` with basic.get no-ack (fresh channel): what is left, in queue order."""
        channel = await self.channel()
        got = []
        while True:
            message = await channel.basic_get(queue, no_ack=True, timeout=WAIT)
            if isinstance(message.delivery, spec.Basic.GetEmpty):
                return got
            got.append(message)

    async def arrivals(
        self, queue: str, n: int, *, channel=None, no_ack: bool = True, timeout: float = WAIT
    ) -> list[DeliveredMessage]:
        """basic.get until ``n`` messages came out of ``queue``: for asynchronous arrivals such as
        dead-lettering, without guessing a sleep. With ``no_ack=False`` they stay unacked on ``channel``."""
        channel = channel or await self.channel()
        got: list[DeliveredMessage] = []
        try:
            async with asyncio.timeout(timeout):
                while len(got) < n:
                    message = await channel.basic_get(queue, no_ack=no_ack)
                    if isinstance(message.delivery, spec.Basic.GetEmpty):
                        await asyncio.sleep(0.02)
                    else:
                        got.append(message)
        except TimeoutError:
            raise AssertionError(f"expected {n} messages in {queue}, got {text(got)}") from None
        return got

    async def message_count(self, queue: str) -> int:
        """Ready messages in ``queue`` as a passive declare reports them."""
        return (await (await self.admin()).queue_declare(queue, passive=True)).message_count

    async def close(self) -> None:
        for connection in self._connections:
            with contextlib.suppress(Exception):
                await connection.close()
        if self.kind == "rabbitmq" and (self._queues or self._exchanges):
            await self._delete_everything()

    async def _delete_everything(self) -> None:
        connection = await aiormq.connect(self.url)
        try:
            for name in self._queues:
                await self._tolerant(connection, lambda ch, n=name: ch.queue_delete(n))
            for name in self._exchanges:
                await self._tolerant(connection, lambda ch, n=name: ch.exchange_delete(n))
        finally:
            await connection.close()

    @staticmethod
    async def _tolerant(connection: aiormq.Connection, operation) -> None:
        """Run a cleanup step on its own channel; a broker-side refusal must not stop the others."""
        with contextlib.suppress(Exception):
            channel = await connection.channel(publisher_confirms=False)
            await operation(channel)
            await channel.close()
