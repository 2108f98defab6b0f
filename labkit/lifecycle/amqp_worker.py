"""The AMQP half of the lifecycle layer: the one connect -> declare -> qos -> consume -> close sequence
(:class:`AmqpWorker`) and the one place a part publishes (:func:`publish_message`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from labkit._validate import amqp_url as check_amqp_url
from labkit._validate import integer, positive
from labkit.history import recorder

from .parts import Part, stopped_on_failure

if TYPE_CHECKING:
    from typing_extensions import Self

#: What a dropped, refused or reset AMQP connection looks like to a client.
CONNECTION_ERRORS = (
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
)


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
