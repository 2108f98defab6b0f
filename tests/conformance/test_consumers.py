"""Consumers: round robin, prefetch (per consumer and per channel), exclusivity, requeue on close."""

import aiormq
import pytest

from .support import text


async def test_round_robin_is_strict_and_starts_with_the_first_consumer(client):
    queue = await client.queue()
    first = await client.consume(await client.channel(), queue, no_ack=True)
    second = await client.consume(await client.channel(), queue, no_ack=True)
    third = await client.consume(await client.channel(), queue, no_ack=True)
    await client.publish(queue, *[str(i) for i in range(9)])
    assert text(await first.take(3)) == ["0", "3", "6"]
    assert text(await second.take(3)) == ["1", "4", "7"]
    assert text(await third.take(3)) == ["2", "5", "8"]


async def test_prefetch_limits_unacked_deliveries_per_consumer(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c", "d")
    channel = await client.channel()
    await channel.basic_qos(prefetch_count=2)
    inbox = await client.consume(channel, queue)
    held = await inbox.take(2)
    await inbox.nothing()
    assert await client.message_count(queue) == 2
    await channel.basic_ack(held[0].delivery.delivery_tag)
    assert text(await inbox.take()) == ["c"]  # one ack frees exactly one slot
    await inbox.nothing()


async def test_per_consumer_prefetch_applies_to_each_consumer_separately(client):
    first_queue, second_queue = await client.queue(), await client.queue()
    await client.publish(first_queue, "a1", "a2", "a3")
    await client.publish(second_queue, "b1", "b2", "b3")
    channel = await client.channel()
    await channel.basic_qos(prefetch_count=2)
    first, second = await client.consume(channel, first_queue), await client.consume(channel, second_queue)
    assert text(await first.take(2)) == ["a1", "a2"]
    assert text(await second.take(2)) == ["b1", "b2"]
    await first.nothing()
    assert second.count() == 0


@pytest.mark.profiles
async def test_global_prefetch_is_shared_by_the_channels_consumers_until_4_3(client, profile):
    first_queue, second_queue = await client.queue(), await client.queue()
    await client.publish(first_queue, "a1", "a2", "a3")
    await client.publish(second_queue, "b1", "b2", "b3")
    channel = await client.channel()
    # RabbitMQ 3.x reinterprets global=true as a limit shared by all consumers on the channel. 4.3 denies
    # the deprecated feature global_qos: qos-ok all the same, applied per consumer (rabbit_channel.erl).
    await channel.basic_qos(prefetch_count=3, global_=True)
    first = await client.consume(channel, first_queue)
    held = await first.take(3)
    second = await client.consume(channel, second_queue)
    if profile == "4.3":
        assert text(await second.take(3)) == ["b1", "b2", "b3"]
        return
    await second.nothing()  # the channel's 3 slots are all taken by the first consumer
    await channel.basic_ack(held[0].delivery.delivery_tag)
    assert text(await second.take()) == ["b1"]
    await second.nothing()


async def test_exclusive_consumer_locks_out_other_consumers(client):
    queue = await client.queue()
    await client.consume(await client.channel(), queue, exclusive=True)
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await (await client.channel()).basic_consume(queue, lambda message: None)


async def test_exclusive_consume_on_a_queue_with_consumers_is_access_refused(client):
    queue = await client.queue()
    await client.consume(await client.channel(), queue)
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await (await client.channel()).basic_consume(queue, lambda message: None, exclusive=True)


async def test_closed_connection_requeues_unacked_at_original_positions(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c", "d", "e", "f")
    connection = await client.connect()
    channel = await connection.channel()
    await channel.basic_qos(prefetch_count=3)
    inbox = await client.consume(channel, queue)
    a, _, _ = await inbox.take(3)
    await channel.basic_ack(a.delivery.delivery_tag)
    # "d" now fills the freed slot: delivered to the client, never looked at by the application.
    assert text(await inbox.take()) == ["d"]
    await connection.close()
    remaining = [(m.body.decode(), m.delivery.redelivered) for m in await client.get_all(queue)]
    assert remaining == [("b", True), ("c", True), ("d", True), ("e", False), ("f", False)]


async def test_closed_channel_requeues_its_unacked_messages(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b")
    channel = await client.channel()
    inbox = await client.consume(channel, queue)
    await inbox.take(2)
    await channel.close()
    assert [(m.body, m.delivery.redelivered) for m in await client.get_all(queue)] == [(b"a", True), (b"b", True)]


async def test_prefetch_one_skips_a_busy_consumer(client):
    # Fair dispatch: with prefetch 1 a consumer holding an unacked message is passed over, so a
    # slow consumer does not hold up messages a free one could process.
    queue = await client.queue()
    busy_channel, free_channel = await client.channel(), await client.channel()
    for channel in (busy_channel, free_channel):
        await channel.basic_qos(prefetch_count=1)
    busy = await client.consume(busy_channel, queue)
    free = await client.consume(free_channel, queue)
    await client.publish(queue, "0", "1")
    assert text(await busy.take()) == ["0"]
    [one] = await free.take()
    await free_channel.basic_ack(one.delivery.delivery_tag)
    await client.publish(queue, "2")
    assert text(await free.take()) == ["2"]
    await busy.nothing()
