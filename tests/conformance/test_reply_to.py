"""Direct reply-to: RPC over the pseudo-queue amq.rabbitmq.reply-to, without declaring a reply queue."""

import aiormq
import pytest

from .support import Inbox, props

REPLY_TO = "amq.rabbitmq.reply-to"


async def start_echo_server(client, queue):
    """A consumer that answers each request on its reply_to address with the same correlation id."""
    channel = await client.channel()

    async def answer(message):
        request = message.header.properties
        await channel.basic_publish(
            b"re:" + message.body,
            routing_key=request.reply_to,
            properties=props(correlation_id=request.correlation_id),
        )
        await channel.basic_ack(message.delivery.delivery_tag)

    await channel.basic_consume(queue, answer)


async def test_direct_reply_to_round_trip(client):
    queue = await client.queue()
    await start_echo_server(client, queue)
    channel = await client.channel()
    replies = Inbox()
    await channel.basic_consume(REPLY_TO, replies, no_ack=True)
    await channel.basic_publish(b"ping", routing_key=queue, properties=props(reply_to=REPLY_TO, correlation_id="rpc-1"))
    [reply] = await replies.take()
    assert (reply.body, reply.header.properties.correlation_id) == (b"re:ping", "rpc-1")
    await replies.nothing()


async def test_server_sees_a_generated_reply_address(client):
    queue = await client.queue()
    channel = await client.channel()
    await channel.basic_consume(REPLY_TO, Inbox(), no_ack=True)
    await channel.basic_publish(b"ping", routing_key=queue, properties=props(reply_to=REPLY_TO))
    [request] = await client.get_all(queue)
    # The broker rewrites reply_to into a routable per-channel address.
    assert request.header.properties.reply_to.startswith(REPLY_TO + ".")


async def test_direct_reply_to_without_consuming_first_is_precondition_failed(client):
    queue = await client.queue()
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="PRECONDITION_FAILED"):
        await channel.basic_publish(b"ping", routing_key=queue, properties=props(reply_to=REPLY_TO))


async def test_direct_reply_to_requires_no_ack_consumer(client):
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="PRECONDITION_FAILED"):
        await channel.basic_consume(REPLY_TO, Inbox(), no_ack=False)


@pytest.mark.profiles
async def test_mandatory_reply_to_a_requester_that_is_gone(client, profile):
    # 3.10: an address whose requester is gone routes nowhere, so mandatory brings a basic.return (aiormq
    # raises PublishError). 4.2+: the address counts as a queue and the publish as routed: no return
    # (4.2.0 release notes, "Mandatory flag in Direct Reply-To").
    queue = await client.queue()
    requester = await client.channel()
    await requester.basic_consume(REPLY_TO, Inbox(), no_ack=True)
    await requester.basic_publish(b"ping", routing_key=queue, properties=props(reply_to=REPLY_TO))
    [request] = await client.get_all(queue)
    await requester.close()
    responder = await client.channel()
    publish = responder.basic_publish(b"late", routing_key=request.header.properties.reply_to, mandatory=True)
    if profile == "3.10":
        with pytest.raises(aiormq.exceptions.PublishError):
            await publish
    else:
        assert (await publish).name == "Basic.Ack"
