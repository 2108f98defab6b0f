"""A channel's consumers: basic.consume / basic.cancel, the direct reply-to consumer, and basic.qos.

Why: a consumer belongs to the channel that created it (its deliveries are numbered and acked there)
and dies with it, and basic.qos sets the prefetch the channel's consumers get. Keeping them in one place
gives the channel one object to release on close and one place that knows which queues to wake when
prefetch capacity frees up.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import errors, frames
from .consumer import Consumer
from .vhost import REPLY_TO

if TYPE_CHECKING:  # pragma: no cover
    from .channel import Channel


class Consumers:
    """The consumers of one channel, by consumer tag, and the prefetch limits basic.qos set."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.by_tag: dict[str, Consumer] = {}
        self.prefetch_consumer = 0  # given to each new consumer (basic.qos global=false)
        self.prefetch_global = 0  # shared by the channel's unacked deliveries (basic.qos global=true)
        self.reply_address: str | None = None  # this channel's direct reply-to address, while it consumes replies

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            spec.Basic.Qos: self._on_qos,
            spec.Basic.Consume: self._on_consume,
            spec.Basic.Cancel: self._on_cancel,
        }

    def redispatch(self) -> None:
        """Let every queue this channel consumes from push again (prefetch capacity or the socket freed up)."""
        for queue in {c.queue for c in self.by_tag.values() if c.queue is not None}:
            queue.dispatch()

    def cancelled_by_broker(self, consumer: Consumer) -> None:
        """The queue went away under a consumer: forget it and tell the client (basic.cancel)."""
        if self.by_tag.get(consumer.tag) is consumer:
            del self.by_tag[consumer.tag]
            channel = self.channel
            if channel.is_open and channel.conn.client_capabilities.get("consumer_cancel_notify"):
                channel.send(spec.Basic.Cancel(consumer.tag, True))

    def release(self) -> None:
        """The channel is closing: take every consumer off its queue."""
        for consumer in list(self.by_tag.values()):
            self._drop(consumer)
        self.by_tag.clear()

    def _on_qos(self, m: spec.Basic.Qos) -> None:
        if m.prefetch_size:
            raise errors.NotImplementedFeature(f"prefetch_size!=0 ({m.prefetch_size})", method=(60, 10))
        if m.global_ and self.channel.vhost.profile.global_qos:
            self.prefetch_global = m.prefetch_count
            self.redispatch()
        else:
            self.prefetch_consumer = m.prefetch_count
        self.channel.send(spec.Basic.QosOk())

    def _on_consume(self, m: spec.Basic.Consume) -> None:
        tag = m.consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)[:22]
        if tag in self.by_tag:
            raise errors.NotAllowed(f"attempt to reuse consumer tag '{tag}'", method=(60, 20))
        if m.queue == REPLY_TO:
            self._consume_replies(m, tag)
            return
        channel = self.channel
        queue = channel.vhost.queue(m.queue or "", channel.conn)
        if self.prefetch_global and queue.kind == "quorum":
            raise errors.NotImplementedFeature(f"queue '{queue.name}' in vhost '/' does not support global qos")
        consumer = queue.consumer_class(
            channel,
            queue,
            tag,
            frames.shortstr(tag),
            m.no_ack,
            m.exclusive,
            self.prefetch_consumer,
            dict(m.arguments or {}),
        )
        queue.add_consumer(consumer)
        self.by_tag[tag] = consumer
        if not m.nowait:
            channel.send(spec.Basic.ConsumeOk(tag))
        queue.dispatch()

    def _consume_replies(self, m: spec.Basic.Consume, tag: str) -> None:
        if not m.no_ack:
            raise errors.PreconditionFailed("reply consumer cannot acknowledge")
        if self.reply_address is not None:
            raise errors.PreconditionFailed("reply consumer already set")
        channel = self.channel
        consumer = Consumer(channel, None, tag, frames.shortstr(tag), True, False, 0, {})
        self.reply_address = channel.vhost.register_reply_consumer(consumer)
        self.by_tag[tag] = consumer
        if not m.nowait:
            channel.send(spec.Basic.ConsumeOk(tag))

    def _on_cancel(self, m: spec.Basic.Cancel) -> None:
        consumer = self.by_tag.pop(m.consumer_tag or "", None)
        if consumer is not None:
            self._drop(consumer)
        if not m.nowait:
            self.channel.send(spec.Basic.CancelOk(m.consumer_tag))

    def _drop(self, consumer: Consumer) -> None:
        if consumer.queue is None:
            self.channel.vhost.unregister_reply_consumer(self.reply_address or "")
            self.reply_address = None
        else:
            consumer.queue.remove_consumer(consumer)
