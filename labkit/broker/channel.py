"""One AMQP channel: its state machine, method dispatch, publisher-confirm and transaction modes.

Why: the channel is where a client's view of the broker lives (its delivery tags, its unacked
messages, its consumers, its confirm sequence). Channel errors (403/404/405/406) close only this
channel; its unacked messages go back to their queues at their original positions. The channel
decides which method goes where and when it may act; its collaborators do the work: content.py
assembles publishes, publishing.py routes them and confirms them, deliveries.py numbers and settles
deliveries, consuming.py keeps the consumers and their prefetch, topology.py declares and binds.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import errors, frames
from .auth import method_checks
from .consumer import Consumer
from .consuming import Consumers
from .content import ContentAssembler
from .deliveries import Deliveries
from .message import Message
from .publishing import Publisher
from .topology import Topology
from .tx import Transaction
from .vhost import VHost

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
        self.number = number
        self.state: ChannelState = OPEN
        self.tx: Transaction | None = None
        self.content = ContentAssembler(conn.broker.max_message_size)
        self.publisher = Publisher(self)
        self.consumers = Consumers(self)
        self.deliveries = Deliveries(self)
        self._handlers: dict[type, Callable[[Any], None]] = {
            **self.consumers.handlers(),
            **self.deliveries.handlers(),
            **Topology(self).handlers(),
            spec.Confirm.Select: self._on_confirm_select,
            spec.Channel.Flow: self._on_flow,
            spec.Channel.FlowOk: lambda m: None,
            spec.Tx.Select: self._on_tx_select,
            spec.Tx.Commit: self._on_tx_commit,
            spec.Tx.Rollback: self._on_tx_rollback,
        }

    @property
    def is_open(self) -> bool:
        """Methods and content are handled (after channel.close only close/close-ok matter)."""
        return self.state is OPEN

    # -- incoming frames ------------------------------------------------------------------------
    def on_method(self, payload: bytes) -> None:
        if self.content.receiving:
            raise errors.UnexpectedFrame(
                "expected content header for class 60, got non content header frame instead", method=(60, 40)
            )
        kind = payload[:4]
        if kind == frames.PUBLISH_ID:
            if self.state is OPEN:  # while closing, publishes and their content frames are ignored
                self.content.start(payload)
            return
        if kind == frames.ACK_ID and self.state is OPEN:
            try:
                self.deliveries.ack(*frames.decode_ack(payload))
            except errors.AMQPError as exc:
                exc.method = (60, 80)
                raise
            return
        method = frames.decode_method(payload)
        if isinstance(method, spec.Channel.Close):
            self.send(spec.Channel.CloseOk())
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
        content = self.content.header(payload)
        if content is not None and self.state is OPEN:
            self.publisher.publish(content)

    def on_body(self, payload: bytes) -> None:
        content = self.content.body(payload)
        if content is not None and self.state is OPEN:
            self.publisher.publish(content)

    # -- called by the connection, its queues and its vhost -------------------------------------
    def flush_confirms(self) -> None:
        """Send pending publisher confirms (the connection calls this once per batch of input)."""
        self.publisher.flush_confirms()

    def can_deliver(self, with_ack: bool) -> bool:
        prefetch_global = self.consumers.prefetch_global
        return (
            self.state is OPEN
            and self.conn.writable
            and (not with_ack or not prefetch_global or self.deliveries.global_unacked < prefetch_global)
        )

    def deliver(self, consumer: Consumer, msg: Message) -> None:
        """Push one message to a consumer (called by the queue, which already counted it)."""
        self.deliveries.deliver(consumer, msg)

    def cancelled_by_broker(self, consumer: Consumer) -> None:
        """The queue went away under a consumer: forget it and tell the client (basic.cancel)."""
        self.consumers.cancelled_by_broker(consumer)

    def _redispatch(self) -> None:
        """The socket is writable again (connection.py): let the queues push more."""
        self.consumers.redispatch()

    # -- Confirm, Tx and Channel.Flow -----------------------------------------------------------
    def _on_confirm_select(self, m: spec.Confirm.Select) -> None:
        if self.tx is not None:
            raise errors.PreconditionFailed("cannot switch from tx to confirm mode")
        self.publisher.confirm = True
        if not m.nowait:
            self.send(spec.Confirm.SelectOk())

    def _on_tx_select(self, m: spec.Tx.Select) -> None:
        if self.publisher.confirm:
            raise errors.PreconditionFailed("cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = Transaction()
        self.send(spec.Tx.SelectOk())

    def _transaction(self) -> Transaction:
        if self.tx is None:
            raise errors.PreconditionFailed("channel is not transactional")
        return self.tx

    def _on_tx_commit(self, m: spec.Tx.Commit) -> None:
        self._transaction().commit()
        if self.conn.broker.store is not None:
            self.conn.broker.store.commit()  # like RabbitMQ: persistent messages are on disk before commit-ok
        self.send(spec.Tx.CommitOk())

    def _on_tx_rollback(self, m: spec.Tx.Rollback) -> None:
        self.deliveries.restore(self._transaction().rollback())
        self.send(spec.Tx.RollbackOk())

    def _on_flow(self, m: spec.Channel.Flow) -> None:
        """Like RabbitMQ 3.x: a client may not stop deliveries with channel.flow (use prefetch)."""
        if not m.active:
            raise errors.NotImplementedFeature("active=false", method=(20, 20))
        self.send(spec.Channel.FlowOk(True))

    # -- closing --------------------------------------------------------------------------------
    def send(self, method: Any) -> None:
        """Write one method frame on this channel."""
        self.conn.write(frames.method_frame(self.number, method))

    def close_with(self, exc: errors.ChannelError) -> None:
        """Server-initiated channel close (a channel error); waits for the client's close-ok."""
        if self.state is not OPEN:
            return
        if self.vhost.name != "/":  # the vhost's own texts name '/'; a channel elsewhere names its vhost
            exc.text = exc.text.replace("in vhost '/'", f"in vhost '{self.vhost.name}'")
        self.send(spec.Channel.Close(exc.code, exc.reply_text, *exc.method))
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
        self.publisher.pending_confirms = []
        # settlements held by an open transaction are undone: requeue those too
        held = self.tx.rollback() if self.tx is not None else {}
        self.consumers.release()
        self.deliveries.requeue_all(held)


def _ids(method: Any) -> tuple[int, int]:
    index = method.index
    return index >> 16, index & 0xFFFF
