"""basic.get / ack / nack / reject / recover / cancel: what happens to each message, and where."""

import aiormq
import pytest

from .support import closed_by_broker, text


async def redelivery_flags(client, queue):
    """(body, redelivered) of what is left in ``queue``, in queue order."""
    return [(m.body.decode(), m.delivery.redelivered) for m in await client.get_all(queue)]


async def test_get_returns_the_head_and_the_remaining_count(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c")
    message = await (await client.channel()).basic_get(queue, no_ack=True)
    assert (message.body, message.delivery.message_count, message.delivery.redelivered) == (b"a", 2, False)
    assert message.delivery.routing_key == queue and message.delivery.exchange == ""


async def test_get_on_empty_queue_is_get_empty(client):
    queue = await client.queue()
    message = await (await client.channel()).basic_get(queue)
    assert message.delivery.name == "Basic.GetEmpty"


async def test_ack_multiple_acknowledges_every_tag_up_to_it(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c")
    channel = await client.channel()
    for _ in range(3):
        await channel.basic_get(queue)
    await channel.basic_ack(2, multiple=True)
    await channel.close()  # only the unacked "c" goes back
    assert await redelivery_flags(client, queue) == [("c", True)]


async def test_nack_multiple_requeues_every_tag_up_to_it_in_order(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c", "d")
    channel = await client.channel()
    for _ in range(3):
        await channel.basic_get(queue)
    await channel.basic_nack(3, multiple=True, requeue=True)
    assert await redelivery_flags(client, queue) == [("a", True), ("b", True), ("c", True), ("d", False)]


async def test_nack_without_requeue_drops(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b")
    channel = await client.channel()
    await channel.basic_get(queue)
    await channel.basic_nack(1, requeue=False)
    assert await redelivery_flags(client, queue) == [("b", False)]


async def test_requeued_messages_return_to_their_original_positions(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b", "c")
    channel = await client.channel()
    a, b = await channel.basic_get(queue), await channel.basic_get(queue)
    # Requeue in reverse order: the queue still puts them back where they were, not at the tail.
    await channel.basic_reject(b.delivery.delivery_tag, requeue=True)
    await channel.basic_reject(a.delivery.delivery_tag, requeue=True)
    assert await redelivery_flags(client, queue) == [("a", True), ("b", True), ("c", False)]


async def test_recover_requeue_redelivers_unacked_messages(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b")
    channel = await client.channel()
    inbox = await client.consume(channel, queue)
    assert text(await inbox.take(2)) == ["a", "b"]
    await channel.basic_recover(requeue=True)
    again = await inbox.take(2)
    assert [(m.body, m.delivery.redelivered) for m in again] == [(b"a", True), (b"b", True)]


async def test_double_ack_is_precondition_failed_unknown_delivery_tag(client):
    queue = await client.queue()
    await client.publish(queue, "a")
    channel = await client.channel()
    message = await channel.basic_get(queue)
    await channel.basic_ack(message.delivery.delivery_tag)
    await channel.basic_ack(message.delivery.delivery_tag)
    error = await closed_by_broker(channel)
    assert isinstance(error, aiormq.exceptions.ChannelPreconditionFailed)
    assert "unknown delivery tag" in str(error)


async def test_ack_of_a_never_delivered_tag_is_precondition_failed(client):
    channel = await client.channel()
    await channel.basic_ack(42)
    assert isinstance(await closed_by_broker(channel), aiormq.exceptions.ChannelPreconditionFailed)


async def test_no_ack_consumer_removes_messages_on_delivery(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b")
    channel = await client.channel()
    inbox = await client.consume(channel, queue, no_ack=True)
    assert text(await inbox.take(2)) == ["a", "b"]
    await channel.close()  # nothing to requeue: no-ack deliveries count as acknowledged
    assert await client.get_all(queue) == []


async def test_cancelled_consumer_gets_no_more_deliveries(client):
    queue = await client.queue()
    channel = await client.channel()
    inbox = await client.consume(channel, queue, no_ack=True)
    await client.publish(queue, "before")
    assert text(await inbox.take()) == ["before"]
    ok = await channel.basic_cancel(inbox.consumer_tag)
    assert ok.consumer_tag == inbox.consumer_tag
    await client.publish(queue, "after")
    await inbox.nothing()
    assert text(await client.get_all(queue)) == ["after"]


async def test_consume_from_missing_queue_is_not_found(client):
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="NOT_FOUND"):
        await channel.basic_consume(client.queue_name(), lambda message: None)


async def test_single_consumer_receives_messages_in_publish_order(client):
    queue = await client.queue()
    publisher = await client.channel(publisher_confirms=False)
    bodies = [str(i) for i in range(500)]
    for body in bodies:
        await publisher.basic_publish(body.encode(), routing_key=queue)
    channel = await client.channel()
    await channel.basic_qos(prefetch_count=50)
    inbox = await client.consume(channel, queue, no_ack=True)
    assert text(await inbox.take(500)) == bodies


async def test_cancel_leaves_delivered_messages_unacked_and_ackable(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b")
    channel = await client.channel()
    inbox = await client.consume(channel, queue)
    delivered = await inbox.take(2)
    await channel.basic_cancel(inbox.consumer_tag)
    # Cancelling does not requeue: the messages stay with the channel until acked (or it closes).
    assert await client.message_count(queue) == 0
    for message in delivered:
        await channel.basic_ack(message.delivery.delivery_tag)
    await channel.close()
    assert await client.get_all(queue) == []
