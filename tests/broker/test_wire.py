"""Wire-level behaviour aiormq cannot provoke: an oversized message, and publishes that race with a
channel.close the broker sent (the second checked against RabbitMQ 3.10.8 with this client).

Why raw frames: aiormq never announces a 200 MB body it does not send, and never keeps publishing
on a channel it knows is closed; buggy or hostile clients do, and the broker must answer with the
channel error RabbitMQ uses and keep the connection usable.
"""

from __future__ import annotations

import asyncio

import aiormq
import pytest
from pamqp import body, frame, header
from pamqp import commands as spec
from pamqp.heartbeat import Heartbeat

from labkit.broker import Broker
from labkit.broker.channel import ChannelState
from labkit.broker.frames import FrameReader
from labkit.broker.handshake import ConnectionState


class RawClient:
    """Just enough of a client: handshake, send frames, read frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = FrameReader(frame_max=0)
        self.inbox: list = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        client.writer.write(b"AMQP\x00\x00\x09\x01")
        await client.expect(spec.Connection.Start)
        client.send(0, spec.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0guest"))
        tune = await client.expect(spec.Connection.Tune)
        client.send(0, spec.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))
        client.send(0, spec.Connection.Open("/"))
        await client.expect(spec.Connection.OpenOk)
        return client

    def send(self, channel: int, *values) -> None:
        for value in values:
            self.writer.write(frame.marshal(value, channel))

    async def expect(self, kind, timeout: float = 5.0):
        """Read until a frame of ``kind`` arrives; return it."""
        async with asyncio.timeout(timeout):
            while True:
                while self.inbox:
                    got = self.inbox.pop(0)
                    if isinstance(got, kind):
                        return got
                data = await self.reader.read(65536)
                assert data, f"connection closed while waiting for {kind.__name__}"
                for ftype, channel, payload in self.frames.feed(data):
                    raw = frame._marshal(ftype, channel, payload)
                    self.inbox.append(frame.unmarshal(raw)[2] if ftype != 8 else Heartbeat())

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def raw():
    broker = await Broker().start()
    client = await RawClient.connect(broker.port)
    yield client
    await client.close()
    await broker.stop()


async def open_channel(client: RawClient, number: int) -> None:
    client.send(number, spec.Channel.Open())
    await client.expect(spec.Channel.OpenOk)


async def test_a_message_above_max_message_size_is_refused_after_its_body_and_never_buffered():
    """RabbitMQ checks max_message_size once the whole message has arrived (406, channel closed, same
    text); the lab counts the body frames of an oversized message and drops them as they come, so a
    client announcing 200 MiB cannot make it hold 200 MiB."""
    broker = await Broker(max_message_size=10_000).start()
    raw = await RawClient.connect(broker.port)
    try:
        await open_channel(raw, 1)
        raw.send(
            1, spec.Basic.Publish(routing_key="q"), header.ContentHeader(0, 30_000), body.ContentBody(b"x" * 20_000)
        )
        await open_channel(raw, 2)  # a round trip: the first two frames have been handled, no close yet
        [conn] = broker.connections
        assert conn.channels[1].content.body_frames == [] and 1 in conn.channels
        raw.send(1, body.ContentBody(b"x" * 10_000))
        close = await raw.expect(spec.Channel.Close)
        assert (close.reply_code, close.reply_text) == (
            406,
            "PRECONDITION_FAILED - message size 30000 is larger than configured max size 10000",
        )
        raw.send(1, spec.Channel.CloseOk())
        raw.send(2, spec.Queue.Declare(queue="after", durable=True))  # the connection is still usable
        assert (await raw.expect(spec.Queue.DeclareOk)).queue == "after"
    finally:
        await raw.close()
        await broker.stop()


@pytest.mark.parametrize("profile, limit", [("4.3", 16 * 1024 * 1024), ("3.10", 128 * 1024 * 1024)])
def test_max_message_size_defaults_follow_the_profile(profile, limit):
    """RabbitMQ 4.0 lowered the default max_message_size from 128 MiB to 16 MiB (4.0.1 release notes)."""
    assert Broker(rabbitmq=profile).max_message_size == limit


async def test_publishes_racing_a_channel_close_are_ignored_not_fatal(raw):
    """The client keeps publishing (method, header, body) after the broker closed the channel but
    before it read the close: RabbitMQ discards those frames, and so does the broker."""
    await open_channel(raw, 1)
    raw.send(1, spec.Basic.Get(queue="missing-queue"))  # 404 closes channel 1
    message = (spec.Basic.Publish(routing_key="q"), header.ContentHeader(0, 3), body.ContentBody(b"abc"))
    raw.send(1, *message, *message)
    close = await raw.expect(spec.Channel.Close)
    assert close.reply_code == 404
    raw.send(1, spec.Channel.CloseOk())
    await open_channel(raw, 1)  # the number can be reused and the connection still works
    raw.send(1, spec.Queue.Declare(queue="after", durable=True))
    assert (await raw.expect(spec.Queue.DeclareOk)).queue == "after"


@pytest.mark.parametrize("tag, multiple", [(1, False), (2**40 + 7, True)])
def test_hand_packed_frames_equal_pamqps(tag, multiple):
    """The hot-path encoders/decoders skip pamqp; they must produce and read exactly its bytes."""
    from labkit.broker import frames

    assert frames.ack_frame(3, tag, multiple) == frame.marshal(spec.Basic.Ack(tag, multiple), 3)
    deliver = frame.marshal(spec.Basic.Deliver("ctag", tag, multiple, "ex", "rk.é"), 3)
    fields = frames.deliver_fields(frames.shortstr("ctag"), tag, multiple, "ex", "rk.é")
    assert b"".join(frames.delivery_frames(3, frames.DELIVER, fields, b"H" * 14, b"", 4096)[:3]) == deliver
    get_ok = frame.marshal(spec.Basic.GetOk(tag, multiple, "ex", "rk", 5), 3)
    fields = frames.get_ok_fields(tag, multiple, "ex", "rk", 5)
    assert b"".join(frames.delivery_frames(3, frames.GET_OK, fields, b"H" * 14, b"", 4096)[:3]) == get_ok
    publish = frame.marshal(spec.Basic.Publish(exchange="ex", routing_key="rk.é", mandatory=multiple), 3)[7:-1]
    assert frames.decode_publish(publish) == ("ex", "rk.é", multiple)
    ack = frame.marshal(spec.Basic.Ack(tag, multiple), 3)[7:-1]
    assert frames.decode_ack(ack) == (tag, multiple)


async def test_a_message_of_exactly_the_4_3_limit_goes_through_in_frame_max_frames():
    """16 MiB, the 4.3 default max_message_size, published by aiormq (split into frame_max frames) and
    read back intact; one byte more is refused."""
    broker = await Broker(rabbitmq="4.3").start()
    try:
        connection = await aiormq.connect(broker.url)
        channel = await connection.channel()
        await channel.queue_declare("big", durable=True)
        body = bytes(range(256)) * (broker.max_message_size // 256)
        await channel.basic_publish(body, routing_key="big")
        message = await channel.basic_get("big", no_ack=True)
        assert message.body == body
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="larger than configured max size"):
            await channel.basic_publish(body + b"!", routing_key="big")
        await connection.close()
    finally:
        await broker.stop()


async def test_a_channel_error_moves_the_channel_through_its_states_and_requeues_once():
    """The channel's transition table (labkit.broker.channel): a channel error goes OPEN -> CLOSING, releasing
    its unacked messages at once (back to their queue), and CLOSING -> CLOSED on the client's close-ok, which
    frees the number. A step the table does not have is refused. The connection goes RUNNING -> CLOSED."""
    broker = await Broker().start()
    raw = await RawClient.connect(broker.port)
    try:
        await open_channel(raw, 1)
        [conn] = broker.connections
        channel = conn.channels[1]
        assert (conn.state, channel.state) == (ConnectionState.RUNNING, ChannelState.OPEN)
        raw.send(1, spec.Queue.Declare(queue="held", durable=True))
        await raw.expect(spec.Queue.DeclareOk)
        raw.send(1, spec.Basic.Publish(routing_key="held"), header.ContentHeader(0, 2), body.ContentBody(b"hi"))
        raw.send(1, spec.Basic.Get(queue="held"))
        await raw.expect(spec.Basic.GetOk)
        assert [q["messages_unacknowledged"] for q in broker.queues() if q["name"] == "held"] == [1]
        raw.send(1, spec.Basic.Get(queue="missing"))  # 404: a channel error
        await raw.expect(spec.Channel.Close)
        assert channel.state is ChannelState.CLOSING and 1 in conn.channels
        assert [
            (q["messages_ready"], q["messages_unacknowledged"]) for q in broker.queues() if q["name"] == "held"
        ] == [(1, 0)]
        raw.send(1, spec.Channel.CloseOk())
        await open_channel(raw, 2)  # a round trip: the close-ok has been handled
        assert channel.state is ChannelState.CLOSED and 1 not in conn.channels
        assert [q["messages_ready"] for q in broker.queues() if q["name"] == "held"] == [1]  # requeued once
        with pytest.raises(RuntimeError, match="cannot go from closed to open"):
            channel._enter(ChannelState.OPEN)
        with pytest.raises(RuntimeError, match="cannot go from RUNNING to TUNE"):
            conn._enter(ConnectionState.TUNE)
    finally:
        await raw.close()
        await broker.stop()
    assert conn.state is ConnectionState.CLOSED
