"""labkit.streams: stream queues read from an offset, against the lab's broker (embedded, or AMQP_URL)."""

import datetime

import pytest

from labkit.streams import StreamReader, declare_stream


async def _stream(lab, unique, count):
    queue = unique("history")
    channel = await lab.channel()
    await declare_stream(channel, queue)
    for i in range(count):
        await lab.publish(queue, f"e{i}".encode(), message_id=f"e{i}")
    return queue


async def _reader(lab, queue, offset, **options):
    return lab.own(await StreamReader(lab.amqp_url, queue, offset=offset, **options).start())


async def test_first_replays_the_whole_log_in_order_and_reading_does_not_consume(lab, unique):
    queue = await _stream(lab, unique, 12)
    seen = []
    one = await _reader(lab, queue, "first", prefetch=5, on_entry=seen.append)
    two = await _reader(lab, queue, "first")
    for reader in (one, two):
        entries = await reader.wait_for(12)
        assert [e.message_id for e in entries] == [f"e{i}" for i in range(12)]
        assert [e.offset for e in entries] == list(range(12))
        assert entries[3].body == b"e3"
    assert seen == one.entries
    await lab.delete_queue(queue)


async def test_next_sees_only_what_is_published_after_it_attached(lab, unique):
    queue = await _stream(lab, unique, 5)
    reader = await _reader(lab, queue, "next")
    assert await reader.settle(quiet=0.3) == []
    await lab.publish(queue, b"new", message_id="new")
    entries = await reader.wait_for(1)
    assert [e.message_id for e in entries] == ["new"]
    assert entries[0].offset == 5
    await lab.delete_queue(queue)


async def test_numeric_offset_and_old_timestamp(lab, unique):
    queue = await _stream(lab, unique, 6)
    from_three = await _reader(lab, queue, 3)
    assert [e.message_id for e in await from_three.wait_for(3)] == ["e3", "e4", "e5"]
    long_ago = await _reader(lab, queue, datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    assert len(await long_ago.wait_for(6)) == 6
    await lab.delete_queue(queue)


async def test_wait_for_names_what_is_missing(lab, unique):
    queue = await _stream(lab, unique, 1)
    reader = await _reader(lab, queue, "first")
    with pytest.raises(TimeoutError, match="1 of 3 entries"):
        await reader.wait_for(3, timeout=0.5)
    await lab.remove(reader)
    assert not reader.running
    await lab.delete_queue(queue)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"offset": "start"}, "offset must be one of first, last, next"),
        ({"offset": -1}, "offset must be"),
        ({"offset": datetime.datetime(2020, 1, 1)}, "timezone-aware"),
        ({"prefetch": 0}, "prefetch"),
        ({"on_entry": 3}, "on_entry"),
    ],
)
def test_reader_arguments_are_validated(options, message):
    with pytest.raises(ValueError, match=message):
        StreamReader("amqp://guest:guest@127.0.0.1:5672/", "q", **options)


async def test_declare_stream_validates_retention(lab):
    channel = await lab.channel()
    with pytest.raises(ValueError, match="max_age"):
        await declare_stream(channel, "q", max_age="1 hour")
    with pytest.raises(ValueError, match="queue"):
        await declare_stream(channel, "")
