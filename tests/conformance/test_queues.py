"""Queues: counts, exclusivity, auto-delete, naming, bindings, purge/delete, cancel notify, priority."""

import asyncio

import aiormq
import pytest

from .support import WAIT, text


async def test_passive_declare_counts_ready_messages_not_unacked(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c")
    channel = await client.channel()
    await channel.basic_get(queue)  # now unacknowledged, not ready
    ok = await channel.queue_declare(queue, passive=True)
    assert ok.message_count == 2


async def test_passive_declare_counts_consumers(client):
    queue = await client.queue()
    for _ in range(2):
        await client.consume(await client.channel(), queue)
    ok = await (await client.channel()).queue_declare(queue, passive=True)
    assert (ok.message_count, ok.consumer_count) == (0, 2)


async def test_declare_of_existing_queue_reports_its_counts(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b")
    ok = await (await client.channel()).queue_declare(queue, durable=True)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 2, 0)


@pytest.mark.parametrize("passive", [False, True])
async def test_exclusive_queue_is_locked_to_other_connections(client, passive):
    queue = await client.queue(exclusive=True)
    stranger = await client.channel()
    # RabbitMQ answers 405 RESOURCE_LOCKED even for a passive declare from another connection.
    with pytest.raises(aiormq.exceptions.ChannelLockedResource, match="RESOURCE_LOCKED"):
        await stranger.queue_declare(queue, passive=passive)


async def test_exclusive_queue_is_usable_from_another_channel_of_its_connection(client):
    owner = await client.connect()
    queue = (await (await owner.channel()).queue_declare(client.queue_name(), exclusive=True)).queue
    ok = await (await owner.channel()).queue_declare(queue, passive=True)
    assert ok.queue == queue


async def test_exclusive_queue_is_deleted_when_its_connection_closes(client):
    owner = await client.connect()
    queue = (await (await owner.channel()).queue_declare(client.queue_name(), exclusive=True)).queue
    await owner.close()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await (await client.channel()).queue_declare(queue, passive=True)


async def test_auto_delete_queue_survives_until_it_has_had_a_consumer(client):
    queue = await client.queue(auto_delete=True)
    await client.publish(queue, "a")
    await asyncio.sleep(0.2)
    assert await client.message_count(queue) == 1


async def test_auto_delete_queue_is_deleted_when_last_consumer_cancels(client):
    queue = await client.queue(auto_delete=True)
    first, second = await client.channel(), await client.channel()
    first_inbox = await client.consume(first, queue)
    second_inbox = await client.consume(second, queue)
    await first.basic_cancel(first_inbox.consumer_tag)
    assert await client.message_count(queue) == 0  # still there: one consumer left
    await second.basic_cancel(second_inbox.consumer_tag)
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await (await client.channel()).queue_declare(queue, passive=True)


async def test_server_names_queue_declared_with_empty_name(client):
    channel = await client.channel()
    first = await channel.queue_declare("", exclusive=True)
    second = await channel.queue_declare("", exclusive=True)
    assert first.queue.startswith("amq.gen-") and second.queue.startswith("amq.gen-")
    assert first.queue != second.queue


async def test_declaring_a_reserved_amq_name_is_access_refused(client):
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await channel.queue_declare("amq.mine-" + client.queue_name())


async def test_unbind_stops_routing(client):
    exchange = await client.exchange("direct")
    queue = await client.queue()
    channel = await client.admin()
    await channel.queue_bind(queue, exchange, "k")
    await client.publish("k", "routed", exchange=exchange)
    await channel.queue_unbind(queue, exchange, "k")
    await client.publish("k", "dropped", exchange=exchange)
    assert text(await client.get_all(queue)) == ["routed"]


async def test_purge_returns_the_number_of_ready_messages_removed(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c")
    channel = await client.channel()
    await channel.basic_get(queue)  # unacked: purge leaves it alone
    ok = await channel.queue_purge(queue)
    assert ok.message_count == 2
    assert await client.message_count(queue) == 0


async def test_delete_returns_the_number_of_messages_deleted(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b")
    ok = await (await client.channel()).queue_delete(queue)
    assert ok.message_count == 2


async def test_delete_if_unused_with_a_consumer_is_precondition_failed(client):
    queue = await client.queue()
    await client.consume(await client.channel(), queue)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="PRECONDITION_FAILED"):
        await (await client.channel()).queue_delete(queue, if_unused=True)


async def test_delete_if_empty_with_messages_is_precondition_failed(client):
    queue = await client.queue()
    await client.publish(queue, "a")
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await (await client.channel()).queue_delete(queue, if_empty=True)
    assert refused.value.args[0] == f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' not empty"


async def test_deleting_a_queue_cancels_its_consumers(client):
    queue = await client.queue()
    channel = await client.channel()
    cancelled = asyncio.get_running_loop().create_future()
    channel.on_consumer_cancel_callbacks.add(lambda frame: cancelled.done() or cancelled.set_result(frame))
    inbox = await client.consume(channel, queue)
    await (await client.channel()).queue_delete(queue)
    frame = await asyncio.wait_for(cancelled, WAIT)
    assert frame.consumer_tag == inbox.consumer_tag
    assert not channel.is_closed


async def test_priority_queue_delivers_highest_priority_first(client):
    queue = await client.queue(arguments={"x-max-priority": 10})
    for body, priority in [("low", 1), ("none", None), ("high", 9), ("mid", 5), ("high2", 9)]:
        await client.publish(queue, body, priority=priority)
    # Unset priority counts as 0; equal priorities keep publish order.
    assert text(await client.get_all(queue)) == ["high", "high2", "mid", "low", "none"]


async def test_priority_above_max_counts_as_max(client):
    queue = await client.queue(arguments={"x-max-priority": 5})
    await client.publish(queue, "five", priority=5)
    await client.publish(queue, "two-hundred", priority=200)
    assert text(await client.get_all(queue)) == ["five", "two-hundred"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"durable": True}, {"durable": False}),
        ({"arguments": {"x-max-length": 5}}, {"arguments": {"x-max-length": 6}}),
        ({"arguments": {"x-message-ttl": 1000}}, {}),
    ],
)
async def test_redeclare_with_different_properties_is_precondition_failed(client, first, second):
    queue = await client.queue(**first)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="inequivalent arg"):
        await (await client.channel()).queue_declare(queue, **second)


async def test_queue_with_x_expires_is_deleted_when_unused(client):
    queue = await client.queue(arguments={"x-expires": 100})
    await asyncio.sleep(0.5)
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await (await client.channel()).queue_declare(queue, passive=True)


async def test_single_active_consumer_gets_everything_until_it_cancels(client):
    queue = await client.queue(arguments={"x-single-active-consumer": True})
    first_channel = await client.channel()
    first = await client.consume(first_channel, queue, no_ack=True)
    second = await client.consume(await client.channel(), queue, no_ack=True)
    await client.publish(queue, "a", "b", "c")
    assert text(await first.take(3)) == ["a", "b", "c"]
    await second.nothing()
    await first_channel.basic_cancel(first.consumer_tag)
    await client.publish(queue, "d")
    assert text(await second.take()) == ["d"]
