"""Poison messages: retry with a delay, park after N attempts, inspect and replay the dead-letter queue.

Why: a message that always fails (a malformed order, a bug for one customer) must not be retried forever,
block the queue or be dropped silently. The standard answer is built from broker features only
(RabbitMQ's dead-letter exchanges and TTL), so it works the same on both of the course's brokers:

    work  --reject-->  work.retry (x-message-ttl = delay)  --expired-->  work      (try again later)
    after max_attempts: the consumer publishes the message to work.dlq and acks it (parked)

The broker counts the trips in the message's ``x-death`` header (one entry per queue and reason, with a
count), so the attempt number needs no state in the consumer: attempt = 1 + times rejected from ``work``.

    topo = RetryTopology("orders", delay_ms=50, max_attempts=3)
    await topo.declare(channel)
    worker = await lab.consumer(topo.queue, declare=False, requeue_failed=False, handler=topo.guard(handle))
    letters = await inspect(channel, topo.dlq)     # look without taking
    await replay(channel, topo.dlq, topo.queue)    # after the fix: send them back

The alternative without a consumer-side counter is a quorum queue with ``x-delivery-limit``
(:func:`delivery_limited_queue`): the broker dead-letters a message after limit + 1 deliveries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from labkit._validate import integer, queue_name
from labkit.lifecycle import delivery_tag
from labkit.queues import declare_run_queue

__all__ = [
    "DEATH_HEADERS",
    "DeadLetter",
    "RetryTopology",
    "attempts",
    "deaths",
    "delivery_limited_queue",
    "inspect",
    "replay",
    "take_all",
]

#: Headers the broker adds when it dead-letters a message (removed on replay: a replayed message starts over).
DEATH_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


_name = queue_name


def deaths(message: DeliveredMessage) -> dict[tuple[str, str], int]:
    """The message's ``x-death`` header as ``{(queue, reason): count}`` (empty if it never died)."""
    headers: dict[str, Any] = message.header.properties.headers or {}
    return {(str(d.get("queue")), str(d.get("reason"))): int(d.get("count", 1)) for d in headers.get("x-death") or ()}


def attempts(message: DeliveredMessage, queue: str) -> int:
    """Which attempt this delivery from ``queue`` is: 1 + the times it was rejected from ``queue``."""
    return 1 + deaths(message).get((_name("queue", queue), "rejected"), 0)


@dataclass
class RetryTopology:
    """The queues ``name``, ``name.retry`` (the delay) and ``name.dlq`` (the parking lot)."""

    name: str
    delay_ms: int = 100
    max_attempts: int = 3
    #: filled by :meth:`guard`: every attempt the guarded handler made, as ``(message_id, attempt, ok)``
    log: list[tuple[str, int, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _name("name", self.name)
        integer("delay_ms", self.delay_ms, 1)
        integer("max_attempts", self.max_attempts, 1)

    @property
    def queue(self) -> str:
        return self.name

    @property
    def retry_queue(self) -> str:
        return f"{self.name}.retry"

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    async def declare(self, channel: aiormq.abc.AbstractChannel) -> None:
        """Declare the three queues, per-run (durable with x-expires), dead-lettering through the default
        exchange, so no exchanges are needed."""
        await declare_run_queue(
            channel, self.queue, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.retry_queue}
        )
        await declare_run_queue(
            channel,
            self.retry_queue,
            arguments={
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.queue,
                "x-message-ttl": self.delay_ms,
            },
        )
        await declare_run_queue(channel, self.dlq)

    async def delete(self, channel: aiormq.abc.AbstractChannel) -> None:
        for queue in (self.queue, self.retry_queue, self.dlq):
            await channel.queue_delete(queue)

    def guard(
        self, handler: Callable[[DeliveredMessage], Awaitable[Any]]
    ) -> Callable[[DeliveredMessage], Awaitable[Any]]:
        """Wrap a consumer's handler: a failure is re-raised (the consumer rejects it into the delay
        queue) until the last attempt, which is parked in the DLQ with ``x-attempts`` and ``x-error``
        headers instead (and acked). Use with ``requeue_failed=False``."""
        if not callable(handler):
            raise ValueError(f"handler must be an async function handler(message), got {handler!r}")

        async def guarded(message: DeliveredMessage) -> Any:
            attempt = attempts(message, self.queue)
            message_id = str(message.header.properties.message_id)
            try:
                result = await handler(message)
            except Exception as exc:
                self.log.append((message_id, attempt, False))
                if attempt < self.max_attempts:
                    raise
                await _publish_copy(
                    message.channel,
                    message,
                    self.dlq,
                    {"x-attempts": attempt, "x-error": repr(exc)[:200]},
                    keep_deaths=True,
                )
                return None
            self.log.append((message_id, attempt, True))
            return result

        return guarded

    def attempts_of(self, message_id: str) -> int:
        """How many times the guarded handler ran for ``message_id``."""
        return sum(1 for m, _, _ in self.log if m == message_id)


async def delivery_limited_queue(channel: aiormq.abc.AbstractChannel, queue: str, dlq: str, limit: int) -> None:
    """Declare a quorum queue that dead-letters a message to ``dlq`` after ``limit`` + 1 deliveries
    (each basic.reject with requeue counts; since RabbitMQ 4.3 a basic.nack does not), and ``dlq`` as a per-run queue. Quorum queues are durable: delete both
    when done."""
    integer("limit", limit, 0)
    await declare_run_queue(channel, _name("dlq", dlq))
    await channel.queue_declare(
        _name("queue", queue),
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dlq,
        },
    )


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue, summarised for a person deciding what to do with it."""

    message_id: str | None
    body: bytes
    first_death: str | None  # "reason in queue", e.g. "rejected in orders"
    deaths: dict[tuple[str, str], int]
    headers: dict[str, Any]


async def take_all(
    channel: aiormq.abc.AbstractChannel, queue: str, *, ack: bool = True, limit: int = 100_000
) -> list[DeliveredMessage]:
    """Get every ready message of ``queue`` (up to ``limit``) with basic.get. ``ack=False`` leaves them
    unacknowledged: the caller acks or rejects each (closing the channel returns them to the queue)."""
    _name("queue", queue)
    integer("limit", limit, 1)
    messages: list[DeliveredMessage] = []
    while len(messages) < limit:
        message = await channel.basic_get(queue, no_ack=ack)
        if not isinstance(message.delivery, Basic.GetOk):
            break
        messages.append(message)
    return messages


async def inspect(channel: aiormq.abc.AbstractChannel, dlq: str, limit: int = 1000) -> list[DeadLetter]:
    """Look at the messages in ``dlq`` without removing them (they are taken, read and requeued, and
    keep their places)."""
    messages = await take_all(channel, dlq, ack=False, limit=limit)
    letters = []
    for m in messages:
        headers: dict[str, Any] = dict(m.header.properties.headers or {})
        first = headers.get("x-first-death-reason")
        letters.append(
            DeadLetter(
                m.header.properties.message_id,
                bytes(m.body),
                f"{first} in {headers.get('x-first-death-queue')}" if first else None,
                deaths(m),
                headers,
            )
        )
    if messages:
        await channel.basic_nack(delivery_tag(messages[-1]), multiple=True, requeue=True)
    return letters


async def replay(
    channel: aiormq.abc.AbstractChannel,
    dlq: str,
    queue: str,
    select: Callable[[DeliveredMessage], bool] | None = None,
    limit: int = 1000,
) -> int:
    """Move the messages of ``dlq`` (those ``select`` accepts, all by default) back to ``queue`` with their
    death headers removed, so they start over at attempt 1; return how many moved. Each is published
    (confirmed, if the channel has confirms) before it is acked, so a crash in between duplicates it
    rather than losing it."""
    _name("queue", queue)
    moved = 0
    for m in await take_all(channel, dlq, ack=False, limit=limit):
        if select is None or select(m):
            await _publish_copy(channel, m, queue, {}, keep_deaths=False)
            await channel.basic_ack(delivery_tag(m))
            moved += 1
        else:
            await channel.basic_nack(delivery_tag(m), requeue=True)
    return moved


async def _publish_copy(
    channel: aiormq.abc.AbstractChannel,
    message: DeliveredMessage,
    queue: str,
    extra: dict[str, Any],
    *,
    keep_deaths: bool,
) -> None:
    """Publish ``message`` again to ``queue`` (default exchange) with its properties and ``extra`` headers."""
    props = message.header.properties
    headers = {k: v for k, v in (props.headers or {}).items() if keep_deaths or k not in DEATH_HEADERS}
    headers.update(extra)
    copy = Basic.Properties(
        message_id=props.message_id,
        correlation_id=props.correlation_id,
        content_type=props.content_type,
        delivery_mode=props.delivery_mode,
        timestamp=props.timestamp,
        headers=headers,
    )
    await channel.basic_publish(bytes(message.body), exchange="", routing_key=queue, properties=copy)
