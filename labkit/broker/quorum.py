"""Quorum queues (x-queue-type quorum) over AMQP 0-9-1, as a variant of the classic queue.

Why a module of its own: the quorum rules that differ between RabbitMQ versions (the default delivery
limit, which returns count toward it, the x-delivery-count / x-acquired-count headers) are read from
the broker profile and kept apart from the classic queue's line and dispatch, which they reuse.
"""

from __future__ import annotations

from typing import Any

from .message import Message, clone_properties, writable_headers
from .queue import Queue


class QuorumQueue(Queue):
    """Quorum queue semantics over AMQP 0-9-1: durable only, delivery limit, x-delivery-count,
    returned messages go to the back of the queue."""

    kind = "quorum"

    def _delivery_limit(self, args: dict[str, Any]) -> int | None:
        """x-delivery-limit, else the profile's default (20 since RabbitMQ 4.0, none in 3.10). RabbitMQ
        does not validate the argument (3.10.8 declares -1 and "abc"); a non-integer sets no limit of its
        own, and since 4.0 a negative limit disables the default (4.0.1 release notes, rabbit_fifo)."""
        limit = args.get("x-delivery-limit")
        if isinstance(limit, bool) or not isinstance(limit, int):
            return self.vhost.profile.quorum_default_delivery_limit
        if limit < 0 and self.vhost.profile.quorum_default_delivery_limit is not None:
            return None
        return limit

    def _return(self, msgs: list[Message]) -> None:
        """Quorum queues (RabbitMQ 3.10) put returned messages at the back, in the order returned."""
        for msg in msgs:
            self.ready.append(msg)

    def _deliveries_counted(self, msg: Message) -> int:
        return msg.failures if self.vhost.profile.quorum_counts_v8 else msg.returns

    def outgoing(self, msg: Message, get: bool = False) -> Message:
        """RabbitMQ 3.10.8 (observed) sends x-delivery-count once a message has been returned, and on
        every basic.get (0 the first time: rabbit_fifo_client:dequeue adds it unconditionally). 4.3 (rabbit_fifo v8,
        rabbit_fifo_client:add_delivery_count_header) sends nothing the first time, then x-acquired-count
        (every return) and, once a delivery has failed, x-delivery-count (failed deliveries only)."""
        if self.vhost.profile.quorum_counts_v8:
            if not msg.returns:
                return msg
            props = clone_properties(msg.properties)
            headers = writable_headers(props)
            headers["x-acquired-count"] = msg.returns
            if msg.failures:
                headers["x-delivery-count"] = msg.failures
        else:
            if not msg.returns and not get:
                return msg
            props = clone_properties(msg.properties)
            writable_headers(props)["x-delivery-count"] = msg.returns
        return msg.with_properties(props)
