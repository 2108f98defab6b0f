"""Quorum queues: declaration rules and the delivery limit that stops poison-message loops."""

import asyncio

import aiormq
import pytest

from .support import QUIET, text

QUORUM = {"x-queue-type": "quorum"}


@pytest.mark.parametrize(
    ("options", "property_name"),
    [
        ({"durable": True, "exclusive": True}, "exclusive-owner"),
        ({"durable": True, "auto_delete": True}, "auto-delete"),
    ],
)
async def test_quorum_queue_must_not_be_exclusive_or_auto_delete(client, options, property_name):
    channel = await client.channel()
    name = client.queue_name()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await channel.queue_declare(name, arguments=QUORUM, **options)
    assert refused.value.args[0] == (
        f"PRECONDITION_FAILED - invalid property '{property_name}' for queue '{name}' in vhost '/'"
    )


@pytest.mark.profiles
async def test_transient_quorum_queue_is_refused(client, profile):
    # 3.10: the quorum type refuses it (406, channel). 4.3: the transient_nonexcl_queues check comes
    # first (rabbit_amqqueue:declare), so it is the 541 that closes the connection.
    connection = await client.connect()
    channel = await connection.channel()
    name = client.queue_name()
    if profile == "3.10":
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
            await channel.queue_declare(name, durable=False, arguments=QUORUM)
        assert (
            refused.value.args[0]
            == f"PRECONDITION_FAILED - invalid property 'non-durable' for queue '{name}' in vhost '/'"
        )
    else:
        with pytest.raises(aiormq.exceptions.ConnectionInternalError, match="transient_nonexcl_queues"):
            await channel.queue_declare(name, durable=False, arguments=QUORUM)


async def test_quorum_queue_delivers_in_order(client):
    queue = await client.queue(durable=True, arguments=QUORUM)
    await client.publish(queue, "a", "b", "c")
    assert text(await client.get_all(queue)) == ["a", "b", "c"]


async def test_quorum_delivery_limit_allows_limit_plus_one_deliveries_then_dead_letters(client):
    # basic.reject with requeue counts as a failed delivery on every release (4.3 maps it to
    # modify(delivery_failed=true)); basic.nack with requeue does not count on 4.3 (see below).
    dlx, dlq = await client.dead_letter_sink()
    arguments = {**QUORUM, "x-delivery-limit": 2, "x-dead-letter-exchange": dlx}
    queue = await client.queue(durable=True, arguments=arguments)
    await client.publish(queue, "poison")
    channel = await client.channel()
    await channel.basic_qos(prefetch_count=1)
    deliveries = []

    async def reject(message):
        deliveries.append(message.delivery.redelivered)
        await channel.basic_reject(message.delivery.delivery_tag, requeue=True)

    await channel.basic_consume(queue, reject)
    [dead] = await client.arrivals(dlq, 1)
    await asyncio.sleep(QUIET)
    assert deliveries == [False, True, True]
    assert dead.header.properties.headers["x-death"][0]["reason"] == "delivery_limit"


async def test_classic_queue_rejects_delivery_limit(client):
    channel = await client.channel()
    name = client.queue_name()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as refused:
        await channel.queue_declare(name, durable=True, arguments={"x-delivery-limit": 2})
    assert refused.value.args[0] == (
        f"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '{name}' "
        "in vhost '/' of queue type rabbit_classic_queue"
    )


@pytest.mark.parametrize("limit", [-1, "twenty"])
async def test_delivery_limit_values_are_not_validated(client, limit):
    # Observed on 3.10.8; 4.3 reads a negative limit as "no limit" (it disables the default of 20).
    queue = await client.queue(durable=True, arguments={**QUORUM, "x-delivery-limit": limit})
    assert await client.message_count(queue) == 0


def _counts(message) -> dict:
    headers = message.header.properties.headers or {}
    return {key: headers[key] for key in ("x-delivery-count", "x-acquired-count") if key in headers}


@pytest.mark.profiles
async def test_quorum_delivery_count_headers(client, profile):
    # 3.10.8 (observed): a consumer gets no header the first time, then x-delivery-count = returns.
    # 4.3 (rabbit_fifo v8): nothing the first time; then x-acquired-count counts every return and
    # x-delivery-count only failed deliveries (reject with requeue), not nack with requeue.
    queue = await client.queue(durable=True, arguments=QUORUM)
    await client.publish(queue, "m")
    channel = await client.channel()
    inbox = await client.consume(channel, queue)
    [first] = await inbox.take()
    await channel.basic_nack(first.delivery.delivery_tag, requeue=True)
    [second] = await inbox.take()
    await channel.basic_reject(second.delivery.delivery_tag, requeue=True)
    [third] = await inbox.take()
    seen = [_counts(m) for m in (first, second, third)]
    if profile == "3.10":
        assert seen == [{}, {"x-delivery-count": 1}, {"x-delivery-count": 2}]
    else:
        assert seen == [{}, {"x-acquired-count": 1}, {"x-acquired-count": 2, "x-delivery-count": 1}]
    assert [m.delivery.redelivered for m in (first, second, third)] == [False, True, True]


@pytest.mark.profiles
async def test_quorum_basic_get_delivery_count(client, profile):
    # 3.10.8 (observed): basic.get always carries x-delivery-count, 0 the first time
    # (rabbit_fifo_client:dequeue); 4.3 adds the headers only once the message was returned.
    queue = await client.queue(durable=True, arguments=QUORUM)
    await client.publish(queue, "m")
    channel = await client.channel()
    [first] = await client.arrivals(queue, 1, channel=channel, no_ack=False)
    await channel.basic_reject(first.delivery.delivery_tag, requeue=True)
    [second] = await client.arrivals(queue, 1, channel=channel, no_ack=False)
    if profile == "3.10":
        assert [_counts(first), _counts(second)] == [{"x-delivery-count": 0}, {"x-delivery-count": 1}]
    else:
        assert [_counts(first), _counts(second)] == [{}, {"x-acquired-count": 1, "x-delivery-count": 1}]


@pytest.mark.profiles
async def test_quorum_nack_requeue_counts_toward_the_limit_only_before_4_3(client, profile):
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(durable=True, arguments={**QUORUM, "x-delivery-limit": 1, "x-dead-letter-exchange": dlx})
    await client.publish(queue, "poison")
    channel = await client.channel()
    for _ in range(2):  # two returns: over the limit of 1 on 3.10; not counted at all on 4.3
        [message] = await client.arrivals(queue, 1, channel=channel, no_ack=False)
        await channel.basic_nack(message.delivery.delivery_tag, requeue=True)
    if profile == "3.10":
        [dead] = await client.arrivals(dlq, 1)
        assert dead.header.properties.headers["x-death"][0]["reason"] == "delivery_limit"
    else:
        await asyncio.sleep(QUIET)
        assert (await client.message_count(queue), await client.message_count(dlq)) == (1, 0)


@pytest.mark.profiles
async def test_quorum_default_delivery_limit(client, profile):
    # RabbitMQ 4.0 release notes: quorum queues have a default delivery limit of 20; 3.10 has none.
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(durable=True, arguments={**QUORUM, "x-dead-letter-exchange": dlx})
    await client.publish(queue, "poison")
    channel = await client.channel()
    for _ in range(21):
        [message] = await client.arrivals(queue, 1, channel=channel, no_ack=False)
        await channel.basic_reject(message.delivery.delivery_tag, requeue=True)
    if profile == "3.10":
        assert len(await client.arrivals(queue, 1)) == 1  # still there after 21 failed deliveries
    else:
        [dead] = await client.arrivals(dlq, 1)
        assert dead.header.properties.headers["x-death"][0]["reason"] == "delivery_limit"
