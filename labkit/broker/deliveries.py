"""A channel's deliveries: delivery tags, the unacked ledger, and settling it (ack / nack / reject / recover).

Why: a delivery tag means something only on the channel that sent it, and a message delivered with
acknowledgement stays the channel's until the client settles it (RabbitMQ, rabbit_channel.erl). Settling
frees prefetch capacity, so the queues are told to push more; in a transaction the tags are taken at
once and the messages settled at tx.commit (see tx.py). When the channel closes, whatever is still
unacked goes back to its queue at its original position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import errors, frames
from .consumer import Consumer
from .message import Message
from .queue import Queue

if TYPE_CHECKING:  # pragma: no cover
    from .channel import Channel

#: an unacked delivery: its queue, the message, and the consumer it went to (None for basic.get)
Unacked = tuple[Queue | None, Message, Consumer | None]


class Deliveries:
    """Numbers a channel's deliveries and holds the unacked ones, by delivery tag, until they are settled."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.next_tag = 0
        self.unacked: dict[int, Unacked] = {}
        self.global_unacked = 0  # unacked consumer deliveries, counted against the global prefetch

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            spec.Basic.Get: self._on_get,
            spec.Basic.Nack: self._on_nack,
            spec.Basic.Reject: self._on_reject,
            spec.Basic.Recover: self._on_recover,
            spec.Basic.RecoverAsync: self._on_recover,
        }

    # -- delivering -----------------------------------------------------------------------------
    def deliver(self, consumer: Consumer, msg: Message) -> None:
        """Push one message to a consumer (called by the queue, which already counted it)."""
        self.next_tag += 1
        tag = self.next_tag
        queue = consumer.queue
        if not consumer.no_ack:
            self.unacked[tag] = (queue, msg, consumer)
            self.global_unacked += 1
        out = queue.outgoing(msg) if queue is not None else msg
        fields = frames.deliver_fields(consumer.tag_bytes, tag, msg.redelivered, out.exchange, out.routing_key)
        channel = self.channel
        conn = channel.conn
        conn.write_frames(
            frames.delivery_frames(channel.number, frames.DELIVER, fields, out.header, out.body, conn.frame_max)
        )

    def _on_get(self, m: spec.Basic.Get) -> None:
        channel = self.channel
        conn = channel.conn
        queue = channel.vhost.queue(m.queue or "", conn)
        msg = queue.get(m.no_ack)
        if msg is None:
            channel.send(spec.Basic.GetEmpty())
            return
        self.next_tag += 1
        if not m.no_ack:
            self.unacked[self.next_tag] = (queue, msg, None)
        out = queue.outgoing(msg, get=True)
        fields = frames.get_ok_fields(self.next_tag, msg.redelivered, out.exchange, out.routing_key, len(queue.ready))
        conn.write_frames(
            frames.delivery_frames(channel.number, frames.GET_OK, fields, out.header, out.body, conn.frame_max)
        )

    # -- settling -------------------------------------------------------------------------------
    def ack(self, tag: int, multiple: bool) -> None:
        if not self._settle_later(tag, multiple, self._acked):
            self._acked(self._take(tag, multiple), freed=True)

    def _on_nack(self, m: spec.Basic.Nack) -> None:
        # RabbitMQ 4.3: nack with requeue is an explicit return, not a failed delivery
        settle = lambda taken: self._settle(taken, m.requeue, failed=False)  # noqa: E731
        if not self._settle_later(m.delivery_tag or 0, m.multiple, settle):
            self._settle(self._take(m.delivery_tag or 0, m.multiple), m.requeue, failed=False, freed=True)

    def _on_reject(self, m: spec.Basic.Reject) -> None:
        settle = lambda taken: self._settle(taken, m.requeue)  # noqa: E731
        if not self._settle_later(m.delivery_tag or 0, False, settle):
            self._settle(self._take(m.delivery_tag or 0, False), m.requeue, freed=True)

    def _on_recover(self, m: spec.Basic.Recover | spec.Basic.RecoverAsync) -> None:
        taken = self._take(0, True)
        _requeue(taken, failed=False)
        if isinstance(m, spec.Basic.Recover):
            self.channel.send(spec.Basic.RecoverOk())
        self._after_settle(taken)

    def _pop(self, tag: int, multiple: bool) -> dict[int, Unacked]:
        """Remove and return, by tag, the unacked deliveries an ack/nack/reject refers to."""
        unacked = self.unacked
        if multiple and tag == 0:
            taken = dict(unacked)
            unacked.clear()
        elif tag not in unacked:
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
        elif multiple:
            taken = {t: unacked.pop(t) for t in [t for t in unacked if t <= tag]}
        else:
            taken = {tag: unacked.pop(tag)}
        return taken

    def _take(self, tag: int, multiple: bool) -> list[Any]:
        """Remove the deliveries an ack/nack/reject refers to and free their prefetch slots."""
        taken = list(self._pop(tag, multiple).values())
        self._free(taken)
        return taken

    def _free(self, taken: list[Any]) -> None:
        for _queue, _msg, consumer in taken:
            if consumer is not None:
                consumer.unacked -= 1
                self.global_unacked -= 1

    def _settle_later(self, tag: int, multiple: bool, settle: Callable[[list[Any]], None]) -> bool:
        """In a transaction: take the tags now, settle at commit. False outside a transaction."""
        tx = self.channel.tx
        if tx is None:
            return False
        tx.settlements.append((settle, self._pop(tag, multiple)))
        return True

    def _acked(self, taken: list[Any], freed: bool = False) -> None:
        if not freed:
            self._free(taken)
        for queue, msg, _consumer in taken:
            queue.ack(msg)
        self._after_settle(taken)

    def _settle(self, taken: list[Any], requeue: bool, failed: bool = True, freed: bool = False) -> None:
        if not freed:
            self._free(taken)
        if requeue:
            _requeue(taken, failed)
        else:
            for queue, msg, _consumer in taken:
                queue.reject(msg)
        self._after_settle(taken)

    def _after_settle(self, taken: list[Any]) -> None:
        """Freed prefetch capacity: let the queues push more."""
        consumers = self.channel.consumers
        if consumers.prefetch_global:
            consumers.redispatch()
            return
        if len(taken) == 1:
            queue = taken[0][0]
            if not queue.deleted:
                queue.dispatch()
            return
        for queue in {entry[0] for entry in taken}:
            if not queue.deleted:
                queue.dispatch()

    # -- transactions and closing ---------------------------------------------------------------
    def restore(self, held: dict[int, Unacked]) -> None:
        """tx.rollback: deliveries whose settlement was undone are unacked again, in tag order."""
        if held:
            self.unacked = dict(sorted({**self.unacked, **held}.items()))

    def requeue_all(self, held: dict[int, Unacked]) -> None:
        """The channel is closing: every unacked delivery (and any ``held`` by an open transaction)
        goes back to its queue at its original position."""
        self.unacked.update(held)
        taken = list(self.unacked.values())
        self.unacked.clear()
        _requeue(taken)


def _requeue(taken: list[Any], failed: bool = True) -> None:
    by_queue: dict[Queue, list[Message]] = {}
    for queue, msg, _consumer in taken:
        by_queue.setdefault(queue, []).append(msg)
    for queue, msgs in by_queue.items():
        queue.requeue(msgs, failed)
