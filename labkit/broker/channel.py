"""One AMQP channel: content assembly, the Exchange/Queue/Basic/Confirm methods, delivery tags,
prefetch, acknowledgements and publisher confirms.

Why: the channel is where a client's view of the broker lives (its delivery tags, its unacked
messages, its consumers, its confirm sequence). Channel errors (403/404/405/406) close only this
channel; its unacked messages go back to their queues at their original positions.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import errors, frames
from .auth import WRITE, method_checks
from .message import EXPIRATION_FLAG, REPLY_TO_FLAG, USER_ID_FLAG, Message, clone_properties
from .profiles import MAX_MESSAGE_SIZE
from .queue import Consumer, Queue, validate_expiration
from .tx import Transaction
from .vhost import REPLY_PREFIX, REPLY_TO, VHost

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection


class ChannelState(enum.Enum):
    OPEN = "open"  # methods and content are handled
    CLOSING = "closing"  # the broker sent channel.close (a channel error) and waits for close-ok
    CLOSED = "closed"  # closed by the client, by close-ok, or with its connection; its number is free again


OPEN, CLOSING, CLOSED = ChannelState.OPEN, ChannelState.CLOSING, ChannelState.CLOSED
# Which state may follow which. Leaving OPEN releases the channel's consumers and unacked messages once.
CHANNEL_TRANSITIONS: dict[ChannelState, frozenset[ChannelState]] = {
    OPEN: frozenset({CLOSING, CLOSED}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
}


class Channel:
    """One numbered channel of a connection: what a client's channel sees of the broker.

    It assembles publishes from their method, header and body frames and routes them through its vhost,
    numbers deliveries with its own delivery tags, enforces prefetch (per consumer and, where the profile
    allows it, global), settles acks/nacks/rejects (at once, or at tx.commit), and sends publisher confirms
    once per batch of input. A channel error (403/404/405/406) closes only this channel (state CLOSING until
    the client's close-ok); its unacked messages go back to their queues at their original positions.
    """

    def __init__(self, conn: Connection, number: int) -> None:
        self.conn = conn
        self.vhost: VHost = conn.vhost
        self._writable: set[str] = set()  # exchanges this restricted user may publish to (checked once)
        self.number = number
        self.state: ChannelState = OPEN
        self.confirm = False
        self.tx: Transaction | None = None
        self.max_message_size = conn.broker.max_message_size
        self._oversized = 0  # size of a publish being discarded because it exceeds max_message_size
        self.publish_seq = 0
        self.pending_confirms: list[tuple[int, bool]] = []
        self.next_tag = 0
        self.unacked: dict[int, tuple[Queue | None, Message, Consumer | None]] = {}
        self.consumers: dict[str, Consumer] = {}
        self.prefetch_consumer = 0
        self.prefetch_global = 0
        self.global_unacked = 0
        self.reply_address: str | None = None
        self._publish: tuple[str, str, bool] | None = None
        self._header: bytes | None = None
        self._body: list[bytes] = []
        self._remaining = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            spec.Basic.Nack: self._on_nack,
            spec.Basic.Reject: self._on_reject,
            spec.Basic.Consume: self._on_consume,
            spec.Basic.Cancel: self._on_cancel,
            spec.Basic.Get: self._on_get,
            spec.Basic.Qos: self._on_qos,
            spec.Basic.Recover: self._on_recover,
            spec.Basic.RecoverAsync: self._on_recover,
            spec.Confirm.Select: self._on_confirm_select,
            spec.Channel.Flow: self._on_flow,
            spec.Channel.FlowOk: lambda m: None,
            spec.Exchange.Declare: self._on_exchange_declare,
            spec.Exchange.Delete: self._on_exchange_delete,
            spec.Exchange.Bind: self._on_exchange_bind,
            spec.Exchange.Unbind: self._on_exchange_bind,
            spec.Queue.Declare: self._on_queue_declare,
            spec.Queue.Bind: self._on_queue_bind,
            spec.Queue.Unbind: self._on_queue_bind,
            spec.Queue.Purge: self._on_queue_purge,
            spec.Queue.Delete: self._on_queue_delete,
            spec.Tx.Select: self._on_tx_select,
            spec.Tx.Commit: self._on_tx_commit,
            spec.Tx.Rollback: self._on_tx_rollback,
        }

    # -- incoming frames ------------------------------------------------------------------------
    def on_method(self, payload: bytes) -> None:
        if self._publish is not None:
            raise errors.UnexpectedFrame(
                "expected content header for class 60, got non content header frame instead", method=(60, 40)
            )
        kind = payload[:4]
        if kind == frames.PUBLISH_ID:
            if self.state is OPEN:  # while closing, publishes and their content frames are ignored
                self._publish = frames.decode_publish(payload)
            return
        if kind == frames.ACK_ID and self.state is OPEN:
            try:
                self._ack(*frames.decode_ack(payload))
            except errors.AMQPError as exc:
                exc.method = (60, 80)
                raise
            return
        method = frames.decode_method(payload)
        if isinstance(method, spec.Channel.Close):
            self._send(spec.Channel.CloseOk())
            self._finish()
            return
        if isinstance(method, spec.Channel.CloseOk):
            if self.state is CLOSING:
                self._finish()
            return
        if self.state is not OPEN:
            return  # after channel.close only close/close-ok matter
        if isinstance(method, spec.Channel.Open):
            raise errors.ChannelMisuse("second 'channel.open' seen", method=(20, 10))
        handler = self._handlers.get(type(method))
        if handler is None:
            raise errors.CommandInvalid(f"unsupported method {method.name} on a channel", method=_ids(method))
        try:
            if self.conn.restricted:
                self._authorize(method)
            handler(method)
        except errors.AMQPError as exc:
            if exc.method == (0, 0):
                exc.method = _ids(method)
            raise

    def _authorize(self, method: Any) -> None:
        """RabbitMQ's configure/write/read checks for this method, in its order (see auth.py)."""
        auth, user, vhost = self.conn.broker.auth, self.conn.user, self.vhost.name
        for kind, resource, name in method_checks(method):
            auth.check(user, vhost, kind, resource, name)

    def on_header(self, payload: bytes) -> None:
        if self._publish is None or self._header is not None:
            raise errors.UnexpectedFrame("unexpected content header frame", method=(60, 40))
        size = frames.header_body_size(payload)
        self._header = payload
        self._remaining = size
        if size > self.max_message_size:
            self._oversized = size  # its body is counted and dropped, not buffered (memory stays bounded)
        if size == 0:
            self._complete(b"")

    def on_body(self, payload: bytes) -> None:
        if self._header is None:
            raise errors.UnexpectedFrame("unexpected content body frame", method=(60, 40))
        self._remaining -= len(payload)
        if self._remaining < 0:
            raise errors.FrameError("content body larger than announced in the content header", method=(60, 40))
        if self._oversized:
            if self._remaining == 0:
                self._refuse_oversized()
            return
        if self._remaining == 0:
            if self._body:
                self._body.append(payload)
                body = b"".join(self._body)
                self._body = []
            else:
                body = payload
            self._complete(body)
        else:
            self._body.append(payload)

    def _refuse_oversized(self) -> None:
        """RabbitMQ checks max_message_size once the whole message has arrived (rabbit_channel.erl,
        check_msg_size), so the 406 comes after the last body frame, as there."""
        size, self._oversized = self._oversized, 0
        self._publish = self._header = None
        limit = self.max_message_size
        which = "max size" if limit == MAX_MESSAGE_SIZE else "configured max size"
        raise errors.PreconditionFailed(f"message size {size} is larger than {which} {limit}", method=(60, 40))

    def _complete(self, body: bytes) -> None:
        publish, header = self._publish, self._header
        assert publish is not None and header is not None  # on_method and on_header set both before
        exchange, routing_key, mandatory = publish
        self._publish = self._header = None
        if self.state is not OPEN:
            return
        try:
            if self.conn.restricted and exchange not in self._writable:
                self.conn.broker.auth.check(self.conn.user, self.vhost.name, WRITE, "exchange", exchange)
                self._writable.add(exchange)
            self._route(exchange, routing_key, mandatory, Message(exchange, routing_key, header, body))
        except errors.ChannelError as exc:
            exc.method = (60, 40)
            raise

    # -- publishing -----------------------------------------------------------------------------
    def _route(self, exchange: str, routing_key: str, mandatory: bool, msg: Message) -> None:
        if msg.flags & (EXPIRATION_FLAG | REPLY_TO_FLAG | USER_ID_FLAG):
            self._check_properties(msg)
        if self.confirm:
            self.publish_seq += 1
        conn = self.conn
        conn.published = True
        reply = exchange == "" and routing_key.startswith(REPLY_PREFIX)
        queues = [] if reply else self.vhost.route(exchange, routing_key, msg)
        if self.tx is not None:  # routed now, delivered at commit
            self.tx.publishes.append(lambda: self._deliver(exchange, routing_key, mandatory, msg, queues, reply))
            return
        accepted = self._deliver(exchange, routing_key, mandatory, msg, queues, reply)
        if self.vhost.tap is not None and not reply:  # the broker's side of a history (labkit.broker.tap)
            self.vhost.tap.routed(msg, queues, accepted)
        if self.confirm:
            if not self.pending_confirms:
                conn.confirming.append(self)
            self.pending_confirms.append((self.publish_seq, accepted))

    def _deliver(
        self, exchange: str, routing_key: str, mandatory: bool, msg: Message, queues: list[Queue], reply: bool
    ) -> bool:
        """Enqueue a routed publish (or return it if mandatory and unroutable); False if a queue refused it."""
        if reply:
            delivered = self.vhost.reply(routing_key, msg) or self.vhost.profile.reply_to_always_routed
        else:
            if self.tx is not None:  # a queue may have gone away between publish and commit
                queues = [q for q in queues if not q.deleted]
            delivered = bool(queues)
        if queues:
            return self.vhost.enqueue(queues, msg)
        if not delivered and mandatory:
            conn = self.conn
            fields = frames.return_fields(312, "NO_ROUTE", exchange, routing_key)
            conn.write_frames(
                frames.delivery_frames(self.number, frames.RETURN, fields, msg.header, msg.body, conn.frame_max)
            )
        return True

    def _check_properties(self, msg: Message) -> None:
        props = msg.properties
        validate_expiration(props)
        if props.user_id is not None and props.user_id != self.conn.user:
            raise errors.PreconditionFailed(
                f"user_id property set to '{props.user_id}' but authenticated user was '{self.conn.user}'"
            )
        if props.reply_to == REPLY_TO:
            if self.reply_address is None:
                raise errors.PreconditionFailed("fast reply consumer does not exist")
            props = clone_properties(props)
            props.reply_to = self.reply_address
            msg.rewrite(props)

    def flush_confirms(self) -> None:
        """Send pending publisher confirms, runs of acks collapsed into one multiple ack."""
        pending, self.pending_confirms = self.pending_confirms, []
        if self.state is not OPEN:
            return
        write, number = self.conn.write, self.number
        run_end, run_len = 0, 0
        for seq, ok in pending:
            if ok:
                run_end, run_len = seq, run_len + 1
                continue
            if run_len:
                write(frames.ack_frame(number, run_end, run_len > 1))
                run_len = 0
            self._send(spec.Basic.Nack(seq, False, False))
        if run_len:
            write(frames.ack_frame(number, run_end, run_len > 1))

    # -- delivering -----------------------------------------------------------------------------
    def can_deliver(self, with_ack: bool) -> bool:
        return (
            self.state is OPEN
            and self.conn.writable
            and (not with_ack or not self.prefetch_global or self.global_unacked < self.prefetch_global)
        )

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
        conn = self.conn
        conn.write_frames(
            frames.delivery_frames(self.number, frames.DELIVER, fields, out.header, out.body, conn.frame_max)
        )

    def cancelled_by_broker(self, consumer: Consumer) -> None:
        """The queue went away under a consumer: forget it and tell the client (basic.cancel)."""
        if self.consumers.get(consumer.tag) is consumer:
            del self.consumers[consumer.tag]
            if self.state is OPEN and self.conn.client_capabilities.get("consumer_cancel_notify"):
                self._send(spec.Basic.Cancel(consumer.tag, True))

    # -- Basic ----------------------------------------------------------------------------------
    def _on_qos(self, m: spec.Basic.Qos) -> None:
        if m.prefetch_size:
            raise errors.NotImplementedFeature(f"prefetch_size!=0 ({m.prefetch_size})", method=(60, 10))
        if m.global_ and self.vhost.profile.global_qos:
            self.prefetch_global = m.prefetch_count
            self._redispatch()
        else:
            self.prefetch_consumer = m.prefetch_count
        self._send(spec.Basic.QosOk())

    def _on_consume(self, m: spec.Basic.Consume) -> None:
        tag = m.consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)[:22]
        if tag in self.consumers:
            raise errors.NotAllowed(f"attempt to reuse consumer tag '{tag}'", method=(60, 20))
        if m.queue == REPLY_TO:
            self._consume_replies(m, tag)
            return
        queue = self.vhost.queue(m.queue or "", self.conn)
        if self.prefetch_global and queue.kind == "quorum":
            raise errors.NotImplementedFeature(f"queue '{queue.name}' in vhost '/' does not support global qos")
        consumer = queue.consumer_class(
            self,
            queue,
            tag,
            frames.shortstr(tag),
            m.no_ack,
            m.exclusive,
            self.prefetch_consumer,
            dict(m.arguments or {}),
        )
        queue.add_consumer(consumer)
        self.consumers[tag] = consumer
        if not m.nowait:
            self._send(spec.Basic.ConsumeOk(tag))
        queue.dispatch()

    def _consume_replies(self, m: spec.Basic.Consume, tag: str) -> None:
        if not m.no_ack:
            raise errors.PreconditionFailed("reply consumer cannot acknowledge")
        if self.reply_address is not None:
            raise errors.PreconditionFailed("reply consumer already set")
        consumer = Consumer(self, None, tag, frames.shortstr(tag), True, False, 0, {})
        self.reply_address = self.vhost.register_reply_consumer(consumer)
        self.consumers[tag] = consumer
        if not m.nowait:
            self._send(spec.Basic.ConsumeOk(tag))

    def _on_cancel(self, m: spec.Basic.Cancel) -> None:
        consumer = self.consumers.pop(m.consumer_tag or "", None)
        if consumer is not None:
            self._drop_consumer(consumer)
        if not m.nowait:
            self._send(spec.Basic.CancelOk(m.consumer_tag))

    def _drop_consumer(self, consumer: Consumer) -> None:
        if consumer.queue is None:
            self.vhost.unregister_reply_consumer(self.reply_address or "")
            self.reply_address = None
        else:
            consumer.queue.remove_consumer(consumer)

    def _on_get(self, m: spec.Basic.Get) -> None:
        queue = self.vhost.queue(m.queue or "", self.conn)
        msg = queue.get(m.no_ack)
        if msg is None:
            self._send(spec.Basic.GetEmpty())
            return
        self.next_tag += 1
        if not m.no_ack:
            self.unacked[self.next_tag] = (queue, msg, None)
        out = queue.outgoing(msg, get=True)
        fields = frames.get_ok_fields(self.next_tag, msg.redelivered, out.exchange, out.routing_key, len(queue.ready))
        self.conn.write_frames(
            frames.delivery_frames(self.number, frames.GET_OK, fields, out.header, out.body, self.conn.frame_max)
        )

    def _pop(self, tag: int, multiple: bool) -> dict[int, tuple[Queue | None, Message, Consumer | None]]:
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

    def _take(self, tag: int, multiple: bool) -> list[tuple[Queue | None, Message, Consumer | None]]:
        """Remove the deliveries an ack/nack/reject refers to and free their prefetch slots."""
        taken = list(self._pop(tag, multiple).values())
        self._free(taken)
        return taken

    def _free(self, taken: list[Any]) -> None:
        for _queue, _msg, consumer in taken:
            if consumer is not None:
                consumer.unacked -= 1
                self.global_unacked -= 1

    def _settle_later(self, tag: int, multiple: bool, settle: Any) -> bool:
        """In a transaction: take the tags now, settle at commit. False outside a transaction."""
        if self.tx is None:
            return False
        self.tx.settlements.append((settle, self._pop(tag, multiple)))
        return True

    def _ack(self, tag: int, multiple: bool) -> None:
        if not self._settle_later(tag, multiple, self._acked):
            self._acked(self._take(tag, multiple), freed=True)

    def _acked(self, taken: list[Any], freed: bool = False) -> None:
        if not freed:
            self._free(taken)
        for queue, msg, _consumer in taken:
            queue.ack(msg)
        self._after_settle(taken)

    def _on_nack(self, m: spec.Basic.Nack) -> None:
        # RabbitMQ 4.3: nack with requeue is an explicit return, not a failed delivery
        settle = lambda taken: self._settle(taken, m.requeue, failed=False)  # noqa: E731
        if not self._settle_later(m.delivery_tag or 0, m.multiple, settle):
            self._settle(self._take(m.delivery_tag or 0, m.multiple), m.requeue, failed=False, freed=True)

    def _on_reject(self, m: spec.Basic.Reject) -> None:
        settle = lambda taken: self._settle(taken, m.requeue)  # noqa: E731
        if not self._settle_later(m.delivery_tag or 0, False, settle):
            self._settle(self._take(m.delivery_tag or 0, False), m.requeue, freed=True)

    def _settle(self, taken: list[Any], requeue: bool, failed: bool = True, freed: bool = False) -> None:
        if not freed:
            self._free(taken)
        if requeue:
            self._requeue(taken, failed)
        else:
            for queue, msg, _consumer in taken:
                queue.reject(msg)
        self._after_settle(taken)

    @staticmethod
    def _requeue(taken: list[Any], failed: bool = True) -> None:
        by_queue: dict[Queue, list[Message]] = {}
        for queue, msg, _consumer in taken:
            by_queue.setdefault(queue, []).append(msg)
        for queue, msgs in by_queue.items():
            queue.requeue(msgs, failed)

    def _after_settle(self, taken: list[Any]) -> None:
        """Freed prefetch capacity: let the queues push more."""
        if self.prefetch_global:
            self._redispatch()
            return
        if len(taken) == 1:
            queue = taken[0][0]
            if not queue.deleted:
                queue.dispatch()
            return
        for queue in {entry[0] for entry in taken}:
            if not queue.deleted:
                queue.dispatch()

    def _redispatch(self) -> None:
        for queue in {c.queue for c in self.consumers.values() if c.queue is not None}:
            queue.dispatch()

    def _on_recover(self, m: spec.Basic.Recover | spec.Basic.RecoverAsync) -> None:
        taken = self._take(0, True)
        self._requeue(taken, failed=False)
        if isinstance(m, spec.Basic.Recover):
            self._send(spec.Basic.RecoverOk())
        self._after_settle(taken)

    def _on_confirm_select(self, m: spec.Confirm.Select) -> None:
        if self.tx is not None:
            raise errors.PreconditionFailed("cannot switch from tx to confirm mode")
        self.confirm = True
        if not m.nowait:
            self._send(spec.Confirm.SelectOk())

    # -- Tx -------------------------------------------------------------------------------------
    def _on_tx_select(self, m: spec.Tx.Select) -> None:
        if self.confirm:
            raise errors.PreconditionFailed("cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = Transaction()
        self._send(spec.Tx.SelectOk())

    def _transaction(self) -> Transaction:
        if self.tx is None:
            raise errors.PreconditionFailed("channel is not transactional")
        return self.tx

    def _on_tx_commit(self, m: spec.Tx.Commit) -> None:
        self._transaction().commit()
        if self.conn.broker.store is not None:
            self.conn.broker.store.commit()  # like RabbitMQ: persistent messages are on disk before commit-ok
        self._send(spec.Tx.CommitOk())

    def _on_tx_rollback(self, m: spec.Tx.Rollback) -> None:
        held = self._transaction().rollback()
        if held:
            self.unacked = dict(sorted({**self.unacked, **held}.items()))
        self._send(spec.Tx.RollbackOk())

    def _on_flow(self, m: spec.Channel.Flow) -> None:
        """Like RabbitMQ 3.x: a client may not stop deliveries with channel.flow (use prefetch)."""
        if not m.active:
            raise errors.NotImplementedFeature("active=false", method=(20, 20))
        self._send(spec.Channel.FlowOk(True))

    # -- Exchange and Queue ---------------------------------------------------------------------
    def _on_exchange_declare(self, m: spec.Exchange.Declare) -> None:
        self.vhost.exchange_declare(
            m.exchange, m.exchange_type, m.passive, m.durable, m.auto_delete, m.internal, dict(m.arguments or {})
        )
        if not m.nowait:
            self._send(spec.Exchange.DeclareOk())

    def _on_exchange_delete(self, m: spec.Exchange.Delete) -> None:
        self.vhost.exchange_delete(m.exchange, m.if_unused)
        if not m.nowait:
            self._send(spec.Exchange.DeleteOk())

    def _on_exchange_bind(self, m: spec.Exchange.Bind | spec.Exchange.Unbind) -> None:
        unbind = isinstance(m, spec.Exchange.Unbind)
        self.vhost.exchange_bind(m.destination, m.source, m.routing_key, dict(m.arguments or {}), unbind)
        if not m.nowait:
            self._send(spec.Exchange.UnbindOk() if unbind else spec.Exchange.BindOk())

    def _on_queue_declare(self, m: spec.Queue.Declare) -> None:
        q = self.vhost.queue_declare(
            self.conn, m.queue, m.passive, m.durable, m.exclusive, m.auto_delete, dict(m.arguments or {})
        )
        if not m.nowait:
            self._send(spec.Queue.DeclareOk(q.name, q.declared_count(), len(q.consumers)))

    def _on_queue_bind(self, m: spec.Queue.Bind | spec.Queue.Unbind) -> None:
        unbind = isinstance(m, spec.Queue.Unbind)
        self.vhost.queue_bind(self.conn, m.queue, m.exchange, m.routing_key, dict(m.arguments or {}), unbind)
        if isinstance(m, spec.Queue.Unbind):  # queue.unbind has no nowait bit
            self._send(spec.Queue.UnbindOk())
        elif not m.nowait:
            self._send(spec.Queue.BindOk())

    def _on_queue_purge(self, m: spec.Queue.Purge) -> None:
        count = self.vhost.queue(m.queue, self.conn).purge()
        if not m.nowait:
            self._send(spec.Queue.PurgeOk(count))

    def _on_queue_delete(self, m: spec.Queue.Delete) -> None:
        count = self.vhost.queue_delete(self.conn, m.queue, m.if_unused, m.if_empty)
        if not m.nowait:
            self._send(spec.Queue.DeleteOk(count))

    # -- closing --------------------------------------------------------------------------------
    def _send(self, method: Any) -> None:
        self.conn.write(frames.method_frame(self.number, method))

    def close_with(self, exc: errors.ChannelError) -> None:
        """Server-initiated channel close (a channel error); waits for the client's close-ok."""
        if self.state is not OPEN:
            return
        if self.vhost.name != "/":  # the vhost's own texts name '/'; a channel elsewhere names its vhost
            exc.text = exc.text.replace("in vhost '/'", f"in vhost '{self.vhost.name}'")
        self._send(spec.Channel.Close(exc.code, exc.reply_text, *exc.method))
        self._enter(CLOSING)

    def _finish(self) -> None:
        self.release()
        self.conn.channel_closed(self)

    def release(self) -> None:
        """The channel or its connection is going away: CLOSED (a no-op when it already is)."""
        if self.state is not CLOSED:
            self._enter(CLOSED)

    def _enter(self, state: ChannelState) -> None:
        """Move to ``state`` along CHANNEL_TRANSITIONS; leaving OPEN releases the channel's resources."""
        if state not in CHANNEL_TRANSITIONS[self.state]:
            raise RuntimeError(f"channel {self.number} cannot go from {self.state.value} to {state.value}")
        previous, self.state = self.state, state
        if previous is OPEN:
            self._release_resources()

    def _release_resources(self) -> None:
        """Cancel consumers and requeue unacked deliveries (no more deliveries: the state is not OPEN)."""
        self.pending_confirms = []
        if self.tx is not None:  # settlements held by an open transaction are undone: requeue those too
            self.unacked.update(self.tx.rollback())
        for consumer in list(self.consumers.values()):
            self._drop_consumer(consumer)
        self.consumers.clear()
        taken = list(self.unacked.values())
        self.unacked.clear()
        self._requeue(taken)


def _ids(method: Any) -> tuple[int, int]:
    index = method.index
    return index >> 16, index & 0xFFFF
