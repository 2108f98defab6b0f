"""Publisher confirms: sequence numbers, acks for routed and unroutable messages, returns, nacks."""

import asyncio

import aiormq
import pytest
from pamqp import commands as spec

from .support import WireTap


async def test_confirms_ack_each_publish_with_its_sequence_number(client):
    queue = await client.queue()
    channel = await client.channel()
    acks = [await channel.basic_publish(b"m", routing_key=queue) for _ in range(5)]
    assert all(isinstance(ack, spec.Basic.Ack) for ack in acks)
    assert [ack.delivery_tag for ack in acks] == [1, 2, 3, 4, 5]


async def test_confirms_sequence_numbers_are_per_channel(client):
    queue = await client.queue()
    connection = await client.connect()
    first, second = await connection.channel(), await connection.channel()
    await first.basic_publish(b"m", routing_key=queue)
    ack = await second.basic_publish(b"m", routing_key=queue)
    assert ack.delivery_tag == 1


async def test_every_concurrent_publish_is_confirmed(client):
    queue = await client.queue()
    channel = await client.channel()
    results = await asyncio.gather(*(channel.basic_publish(b"%d" % i, routing_key=queue) for i in range(200)))
    assert all(isinstance(result, spec.Basic.Ack) for result in results)
    assert await client.message_count(queue) == 200


async def test_unroutable_mandatory_publish_is_returned_no_route(client):
    exchange = await client.exchange("direct")
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.PublishError) as raised:
        await channel.basic_publish(b"m", exchange=exchange, routing_key="nobody", mandatory=True)
    returned = raised.value.frame
    assert (returned.reply_code, returned.reply_text, returned.routing_key) == (312, "NO_ROUTE", "nobody")


async def test_unroutable_mandatory_publish_is_returned_before_it_is_acked(client):
    exchange = await client.exchange("direct")
    tap = WireTap()
    channel = await (await client.connect(transport_factory=tap)).channel()
    with pytest.raises(aiormq.exceptions.PublishError):
        await channel.basic_publish(b"m", exchange=exchange, routing_key="nobody", mandatory=True)
    await channel.basic_publish(b"m", exchange=exchange, routing_key="nobody")  # a marker after it
    order = [type(frame) for number, frame, _ in tap.frames() if number == channel.number]
    confirms = [kind for kind in order if kind in (spec.Basic.Return, spec.Basic.Ack, spec.Basic.Nack)]
    assert confirms == [spec.Basic.Return, spec.Basic.Ack, spec.Basic.Ack]


async def test_unroutable_publish_without_mandatory_is_simply_acked(client):
    exchange = await client.exchange("direct")
    channel = await client.channel()
    ack = await channel.basic_publish(b"m", exchange=exchange, routing_key="nobody")
    assert isinstance(ack, spec.Basic.Ack)


async def test_routable_mandatory_publish_is_acked_without_return(client):
    queue = await client.queue()
    channel = await client.channel()
    ack = await channel.basic_publish(b"m", routing_key=queue, mandatory=True)
    assert isinstance(ack, spec.Basic.Ack)


async def test_publish_rejected_by_a_full_queue_is_nacked_with_its_sequence_number(client):
    queue = await client.queue(arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel = await client.channel()
    await channel.basic_publish(b"fits", routing_key=queue)
    with pytest.raises(aiormq.exceptions.DeliveryError) as raised:
        await channel.basic_publish(b"overflows", routing_key=queue)
    assert isinstance(raised.value.frame, spec.Basic.Nack)
    assert raised.value.frame.delivery_tag == 2
    # The channel stays usable after a nack.
    assert isinstance(await channel.basic_publish(b"m", exchange="", routing_key="nobody-here"), spec.Basic.Ack)
