"""Consumers of a queue: a basic.consume registration with its prefetch credit, and the order in which
a queue serves its consumers.

Why a module of its own: which consumer gets the next message (strict round-robin, x-priority with
round-robin among equals, x-single-active-consumer) is a lesson of its own (load leveling via
prefetch), and it is decided from the consumers alone, apart from the queue's messages.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:  # pragma: no cover
    from .channel import Channel
    from .queue import Queue


class Consumer:
    """A basic.consume registration: the queue pushes to it while it has prefetch capacity."""

    __slots__ = (
        "channel",
        "queue",
        "tag",
        "tag_bytes",
        "no_ack",
        "exclusive",
        "limit",
        "unacked",
        "arguments",
        "priority",
    )

    def __init__(
        self,
        channel: Channel,
        queue: Queue | None,  # None: the direct reply-to consumer
        tag: str,
        tag_bytes: bytes,
        no_ack: bool,
        exclusive: bool,
        limit: int,
        arguments: dict[str, Any],
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.tag_bytes = tag_bytes
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.limit = limit
        self.unacked = 0
        self.arguments = arguments
        self.priority = arguments.get("x-priority", 0)
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise errors.PreconditionFailed(f"invalid arg 'x-priority' for consumer: {self.priority!r}")

    def can_take(self) -> bool:
        if self.no_ack:
            return self.channel.can_deliver(False)
        return (not self.limit or self.unacked < self.limit) and self.channel.can_deliver(True)


def next_consumer(consumers: deque[Consumer], single_active: bool, prioritized: bool) -> Consumer | None:
    """The consumer to deliver the next message to, None if the one(s) eligible have no capacity; rotates
    ``consumers`` so that equals are served strictly round-robin.

    x-single-active-consumer: the earliest consumer gets everything. x-priority (``prioritized``: some
    consumer has a non-zero one): the highest priority with capacity, round-robin among equals."""
    if single_active:
        consumer = consumers[0]
        return consumer if consumer.can_take() else None
    if prioritized:
        best: Consumer | None = None
        for candidate in consumers:
            if (best is None or candidate.priority > best.priority) and candidate.can_take():
                best = candidate
        if best is not None:
            consumers.remove(best)
            consumers.append(best)
        return best
    for _ in range(len(consumers)):
        consumer = consumers[0]
        consumers.rotate(-1)
        if consumer.can_take():
            return consumer
    return None
