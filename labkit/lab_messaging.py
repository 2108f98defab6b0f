"""The lab's messaging side: its broker, one shared AMQP connection and default channel, and the consumers.

Why a part of its own: :class:`labkit.lab.Lab` owns everything, but what it does with the broker -- start
the embedded one or use the one at ``AMQP_URL``, publish with tracing, read a queue's depth the same way on both brokers, declare per-run queues, start consumers --
is one job, kept here so the lab itself stays about lifecycle and HTTP.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import weakref
from typing import Any

import aiormq
from yarl import URL

from labkit import tracing
from labkit._validate import queue_name
from labkit.consumers import Consumer, publish
from labkit.metrics import Clock, QueueDepthSampler
from labkit.queues import declare_run_queue

__all__ = ["LabMessaging"]


class LabMessaging:
    """The broker-facing methods of :class:`labkit.lab.Lab` (a base class; the lab provides the state)."""

    amqp_url: str | None
    seed: int
    tracer: tracing.Tracer
    clock: Clock
    consumers: list[Consumer]
    _connection: aiormq.abc.AbstractConnection | None
    _default_channel: aiormq.abc.AbstractChannel | None
    _amqp_lock: asyncio.Lock
    _amqp_url_option: str | None
    broker_options: dict[str, Any]
    broker_kind: str | None
    _broker: Any
    _data_dir: Any

    def _check_running(self) -> None:
        raise NotImplementedError

    async def start_part(self, part: Any = None) -> Any:
        raise NotImplementedError

    async def _start_broker(self) -> None:
        url = self._amqp_url_option or os.environ.get("AMQP_URL")
        if url:
            self.amqp_url, self.broker_kind = url, "rabbitmq"
            return
        from labkit.broker.process import BrokerProcess  # imported late: HTTP-only labs never need it

        options = dict(self.broker_options)
        if "data_dir" not in options:  # the lab's own, removed on stop() (or at exit) with everything in it
            options["data_dir"] = tempfile.mkdtemp(prefix="labkit-broker-")
            self._data_dir = weakref.finalize(self, shutil.rmtree, options["data_dir"], True)
        self._broker = await BrokerProcess.start(**options)
        self.amqp_url, self.broker_kind = self._broker.url, "embedded"

    @property
    def broker(self) -> Any:
        """The embedded broker's process, to put a broker crash on an experiment's timeline:
        ``await lab.broker.crash()`` kills it (SIGKILL: clients see their connections drop),
        ``await lab.broker.restart()`` starts it on the same URL, with the durable queues, exchanges,
        bindings and persistent messages it had logged in the lab's data directory."""
        if self._broker is None:
            reason = (
                "the lab uses the RabbitMQ at AMQP_URL, which it cannot crash or restart"
                if self.broker_kind == "rabbitmq"
                else "this lab runs no embedded broker"
            )
            raise RuntimeError(reason)
        return self._broker

    async def consumer(self, queue: str, **options: Any) -> Consumer:
        """Start a consumer of ``queue`` on its own connection (see :class:`labkit.consumers.Consumer`
        for ``options``: work_time, distribution, prefetch, concurrency, failure_rate, requeue_failed,
        idempotent, seen, crash_after, handler, declare, arguments, bindings, name, draws)."""
        self._check_running()
        url = self._check_amqp()
        consumer = await self.start_part(Consumer(url, queue, seed=self.seed, tracer=self.tracer, **options))
        self.consumers.append(consumer)
        return consumer

    async def channel(self, publisher_confirms: bool = True) -> aiormq.abc.AbstractChannel:
        """A new channel on the lab's shared connection (closed with the lab)."""
        connection = await self._shared_connection()
        return await connection.channel(publisher_confirms=publisher_confirms)

    async def publish(self, routing_key: str, body: bytes = b"", **options: Any) -> str:
        """Publish on the lab's default channel with tracing; returns the correlation id. ``options``:
        exchange, correlation_id, message_id, parent_id, headers, and AMQP properties."""
        channel = await self._channel()
        return await publish(channel, routing_key, body, tracer=self.tracer, **options)

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (a passive declare: works on both brokers; unacked not counted)."""
        queue_name("queue", queue)
        channel = await self._channel()
        ok = await channel.queue_declare(queue, passive=True)
        return int(ok.message_count or 0)

    async def sample_queue(self, queue: str, interval: float = 0.1) -> QueueDepthSampler:
        """Start sampling the depth of ``queue`` every ``interval`` seconds on a channel of its own, on
        the lab's timeline; read ``sampler.timeseries()``. Stopped with the lab (or ``lab.remove``)."""
        return await self.start_part(QueueDepthSampler(await self.channel(), queue, interval, t0=self.clock))

    async def declare_queue(self, queue: str, arguments: dict[str, Any] | None = None) -> str:
        """Declare ``queue`` for this run: durable, deleted by the broker once unused for a while
        (``x-expires``, see :mod:`labkit.queues` for why every queue is one of four kinds). Returns the name."""
        await declare_run_queue(await self._channel(), queue, arguments=arguments)
        return queue

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` (for clean-up between experiments; missing queues are fine)."""
        queue_name("queue", queue)
        channel = await self._channel()
        await channel.queue_delete(queue)

    def _check_amqp(self) -> str:
        """The broker's URL, or a RuntimeError saying this lab has none."""
        if not self.amqp_url:
            raise RuntimeError("this lab has no broker: start it with Lab.start(amqp=True)")
        return self.amqp_url

    def _amqp_port(self) -> int:
        return URL(self._check_amqp()).port or 5672

    async def _shared_connection(self) -> aiormq.abc.AbstractConnection:
        self._check_running()
        url = self._check_amqp()
        async with self._amqp_lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = await aiormq.connect(url)
            return self._connection

    async def _channel(self) -> aiormq.abc.AbstractChannel:
        """The default channel, reopened if an error (e.g. a passive declare of a missing queue) closed it."""
        if self._default_channel is None or self._default_channel.is_closed:
            connection = await self._shared_connection()
            async with self._amqp_lock:
                if self._default_channel is None or self._default_channel.is_closed:
                    self._default_channel = await connection.channel()
        return self._default_channel
