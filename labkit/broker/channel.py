"""One AMQP channel: content assembly, the Exchange/Queue/Basic/Confirm methods, delivery tags,
prefetch, acknowledgements and publisher confirms.

Why: the channel is where a client's view of the broker lives (its delivery tags, its unacked
messages, its consumers, its confirm sequence). Channel errors (403/404/405/406) close only this
channel; its unacked messages go back to their queues at their original positions.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import errors, frames
from .auth import WRITE, method_checks
from .message import EXPIRATION_FLAG, REPLY_TO_FLAG, USER_ID_FLAG, Message, clone_properties
from .queue import Consumer, Queue, validate_expiration
from .vhost import REPLY_PREFIX, REPLY_TO

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection

OPEN, CLOSING, CLOSED = "open", "closing", "closed"
MAX_MESSAGE_SIZE = 128 * 1024 * 1024  # RabbitMQ 3.10's default max_message_size


class Channel:
    def __init__(self, conn: Connection, number: int) -> None:
        self.conn = conn
        self.vhost = conn.vhost
        self._writable: set[str] = set()  # exchanges this restricted user may publish to (checked once)
        self.number = number
        self.state = OPEN
        self.confirm = False
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
        self._handlers = {
            spec.Basic.Nack: self._on_nack, spec.Basic.Reject: self._on_reject,
            spec.Basic.Consume: self._on_consume, spec.Basic.Cancel: self._on_cancel,
            spec.Basic.Get: self._on_get, spec.Basic.Qos: self._on_qos, spec.Basic.Recover: self._on_recover,
            spec.Basic.RecoverAsync: self._on_recover, spec.Confirm.Select: self._on_confirm_select,
            spec.Channel.Flow: self._on_flow, spec.Channel.FlowOk: lambda m: None,
            spec.Exchange.Declare: self._on_exchange_declare, spec.Exchange.Delete: self._on_exchange_delete,
            spec.Exchange.Bind: self._on_exchange_bind, spec.Exchange.Unbind: self._on_exchange_bind,
            spec.Queue.Declare: self._on_queue_declare, spec.Queue.Bind: self._on_queue_bind,
            spec.Queue.Unbind: self._on_queue_bind, spec.Queue.Purge: self._on_queue_purge,
            spec.Queue.Delete: self._on_queue_delete,
        }

    # -- incoming frames ------------------------------------------------------------------------
    def on_method(self, payload: bytes) -> None:
        if self._publish is not None:
            raise errors.UnexpectedFrame("expected content header for class 60, got non content header frame "
                                         "instead", method=(60, 40))
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
            raise errors.CommandInvalid(f"unsupported method {method.name} on a channel",
                                        method=_ids(method))
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
        if size > MAX_MESSAGE_SIZE:
            self._publish = None
            raise errors.PreconditionFailed(f"message size {size} is larger than configured max size "
                                            f"{MAX_MESSAGE_SIZE}", method=(60, 40))
        self._header = payload
        self._remaining = size
        if size == 0:
            self._complete(b"")

    def on_body(self, payload: bytes) -> None:
        if self._header is None:
            raise errors.UnexpectedFrame("unexpected content body frame", method=(60, 40))
        self._remaining -= len(payload)
        if self._remaining < 0:
            raise errors.FrameError("content body larger than announced in the content header",
                                    method=(60, 40))
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

    def _complete(self, body: bytes) -> None:
        exchange, routing_key, mandatory = self._publish
        header = self._header
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
        if exchange == "" and routing_key.startswith(REPLY_PREFIX):
            delivered = self.vhost.reply(routing_key, msg)
            queues: list = []
        else:
            queues = self.vhost.route(exchange, routing_key, msg)
            delivered = bool(queues)
        accepted = True
        if queues:
            accepted = self.vhost.enqueue(queues, msg)
        elif not delivered and mandatory:
            fields = frames.return_fields(312, "NO_ROUTE", exchange, routing_key)
            conn.write_frames(frames.delivery_frames(self.number, frames.RETURN, fields, msg.header, msg.body,
                                                     conn.frame_max))
        if self.confirm:
            if not self.pending_confirms:
                conn.confirming.append(self)
            self.pending_confirms.append((self.publish_seq, accepted))

    def _check_properties(self, msg: Message) -> None:
        props = msg.properties
        validate_expiration(props)
        if props.user_id is not None and props.user_id != self.conn.user:
            raise errors.PreconditionFailed(f"user_id property set to '{props.user_id}' but authenticated "
                                            f"user was '{self.conn.user}'")
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
        return (self.state is OPEN and self.conn.writable
                and (not with_ack or not self.prefetch_global or self.global_unacked < self.prefetch_global))

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
        conn.write_frames(frames.delivery_frames(self.number, frames.DELIVER, fields, out.header, out.body,
                                                 conn.frame_max))

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
        if m.global_:
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
        consumer = queue.consumer_class(self, queue, tag, frames.shortstr(tag), m.no_ack, m.exclusive,
                                        self.prefetch_consumer, dict(m.arguments or {}))
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
        consumer = self.consumers.pop(m.consumer_tag, None)
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
        out = queue.outgoing(msg)
        fields = frames.get_ok_fields(self.next_tag, msg.redelivered, out.exchange, out.routing_key,
                                      len(queue.ready))
        self.conn.write_frames(frames.delivery_frames(self.number, frames.GET_OK, fields, out.header, out.body,
                                                      self.conn.frame_max))

    def _take(self, tag: int, multiple: bool) -> list[tuple[Queue | None, Message, Consumer | None]]:
        """Remove and return the unacked deliveries an ack/nack/reject refers to."""
        unacked = self.unacked
        if multiple and tag == 0:
            taken = list(unacked.values())
            unacked.clear()
        elif tag not in unacked:
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
        elif multiple:
            tags = [t for t in unacked if t <= tag]
            taken = [unacked.pop(t) for t in tags]
        else:
            taken = [unacked.pop(tag)]
        for _queue, _msg, consumer in taken:
            if consumer is not None:
                consumer.unacked -= 1
                self.global_unacked -= 1
        return taken

    def _ack(self, tag: int, multiple: bool) -> None:
        taken = self._take(tag, multiple)
        for queue, msg, _consumer in taken:
            queue.ack(msg)
        self._after_settle(taken)

    def _on_nack(self, m: spec.Basic.Nack) -> None:
        self._settle(self._take(m.delivery_tag, m.multiple), m.requeue)

    def _on_reject(self, m: spec.Basic.Reject) -> None:
        self._settle(self._take(m.delivery_tag, False), m.requeue)

    def _settle(self, taken: list, requeue: bool) -> None:
        if requeue:
            self._requeue(taken)
        else:
            for queue, msg, _consumer in taken:
                queue.reject(msg)
        self._after_settle(taken)

    @staticmethod
    def _requeue(taken: list) -> None:
        by_queue: dict[Queue, list[Message]] = {}
        for queue, msg, _consumer in taken:
            by_queue.setdefault(queue, []).append(msg)
        for queue, msgs in by_queue.items():
            queue.requeue(msgs)

    def _after_settle(self, taken: list) -> None:
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
        self._requeue(taken)
        if isinstance(m, spec.Basic.Recover):
            self._send(spec.Basic.RecoverOk())
        self._after_settle(taken)

    def _on_confirm_select(self, m: spec.Confirm.Select) -> None:
        self.confirm = True
        if not m.nowait:
            self._send(spec.Confirm.SelectOk())

    def _on_flow(self, m: spec.Channel.Flow) -> None:
        """Like RabbitMQ 3.x: a client may not stop deliveries with channel.flow (use prefetch)."""
        if not m.active:
            raise errors.NotImplementedFeature("active=false", method=(20, 20))
        self._send(spec.Channel.FlowOk(True))

    # -- Exchange and Queue ---------------------------------------------------------------------
    def _on_exchange_declare(self, m: spec.Exchange.Declare) -> None:
        self.vhost.exchange_declare(m.exchange, m.exchange_type, m.passive, m.durable, m.auto_delete, m.internal,
                                    dict(m.arguments or {}))
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
        q = self.vhost.queue_declare(self.conn, m.queue, m.passive, m.durable, m.exclusive, m.auto_delete,
                                     dict(m.arguments or {}))
        if not m.nowait:
            self._send(spec.Queue.DeclareOk(q.name, q.declared_count(), len(q.consumers)))

    def _on_queue_bind(self, m: spec.Queue.Bind | spec.Queue.Unbind) -> None:
        unbind = isinstance(m, spec.Queue.Unbind)
        self.vhost.queue_bind(self.conn, m.queue, m.exchange, m.routing_key, dict(m.arguments or {}), unbind)
        if unbind:
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
        text = exc.reply_text  # the vhost's own texts name '/'; a channel elsewhere names its vhost
        if self.vhost.name != "/":
            text = text.replace("in vhost '/'", f"in vhost '{self.vhost.name}'")
        self._send(spec.Channel.Close(exc.code, text, *exc.method))
        self.release()
        self.state = CLOSING

    def _finish(self) -> None:
        self.release()
        self.conn.channel_closed(self)

    def release(self) -> None:
        """Cancel consumers and requeue unacked deliveries (channel or connection going away)."""
        if self.state is CLOSED:
            return
        self.state = CLOSED
        self.pending_confirms = []
        for consumer in list(self.consumers.values()):
            self._drop_consumer(consumer)
        self.consumers.clear()
        taken = list(self.unacked.values())
        self.unacked.clear()
        self._requeue(taken)


def _ids(method: Any) -> tuple[int, int]:
    index = method.index
    return index >> 16, index & 0xFFFF
