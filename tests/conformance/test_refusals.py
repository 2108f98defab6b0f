"""Refusals whose exact reply text or check order RabbitMQ 3.10.8 was seen to use here.

Why exact texts: a learner reads the error, and the course shows the same error on both brokers. Where
a text cannot match, the table in tests/conformance/README.md says why.
"""

import aiormq
import pytest

from .support import props


@pytest.mark.parametrize(
    ("expiration", "reason"),
    [("soon", "no_integer"), ("-1", "{value_negative,-1}"), ("12abc", '{leftover_string,"abc"}'), (" 5", "no_integer")],
)
async def test_invalid_expiration_texts(client, expiration, reason):
    queue = await client.queue()
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await channel.basic_publish(b"m", routing_key=queue, properties=props(expiration=expiration))
    assert refused.value.args[0] == f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"


async def test_signed_expiration_is_accepted(client):
    queue = await client.queue()
    await client.publish(queue, "m", expiration="+60000")
    assert await client.message_count(queue) == 1


async def test_exclusive_quorum_queue_text(client):
    name = client.queue_name()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await (await client.channel()).queue_declare(
            name, durable=True, exclusive=True, arguments={"x-queue-type": "quorum"}
        )
    assert (
        refused.value.args[0]
        == f"PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue '{name}' in vhost '/'"
    )


async def test_redeclaring_an_exclusive_queue_without_exclusive_is_resource_locked_first(client):
    # Even on the owning connection and with other properties also different: RabbitMQ checks
    # exclusive access (strict) before any equivalence (405, not 406 inequivalent arg).
    connection = await client.connect()
    owner = await connection.channel()
    name = client.queue_name()
    await owner.queue_declare(name, exclusive=True)
    await client.consume(owner, name, exclusive=True)
    with pytest.raises(aiormq.exceptions.ChannelLockedResource) as refused:
        await (await connection.channel()).queue_declare(name, durable=True)
    assert refused.value.args[0] == (
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be "
        "originally declared on another connection or the exclusive property value does not match that of "
        "the original declaration."
    )


async def test_declaring_a_shared_queue_exclusive_is_resource_locked(client):
    queue = await client.queue()
    with pytest.raises(aiormq.exceptions.ChannelLockedResource):
        await (await client.channel()).queue_declare(queue, durable=False, exclusive=True)


async def test_exclusive_queues_are_never_durable(client):
    # RabbitMQ stores durable=false for an exclusive queue, so redeclaring it durable=false is equivalent.
    connection = await client.connect()
    channel = await connection.channel()
    name = client.queue_name()
    await channel.queue_declare(name, durable=True, exclusive=True)
    assert (await channel.queue_declare(name, durable=False, exclusive=True)).queue == name


@pytest.mark.parametrize("number", [2048, 65535])
async def test_channel_numbers_above_channel_max_open(client, number):
    # channel_max (2047) limits how many channels are open, not their numbers (3.10.8 opens 65535).
    connection = await client.connect()
    channel = await connection.channel(channel_number=number)
    assert channel.number == number and not connection.is_closed


async def test_opening_more_channels_than_channel_max_closes_the_connection(client, reconfigure):
    await reconfigure("RabbitMQ's channel_max cannot be lowered from a test", channel_max=3)
    connection = await client.connect()
    for _ in range(3):
        await connection.channel()
    with pytest.raises(aiormq.exceptions.ConnectionNotAllowed) as refused:
        await connection.channel()
    assert (
        refused.value.args[0]
        == "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)"
    )


async def test_message_of_max_message_size_works_one_byte_more_is_refused(client, reconfigure):
    await reconfigure("RabbitMQ's max_message_size cannot be changed from a test", max_message_size=300_000)
    queue = await client.queue()
    channel = await client.channel()
    await channel.basic_publish(b"x" * 300_000, routing_key=queue)  # three frames at frame_max 131072
    [message] = await client.get_all(queue)
    assert len(message.body) == 300_000
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await channel.basic_publish(b"x" * 300_001, routing_key=queue)
    assert (
        refused.value.args[0] == "PRECONDITION_FAILED - message size 300001 is larger than configured max size 300000"
    )
