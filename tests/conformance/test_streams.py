"""Stream queues: an append-only log read from an offset, without removing what was read."""

import asyncio
import datetime

import aiormq
import pytest

from .support import QUIET, text

STREAM = {"x-queue-type": "stream"}
BODIES = ["a", "b", "c", "d", "e"]


async def stream_with(client, *bodies):
    queue = await client.queue(durable=True, arguments=STREAM)
    await client.publish(queue, *bodies)
    return queue


async def read_from(client, queue, offset, prefetch=100):
    """Start a stream consumer at ``offset`` (streams require a prefetch limit) and return its Inbox."""
    channel = await client.channel()
    await channel.basic_qos(prefetch_count=prefetch)
    return await client.consume(channel, queue, arguments={"x-stream-offset": offset})


@pytest.mark.profiles
async def test_stream_must_be_durable(client, profile):
    # 4.3 refuses a transient non-exclusive queue (541, connection) before the stream type looks at it.
    channel = await client.channel()
    refusal = (
        aiormq.exceptions.ChannelPreconditionFailed if profile == "3.10" else aiormq.exceptions.ConnectionInternalError
    )
    with pytest.raises(refusal, match="non-durable" if profile == "3.10" else "transient_nonexcl_queues"):
        await channel.queue_declare(client.queue_name(), arguments=STREAM)


async def test_stream_offset_first_reads_everything(client):
    queue = await stream_with(client, *BODIES)
    inbox = await read_from(client, queue, "first")
    assert text(await inbox.take(5)) == BODIES
    await inbox.nothing()


async def test_stream_offset_numeric_starts_at_that_offset(client):
    queue = await stream_with(client, *BODIES)
    inbox = await read_from(client, queue, 2)
    got = await inbox.take(3)
    assert text(got) == ["c", "d", "e"]
    # Each delivery says where it sits in the log.
    assert [m.header.properties.headers["x-stream-offset"] for m in got] == [2, 3, 4]


async def test_stream_offset_next_reads_only_new_messages(client):
    queue = await stream_with(client, *BODIES)
    inbox = await read_from(client, queue, "next")
    await inbox.nothing()
    await client.publish(queue, "new")
    assert text(await inbox.take()) == ["new"]


async def test_stream_offset_last_starts_in_the_last_chunk(client):
    queue = await stream_with(client, *BODIES)
    inbox = await read_from(client, queue, "last")
    first = await inbox.take()
    await asyncio.sleep(QUIET)
    got = text(first + await inbox.take(inbox.count()))
    # "last" starts at the beginning of the last chunk written, so how many old messages come back
    # depends on chunking: assert it is a non-empty tail of the log that ends with the newest message.
    assert got == BODIES[-len(got) :]


async def read_at(client, queue, seconds: int) -> list[str]:
    """Everything a new reader gets from ``queue`` starting at the timestamp ``seconds`` (epoch, our clock)."""
    inbox = await read_from(client, queue, datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc))
    return text(await inbox.drain(3 * QUIET))


async def test_stream_offset_timestamp_skips_older_messages(client):
    # The broker stamps each chunk with ITS clock, which need not agree with ours: RabbitMQ's Erlang VM here
    # ran 8 s behind the OS clock after a clock step at boot (no_time_warp keeps the offset it started
    # with). So search our clock, second by second, for a timestamp that starts a reader after "old" and at
    # "new": one exists exactly when a timestamp offset skips the older chunk. Assumes skew under 2 minutes.
    queue = await stream_with(client, "old")
    await asyncio.sleep(2.2)  # AMQP timestamps have one-second resolution: a gap of two whole seconds at least
    await client.publish(queue, "new")
    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
    lo, hi = now - 120, now + 120
    assert await read_at(client, queue, lo) == ["old", "new"]
    assert await read_at(client, queue, hi) == []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        got = await read_at(client, queue, mid)
        if got == ["new"]:
            return
        assert got in (["old", "new"], []), got
        lo, hi = (mid, hi) if got else (lo, mid)
    raise AssertionError(f"no timestamp reads only the newer message: {lo} reads both, {hi} reads nothing")


async def test_stream_offset_timestamp_in_the_past_reads_everything(client):
    queue = await stream_with(client, *BODIES)
    inbox = await read_from(client, queue, datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    assert text(await inbox.take(5)) == BODIES


async def test_stream_reading_is_non_destructive(client):
    queue = await stream_with(client, *BODIES)
    first, second = await read_from(client, queue, "first"), await read_from(client, queue, "first")
    assert text(await first.take(5)) == BODIES
    assert text(await second.take(5)) == BODIES
    assert text(await (await read_from(client, queue, "first")).take(5)) == BODIES


async def test_stream_consumer_without_prefetch_is_precondition_failed(client):
    queue = await stream_with(client, *BODIES)
    channel = await client.channel()
    # Observed on RabbitMQ 3.10: "consumer prefetch count is not set for 'queue ...'".
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="prefetch"):
        await channel.basic_consume(queue, lambda message: None)


async def test_stream_basic_get_closes_connection_not_implemented(client):
    queue = await stream_with(client, *BODIES)
    connection = await client.connect()
    channel = await connection.channel()
    # Observed on RabbitMQ 3.10: a connection-level 540, "basic.get not supported by stream queues".
    with pytest.raises(aiormq.exceptions.ConnectionNotImplemented, match="NOT_IMPLEMENTED"):
        await channel.basic_get(queue)
