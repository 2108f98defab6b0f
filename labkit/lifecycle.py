"""The lifecycle layer every lab part stands on: one way to start, stop, wait and name things.

Why: a notebook re-runs cells, interrupts them and restarts them. A part that starts half-way and leaks a
socket, or a wait with no deadline, turns one mistake into a hung kernel. So every part of the lab follows
one protocol (:class:`Component`: ``await part.start()`` returns the part, ``await part.stop()`` releases it,
``part.running`` says which, and ``async with part:`` does both), and the two kinds of plumbing every part
needs are written once here:

- :class:`AmqpWorker` -- connect, open a channel, declare, set the prefetch (qos), consume, close. Every
  delivery a worker gets goes through :meth:`AmqpWorker.deliver` and every message it publishes through
  :func:`publish_message`: the two places where a recorder can watch a message's life.
- :class:`HttpApp` -- an aiohttp application served on an ephemeral 127.0.0.1 port, stopped without
  waiting for slow requests.

:func:`wait_until` is the one way to wait for something to become true: always with a deadline, and a
``TimeoutError`` that says what it waited for. :func:`unique` makes a name no other run uses (several
people may share one RabbitMQ).

    async with Lab() as lab:
        reader = await lab.start(StreamReader(lab.amqp_url, "history", offset="first"))
        await wait_until(lambda: len(reader.entries) >= 10, timeout=5, what="10 history entries")
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import aiormq
from aiohttp import web
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from labkit._validate import amqp_url as check_amqp_url
from labkit._validate import integer, positive
from labkit._validate import port as check_port
from labkit.history import recorder

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "CONNECTION_ERRORS",
    "AmqpWorker",
    "Component",
    "HttpApp",
    "Part",
    "publish_message",
    "stopped_on_failure",
    "unique",
    "wait_until",
]

#: What a dropped, refused or reset AMQP connection looks like to a client.
CONNECTION_ERRORS = (
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
)


T = TypeVar("T")


@runtime_checkable
class Component(Protocol):
    """What every lab part is: started once, stopped once (stopping twice is harmless)."""

    @property
    def running(self) -> bool: ...

    async def start(self) -> Any: ...

    async def stop(self) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: Any) -> None: ...


class Part:
    """Base of the lab's parts: the context manager and the "already running" guard, written once.

    A subclass implements ``start`` (ending with ``return self``), ``stop`` and ``running``.
    """

    name: str = "part"

    @property
    def running(self) -> bool:
        raise NotImplementedError

    async def start(self) -> Self:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    def _check_stopped(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")


@contextlib.asynccontextmanager
async def stopped_on_failure(part: Any) -> AsyncIterator[None]:
    """Run a start's steps; if one fails, or the start is cancelled, stop ``part`` and re-raise.

    Why: a part that fails half-way through its start would otherwise keep the sockets, connections and
    tasks of the steps that did succeed until the kernel dies. Its ``stop`` releases whatever exists.
    """
    try:
        yield
    except BaseException:
        await part.stop()
        raise


# -- waiting and naming ------------------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 10.0,
    what: str | Callable[[], str] | None = None,
    interval: float = 0.01,
) -> Any:
    """Wait until ``predicate()`` (a function, or an async function) returns something true, and return it.

    Raises ``TimeoutError`` after ``timeout`` seconds, naming ``what`` it waited for (a text, or a function
    returning one, so the message can say how far it got: ``what=lambda: f"{n} of 10 acks"``). The
    predicate is checked every ``interval`` seconds; a deadline is not a speed goal, so give it room.
    """
    positive("timeout", timeout)
    positive("interval", interval)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        left = deadline - loop.time()
        if left <= 0:
            described = what() if callable(what) else what
            raise TimeoutError(f"gave up after {timeout:g} s waiting for {described or _describe(predicate)}")
        await asyncio.sleep(min(interval, left))


def _describe(predicate: Callable[[], Any]) -> str:
    name = getattr(predicate, "__qualname__", "") or repr(predicate)
    return "the condition" if name == "<lambda>" else f"{name}()"


def unique(prefix: str = "lab") -> str:
    """``unique("orders")`` -> ``"orders-1a2b3c4d"``: a queue or exchange name no other run uses."""
    if not isinstance(prefix, str) or not prefix or len(prefix) > 200:
        raise ValueError(f"prefix must be a non-empty string of at most 200 characters, got {prefix!r}")
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def started(resource: T | None, part: str) -> T:
    """``resource`` (a connection, channel, session... that ``part`` opens in ``start()``), or a clear error
    when ``part`` is not running, instead of an AttributeError on None."""
    if resource is None:
        raise RuntimeError(f"{part} is not running: start it first")
    return resource


# -- AMQP ------------------------------------------------------------------------------------------------


def delivery_tag(message: DeliveredMessage) -> int:
    """The tag to settle ``message`` by. aiormq types it optional (a basic.get-empty has none); a message
    from basic.deliver or basic.get-ok always has one."""
    tag = message.delivery_tag
    if tag is None:
        raise ValueError(f"message has no delivery tag: it came with {type(message.delivery).__name__}")
    return tag


async def publish_message(
    channel: aiormq.abc.AbstractChannel,
    body: bytes,
    *,
    routing_key: str,
    exchange: str = "",
    properties: Basic.Properties | None = None,
    timeout: float | None = None,
    process: str | None = None,
) -> Any:
    """Publish one message on ``channel``: the single place labkit's parts hand a message to the broker.

    ``process`` names the publisher in a recorded history (default: the consumer whose handler is
    publishing, else "publisher"); see :mod:`labkit.history.recorder`.

    With publisher confirms on the channel this returns when the broker has acked it; ``timeout`` bounds
    that wait (``asyncio.TimeoutError``).
    """
    sending = channel.basic_publish(bytes(body), exchange=exchange, routing_key=routing_key, properties=properties)
    if timeout is not None:
        sending = asyncio.wait_for(sending, timeout)
    if recorder.active is None:  # the history recorder is off: nothing else happens here
        return await sending
    process = recorder.lane(process, "publisher")
    recorder.on_publish(process, routing_key, properties, exchange)
    try:
        outcome = await sending
    except BaseException as exc:
        recorder.on_published(process, routing_key, properties, exc)
        raise
    recorder.on_published(process, routing_key, properties, outcome)
    return outcome


class AmqpWorker(Part):
    """A part with its own AMQP connection and channel: connect, declare, qos, consume, close -- once.

    Subclasses say what is theirs by overriding:

    - :meth:`declare` -- queues, exchanges and bindings to set up on the fresh channel;
    - :meth:`subscriptions` -- ``(queue, consume arguments)`` pairs to consume (none: publish only);
    - :meth:`handle` -- the work on one delivery (reached through :meth:`deliver`).

    ``prefetch`` (None: no basic.qos) is the number of unacknowledged deliveries the broker pushes;
    ``confirms`` turns on publisher confirms for the channel; ``connect_timeout`` bounds the connect
    (None: aiormq's own). Stopping closes the connection: unacknowledged messages go back to their queue
    with ``redelivered=True``, as after a crash.
    """

    def __init__(
        self,
        amqp_url: str,
        *,
        name: str,
        prefetch: int | None = None,
        confirms: bool = True,
        connect_timeout: float | None = None,
    ):
        self.amqp_url = check_amqp_url("amqp_url", amqp_url)
        self.name = name
        self.prefetch = None if prefetch is None else integer("prefetch", prefetch, 0, 65535)
        self.confirms = bool(confirms)
        self.connect_timeout = None if connect_timeout is None else positive("connect_timeout", connect_timeout)
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None

    # -- what a subclass fills in ------------------------------------------------------------------------

    async def declare(self, channel: aiormq.abc.AbstractChannel) -> None:
        """Declare what this worker needs (default: nothing)."""

    def subscriptions(self) -> Iterable[tuple[str, dict[str, Any] | None]]:
        """The queues to consume, with basic.consume arguments (default: none)."""
        return ()

    async def handle(self, message: DeliveredMessage) -> None:
        """Work on one delivery (a worker that consumes must override this)."""
        raise NotImplementedError(f"{type(self).__name__} consumes but does not handle deliveries")

    # -- the one copy of the sequence --------------------------------------------------------------------

    async def start(self) -> Self:
        self._check_stopped()
        async with stopped_on_failure(self):
            await self.connect()
        return self

    async def connect(self) -> aiormq.abc.AbstractChannel:
        """Open the connection and channel, declare, set qos and start consuming; returns the channel.
        (A worker that reconnects, like a publisher riding out a dropped link, calls it again.)"""
        await self.disconnect()
        connecting = aiormq.connect(self.amqp_url)
        self._connection = await (
            connecting if self.connect_timeout is None else asyncio.wait_for(connecting, self.connect_timeout)
        )
        channel = await self._connection.channel(publisher_confirms=self.confirms)
        self._channel = channel
        await self.declare(channel)
        if self.prefetch is not None:
            await channel.basic_qos(prefetch_count=self.prefetch)
        for queue, arguments in self.subscriptions():
            await channel.basic_consume(queue, self.deliver, arguments=arguments)
        return channel

    async def deliver(self, message: DeliveredMessage) -> None:
        """Every delivery this worker gets comes through here (then to :meth:`handle`)."""
        if recorder.active is not None:
            recorder.on_deliver(self.name, message)
        await self.handle(message)

    async def send(
        self,
        body: bytes,
        *,
        routing_key: str,
        exchange: str = "",
        properties: Basic.Properties | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Publish on this worker's channel (see :func:`publish_message`)."""
        if self._channel is None or self._channel.is_closed:
            raise RuntimeError(f"{self.name} is not connected")
        return await publish_message(
            self._channel,
            body,
            routing_key=routing_key,
            exchange=exchange,
            properties=properties,
            timeout=timeout,
            process=self.name,
        )

    async def disconnect(self) -> None:
        """Close the connection (if open); a connection that is already broken is simply let go."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is None or connection.is_closed:
            return
        try:
            closing = connection.close()
            await (closing if self.connect_timeout is None else asyncio.wait_for(closing, self.connect_timeout))
        except CONNECTION_ERRORS:
            pass  # broken already: nothing more to release

    async def stop(self) -> None:
        """Close the connection; unacknowledged deliveries return to their queues."""
        await self.disconnect()

    @property
    def running(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    @property
    def channel(self) -> aiormq.abc.AbstractChannel | None:
        """The worker's channel while connected."""
        return self._channel


# -- HTTP ------------------------------------------------------------------------------------------------


class HttpApp(Part):
    """An aiohttp application on 127.0.0.1 (an ephemeral port unless ``port`` is given).

    A subclass adds its routes in :meth:`add_routes`, and may acquire and release what serving needs in
    :meth:`on_start` / :meth:`on_stop` (a client session, a database). Stopping does not wait more than
    ``shutdown_timeout`` seconds for requests still running: a lab must stop promptly.
    """

    shutdown_timeout = 0.25
    #: the largest request body accepted (bytes); aiohttp's default
    client_max_size = 1024**2

    def __init__(self, *, name: str, port: int = 0):
        self.name = name
        self._port = check_port("port", port, allow_zero=True)
        self._runner: web.AppRunner | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError(f"{type(self).__name__} must add its routes")

    async def on_start(self) -> None:
        """Called once the app listens."""

    async def on_stop(self) -> None:
        """Called once the app has stopped listening."""

    async def start(self) -> Self:
        self._check_stopped()
        app = web.Application(client_max_size=self.client_max_size)
        self.add_routes(app.router)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self._port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        async with stopped_on_failure(self):
            await self.on_start()
        return self

    async def stop(self) -> None:
        """Close the listening socket and cancel requests still running, then :meth:`on_stop`."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        await self.on_stop()

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123/``."""
        return f"http://127.0.0.1:{self.port}/"
