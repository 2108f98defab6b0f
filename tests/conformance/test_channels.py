"""Channels: multiplexing, per-channel state, content framing, errors scoped to one channel, flow."""

import hashlib
import math
import os

import aiormq
import pytest
from pamqp import commands as spec
from pamqp.body import ContentBody

from .support import WireTap, closed_by_broker


def frames_needed(body_size: int, frame_max: int) -> int:
    """Body frames for ``body_size`` bytes when each frame is filled: 8 bytes of a frame are overhead."""
    return math.ceil(body_size / (frame_max - 8))


async def test_many_channels_on_one_connection_all_work(client):
    connection = await client.connect()
    queue = await client.queue()
    channels = [await connection.channel(publisher_confirms=False) for _ in range(100)]
    assert len({channel.number for channel in channels}) == 100
    for channel in channels:
        ok = await channel.queue_declare(queue, passive=True)
        assert ok.queue == queue


async def test_delivery_tags_count_per_channel_from_one(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c")
    connection = await client.connect()
    first, second = await connection.channel(), await connection.channel()
    tags = [
        (await first.basic_get(queue)).delivery.delivery_tag,
        (await second.basic_get(queue)).delivery.delivery_tag,
        (await first.basic_get(queue)).delivery.delivery_tag,
    ]
    assert tags == [1, 1, 2]


async def test_large_body_round_trips_intact(client):
    queue = await client.queue()
    body = os.urandom(1_000_000)
    channel = await client.channel()
    await channel.basic_publish(body, routing_key=queue)
    message = await channel.basic_get(queue, no_ack=True)
    assert hashlib.sha256(message.body).digest() == hashlib.sha256(body).digest()


async def test_large_body_is_split_into_frames_within_frame_max(client):
    queue = await client.queue()
    body = os.urandom(1_000_000)
    await (await client.admin()).basic_publish(body, routing_key=queue)
    tap = WireTap()
    connection = await client.connect(transport_factory=tap)
    await (await connection.channel()).basic_get(queue, no_ack=True)
    frame_max = connection.connection_tune.frame_max
    body_frames = [size for _, frame, size in tap.frames() if isinstance(frame, ContentBody)]
    assert max(size for _, _, size in tap.frames()) <= frame_max
    assert len(body_frames) == frames_needed(len(body), frame_max)


async def test_large_body_round_trips_with_a_small_frame_max(client, reconfigure):
    await reconfigure("RabbitMQ's frame_max is server configuration", frame_max=4096)
    queue = await client.queue()
    body = os.urandom(1_000_000)
    tap = WireTap()
    channel = await (await client.connect(transport_factory=tap)).channel()
    await channel.basic_publish(body, routing_key=queue)
    message = await channel.basic_get(queue, no_ack=True)
    assert message.body == body
    assert max(size for _, _, size in tap.frames()) <= 4096


async def test_channel_error_closes_only_that_channel(client):
    connection = await client.connect()
    doomed, bystander = await connection.channel(), await connection.channel()
    queue = await client.queue()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="NOT_FOUND"):
        await doomed.queue_declare(client.queue_name(), passive=True)
    assert doomed.is_closed
    assert not connection.is_closed
    assert (await bystander.queue_declare(queue, passive=True)).queue == queue
    assert not (await connection.channel()).is_closed


async def test_channel_flow_active_is_acknowledged(client):
    channel = await client.channel()
    ok = await channel.flow(True)
    assert isinstance(ok, spec.Channel.FlowOk) and ok.active is True


async def test_channel_flow_inactive_from_client_is_not_implemented(client):
    # Observed on RabbitMQ 3.10: a client asking the broker to stop deliveries (channel.flow
    # active=false) gets the whole connection closed with 540 NOT_IMPLEMENTED "active=false".
    connection = await client.connect()
    channel = await connection.channel()
    with pytest.raises(aiormq.exceptions.ConnectionNotImplemented, match="NOT_IMPLEMENTED"):
        await channel.flow(False)
    assert isinstance(await closed_by_broker(connection), aiormq.exceptions.ConnectionNotImplemented)
