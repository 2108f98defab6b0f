"""A channel's publishes: write permission, property checks, routing, mandatory returns and publisher confirms.

Why: what happens to a message between "its last frame arrived" and "it sits in its queues" is RabbitMQ's
publish path (rabbit_channel.erl, handle_method basic.publish): the user's write permission on the exchange,
the user_id / expiration / direct reply-to checks, routing, basic.return for an unroutable mandatory
publish, holding it until tx.commit, and the publisher confirm the client gets once per batch of input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pamqp import commands as spec

from . import errors, frames
from .auth import WRITE
from .content import Content
from .expiration import validate_expiration
from .message import EXPIRATION_FLAG, REPLY_TO_FLAG, USER_ID_FLAG, Message, clone_properties
from .queue import Queue
from .vhost import REPLY_PREFIX, REPLY_TO

if TYPE_CHECKING:  # pragma: no cover
    from .channel import Channel


class Publisher:
    """Routes a channel's complete publishes and keeps its publisher-confirm sequence."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.confirm = False  # confirm.select was sent: every publish is acked or nacked
        self.publish_seq = 0
        self.pending_confirms: list[tuple[int, bool]] = []  # (sequence number, accepted), sent by flush_confirms
        self._writable: set[str] = set()  # exchanges this restricted user may publish to (checked once)

    def publish(self, content: Content) -> None:
        """Check and route a complete publish; a channel error names basic.publish."""
        channel = self.channel
        conn, exchange = channel.conn, content.exchange
        try:
            if conn.restricted and exchange not in self._writable:
                conn.broker.auth.check(conn.user, channel.vhost.name, WRITE, "exchange", exchange)
                self._writable.add(exchange)
            msg = Message(exchange, content.routing_key, content.header, content.body)
            self._route(exchange, content.routing_key, content.mandatory, msg)
        except errors.ChannelError as exc:
            exc.method = (60, 40)
            raise

    def _route(self, exchange: str, routing_key: str, mandatory: bool, msg: Message) -> None:
        if msg.flags & (EXPIRATION_FLAG | REPLY_TO_FLAG | USER_ID_FLAG):
            self._check_properties(msg)
        if self.confirm:
            self.publish_seq += 1
        channel = self.channel
        vhost, conn, tx = channel.vhost, channel.conn, channel.tx
        conn.published = True
        reply = exchange == "" and routing_key.startswith(REPLY_PREFIX)
        queues = [] if reply else vhost.route(exchange, routing_key, msg)
        if tx is not None:  # routed now, delivered at commit
            tx.publishes.append(lambda: self._deliver(exchange, routing_key, mandatory, msg, queues, reply))
            return
        accepted = self._deliver(exchange, routing_key, mandatory, msg, queues, reply)
        if vhost.tap is not None and not reply:  # the broker's side of a history (labkit.broker.tap)
            vhost.tap.routed(msg, queues, accepted)
        if self.confirm:
            if not self.pending_confirms:
                conn.confirming.append(channel)
            self.pending_confirms.append((self.publish_seq, accepted))

    def _deliver(
        self, exchange: str, routing_key: str, mandatory: bool, msg: Message, queues: list[Queue], reply: bool
    ) -> bool:
        """Enqueue a routed publish (or return it if mandatory and unroutable); False if a queue refused it."""
        channel = self.channel
        vhost = channel.vhost
        if reply:
            delivered = vhost.reply(routing_key, msg) or vhost.profile.reply_to_always_routed
        else:
            if channel.tx is not None:  # a queue may have gone away between publish and commit
                queues = [q for q in queues if not q.deleted]
            delivered = bool(queues)
        if queues:
            return vhost.enqueue(queues, msg)
        if not delivered and mandatory:
            conn = channel.conn
            fields = frames.return_fields(312, "NO_ROUTE", exchange, routing_key)
            conn.write_frames(
                frames.delivery_frames(channel.number, frames.RETURN, fields, msg.header, msg.body, conn.frame_max)
            )
        return True

    def _check_properties(self, msg: Message) -> None:
        props = msg.properties
        validate_expiration(props)
        user = self.channel.conn.user
        if props.user_id is not None and props.user_id != user:
            raise errors.PreconditionFailed(
                f"user_id property set to '{props.user_id}' but authenticated user was '{user}'"
            )
        if props.reply_to == REPLY_TO:
            reply_address = self.channel.consumers.reply_address
            if reply_address is None:
                raise errors.PreconditionFailed("fast reply consumer does not exist")
            props = clone_properties(props)
            props.reply_to = reply_address
            msg.rewrite(props)

    def flush_confirms(self) -> None:
        """Send pending publisher confirms, runs of acks collapsed into one multiple ack."""
        pending, self.pending_confirms = self.pending_confirms, []
        channel = self.channel
        if not channel.is_open:
            return
        write, number = channel.conn.write, channel.number
        run_end, run_len = 0, 0
        for seq, ok in pending:
            if ok:
                run_end, run_len = seq, run_len + 1
                continue
            if run_len:
                write(frames.ack_frame(number, run_end, run_len > 1))
                run_len = 0
            channel.send(spec.Basic.Nack(seq, False, False))
        if run_len:
            write(frames.ack_frame(number, run_end, run_len > 1))
