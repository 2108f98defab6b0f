"""Queue consumers (aiormq) that do the services' work from a queue, and a tracing-aware publish.

Why: the asynchronous half of every comparison. A consumer takes messages from a queue with a given
``prefetch`` (how many unacknowledged messages the broker pushes to it) and works on ``concurrency`` of
them at a time for ``work_time`` each, acknowledging only *after* the work -- so a consumer that dies
mid-work gets its messages redelivered, which is what at-least-once delivery means. Options show the
lessons of the delivery chapter: injected failures (reject with or without requeue; with a dead-letter
exchange in the queue's ``arguments`` a rejected message goes there), a crash between the work and the
ack (``crash_after``), and idempotency (skip a ``message_id`` already processed).

Each consumer has its own AMQP connection (closing it is what a crash looks like to the broker) and keeps
one :class:`labkit.metrics.Record` per message with ``scheduled`` = publish time (when published with
:func:`publish` in this process), so ``latency`` is the end-to-end time including the wait in the queue.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from labkit import tracing
from labkit._validate import integer, probability, queue_name
from labkit.draws import rng_for, sampler
from labkit.history import recorder
from labkit.lifecycle import AmqpWorker, delivery_tag, publish_message, wait_until
from labkit.metrics import Record
from labkit.queues import declare_run_queue

__all__ = ["Consumer", "publish", "PUBLISHED_AT_HEADER"]

#: Message header with the publisher's clock reading in integer nanoseconds. (Not a float: pamqp encodes
#: floats in tables as 32-bit, which would round a clock reading to tens of seconds.)
PUBLISHED_AT_HEADER = "x-published-at-ns"

#: Signature of an optional hook run for each message after the work time; raising fails the message.
MessageHandler = Callable[[DeliveredMessage], Awaitable[Any]]


async def publish(
    channel: aiormq.abc.AbstractChannel,
    routing_key: str,
    body: bytes = b"",
    *,
    exchange: str = "",
    correlation_id: str | None = None,
    message_id: str | None = None,
    parent_id: str | None = None,
    headers: dict[str, Any] | None = None,
    tracer: tracing.Tracer | None = None,
    **properties: Any,
) -> str:
    """Publish ``body`` with a message id, a correlation id and the publish time; return the correlation id.

    Extra keyword arguments become AMQP properties (e.g. ``delivery_mode=2``, ``expiration="1000"``).
    With publisher confirms on the channel this waits for the broker's ack, as a careful producer does.
    """
    if not isinstance(body, (bytes, bytearray)):
        raise ValueError(f"body must be bytes, got {type(body).__name__}")
    if not isinstance(routing_key, str) or not isinstance(exchange, str):
        raise ValueError(f"routing_key and exchange must be strings, got {routing_key!r} and {exchange!r}")
    span = (
        tracer.start(f"publish {exchange or '(default)'}/{routing_key}", "publish", correlation_id, parent_id)
        if tracer is not None
        else None
    )
    correlation_id = span.correlation_id if span else (correlation_id or tracing.current()[0] or tracing.new_id())
    all_headers = dict(headers or {})
    all_headers[PUBLISHED_AT_HEADER] = int(time.monotonic() * 1e9)
    if span is not None:
        all_headers[tracing.PARENT_AMQP_HEADER] = span.span_id
    props = Basic.Properties(
        message_id=message_id or tracing.new_id(),
        correlation_id=correlation_id,
        headers=all_headers,
        **properties,
    )
    ok = False
    try:
        await publish_message(channel, body, exchange=exchange, routing_key=routing_key, properties=props)
        ok = True
    finally:
        if span is not None and tracer is not None:
            tracer.finish(span, ok)
    return correlation_id


class Consumer(AmqpWorker):
    """Consume ``queue`` on its own connection, doing ``work_time`` seconds of work per message.

    With ``declare`` (the default) it declares ``queue`` as a per-run queue (durable, x-expires:
    :func:`labkit.queues.declare_run_queue`) with ``arguments``; pass ``declare=False`` for a queue
    declared elsewhere (a quorum queue, a dead-letter topology).

    Work times and failures are drawn from streams named after ``draws`` (default: the consumer's name)
    and seeded by ``seed``. Consumers given the same ``draws`` draw the same work times, so two settings
    can be compared on common random numbers: they then differ by the setting, not by luck."""

    def __init__(
        self,
        amqp_url: str,
        queue: str,
        *,
        work_time: float = 0.01,
        distribution: str = "fixed",
        prefetch: int = 1,
        concurrency: int = 1,
        failure_rate: float = 0.0,
        requeue_failed: bool = True,
        idempotent: bool = False,
        seen: set[str] | None = None,
        crash_after: int | None = None,
        handler: MessageHandler | None = None,
        declare: bool = True,
        arguments: dict[str, Any] | None = None,
        bindings: Sequence[tuple[str, str]] = (),
        name: str | None = None,
        draws: str | None = None,
        seed: int = 0,
        tracer: tracing.Tracer | None = None,
        max_records: int = 200_000,
    ):
        super().__init__(amqp_url, name=name or f"consumer:{queue}", prefetch=prefetch)
        self.queue = queue_name("queue", queue)
        streams = self.name if draws is None else draws
        self._sample = sampler(work_time, distribution, rng_for(seed, streams + ":work"), "work_time")
        self._fail_rng = rng_for(seed, streams + ":fail")
        self.work_time, self.distribution = work_time, distribution
        self.concurrency = integer("concurrency", concurrency, 1)
        self.failure_rate = probability("failure_rate", failure_rate)
        self.requeue_failed = bool(requeue_failed)
        self.idempotent = bool(idempotent)
        #: message ids already processed; pass one set to several consumers to dedupe across them.
        self.seen: set[str] = set() if seen is None else seen
        self.crash_after = None if crash_after is None else integer("crash_after", crash_after, 1)
        if handler is not None and not callable(handler):
            raise ValueError(f"handler must be an async function handler(message), got {handler!r}")
        self.handler = handler
        self.declares_queue = bool(declare)
        if arguments is not None and not isinstance(arguments, dict):
            raise ValueError(f"arguments must be a dict of queue arguments or None, got {arguments!r}")
        self.arguments = arguments
        self.bindings = list(bindings)
        for i, binding in enumerate(self.bindings):
            if not (isinstance(binding, tuple) and len(binding) == 2 and all(isinstance(x, str) for x in binding)):
                raise ValueError(f"bindings[{i}] must be an (exchange, routing_key) tuple, got {binding!r}")
        self.tracer = tracer
        self.records: collections.deque[Record] = collections.deque(maxlen=integer("max_records", max_records, 1))
        #: counters: acked after work, skipped as duplicates, failed (rejected), seen with redelivered=True
        self.processed = self.duplicates = self.failed = self.redelivered = 0
        self.in_flight = 0
        self.crashed = False
        self._slots = asyncio.Semaphore(self.concurrency)

    async def declare(self, channel: aiormq.abc.AbstractChannel) -> None:
        if self.declares_queue:
            await declare_run_queue(channel, self.queue, arguments=self.arguments)
        for exchange, routing_key in self.bindings:
            await channel.queue_bind(self.queue, exchange, routing_key=routing_key)

    def subscriptions(self) -> list[tuple[str, None]]:
        return [(self.queue, None)]

    async def wait_processed(self, count: int, timeout: float = 10.0) -> None:
        """Wait until this consumer has acknowledged ``count`` messages after their work (a liveness
        bound, not a speed goal); raises ``TimeoutError`` saying how many it had."""
        integer("count", count, 0)
        await wait_until(
            lambda: self.processed >= count,
            timeout=timeout,
            interval=0.005,
            what=lambda: f"{self.name}: {count} messages processed ({self.processed} so far)",
        )

    def reset_records(self) -> None:
        """Forget records and counters (between experiments); the message ids in ``seen`` are kept."""
        self.records.clear()
        self.processed = self.duplicates = self.failed = self.redelivered = 0

    def __repr__(self) -> str:
        return (
            f"<Consumer {self.name} queue={self.queue!r} processed={self.processed} "
            f"duplicates={self.duplicates} failed={self.failed} running={self.running}>"
        )

    async def handle(self, message: DeliveredMessage) -> None:
        received = time.monotonic()
        async with self._slots:
            if not self.running:
                return  # crashed or stopped while this message waited for a slot
            started = time.monotonic()
            span = self._open_span(message, started)
            self.in_flight += 1
            try:
                with tracing.activate(span):  # what the handler calls or publishes joins this trace
                    ok, error, info = await self._process(message)
            finally:
                self.in_flight -= 1
        if span is not None and self.tracer is not None:
            self.tracer.finish(span, ok is True, crashed=ok is None)
        if ok is None:
            return  # crashed before the ack: the broker will redeliver
        published = _published_at(message)
        info["received"] = received  # arrival at this consumer: start - received is the wait for a free slot
        self.records.append(Record(published or received, started, time.monotonic(), ok, error, info))

    async def _process(self, message: DeliveredMessage) -> tuple[bool | None, str | None, dict[str, Any]]:
        """Work, then ack (or reject); ``ok`` None means the consumer crashed before acknowledging."""
        props = message.header.properties
        info = {
            "consumer": self.name,
            "message_id": props.message_id,
            "correlation_id": props.correlation_id,
            "redelivered": bool(message.redelivered),
        }
        if message.redelivered:
            self.redelivered += 1
        if self.idempotent and props.message_id in self.seen:
            self.duplicates += 1
            await message.channel.basic_ack(delivery_tag(message))
            recorder.on_settle("ack", self.name, message)
            return True, None, {**info, "duplicate": True}
        await asyncio.sleep(self._sample())
        error = None
        if self.failure_rate and self._fail_rng.random() < self.failure_rate:
            error = "injected failure"
        elif self.handler is not None:
            try:
                await self.handler(message)
            except Exception as exc:  # the hook's failure is this message's failure
                error = f"handler failed: {exc!r}"
        if error is not None:
            self.failed += 1
            # basic.reject, not basic.nack: since RabbitMQ 4.3 only a reject says "processing failed" and
            # counts toward a quorum queue's delivery limit (a nack returns the message uncounted).
            await message.channel.basic_reject(delivery_tag(message), requeue=self.requeue_failed)
            recorder.on_settle("reject", self.name, message, requeue=self.requeue_failed)
            return False, error, info
        if self.crash_after is not None and self.processed + 1 >= self.crash_after:
            self.crashed = True  # the work is done (side effects happened) but the ack never leaves
            recorder.on_crash(self.name, message)
            await self.stop()
            return None, None, info
        if props.message_id:
            self.seen.add(props.message_id)
        await message.channel.basic_ack(delivery_tag(message))
        recorder.on_settle("ack", self.name, message)
        self.processed += 1
        return True, None, info

    def _open_span(self, message: DeliveredMessage, started: float) -> tracing.Span | None:
        """The consume span, after a span for the time the message sat in the queue (if known)."""
        props = message.header.properties
        if self.tracer is None or not props.correlation_id:
            return None
        header = (props.headers or {}).get(tracing.PARENT_AMQP_HEADER)
        parent = header if isinstance(header, str) else None
        published = _published_at(message)
        if published is not None:
            queued = tracing.Span(
                props.correlation_id, tracing.new_id()[:16], parent, f"queue {self.queue}", "queue", published, started
            )
            self.tracer.add(queued)
            parent = queued.span_id
        return self.tracer.start(self.name, "consume", props.correlation_id, parent)


def _published_at(message: DeliveredMessage) -> float | None:
    value = (message.header.properties.headers or {}).get(PUBLISHED_AT_HEADER)
    return value / 1e9 if isinstance(value, int) else None
