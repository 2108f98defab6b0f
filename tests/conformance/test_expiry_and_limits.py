"""Message TTL (per queue and per message) and queue length limits with their overflow modes."""

import asyncio

import aiormq
import pytest

from .support import QUIET, props, text


async def test_queue_message_ttl_expires_messages(client):
    queue = await client.queue(arguments={"x-message-ttl": 50})
    await client.publish(queue, "a", "b")
    await asyncio.sleep(0.3)
    # Expired without anyone reading: a depth sampler (passive declare) sees them gone.
    assert await client.message_count(queue) == 0
    assert await client.get_all(queue) == []


async def test_queue_message_ttl_keeps_fresh_messages(client):
    queue = await client.queue(arguments={"x-message-ttl": 60_000})
    await client.publish(queue, "a")
    assert text(await client.get_all(queue)) == ["a"]


async def test_per_message_expiration_expires_that_message(client):
    queue = await client.queue()
    await client.publish(queue, "short", expiration="50")
    await client.publish(queue, "long", expiration="60000")
    await asyncio.sleep(0.3)
    assert text(await client.get_all(queue)) == ["long"]


async def test_per_message_expiration_zero_drops_without_a_consumer(client):
    queue = await client.queue()
    await client.publish(queue, "gone", expiration="0")
    assert await client.get_all(queue) == []


async def test_per_message_expiration_zero_reaches_a_waiting_consumer(client):
    # TTL 0 means "deliver now or never": a consumer that can take it right away still gets it.
    queue = await client.queue()
    inbox = await client.consume(await client.channel(), queue, no_ack=True)
    await client.publish(queue, "now", expiration="0")
    assert text(await inbox.take()) == ["now"]


async def test_per_message_expiration_is_enforced_only_at_the_head(client):
    queue = await client.queue()
    await client.publish(queue, "head")
    await client.publish(queue, "expires-behind-head", expiration="20")
    await asyncio.sleep(0.2)
    # Behind a live head the expired message is still counted; basic.get never returns it.
    assert await client.message_count(queue) == 2
    assert text(await client.get_all(queue)) == ["head"]


@pytest.mark.parametrize("expiration", ["soon", "-1"])
async def test_invalid_per_message_expiration_is_precondition_failed(client, expiration):
    queue = await client.queue()
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="PRECONDITION_FAILED"):
        await channel.basic_publish(b"m", routing_key=queue, properties=props(expiration=expiration))


async def test_max_length_drops_the_head_by_default(client):
    queue = await client.queue(arguments={"x-max-length": 2})
    await client.publish(queue, "a", "b", "c")
    assert text(await client.get_all(queue)) == ["b", "c"]


async def test_max_length_drop_head_dead_letters_with_reason_maxlen(client):
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(arguments={"x-max-length": 1, "x-dead-letter-exchange": dlx})
    await client.publish(queue, "a", "b")
    [dropped] = await client.arrivals(dlq, 1)
    assert dropped.body == b"a"
    assert dropped.header.properties.headers["x-death"][0]["reason"] == "maxlen"


async def test_max_length_reject_publish_nacks_the_publisher(client):
    dlx, dlq = await client.dead_letter_sink()
    arguments = {"x-max-length": 2, "x-overflow": "reject-publish", "x-dead-letter-exchange": dlx}
    queue = await client.queue(arguments=arguments)
    await client.publish(queue, "a", "b")
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.DeliveryError):
        await channel.basic_publish(b"c", routing_key=queue)
    assert text(await client.get_all(queue)) == ["a", "b"]
    await asyncio.sleep(QUIET)  # dead-lettering would be asynchronous: give it time to (wrongly) happen
    assert await client.get_all(dlq) == []


async def test_max_length_reject_publish_dlx_nacks_and_dead_letters(client):
    dlx, dlq = await client.dead_letter_sink()
    arguments = {"x-max-length": 1, "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": dlx}
    queue = await client.queue(arguments=arguments)
    await client.publish(queue, "a")
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.DeliveryError):
        await channel.basic_publish(b"b", routing_key=queue)
    assert text(await client.get_all(queue)) == ["a"]
    [rejected] = await client.arrivals(dlq, 1)
    assert rejected.body == b"b"
    assert rejected.header.properties.headers["x-death"][0]["reason"] == "maxlen"


async def test_max_length_bytes_counts_body_bytes(client):
    queue = await client.queue(arguments={"x-max-length-bytes": 10})
    await client.publish(queue, "aaaaa", "bbbbb", "ccccc")
    assert text(await client.get_all(queue)) == ["bbbbb", "ccccc"]


async def test_rejected_publish_leaves_room_for_later_publishes(client):
    queue = await client.queue(arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    await client.publish(queue, "a")
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.DeliveryError):
        await channel.basic_publish(b"b", routing_key=queue)
    await client.get_all(queue)
    await channel.basic_publish(b"c", routing_key=queue)
    assert text(await client.get_all(queue)) == ["c"]
