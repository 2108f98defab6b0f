"""Dead-lettering: where a message goes and the x-death / x-first-death-* headers it carries.

RabbitMQ 3.13 changed how x-death counts when a client republishes a dead-lettered message; these
tests assert what 3.10 and later share, and one profiled case shows the difference.
"""

import datetime

import pytest

from .support import text


async def reject_one(client, queue):
    """basic.get the head of ``queue`` and reject it without requeue."""
    channel = await client.channel()
    message = await channel.basic_get(queue)
    await channel.basic_reject(message.delivery.delivery_tag, requeue=False)


async def test_rejected_message_goes_to_the_dead_letter_exchange(client):
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx})
    await client.publish(queue, "poison")
    await reject_one(client, queue)
    assert text(await client.arrivals(dlq, 1)) == ["poison"]


async def test_x_death_records_reason_queue_exchange_routing_keys_count_and_time(client):
    dlx, dlq = await client.dead_letter_sink()
    source = await client.exchange("direct")
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx})
    await (await client.admin()).queue_bind(queue, source, "orders.new")
    await client.publish("orders.new", "poison", exchange=source)
    await reject_one(client, queue)
    [message] = await client.arrivals(dlq, 1)
    [death] = message.header.properties.headers["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == queue
    assert death["exchange"] == source
    assert list(death["routing-keys"]) == ["orders.new"]
    assert isinstance(death["time"], datetime.datetime)


async def test_first_death_headers_name_exchange_queue_and_reason(client):
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx})
    await client.publish(queue, "poison")
    await reject_one(client, queue)
    [message] = await client.arrivals(dlq, 1)
    headers = message.header.properties.headers
    assert (headers["x-first-death-exchange"], headers["x-first-death-queue"], headers["x-first-death-reason"]) == (
        "",
        queue,
        "rejected",
    )


async def test_dead_letter_routing_key_replaces_the_routing_key(client):
    dlx = await client.exchange("direct")
    dlq = await client.queue()
    await (await client.admin()).queue_bind(dlq, dlx, "dead")
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    await client.publish(queue, "poison")
    await reject_one(client, queue)
    [message] = await client.arrivals(dlq, 1)
    assert message.delivery.routing_key == "dead"
    # x-death keeps the routing keys the message was originally published with.
    assert list(message.header.properties.headers["x-death"][0]["routing-keys"]) == [queue]


async def test_dead_lettering_keeps_the_original_routing_key_by_default(client):
    dlx = await client.exchange("direct")
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx})
    dlq = await client.queue()
    await (await client.admin()).queue_bind(dlq, dlx, queue)
    await client.publish(queue, "poison")
    await reject_one(client, queue)
    [message] = await client.arrivals(dlq, 1)
    assert message.delivery.routing_key == queue


async def test_expired_message_is_dead_lettered_with_reason_expired(client):
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 30})
    await client.publish(queue, "stale")
    [message] = await client.arrivals(dlq, 1)
    assert message.header.properties.headers["x-death"][0]["reason"] == "expired"
    assert message.header.properties.headers["x-first-death-reason"] == "expired"


async def test_dead_lettering_keeps_body_and_properties(client):
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx})
    await client.publish(queue, "poison", correlation_id="c-42", content_type="text/plain", headers={"k": "v"})
    await reject_one(client, queue)
    [message] = await client.arrivals(dlq, 1)
    properties = message.header.properties
    assert (message.body, properties.correlation_id, properties.content_type, properties.headers["k"]) == (
        b"poison",
        "c-42",
        "text/plain",
        "v",
    )


async def test_dead_lettering_removes_the_per_message_expiration(client):
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx})
    await client.publish(queue, "stale", expiration="30")
    [message] = await client.arrivals(dlq, 1)
    # The dead-lettered copy must not expire again in the dead-letter queue; the original
    # expiration is kept in x-death instead.
    assert message.header.properties.expiration is None
    assert message.header.properties.headers["x-death"][0]["original-expiration"] == "30"


async def test_reject_without_requeue_and_without_dead_letter_exchange_drops(client):
    queue = await client.queue()
    await client.publish(queue, "a", "b")
    await reject_one(client, queue)
    assert text(await client.get_all(queue)) == ["b"]


async def test_delayed_retry_loop_counts_each_death_per_queue_and_reason(client):
    # The retry-with-delay pattern: work --reject--> wait queue --TTL--> back to work.
    work, wait = client.queue_name(), client.queue_name()
    await client.queue(work, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": wait})
    await client.queue(
        wait, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": work, "x-message-ttl": 20}
    )
    await client.publish(work, "job")
    channel = await client.channel()
    for _ in range(2):
        [message] = await client.arrivals(work, 1, channel=channel, no_ack=False)
        await channel.basic_reject(message.delivery.delivery_tag, requeue=False)
    [message] = await client.arrivals(work, 1)
    deaths = {(d["queue"], d["reason"]): d["count"] for d in message.header.properties.headers["x-death"]}
    assert deaths == {(work, "rejected"): 2, (wait, "expired"): 2}
    # The most recent death comes first.
    assert (message.header.properties.headers["x-death"][0]["queue"]) == wait
    assert message.header.properties.headers["x-first-death-queue"] == work


@pytest.mark.profiles
async def test_republished_x_death_counts_on_3_x_only(client, profile):
    # A client takes a dead-lettered message and publishes it again, x-death header and all, to the
    # queue it died in; it dies there again. 3.x reads the header and counts on (count 2); 4.x keeps its
    # own death history, ignores the client's header (count 1) and adds x-last-death-* (4.0.1 notes).
    dlx, dlq = await client.dead_letter_sink()
    queue = await client.queue(arguments={"x-dead-letter-exchange": dlx})
    await client.publish(queue, "poison")
    await reject_one(client, queue)
    [dead] = await client.arrivals(dlq, 1)
    await client.publish(queue, "poison", headers=dict(dead.header.properties.headers))
    await reject_one(client, queue)
    [again] = await client.arrivals(dlq, 1)
    headers = again.header.properties.headers
    [death] = headers["x-death"]
    assert (death["queue"], death["reason"]) == (queue, "rejected")
    if profile == "3.10":
        assert death["count"] == 2 and "x-last-death-reason" not in headers
    else:
        assert death["count"] == 1
        assert (headers["x-last-death-reason"], headers["x-last-death-queue"]) == ("rejected", queue)
