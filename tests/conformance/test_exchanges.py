"""Exchanges: routing by type, declaration rules, deletion, exchange-to-exchange bindings."""

import aiormq
import pytest

from .support import closed_by_broker, props

TOPIC_CASES = [
    ("*.orange.*", "quick.orange.rabbit", True),
    ("*.orange.*", "quick.orange", False),
    ("*.orange.*", "quick.orange.male.rabbit", False),
    ("*.*.rabbit", "lazy.pink.rabbit", True),
    ("lazy.#", "lazy.orange.male.rabbit", True),
    ("lazy.#", "lazy", True),
    ("lazy.#", "lazyx.orange", False),
    ("#", "anything.at.all", True),
    ("#", "", True),
    ("a.#.z", "a.z", True),
    ("a.#.z", "a.b.c.z", True),
    ("a.*.z", "a.z", False),
]

HEADERS_CASES = [
    ("all", {"format": "pdf", "type": "report"}, True),
    ("all", {"format": "pdf"}, False),
    ("all", {"format": "pdf", "type": "log"}, False),
    ("any", {"format": "pdf"}, True),
    ("any", {"type": "report", "other": 1}, True),
    ("any", {"format": "zip", "type": "log"}, False),
    ("any", {}, False),
]


async def bound_queue(client, exchange, routing_key="", arguments=None):
    """A fresh queue bound to ``exchange``; its message_count shows what the exchange routed to it."""
    queue = await client.queue()
    await (await client.admin()).queue_bind(queue, exchange, routing_key, arguments=arguments)
    return queue


async def test_default_exchange_routes_by_queue_name(client):
    queue, other = await client.queue(), await client.queue()
    await client.publish(queue, "m")
    assert (await client.message_count(queue), await client.message_count(other)) == (1, 0)


async def test_direct_exchange_routes_by_exact_key(client):
    exchange = await client.exchange("direct")
    orange = await bound_queue(client, exchange, "orange")
    black = await bound_queue(client, exchange, "black")
    await client.publish("orange", "m", exchange=exchange)
    await client.publish("orange.x", "m", exchange=exchange)
    assert (await client.message_count(orange), await client.message_count(black)) == (1, 0)


async def test_fanout_exchange_copies_to_every_queue_ignoring_key(client):
    exchange = await client.exchange("fanout")
    queues = [await bound_queue(client, exchange, key) for key in ("a", "b", "")]
    await client.publish("zzz", "m", exchange=exchange)
    assert [await client.message_count(q) for q in queues] == [1, 1, 1]


@pytest.mark.parametrize(("pattern", "key", "matches"), TOPIC_CASES)
async def test_topic_exchange_matches_words(client, pattern, key, matches):
    exchange = await client.exchange("topic")
    queue = await bound_queue(client, exchange, pattern)
    await client.publish(key, "m", exchange=exchange)
    assert await client.message_count(queue) == int(matches)


@pytest.mark.parametrize(("x_match", "headers", "matches"), HEADERS_CASES)
async def test_headers_exchange_matches_all_or_any(client, x_match, headers, matches):
    exchange = await client.exchange("headers")
    arguments = {"x-match": x_match, "format": "pdf", "type": "report"}
    queue = await bound_queue(client, exchange, "", arguments)
    await client.publish("ignored", "m", exchange=exchange, headers=headers)
    assert await client.message_count(queue) == int(matches)


@pytest.mark.parametrize("name", ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"])
async def test_standard_exchanges_exist(client, name):
    channel = await client.channel()
    await channel.exchange_declare(name, passive=True)
    assert not channel.is_closed


async def test_declaring_a_reserved_amq_exchange_name_is_access_refused(client):
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await channel.exchange_declare("amq." + client.exchange_name(), exchange_type="direct")


async def test_publishing_to_an_internal_exchange_is_access_refused(client):
    exchange = await client.exchange("fanout", internal=True)
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await channel.basic_publish(b"m", exchange=exchange)


async def test_passive_declare_of_missing_exchange_is_not_found(client):
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="NOT_FOUND"):
        await channel.exchange_declare(client.exchange_name(), passive=True)


async def test_redeclare_with_other_type_is_precondition_failed(client):
    exchange = await client.exchange("direct")
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="PRECONDITION_FAILED"):
        await channel.exchange_declare(exchange, exchange_type="fanout")


async def test_redeclare_with_same_type_is_accepted(client):
    exchange = await client.exchange("topic")
    channel = await client.channel()
    await channel.exchange_declare(exchange, exchange_type="topic")
    assert not channel.is_closed


async def test_deleted_exchange_is_gone(client):
    exchange = await client.exchange("fanout")
    channel = await client.channel()
    await channel.exchange_delete(exchange)
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.exchange_declare(exchange, passive=True)


async def test_delete_if_unused_of_a_bound_exchange_is_precondition_failed(client):
    exchange = await client.exchange("fanout")
    await bound_queue(client, exchange)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="PRECONDITION_FAILED"):
        await (await client.channel()).exchange_delete(exchange, if_unused=True)


async def test_auto_delete_exchange_goes_when_its_last_binding_goes(client):
    exchange = await client.exchange("fanout", auto_delete=True)
    queue = await bound_queue(client, exchange)
    await (await client.admin()).queue_unbind(queue, exchange)
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await (await client.channel()).exchange_declare(exchange, passive=True)


@pytest.mark.parametrize("missing", ["queue", "exchange"])
async def test_binding_to_a_missing_entity_is_not_found(client, missing):
    queue = client.queue_name() if missing == "queue" else await client.queue()
    exchange = client.exchange_name() if missing == "exchange" else await client.exchange("direct")
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="NOT_FOUND"):
        await (await client.channel()).queue_bind(queue, exchange, "k")


async def test_exchange_to_exchange_binding_routes_through(client):
    source = await client.exchange("direct")
    destination = await client.exchange("fanout")
    await (await client.admin()).exchange_bind(destination, source, "hop")
    queue = await bound_queue(client, destination)
    await client.publish("hop", "m", exchange=source)
    await client.publish("other", "m", exchange=source)
    assert await client.message_count(queue) == 1


async def test_binding_a_queue_to_the_default_exchange_is_access_refused(client):
    queue = await client.queue()
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await channel.queue_bind(queue, "", "anything")


async def test_publish_to_missing_exchange_with_confirms_fails_not_found(client):
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="NOT_FOUND"):
        await channel.basic_publish(b"m", exchange=client.exchange_name(), routing_key="k")


async def test_publish_to_missing_exchange_without_confirms_closes_channel(client):
    channel = await client.channel(publisher_confirms=False)
    await channel.basic_publish(b"m", exchange=client.exchange_name(), routing_key="k", properties=props())
    assert isinstance(await closed_by_broker(channel), aiormq.exceptions.ChannelNotFoundEntity)
