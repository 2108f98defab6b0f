"""The virtual host "/": exchanges, queues and bindings, routing of publishes, dead-lettering and
direct reply-to.

Why: it is the shared state every channel operates on, and it owns the rules that span objects
(exclusive ownership, equivalence checks, auto-delete, exchange-to-exchange routing, dead-lettering)
so channels stay a thin protocol layer and queues know nothing about exchanges. It decides when those
rules apply; RabbitMQ's texts of the equivalence checks are in equivalence.py, the x-death history a
dead-lettered message carries in xdeath.py.
"""

from __future__ import annotations

import secrets
from typing import Any

from . import equivalence, errors
from .declare import check_new_queue
from .exchange import TYPES, Exchange
from .flow import MemoryAlarm
from .message import Message
from .profiles import Profile
from .queue import Queue
from .queue_arguments import QUEUE_TYPES
from .quorum import QuorumQueue
from .stream import StreamQueue
from .xdeath import dead_lettered

PREDECLARED = (
    ("", "direct"),
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
)
REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_PREFIX = REPLY_TO + "."
_QUEUE_CLASSES = {"classic": Queue, "quorum": QuorumQueue, "stream": StreamQueue}


class VHost:
    """One virtual host: its exchanges, queues and bindings, and the rules that span them.

    Channels call it to declare, bind, delete and route; it enforces exclusive ownership, RabbitMQ's
    equivalence checks on redeclaration, auto-delete, exchange-to-exchange routing, dead-lettering (with
    the x-death history of the broker's profile) and direct reply-to. Queues know nothing of exchanges;
    the vhost connects them. A durable change is logged to the broker's store when one is attached.
    """

    name = "/"

    def __init__(self, memory: MemoryAlarm, profile: Profile) -> None:
        self.memory = memory
        self.profile = profile
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self.reply_consumers: dict[str, Any] = {}
        self.store: Any = None  # store.Store when the broker has a data directory: durable things are logged
        self.tap: Any = None  # a labkit.broker.tap.Tap while the broker records its side of a history
        for name, kind in PREDECLARED:
            self.exchanges[name] = Exchange(name, kind)

    # -- exchanges ------------------------------------------------------------------------------
    def exchange(self, name: str) -> Exchange:
        ex = self.exchanges.get(name)
        if ex is None:
            raise errors.NotFound(f"no exchange '{name}' in vhost '/'")
        return ex

    def exchange_declare(
        self,
        name: str,
        kind: str,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: dict[str, Any],
    ) -> Exchange:
        if passive:
            return self.exchange(name)
        if name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if name.startswith("amq."):
            raise errors.AccessRefused(f"exchange name '{name}' contains reserved prefix 'amq.*'")
        if kind not in TYPES:
            raise errors.CommandInvalid(f"unknown exchange type '{kind}'")
        existing = self.exchanges.get(name)
        if existing is None:
            existing = self.exchanges[name] = Exchange(name, kind, durable, auto_delete, internal, arguments)
            if durable and self.store is not None:
                self.store.exchange_declared(existing)
            return existing
        equivalence.check_exchange(existing, kind, durable, auto_delete, internal)
        return existing

    def exchange_delete(self, name: str, if_unused: bool) -> None:
        if name == "" or name.startswith("amq."):
            raise errors.AccessRefused(
                "operation not permitted on the default exchange"
                if name == ""
                else f"deletion of system exchange '{name}' in vhost '/' not allowed"
            )
        ex = self.exchanges.get(name)
        if ex is None:
            return
        if if_unused and ex.bindings:
            raise errors.PreconditionFailed(f"exchange '{name}' in vhost '/' in use")
        self._remove_exchange(ex)

    def _remove_exchange(self, ex: Exchange) -> None:
        del self.exchanges[ex.name]
        if self.store is not None:
            self.store.exchange_deleted(ex.name)
        for other in list(self.exchanges.values()):
            if other.unbind_all(ex):
                self._auto_delete_exchange(other)

    def _auto_delete_exchange(self, ex: Exchange) -> None:
        if ex.auto_delete and not ex.bindings and self.exchanges.get(ex.name) is ex:
            self._remove_exchange(ex)

    def exchange_bind(
        self, destination: str, source: str, routing_key: str, arguments: dict[str, Any], unbind: bool
    ) -> None:
        if "" in (destination, source):
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if unbind and (destination not in self.exchanges or source not in self.exchanges):
            return  # RabbitMQ 3.10.8 answers unbind-ok when either side is gone (observed)
        dest, src = self.exchange(destination), self.exchange(source)
        self._persist_binding(src, dest, routing_key, arguments, unbind)
        if unbind:
            if src.unbind(dest, routing_key, arguments):
                self._auto_delete_exchange(src)
        else:
            src.bind(dest, routing_key, arguments)

    def _persist_binding(
        self, src: Exchange, dest: Any, routing_key: str, arguments: dict[str, Any], unbind: bool
    ) -> None:
        """Log a binding whose two ends are durable (RabbitMQ's rule for durable bindings)."""
        if self.store is not None and src.durable and dest.durable and getattr(dest, "owner", None) is None:
            self.store.binding(src.name, dest, routing_key, arguments, unbind)

    # -- queues ---------------------------------------------------------------------------------
    def queue(self, name: str, conn: Any) -> Queue:
        """Look a queue up for ``conn``: 404 if missing, 405 if another connection owns it."""
        q = self.queues.get(name)
        if q is None:
            raise errors.NotFound(f"no queue '{name}' in vhost '/'")
        if q.owner is not None and q.owner is not conn:
            raise equivalence.locked(name)
        return q

    def queue_declare(
        self,
        conn: Any,
        name: str,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> Queue:
        if passive:
            q = self.queue(name, conn)
            q.touch()
            return q
        if not name:
            name = "amq.gen-" + secrets.token_urlsafe(16)[:22]
        elif name.startswith("amq."):
            raise errors.AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        durable = durable and not exclusive  # RabbitMQ: exclusive queues are never durable
        existing = self.queues.get(name)
        if existing is not None:
            equivalence.check_queue(existing, conn, durable, exclusive, auto_delete, arguments)
            existing.touch()
            return existing
        kind = arguments.get("x-queue-type", "classic")
        if kind not in QUEUE_TYPES:
            raise errors.PreconditionFailed(
                f"invalid arg 'x-queue-type' for queue '{name}' in vhost '/': \"unsupported queue type '{kind}'\""
            )
        check_new_queue(self.profile, name, kind, durable, exclusive, auto_delete, arguments)
        q = _QUEUE_CLASSES[kind](self, name, durable, conn if exclusive else None, auto_delete, arguments)
        self.queues[name] = q
        if durable and not exclusive and self.store is not None:
            self.store.queue_declared(q)
        return q

    def queue_bind(
        self, conn: Any, queue: str, exchange: str, routing_key: str, arguments: dict[str, Any], unbind: bool
    ) -> None:
        if exchange == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if unbind and (queue not in self.queues or exchange not in self.exchanges):
            return  # RabbitMQ 3.10.8 answers unbind-ok for a queue or exchange that is gone (observed)
        q = self.queue(queue, conn)
        ex = self.exchange(exchange)
        self._persist_binding(ex, q, routing_key, arguments, unbind)
        if unbind:
            if ex.unbind(q, routing_key, arguments):
                self._auto_delete_exchange(ex)
        else:
            ex.bind(q, routing_key, arguments)

    def queue_delete(self, conn: Any, name: str, if_unused: bool, if_empty: bool) -> int:
        q = self.queues.get(name)
        if q is None:
            return 0
        self.queue(name, conn)
        if if_unused and q.consumers:
            raise errors.PreconditionFailed(f"queue '{name}' in vhost '/' in use")
        count = q.message_count()
        if if_empty and count:
            raise errors.PreconditionFailed(f"queue '{name}' in vhost '/' not empty")
        self.delete_queue(q)
        return count

    def delete_queue(self, q: Queue) -> None:
        """Remove a queue and its bindings; its consumers get basic.cancel."""
        if self.queues.get(q.name) is not q:
            return
        del self.queues[q.name]
        if self.store is not None:
            self.store.queue_deleted(q.name)
        for ex in list(self.exchanges.values()):
            if ex.unbind_all(q):
                self._auto_delete_exchange(ex)
        for consumer in q.close():
            consumer.channel.cancelled_by_broker(consumer)

    def connection_closed(self, conn: Any) -> None:
        """Exclusive queues die with their owner connection."""
        for q in [q for q in self.queues.values() if q.owner is conn]:
            self.delete_queue(q)

    # -- routing --------------------------------------------------------------------------------
    def route(self, exchange: str, routing_key: str, msg: Message, by_broker: bool = False) -> list[Queue]:
        """Queues a publish reaches; ``by_broker`` (dead-lettering) may use internal exchanges."""
        if exchange == "":
            q = self.queues.get(routing_key)
            return [q] if q is not None else []
        ex = self.exchanges.get(exchange)
        if ex is None:
            raise errors.NotFound(f"no exchange '{exchange}' in vhost '/'")
        if ex.internal and not by_broker:
            raise errors.AccessRefused(f"cannot publish to internal exchange '{exchange}' in vhost '/'")
        dests = ex.route(routing_key, msg)
        if dests and all(d.__class__ is not Exchange for d in dests):
            return dests
        out: list[Queue] = []
        self._follow(ex, routing_key, msg, out, {ex.name})
        return out

    def _follow(self, ex: Exchange, routing_key: str, msg: Message, out: list[Any], seen: set[Any]) -> None:
        """Resolve exchange-to-exchange bindings; an exchange that routes nowhere hands the message
        to its alternate-exchange, if it has one."""
        dests = ex.route(routing_key, msg)
        alternate = self.exchanges.get(ex.arguments.get("alternate-exchange") or "\0")
        if not dests and alternate is not None and alternate.name not in seen:
            seen.add(alternate.name)
            self._follow(alternate, routing_key, msg, out, seen)
        for dest in dests:
            if dest.__class__ is Exchange:
                if dest.name not in seen:
                    seen.add(dest.name)
                    self._follow(dest, routing_key, msg, out, seen)
            elif dest not in out:
                out.append(dest)

    @staticmethod
    def enqueue(queues: list[Queue], msg: Message) -> bool:
        """Put a routed message into its queues; False if any queue refused it (overflow)."""
        if len(queues) == 1:
            return queues[0].publish(msg)
        accepted = True
        for q in queues:
            accepted = q.publish(msg.copy()) and accepted
        return accepted

    def dead_letter(self, queue: Queue, msg: Message, reason: str) -> None:
        """Republish to the queue's dead-letter exchange with x-death bookkeeping: from the x-death header
        (RabbitMQ 3.10) or from the broker's own history of this message (4.x, ``broker_side_deaths``)."""
        if self.tap is not None:
            self.tap.died(queue, msg, reason)
        if queue.dlx is None or queue.dlx not in self.exchanges:
            return
        dead, died_in = dead_lettered(queue, msg, reason, queue.dlx, self.profile.broker_side_deaths)
        targets = [q for q in self.route(queue.dlx, dead.routing_key, dead, by_broker=True) if q.name not in died_in]
        if targets:
            self.enqueue(targets, dead)

    # -- direct reply-to ------------------------------------------------------------------------
    def register_reply_consumer(self, consumer: Any) -> str:
        token = secrets.token_urlsafe(18)
        self.reply_consumers[token] = consumer
        return REPLY_PREFIX + token

    def unregister_reply_consumer(self, address: str) -> None:
        self.reply_consumers.pop(address[len(REPLY_PREFIX) :], None)

    def reply(self, routing_key: str, msg: Message) -> bool:
        """Deliver a reply straight to the requesting channel's reply consumer."""
        consumer = self.reply_consumers.get(routing_key[len(REPLY_PREFIX) :])
        if consumer is None:
            return False
        consumer.channel.deliver(consumer, msg)
        return True

    # -- lifecycle ------------------------------------------------------------------------------
    def clear(self) -> None:
        """Delete every queue and user exchange; predeclared exchanges lose their bindings."""
        for q in list(self.queues.values()):
            self.delete_queue(q)
        for name in [n for n in self.exchanges if n not in dict(PREDECLARED)]:
            self.exchanges.pop(name, None)
        for ex in self.exchanges.values():
            ex.bindings.clear()
            ex._changed()
