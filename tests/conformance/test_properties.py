"""Message properties and header tables arrive exactly as published, also after dead-lettering."""

import datetime
import decimal

import aiormq
import pamqp.frame
import pytest
from pamqp.header import ContentHeader

from .support import props

HEADERS = {
    "int": 7,
    "big": 2**40,
    "negative": -5,
    "float": 0.1,
    "bool": True,
    "text": "ünïcode",
    "list": [1, "a", [2]],
    "table": {"nested": {"x": 1}},
    "void": None,
    "when": datetime.datetime(2026, 11, 22, 1, 2, 3, tzinfo=datetime.timezone.utc),
    "decimal": decimal.Decimal("1.25"),
}

PROPERTIES = dict(
    content_type="application/json",
    content_encoding="gzip",
    headers=HEADERS,
    delivery_mode=2,
    priority=3,
    correlation_id="corr-1",
    reply_to="replies",
    expiration="60000",
    message_id="msg-1",
    timestamp=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    message_type="order.created",
    user_id="guest",
    app_id="checkout",
)


def as_decoded(properties):
    """What the client itself decodes from these properties (pamqp sends floats as 32-bit)."""
    _, _, header = pamqp.frame.unmarshal(pamqp.frame.marshal(ContentHeader(0, 1, properties), 1))
    return header.properties


async def test_every_basic_property_round_trips(client):
    queue = await client.queue()
    sent = props(**PROPERTIES)
    await (await client.admin()).basic_publish(b"m", routing_key=queue, properties=sent)
    [message] = await client.get_all(queue)
    expected = as_decoded(sent)
    for name in PROPERTIES:
        assert getattr(message.header.properties, name) == getattr(expected, name), name


async def test_user_headers_survive_dead_lettering(client):
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx})
    await client.publish(queue, "m", headers=HEADERS)
    channel = await client.channel()
    message = await channel.basic_get(queue)
    await channel.basic_reject(message.delivery.delivery_tag, requeue=False)
    [dead] = await client.arrivals(dlq, 1)
    expected = as_decoded(props(headers=HEADERS)).headers
    assert {k: v for k, v in dead.header.properties.headers.items() if not k.startswith("x-")} == expected


async def test_user_id_other_than_the_authenticated_user_is_precondition_failed(client):
    queue = await client.queue()
    channel = await client.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="user_id"):
        await channel.basic_publish(b"m", routing_key=queue, properties=props(user_id="someone-else"))
