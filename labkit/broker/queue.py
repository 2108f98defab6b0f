"""Queues: a classic queue's life, from publish through delivery to consumers to ack, requeue, expiry
and deletion, with the limits RabbitMQ's queue arguments set (TTL, length limits with overflow modes,
dead-letter targets, single active consumer, x-expires).

Why: this is where the lessons about delivery guarantees live (requeue to the original position with
redelivered=True, dead-lettering when a message expires, overflows or is rejected, load leveling via
prefetch), so the semantics are kept in one place and expressed over plain deques. No per-message
tasks: one timer per queue expires the head, deliveries are pushed synchronously into the consuming
channel's write buffer. The ready line lives in labkit.broker.ready, consumer selection in
labkit.broker.consumer, argument checks in labkit.broker.queue_arguments; quorum and stream queues
vary this class (labkit.broker.quorum, labkit.broker.stream).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import errors
from .consumer import Consumer, next_consumer
from .expiration import effective_ttl
from .message import Message
from .queue_arguments import int_arg, overflow_mode
from .ready import PriorityReady, Ready
from .store import is_persistent

if TYPE_CHECKING:  # pragma: no cover
    from .vhost import VHost


class Queue:
    """A classic (optionally priority) queue; QuorumQueue and StreamQueue override what differs."""

    kind = "classic"
    consumer_class = Consumer

    def __init__(
        self, vhost: VHost, name: str, durable: bool, exclusive_owner: Any, auto_delete: bool, arguments: dict[str, Any]
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = dict(arguments)
        args = self.arguments
        self.ttl_ms = int_arg(args, "x-message-ttl", name, 0)
        self.max_length = int_arg(args, "x-max-length", name, 0)
        self.max_bytes = int_arg(args, "x-max-length-bytes", name, 0)
        self.overflow = overflow_mode(args, name)
        self.dlx = args.get("x-dead-letter-exchange")
        self.dlrk = args.get("x-dead-letter-routing-key")
        self.delivery_limit = self._delivery_limit(args)
        max_priority = int_arg(args, "x-max-priority", name, 0, 255)
        self.ready: Ready | PriorityReady = PriorityReady(max_priority) if max_priority else Ready()
        self.consumers: deque[Consumer] = deque()
        self.prioritized = False  # some consumer has a non-zero x-priority
        self.had_consumer = False
        self.ready_bytes = 0
        self.unacked = 0
        self.unacked_bytes = 0
        self.next_seq = 0
        self.deleted = False
        self.stats = [0, 0, 0]  # published, delivered, acked
        self.single_active = bool(args.get("x-single-active-consumer"))
        self.expires_ms = int_arg(args, "x-expires", name, 1)
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.touch()

    def _delivery_limit(self, args: dict[str, Any]) -> int | None:
        """Only quorum queues count deliveries (vhost.declare refuses x-delivery-limit elsewhere)."""
        return None

    # -- publishing -----------------------------------------------------------------------------
    def publish(self, msg: Message) -> bool:
        """Enqueue; False when x-overflow reject-publish refuses it (the publisher gets a nack)."""
        if self.overflow != "drop-head" and self._full(msg.size):
            if self.overflow == "reject-publish-dlx":
                self.vhost.dead_letter(self, msg, "maxlen")
            return False
        self.next_seq += 1
        msg.seq = self.next_seq
        now = self._loop.time()
        ttl = effective_ttl(self.ttl_ms, msg.expiration)
        if ttl is not None:
            msg.expires_at = now + ttl / 1000.0
        self.stats[0] += 1
        self.ready.append(msg)
        self.ready_bytes += msg.size
        self.vhost.memory.add(msg.size)
        store = self.vhost.store
        if store is not None and self.durable and not msg.store_id and is_persistent(msg.header):
            store.add(self.name, msg)
        self.dispatch(now)  # first: a message a consumer takes at once never counts against x-max-length
        if self.overflow == "drop-head":
            while self._over_limit():
                self._drop(self.ready.popleft(), "maxlen")
        if ttl is not None:
            self._expire()
        return True

    def _full(self, size: int) -> bool:
        return (self.max_length is not None and len(self.ready) >= self.max_length) or (
            self.max_bytes is not None and self.ready_bytes + size > self.max_bytes
        )

    def _over_limit(self) -> bool:
        return (self.max_length is not None and len(self.ready) > self.max_length) or (
            self.max_bytes is not None and self.ready_bytes > self.max_bytes
        )

    def _release(self, msg: Message) -> None:
        """A message leaves this queue for good: its bytes, and its record in the log if persisted."""
        self.vhost.memory.add(-msg.size)
        if msg.store_id and self.vhost.store is not None:
            self.vhost.store.remove(self.name, msg)

    def _drop(self, msg: Message, reason: str | None) -> None:
        """Remove a message that was ready for good, dead-lettering it when there is a reason."""
        self.ready_bytes -= msg.size
        self._release(msg)
        if reason:
            self.vhost.dead_letter(self, msg, reason)

    # -- delivering -----------------------------------------------------------------------------
    def dispatch(self, now: float | None = None) -> None:
        """Push ready messages to consumers with capacity, strictly round-robin.

        ``now`` lets publish() use its own timestamp, so a message with TTL 0 still reaches a
        consumer that can take it at once (RabbitMQ: "deliver now or never")."""
        consumers, ready = self.consumers, self.ready
        if not consumers or not len(ready):
            return
        if now is None:
            now = self._loop.time()
        while len(ready):
            consumer = next_consumer(consumers, self.single_active, self.prioritized)
            if consumer is None:
                return
            msg = ready.popleft()
            self.ready_bytes -= msg.size
            if msg.expires_at is not None and msg.expires_at < now:
                self._release(msg)
                self.vhost.dead_letter(self, msg, "expired")
                continue
            self.stats[1] += 1
            if not consumer.no_ack:
                consumer.unacked += 1
                self.unacked += 1
                self.unacked_bytes += msg.size
            consumer.channel.deliver(consumer, msg)
            if consumer.no_ack:
                self._release(msg)
            if not consumers:  # the delivery closed the channel (e.g. a write failure)
                return

    def get(self, no_ack: bool) -> Message | None:
        """basic.get: the head message (expired heads are dead-lettered first)."""
        self.touch()
        self._expire()
        if not len(self.ready):
            return None
        msg = self.ready.popleft()
        self.ready_bytes -= msg.size
        self.stats[1] += 1
        if no_ack:
            self._release(msg)
        else:
            self.unacked += 1
            self.unacked_bytes += msg.size
        return msg

    def outgoing(self, msg: Message, get: bool = False) -> Message:
        """The message as sent to a consumer or basic.get (quorum and stream queues add headers)."""
        return msg

    # -- settling -------------------------------------------------------------------------------
    def settle(self, msg: Message) -> None:
        """An unacked message leaves for good (ack, or reject without requeue)."""
        self.unacked -= 1
        self.unacked_bytes -= msg.size
        if not self.deleted:  # a deleted queue released its unacked bytes when it was deleted
            self._release(msg)

    def ack(self, msg: Message) -> None:
        self.settle(msg)
        self.stats[2] += 1

    def reject(self, msg: Message) -> None:
        self.settle(msg)
        if not self.deleted:
            self.vhost.dead_letter(self, msg, "rejected")

    def requeue(self, msgs: Iterable[Message], failed: bool = True) -> None:
        """Return unacked messages to their original positions, marked redelivered. ``failed`` is False
        for an explicit return (basic.nack or basic.recover with requeue), which RabbitMQ 4.3's quorum
        queues do not count toward the delivery limit."""
        back = []
        for msg in msgs:
            self.unacked -= 1
            self.unacked_bytes -= msg.size
            msg.redelivered = True
            msg.returns += 1
            msg.failures += failed
            if self.deleted:
                continue
            if self.delivery_limit is not None and self._deliveries_counted(msg) > self.delivery_limit:
                self._release(msg)
                self.vhost.dead_letter(self, msg, "delivery_limit")
            else:
                back.append(msg)
                self.ready_bytes += msg.size
        if back:
            self._return(back)
            self.dispatch()
            self._expire()

    def _deliveries_counted(self, msg: Message) -> int:
        return msg.returns

    def _return(self, msgs: list[Message]) -> None:
        """Classic queues put returned messages back at their original positions."""
        msgs.sort(key=lambda m: m.seq)
        self.ready.requeue(msgs)

    # -- expiry ---------------------------------------------------------------------------------
    def _expire(self) -> None:
        """Dead-letter expired messages at the head and arm a timer for the next deadline."""
        ready = self.ready
        now = self._loop.time()
        head = ready.head()
        while head is not None and head.expires_at is not None and head.expires_at <= now:
            self._drop(ready.popleft(), "expired")
            head = ready.head()
        if head is not None and head.expires_at is not None:
            timer = self._timer
            if timer is None or timer.when() > head.expires_at or timer.cancelled():
                if timer is not None:
                    timer.cancel()
                self._timer = self._loop.call_at(head.expires_at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self.deleted:
            self._expire()

    # -- consumers and lifecycle ----------------------------------------------------------------
    def add_consumer(self, consumer: Consumer) -> None:
        """Register (the caller sends consume-ok, then calls dispatch())."""
        if any(c.exclusive for c in self.consumers) or (consumer.exclusive and self.consumers):
            raise errors.AccessRefused(f"queue '{self.name}' in vhost '/' in exclusive use")
        self.consumers.append(consumer)
        self.had_consumer = True
        self.prioritized = any(c.priority for c in self.consumers)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def remove_consumer(self, consumer: Consumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        self.prioritized = any(c.priority for c in self.consumers)
        if self.auto_delete and not self.consumers and not self.deleted:
            self.vhost.delete_queue(self)
        elif self.consumers:
            self.dispatch()  # with x-single-active-consumer the next consumer takes over the backlog
        self.touch()

    def touch(self) -> None:
        """x-expires: (re)start the countdown to deletion while the queue is unused (no consumers,
        no basic.get, no redeclaration)."""
        if self.expires_ms is None or self.deleted or self.consumers:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = self._loop.call_later(self.expires_ms / 1000.0, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if not self.consumers and not self.deleted:
            self.vhost.delete_queue(self)

    def message_count(self) -> int:
        self._expire()
        return len(self.ready)

    def declared_count(self) -> int:
        """message_count in declare-ok."""
        return self.message_count()

    def purge(self) -> int:
        msgs = self.ready.clear()
        for msg in msgs:
            self._release(msg)
        self.ready_bytes = 0
        return len(msgs)

    def close(self) -> list[Consumer]:
        """Mark deleted, drop ready messages and hand back the consumers to cancel."""
        self.deleted = True
        for timer in (self._timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._idle_timer = None
        self.purge()
        self.vhost.memory.add(-self.unacked_bytes)  # their later acks will not count again
        consumers = list(self.consumers)
        self.consumers.clear()
        return consumers
