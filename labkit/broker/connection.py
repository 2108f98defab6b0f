"""One client connection: protocol header, PLAIN authentication, tune, heartbeats, channels, close.

Why: an explicit state machine (header -> start -> tune -> open -> running -> closing) is the simplest
way to be strict like RabbitMQ (wrong protocol header, bad credentials, frames out of order, oversized
frames, silent or stalled clients) while never letting one bad client disturb the others. Built on
asyncio.Protocol with writes coalesced once per loop iteration, because the client, not the broker,
must be the bottleneck. What the handshake offers and accepts is in handshake.py, the heartbeat timing
in heartbeat.py; this module applies them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import errors, frames, handshake
from .channel import Channel, ChannelState
from .handshake import CLOSED, CLOSING, CONNECTION_TRANSITIONS, HEADER, OPEN, RUNNING, START, TUNE, ConnectionState
from .heartbeat import Heartbeat

if TYPE_CHECKING:  # pragma: no cover
    from .server import Broker

log = logging.getLogger(__name__)


CLOSE_OK_TIMEOUT = 1.0
# SO_LINGER on, 0 s: if the broker process dies, the OS resets its connections (a client sees "connection
# reset"), as RabbitMQ's default tcp_listen_options {linger, {true, 0}} make it do (observed: kill -9 of
# RabbitMQ 3.10.8). A graceful close switches it off first, so its last frames are not discarded.
_LINGER_RESET, _LINGER_OFF = struct.pack("ii", 1, 0), struct.pack("ii", 0, 0)


class Connection(asyncio.Protocol):
    """One client's TCP connection, from its protocol header to its close.

    It runs the handshake (header, start/start-ok with PLAIN or AMQPLAIN, tune/tune-ok, open) as the
    ConnectionState machine, owns the connection's channels and routes channel frames to them, keeps
    heartbeats, applies memory-alarm flow control (connection.blocked) to publishers, and coalesces its
    output into one socket write per batch of input. A connection error closes it with the AMQP reply
    code (connection.close, then the socket on close-ok or after CLOSE_OK_TIMEOUT); a bug in the broker
    closes only this connection, never the server.
    """

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.loop = asyncio.get_running_loop()
        self.state: ConnectionState = HEADER
        self.transport: asyncio.Transport | None = None
        self.reader = frames.FrameReader(frames.FRAME_MIN_SIZE)
        self.frame_max = frames.FRAME_MIN_SIZE
        self.channel_max = broker.channel_max
        self.heartbeat = 0
        self.channels: dict[int, Channel] = {}
        self.client_properties: dict[str, Any] = {}
        self.client_capabilities: dict[str, Any] = {}
        self.user = ""
        self.vhost = broker.vhost  # the one connection.open names (see auth.py)
        self.restricted = False  # True when this user's permissions are not ".*" everywhere in that vhost
        self.writable = True
        self.published = False
        self.blocked_sent = False
        self.paused = False
        self.confirming: list[Channel] = []
        self._head = b""
        self._out: list[bytes] = []
        self.flush_queued = False
        self._receiving = False
        self._timers: list[asyncio.TimerHandle] = []  # handshake and close-ok deadlines
        self.heartbeats = Heartbeat(self.loop, lambda: self.write(frames.HEARTBEAT_FRAME), self._heartbeats_missed)

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _linger(transport, _LINGER_RESET)
        self.broker.connections.add(self)
        self._timers.append(self.loop.call_later(self.broker.handshake_timeout, self._handshake_expired))

    def connection_lost(self, exc: Exception | None) -> None:
        self._teardown()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        for channel in list(self.channels.values()):
            channel._redispatch()

    def data_received(self, data: bytes) -> None:
        self.heartbeats.heard = True
        if self.state >= CLOSED:
            return
        if self.state == HEADER:
            data = self._protocol_header(data)
            if not data:
                return
        self._receiving = True  # writes made while handling this data are flushed once, at the end
        try:
            for ftype, number, payload in self.reader.feed(data):
                self._frame(ftype, number, payload)
        except errors.ConnectionError as exc:
            self.close_with(exc)
        except Exception as exc:  # a broker bug must not kill the server, only this connection
            log.exception("internal error on %s", self)
            self.close_with(errors.AMQPError(f"internal error: {exc!r}"))
        finally:
            if self.confirming:
                store = self.broker.store
                if store is not None:
                    store.commit()  # persistent messages reach the disk before their confirms leave
                for channel in self.confirming:
                    channel.flush_confirms()
                self.confirming = []
            if self.published:
                self.published = False
                if self.broker.memory.blocked:
                    self._block()
            self._receiving = False
            self._flush()
            self.broker.flush_pending()  # deliveries this data caused on other connections: send now

    # -- writing --------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Buffer output; it is sent at the end of the data_received that caused it (one send per
        connection per batch), or by the broker's flush on the next loop iteration."""
        self._out.append(data)
        if not self._receiving and not self.flush_queued:
            self.flush_queued = True
            self.broker.queue_flush(self)

    def write_frames(self, parts: list[bytes]) -> None:
        self._out += parts
        if not self._receiving and not self.flush_queued:
            self.flush_queued = True
            self.broker.queue_flush(self)

    def _flush(self) -> None:
        if self._out:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(b"".join(self._out))
                self.heartbeats.spoke = True
            self._out.clear()

    # -- handshake ------------------------------------------------------------------------------
    def _protocol_header(self, data: bytes) -> bytes:
        self._head += data
        if len(self._head) < 8:
            if frames.PROTOCOL_HEADER.startswith(self._head):
                return b""
        elif self._head[:8] == frames.PROTOCOL_HEADER:
            rest, self._head = self._head[8:], b""
            self._enter(START)
            self.write(frames.method_frame(0, handshake.start(self.broker)))
            return rest
        # Wrong protocol: answer with the one we speak, then close (AMQP 0-9-1 section 4.2.2).
        self._out.append(frames.PROTOCOL_HEADER)
        self._abort()  # flushes the header first
        return b""

    def _frame(self, ftype: int, number: int, payload: bytes) -> None:
        if ftype == frames.METHOD:
            if number == 0:
                self._connection_method(frames.decode_method(payload))
            elif self.state == RUNNING:
                self._channel_method(number, payload)
            elif self.state != CLOSING:
                raise errors.CommandInvalid("channel method before connection.open", method=(0, 0))
        elif ftype == frames.HEARTBEAT:
            if number != 0:
                raise errors.FrameError(f"heartbeat frame on channel {number}")
        elif ftype in (frames.HEADER, frames.BODY):
            if self.state == CLOSING:
                return
            channel = self.channels.get(number)
            if number == 0 or channel is None or self.state != RUNNING:
                raise errors.UnexpectedFrame(f"content frame on channel {number} without basic.publish")
            if channel.state is not ChannelState.OPEN:
                return  # content of a publish sent before the client saw our channel.close
            try:
                if ftype == frames.HEADER:
                    channel.on_header(payload)
                else:
                    channel.on_body(payload)
            except errors.ChannelError as exc:
                channel.close_with(exc)
        else:
            raise errors.FrameError(f"unknown frame type {ftype}")

    def _connection_method(self, method: Any) -> None:
        state = self.state
        if isinstance(method, spec.Connection.Close):
            self.write(frames.method_frame(0, spec.Connection.CloseOk()))
            self._flush()
            self._abort(graceful=True)
            return
        if isinstance(method, spec.Connection.CloseOk):
            if state == CLOSING:
                self._abort(graceful=True)
            return
        if state == CLOSING:
            return
        if state == START and isinstance(method, spec.Connection.StartOk):
            self._start_ok(method)
        elif state == TUNE and isinstance(method, spec.Connection.TuneOk):
            self._tune_ok(method)
        elif state == OPEN and isinstance(method, spec.Connection.Open):
            auth = self.broker.auth
            self.vhost = auth.open_vhost(self.user, method.virtual_host)
            self.restricted = not auth.full_access(self.user, self.vhost.name)
            self._enter(RUNNING)
            self.write(frames.method_frame(0, spec.Connection.OpenOk()))

        elif state == RUNNING and isinstance(method, spec.Connection.UpdateSecret):
            self.write(frames.method_frame(0, spec.Connection.UpdateSecretOk()))
        elif state == RUNNING and isinstance(method, (spec.Connection.Blocked, spec.Connection.Unblocked)):
            return
        else:
            raise errors.CommandInvalid(
                f"unexpected {method.name} in this connection state", method=(method.index >> 16, method.index & 0xFFFF)
            )

    def _start_ok(self, method: spec.Connection.StartOk) -> None:
        self.client_properties = dict(method.client_properties or {})
        self.client_capabilities = dict(self.client_properties.get("capabilities") or {})
        user = self.broker.auth.authenticate(method.mechanism, method.response)
        if user is None:
            if self.client_capabilities.get("authentication_failure_close"):
                raise handshake.login_refused(method.mechanism)
            self._abort()
            return
        self.user = user
        self._enter(TUNE)
        self.write(frames.method_frame(0, handshake.tune(self.broker)))

    def _tune_ok(self, method: spec.Connection.TuneOk) -> None:
        self.frame_max, self.channel_max, self.heartbeat = handshake.tuned(self.broker, method)
        self.reader.frame_max = self.frame_max
        self._enter(OPEN)
        if self.heartbeat:
            self.heartbeats.start(self.heartbeat)

    # -- channels -------------------------------------------------------------------------------
    def _channel_method(self, number: int, payload: bytes) -> None:
        channel = self.channels.get(number)
        if channel is None:
            method = frames.decode_method(payload)
            if not isinstance(method, spec.Channel.Open):
                raise errors.ChannelMisuse(
                    f"expected 'channel.open' on channel {number}", method=(method.index >> 16, method.index & 0xFFFF)
                )
            if self.channel_max and len(self.channels) >= self.channel_max:
                # RabbitMQ limits how many channels are open at once, not the channel number
                # (rabbit_reader.erl, create_channel): 3.10.8 opens channel 65535 with channel_max 2047.
                raise errors.NotAllowed(
                    f"number of channels opened ({len(self.channels)}) has reached the "
                    f"negotiated channel_max ({self.channel_max})"
                )
            limit = self.broker.auth.channel_limit(self.user)
            if (
                limit is not None
                and sum(len(c.channels) for c in self.broker.connections if c.user == self.user) >= limit
            ):
                raise self.broker.auth.refuse_channel(self.user, limit)
            self.channels[number] = Channel(self, number)
            self.write(frames.method_frame(number, spec.Channel.OpenOk()))
            return
        try:
            channel.on_method(payload)
        except errors.ChannelError as exc:
            channel.close_with(exc)

    def channel_closed(self, channel: Channel) -> None:
        if self.channels.get(channel.number) is channel:
            del self.channels[channel.number]

    # -- flow control ---------------------------------------------------------------------------
    def _block(self) -> None:
        """This connection published while the memory alarm is on: like RabbitMQ, stop reading from it
        and send connection.blocked. Connections that only consume are never blocked, so they can
        keep acknowledging and drain the queues that clear the alarm."""
        if self.state != RUNNING or self.paused or self.transport is None:
            return
        if self.client_capabilities.get("connection.blocked"):
            self.blocked_sent = True
            self.write(frames.method_frame(0, spec.Connection.Blocked("low on memory")))
        self.paused = True
        self.transport.pause_reading()

    def unblock(self) -> None:
        """The memory alarm cleared: connection.unblocked, and read from this connection again."""
        if self.blocked_sent:
            self.blocked_sent = False
            if self.state == RUNNING:
                self.write(frames.method_frame(0, spec.Connection.Unblocked()))
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    # -- liveness -------------------------------------------------------------------------------
    def _handshake_expired(self) -> None:
        if self.state < RUNNING:
            log.info("closing %s: handshake not completed in time", self)
            self._abort()

    def _heartbeats_missed(self) -> None:
        log.info("closing %s: missed heartbeats from client", self)
        self._abort()

    # -- closing --------------------------------------------------------------------------------
    def close_with(self, exc: errors.AMQPError) -> None:
        """Server-initiated close with a reply code; the socket closes on close-ok or after a timeout."""
        if self.state >= CLOSING:
            return
        if self.state == HEADER:
            self._abort()
            return
        self.write(frames.method_frame(0, spec.Connection.Close(exc.code, exc.reply_text, *exc.method)))
        self._flush()
        self._release_channels()
        self._enter(CLOSING)
        self.heartbeats.stop()  # the close-ok deadline takes over
        self._timers.append(self.loop.call_later(CLOSE_OK_TIMEOUT, self._abort))

    def _enter(self, state: ConnectionState) -> None:
        """Move to ``state`` along CONNECTION_TRANSITIONS (a wrong step is a broker bug, closing this connection)."""
        if state not in CONNECTION_TRANSITIONS[self.state]:
            raise RuntimeError(f"connection cannot go from {self.state.name} to {state.name}")
        self.state = state

    def _abort(self, graceful: bool = False) -> None:
        if self.transport is not None:
            self._flush()
            if graceful:
                _linger(self.transport, _LINGER_OFF)
                self.transport.close()
            else:
                self.transport.abort()
        self._teardown()

    def _release_channels(self) -> None:
        """Requeue every channel's unacked messages; none may be redelivered to this connection."""
        self.writable = False
        for channel in list(self.channels.values()):
            channel.release()
        self.channels.clear()

    def _teardown(self) -> None:
        if self.state == CLOSED:
            return
        self._enter(CLOSED)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.heartbeats.stop()
        self._release_channels()
        self.vhost.connection_closed(self)
        self.broker.connection_gone(self)

    def __repr__(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"<Connection {peer}>"


def _linger(transport: asyncio.BaseTransport, option: bytes) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, option)
        except OSError:  # already closed by the peer: nothing left to linger over
            pass
