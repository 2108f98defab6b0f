"""Quorum queues: declaration rules and the delivery limit that stops poison-message loops."""

import asyncio

import aiormq
import pytest

from .support import QUIET, text

QUORUM = {"x-queue-type": "quorum"}


@pytest.mark.parametrize(
    ("options", "property_name"),
    [({"durable": False}, "non-durable"), ({"durable": True, "exclusive": True}, "exclusive-owner")],
)
async def test_quorum_queue_must_be_durable_and_not_exclusive(client, options, property_name):
    channel = await client.channel()
    # RabbitMQ's text names the offending property: "invalid property 'non-durable' for queue ...".
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match=property_name):
        await channel.queue_declare(client.queue_name(), arguments=QUORUM, **options)


async def test_quorum_queue_delivers_in_order(client):
    queue = await client.queue(durable=True, arguments=QUORUM)
    await client.publish(queue, "a", "b", "c")
    assert text(await client.get_all(queue)) == ["a", "b", "c"]


async def test_quorum_delivery_limit_allows_limit_plus_one_deliveries_then_dead_letters(client):
    dlx, dlq = await client.dead_letter_sink()
    arguments = {**QUORUM, "x-delivery-limit": 2, "x-dead-letter-exchange": dlx}
    queue = await client.queue(durable=True, arguments=arguments)
    await client.publish(queue, "poison")
    channel = await client.channel()
    await channel.basic_qos(prefetch_count=1)
    deliveries = []

    async def nack(message):
        deliveries.append(message.delivery.redelivered)
        await channel.basic_nack(message.delivery.delivery_tag, requeue=True)

    await channel.basic_consume(queue, nack)
    [dead] = await client.arrivals(dlq, 1)
    await asyncio.sleep(QUIET)
    assert deliveries == [False, True, True]
    assert dead.header.properties.headers["x-death"][0]["reason"] == "delivery_limit"


async def test_classic_queue_rejects_delivery_limit(client):
    channel = await client.channel()
    # Observed on RabbitMQ 3.10: "invalid arg 'x-delivery-limit' for queue ... of queue type
    # rabbit_classic_queue".
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="x-delivery-limit"):
        await channel.queue_declare(client.queue_name(), arguments={"x-delivery-limit": 2})


async def test_quorum_redelivery_carries_the_delivery_count(client):
    queue = await client.queue(durable=True, arguments=QUORUM)
    await client.publish(queue, "m")
    channel = await client.channel()
    inbox = await client.consume(channel, queue)
    [first] = await inbox.take()
    await channel.basic_nack(first.delivery.delivery_tag, requeue=True)
    [second] = await inbox.take()
    assert "x-delivery-count" not in (first.header.properties.headers or {})
    assert (second.delivery.redelivered, second.header.properties.headers["x-delivery-count"]) == (True, 1)
