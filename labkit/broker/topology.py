"""The Exchange and Queue methods of a channel: declare, bind, unbind, purge and delete.

Why: these methods change the vhost's topology, not the channel's own state; the vhost holds the rules
(equivalence, exclusivity, RabbitMQ's error texts). What is left for the channel is decoding the method's
fields into a vhost call and answering with its -ok (unless the client set nowait).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

if TYPE_CHECKING:  # pragma: no cover
    from .channel import Channel


class Topology:
    """Answers a channel's exchange.* and queue.* methods through its vhost."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            spec.Exchange.Declare: self._on_exchange_declare,
            spec.Exchange.Delete: self._on_exchange_delete,
            spec.Exchange.Bind: self._on_exchange_bind,
            spec.Exchange.Unbind: self._on_exchange_bind,
            spec.Queue.Declare: self._on_queue_declare,
            spec.Queue.Bind: self._on_queue_bind,
            spec.Queue.Unbind: self._on_queue_bind,
            spec.Queue.Purge: self._on_queue_purge,
            spec.Queue.Delete: self._on_queue_delete,
        }

    def _on_exchange_declare(self, m: spec.Exchange.Declare) -> None:
        self.channel.vhost.exchange_declare(
            m.exchange, m.exchange_type, m.passive, m.durable, m.auto_delete, m.internal, dict(m.arguments or {})
        )
        if not m.nowait:
            self.channel.send(spec.Exchange.DeclareOk())

    def _on_exchange_delete(self, m: spec.Exchange.Delete) -> None:
        self.channel.vhost.exchange_delete(m.exchange, m.if_unused)
        if not m.nowait:
            self.channel.send(spec.Exchange.DeleteOk())

    def _on_exchange_bind(self, m: spec.Exchange.Bind | spec.Exchange.Unbind) -> None:
        unbind = isinstance(m, spec.Exchange.Unbind)
        self.channel.vhost.exchange_bind(m.destination, m.source, m.routing_key, dict(m.arguments or {}), unbind)
        if not m.nowait:
            self.channel.send(spec.Exchange.UnbindOk() if unbind else spec.Exchange.BindOk())

    def _on_queue_declare(self, m: spec.Queue.Declare) -> None:
        channel = self.channel
        q = channel.vhost.queue_declare(
            channel.conn, m.queue, m.passive, m.durable, m.exclusive, m.auto_delete, dict(m.arguments or {})
        )
        if not m.nowait:
            channel.send(spec.Queue.DeclareOk(q.name, q.declared_count(), len(q.consumers)))

    def _on_queue_bind(self, m: spec.Queue.Bind | spec.Queue.Unbind) -> None:
        channel = self.channel
        unbind = isinstance(m, spec.Queue.Unbind)
        channel.vhost.queue_bind(channel.conn, m.queue, m.exchange, m.routing_key, dict(m.arguments or {}), unbind)
        if isinstance(m, spec.Queue.Unbind):  # queue.unbind has no nowait bit
            channel.send(spec.Queue.UnbindOk())
        elif not m.nowait:
            channel.send(spec.Queue.BindOk())

    def _on_queue_purge(self, m: spec.Queue.Purge) -> None:
        channel = self.channel
        count = channel.vhost.queue(m.queue, channel.conn).purge()
        if not m.nowait:
            channel.send(spec.Queue.PurgeOk(count))

    def _on_queue_delete(self, m: spec.Queue.Delete) -> None:
        channel = self.channel
        count = channel.vhost.queue_delete(channel.conn, m.queue, m.if_unused, m.if_empty)
        if not m.nowait:
            channel.send(spec.Queue.DeleteOk(count))
