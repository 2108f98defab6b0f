"""Hostile and broken clients: the broker never crashes or hangs, closes only the offending connection,
with the reply code AMQP 0-9-1 prescribes, and every other connection keeps working.

Why raw sockets: aiormq never sends a malformed frame, and these are exactly the frames a buggy client
library, a port scanner or a half-dead network produces. pamqp builds the valid frames that get broken.
Each case runs against the embedded broker in its own process (as the lab runs it) and, where RabbitMQ
can be checked the same way, against ``AMQP_URL`` too. Where the two brokers differ, the test says how.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import body, commands, frame, header
from pamqp.exceptions import UnmarshalingException

from labkit.broker.process import BrokerProcess

AMQP_URL = os.environ.get("AMQP_URL")
KINDS = ["embedded"] + (["rabbitmq"] if AMQP_URL else [])
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
HANDSHAKE_TIMEOUT = 1.0  # the embedded broker under test gives up on a silent handshake after this
# Connection-level reply codes a broker may close a broken connection with.
CONNECTION_ERRORS = {501, 502, 503, 504, 505, 530, 540}
FUZZ = settings(
    max_examples=20,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


class Raw:
    """A blocking AMQP 0-9-1 client that sends whatever bytes it is told to."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, value, channel: int = 0) -> None:
        self.send(frame.marshal(value, channel))

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_bytes(self, n: int, timeout: float = 5.0) -> bytes:
        return self._read(n, time.monotonic() + timeout)

    def recv_frame(self, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        head = self._read(7, deadline)
        rest = self._read(struct.unpack(">I", head[3:7])[0] + 1, deadline)
        return frame.unmarshal(head + rest)[1:]

    def handshake(self, heartbeat: int = 0, frame_max: int = 131072) -> Raw:
        self.send(PROTOCOL_HEADER)
        assert isinstance(self.recv_frame()[1], commands.Connection.Start)
        self.send_frame(commands.Connection.StartOk(client_properties={"product": "fuzz"}, response="\0guest\0guest"))
        assert isinstance(self.recv_frame()[1], commands.Connection.Tune)
        self.send_frame(commands.Connection.TuneOk(channel_max=2047, frame_max=frame_max, heartbeat=heartbeat))
        self.send_frame(commands.Connection.Open(virtual_host="/"))
        assert isinstance(self.recv_frame()[1], commands.Connection.OpenOk)
        return self

    def open_channel(self, number: int = 1) -> Raw:
        self.send_frame(commands.Channel.Open(), number)
        assert isinstance(self.recv_frame()[1], commands.Channel.OpenOk)
        return self

    def outcome(self, timeout: float = 5.0) -> tuple:
        """How the broker ended this connection: ("close", code) / ("channel_close", code) / ("eof",) /
        ("quiet",) if it said nothing for ``timeout`` s. Answers Connection.Close with close-ok."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    _, value = self.recv_frame(max(0.01, deadline - time.monotonic()))
                except UnmarshalingException:
                    continue  # e.g. a delivery echoing a content header we broke: the broker only relays it
                if isinstance(value, commands.Connection.Close):
                    try:
                        self.send_frame(commands.Connection.CloseOk())
                    except OSError:
                        pass
                    return ("close", value.reply_code)
                if isinstance(value, commands.Channel.Close):
                    return ("channel_close", value.reply_code)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return ("eof",)
        except TimeoutError:
            return ("quiet",)

    def ping(self, channel: int = 1) -> bool:
        """A request that needs an answer (basic.qos -> qos-ok) on an open channel."""
        self.send_frame(commands.Basic.Qos(prefetch_count=0), channel)
        return isinstance(self.recv_frame()[1], commands.Basic.QosOk)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Target:
    kind: str
    port: int
    process: BrokerProcess | None  # the embedded broker's process; None for RabbitMQ

    def connect(self, **handshake) -> Raw:
        return Raw(self.port).handshake(**handshake)

    def assert_healthy(self, bystander: Raw) -> None:
        """The broker survived and still serves an old connection and a new one."""
        if self.process is not None:
            assert self.process.returncode is None, "the broker process died"
        assert bystander.ping(), "a well-behaved connection stopped working"
        fresh = self.connect().open_channel()
        try:
            assert fresh.ping()
        finally:
            fresh.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/").split("/")[0] or 5672)


@pytest.fixture(scope="module")
def embedded():
    # Own process and its own loop: this test talks to it with blocking sockets, never asyncio.
    bp = asyncio.run(BrokerProcess.start(handshake_timeout=HANDSHAKE_TIMEOUT))
    yield bp
    asyncio.run(bp.stop())


@pytest.fixture(params=KINDS)
def target(request, embedded) -> Target:
    if request.param == "rabbitmq":
        return Target("rabbitmq", _port(AMQP_URL), None)
    return Target("embedded", _port(embedded.url), embedded)


@pytest.fixture
def bystander(target):
    raw = target.connect().open_channel()
    yield raw
    raw.close()


def publish_frames(channel: int, routing_key: str, declared: int, *bodies: int) -> bytes:
    """basic.publish + a content header announcing ``declared`` bytes + body frames of these sizes."""
    return b"".join(
        (
            frame.marshal(commands.Basic.Publish(exchange="", routing_key=routing_key), channel),
            frame.marshal(header.ContentHeader(body_size=declared, properties=commands.Basic.Properties()), channel),
            *(frame.marshal(body.ContentBody(b"x" * size), channel) for size in bodies),
        )
    )


def raw_frame(ftype: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + end


# --- each rule, explicitly ----------------------------------------------------------------------------


@given(garbage=st.binary(min_size=8, max_size=8).filter(lambda b: b != PROTOCOL_HEADER))
@FUZZ
def test_a_wrong_protocol_header_gets_ours_back_and_the_connection_closes(target, bystander, garbage):
    raw = Raw(target.port)
    try:
        raw.send(garbage)
        assert raw.recv_bytes(8) == PROTOCOL_HEADER  # AMQP 0-9-1 section 4.2.2
        assert raw.outcome() == ("eof",)
    finally:
        raw.close()
    target.assert_healthy(bystander)


def test_an_http_request_is_answered_with_the_amqp_header(target, bystander):
    raw = Raw(target.port)
    try:
        raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv_bytes(8) == PROTOCOL_HEADER
        assert raw.outcome() == ("eof",)
    finally:
        raw.close()
    target.assert_healthy(bystander)


# name -> (bytes sent after handshake + channel 1 open, expected reply code per broker kind)
BROKEN = {
    "oversized frame (> negotiated frame_max 4096)": (
        lambda: raw_frame(1, 1, b"\x00\x3c\x00\x28" + b"\x00" * 9996),
        {"embedded": 501, "rabbitmq": 501},
    ),
    "body larger than the declared body_size": (
        # RabbitMQ only notices at the next frame, so one follows.
        lambda: publish_frames(1, "nowhere", 10, 20) + frame.marshal(commands.Basic.Qos(), 1),
        {"embedded": 501, "rabbitmq": 505},
    ),
    "method on a channel that was never opened": (
        lambda: frame.marshal(commands.Queue.Declare(queue="never"), 5),
        {"embedded": 504, "rabbitmq": 504},
    ),
    "publish on a channel that was never opened": (
        lambda: publish_frames(5, "nowhere", 3, 3),
        {"embedded": 504, "rabbitmq": 504},
    ),
    "truncated frame followed by the next one": (
        lambda: (
            frame.marshal(commands.Basic.Qos(prefetch_count=1), 1)[:-3]
            + frame.marshal(commands.Basic.Qos(prefetch_count=2), 1)
        ),
        {"embedded": 501, "rabbitmq": 501},
    ),
    "frame-end byte is not 0xCE": (
        lambda: frame.marshal(commands.Basic.Qos(), 1)[:-1] + b"\x00",
        {"embedded": 501, "rabbitmq": 501},
    ),
    "unknown frame type 9": (lambda: raw_frame(9, 0, b"\x00"), {"embedded": 501, "rabbitmq": 501}),
    "method frame too short for its arguments": (
        lambda: raw_frame(1, 1, struct.pack(">HH", 50, 10) + b"\x00"),
        {"embedded": 501, "rabbitmq": 501},
    ),
    "content header without basic.publish": (
        lambda: frame.marshal(header.ContentHeader(body_size=3, properties=commands.Basic.Properties()), 1),
        {"embedded": 505, "rabbitmq": 505},
    ),
    "content body without basic.publish": (
        lambda: frame.marshal(body.ContentBody(b"abc"), 1),
        {"embedded": 505, "rabbitmq": 505},
    ),
    "method where a content body was due": (
        lambda: publish_frames(1, "nowhere", 10, 4) + frame.marshal(commands.Basic.Qos(), 1),
        {"embedded": 505, "rabbitmq": 505},
    ),
    "second channel.open on an open channel": (
        lambda: frame.marshal(commands.Channel.Open(), 1),
        {"embedded": 504, "rabbitmq": 504},
    ),
    "channel.open on channel 0": (
        lambda: frame.marshal(commands.Channel.Open(), 0),
        {"embedded": 503, "rabbitmq": 504},
    ),
    # The spec says 501 FRAME_ERROR; RabbitMQ 3.10 answers 505.
    "heartbeat on a non-zero channel": (lambda: raw_frame(8, 1, b""), {"embedded": 501, "rabbitmq": 505}),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_frame_closes_only_its_connection_with_the_right_code(target, bystander, case):
    data, expected = BROKEN[case]
    raw = target.connect(frame_max=4096).open_channel()
    try:
        raw.send(data())
        assert raw.outcome() == ("close", expected[target.kind])
    finally:
        raw.close()
    target.assert_healthy(bystander)


def test_an_unknown_method_closes_the_connection(target, bystander):
    # RabbitMQ 3.10 drops such a connection without a Connection.Close; the embedded broker says why.
    raw = target.connect().open_channel()
    try:
        raw.send(raw_frame(1, 1, struct.pack(">HH", 60, 999)))
        result = raw.outcome()
        assert result == ("eof",) if target.kind == "rabbitmq" else result in {("close", 501), ("close", 540)}
    finally:
        raw.close()
    target.assert_healthy(bystander)


def test_a_queue_name_pamqp_would_refuse_is_declared_like_rabbitmq_does(target, bystander, request):
    # Found by test_mutated_valid_frames: pamqp decodes a name with a NUL byte but refuses to encode it
    # in queue.declare-ok, so the embedded broker answered 541 INTERNAL_ERROR. RabbitMQ declares it.
    if target.kind == "embedded":
        request.applymarker(
            pytest.mark.xfail(
                reason="embedded broker: queue.declare-ok with a name pamqp "
                "cannot encode raises 541 (reported to broker core)"
            )
        )
    name = b"fz-\x00-" + uuid.uuid4().hex[:6].encode()
    raw = target.connect().open_channel()
    try:
        raw.send(
            raw_frame(1, 1, struct.pack(">HHH", 50, 10, 0) + bytes([len(name)]) + name + b"\x04" + b"\x00\x00\x00\x00")
        )  # bit 4: exclusive; no arguments
        assert isinstance(raw.recv_frame()[1], commands.Queue.DeclareOk)
    finally:
        raw.close()
    target.assert_healthy(bystander)


def test_a_client_vanishing_mid_frame_costs_nothing(target, bystander):
    raw = target.connect().open_channel()
    raw.send(frame.marshal(commands.Queue.Declare(queue=f"fz-{uuid.uuid4().hex[:6]}", exclusive=True), 1)[:9])
    raw.close()
    target.assert_healthy(bystander)


# --- slow loris: clients that start a frame and never finish it ---------------------------------------


def test_a_half_frame_after_the_handshake_is_closed_by_the_heartbeat_timeout(target, bystander):
    heartbeat = 1  # both brokers drop a client after about two heartbeat intervals of silence
    raw = target.connect(heartbeat=heartbeat)
    try:
        raw.send(frame.marshal(commands.Channel.Open(), 1)[:5])
        t0 = time.monotonic()
        assert raw.outcome(timeout=15 * heartbeat) == ("eof",)
        assert time.monotonic() - t0 < 8 * heartbeat, "the stalled client must be dropped within a few heartbeats"
    finally:
        raw.close()
    target.assert_healthy(bystander)


@pytest.mark.parametrize("sent", [b"AMQ", PROTOCOL_HEADER], ids=["partial header", "no start-ok"])
def test_a_stalled_handshake_is_closed_by_the_handshake_timeout(embedded, sent):
    # RabbitMQ's handshake timeout is 10 s, too slow for this suite: checked on the embedded broker.
    target = Target("embedded", _port(embedded.url), embedded)
    bystander = target.connect().open_channel()
    raw = Raw(target.port)
    try:
        raw.send(sent)
        t0 = time.monotonic()
        assert raw.outcome(timeout=15) == ("eof",)
        assert HANDSHAKE_TIMEOUT * 0.5 < time.monotonic() - t0 < HANDSHAKE_TIMEOUT * 8
    finally:
        raw.close()
    target.assert_healthy(bystander)
    bystander.close()


# --- property-based: random and mutated streams ------------------------------------------------------


def _valid_stream(queue: str) -> bytes:
    """What a normal client sends after opening channel 1: declare, publish with a body, qos."""
    return b"".join(
        (
            frame.marshal(commands.Queue.Declare(queue=queue, exclusive=True), 1),
            publish_frames(1, queue, 5, 5),
            frame.marshal(commands.Basic.Qos(prefetch_count=3), 1),
        )
    )


def _acceptable(result: tuple) -> bool:
    kind = result[0]
    if kind == "close":
        return result[1] in CONNECTION_ERRORS
    if kind == "channel_close":
        return 400 <= result[1] < 500  # a channel error: well-formed frames that asked for nonsense
    return kind in ("eof", "quiet")  # quiet: waiting for the rest of a frame is legitimate


def _throw(target: Target, bystander: Raw, data: bytes) -> None:
    raw = target.connect().open_channel()
    try:
        raw.send(data)
        result = raw.outcome(timeout=0.2)
        assert _acceptable(result), result
    except (ConnectionResetError, BrokenPipeError):
        pass  # closed while we were still sending: also a legitimate answer
    finally:
        raw.close()
    target.assert_healthy(bystander)


@given(data=st.binary(min_size=1, max_size=400))
@FUZZ
def test_random_bytes_after_the_handshake(target, bystander, data):
    _throw(target, bystander, data)


@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
    insert=st.binary(max_size=16),
)
@FUZZ
def test_mutated_valid_frames(target, bystander, edits, cut, insert):
    stream = bytearray(_valid_stream(f"fz-{uuid.uuid4().hex[:8]}"))
    for position, value in edits:
        stream[position % len(stream)] = value
    if cut is not None:
        at = cut % len(stream)
        stream[at:at] = insert
    _throw(target, bystander, bytes(stream))


def test_fuzzed_connections_leave_nothing_behind(embedded):
    # Runs after the property tests: their exclusive queues vanish only if every connection was torn down.
    leftovers = [q["name"] for q in asyncio.run(embedded.queues()) if q["name"].startswith("fz-")]
    assert leftovers == []
