"""RabbitMQ features the broker supports beyond the conformance suite's list: alternate exchanges,
headers matching with x- keys, stream offsets given as intervals, and the refusal of immediate=true.

Why: each was checked by hand against RabbitMQ 3.10.8 (same aiormq calls, same result); these tests
keep them from regressing. They run against the embedded broker only.
"""

from __future__ import annotations

import asyncio

import aiormq
import pytest
from pamqp import commands as spec

from labkit.broker import Broker
from labkit.lifecycle import wait_until


@pytest.fixture
async def channel():
    broker = await Broker().start()
    conn = await aiormq.connect(broker.url)
    yield await conn.channel()
    await conn.close()
    await broker.stop()


async def test_unroutable_message_goes_to_the_alternate_exchange(channel):
    await channel.exchange_declare("ae", exchange_type="fanout")
    await channel.exchange_declare("orders", exchange_type="direct", arguments={"alternate-exchange": "ae"})
    await channel.queue_declare("unrouted", durable=True)
    await channel.queue_bind("unrouted", "ae")
    await channel.queue_declare("routed", durable=True)
    await channel.queue_bind("routed", "orders", routing_key="ok")
    await channel.basic_publish(b"lost", exchange="orders", routing_key="nowhere")
    await channel.basic_publish(b"kept", exchange="orders", routing_key="ok")
    lost = await channel.basic_get("unrouted", no_ack=True)
    assert (lost.body, lost.delivery.exchange, lost.delivery.routing_key) == (b"lost", "orders", "nowhere")
    assert (await channel.basic_get("routed", no_ack=True)).body == b"kept"
    assert isinstance((await channel.basic_get("unrouted", no_ack=True)).delivery, spec.Basic.GetEmpty)


@pytest.mark.parametrize("mode, matches", [("any", False), ("any-with-x", True), ("all-with-x", True)])
async def test_headers_exchange_matches_x_keys_only_with_x_modes(channel, mode, matches):
    await channel.exchange_declare("hx", exchange_type="headers")
    await channel.queue_declare("hq", durable=True)
    await channel.queue_bind("hq", "hx", arguments={"x-match": mode, "x-tenant": "a"})
    await channel.basic_publish(b"m", exchange="hx", properties=spec.Basic.Properties(headers={"x-tenant": "a"}))
    got = await channel.basic_get("hq", no_ack=True)
    assert isinstance(got.delivery, spec.Basic.GetOk) is matches


async def test_stream_offset_interval_reads_messages_published_within_it(channel):
    await channel.queue_declare("s", durable=True, arguments={"x-queue-type": "stream"})
    for i in range(3):
        await channel.basic_publish(b"%d" % i, routing_key="s")
    await channel.basic_qos(prefetch_count=10)
    got: list = []
    await channel.basic_consume("s", got.append, arguments={"x-stream-offset": "10m"})
    await wait_until(lambda: len(got) >= 3, timeout=5)
    assert [m.body for m in got] == [b"0", b"1", b"2"]
    assert [m.header.properties.headers["x-stream-offset"] for m in got] == [0, 1, 2]


async def test_immediate_publish_is_not_implemented(channel):
    with pytest.raises(aiormq.exceptions.ConnectionNotImplemented, match="immediate=true"):
        await channel.basic_publish(b"m", routing_key="q", immediate=True)


async def test_single_active_consumer_hands_the_backlog_to_the_next_consumer(channel):
    """The active consumer is at its prefetch limit with a backlog waiting; when it cancels, the next
    consumer gets the backlog at once (no new publish needed)."""
    await channel.queue_declare("sac", arguments={"x-single-active-consumer": True}, durable=True)
    await channel.basic_qos(prefetch_count=1)
    first: list = []
    second: list = []
    ok = await channel.basic_consume("sac", first.append)
    await channel.basic_consume("sac", second.append)
    for i in range(3):
        await channel.basic_publish(b"%d" % i, routing_key="sac")
    await wait_until(lambda: first, timeout=5)
    await channel.basic_cancel(ok.consumer_tag)
    await wait_until(lambda: second, timeout=5)
    assert [m.body for m in first] == [b"0"] and second[0].body == b"1"


async def test_closing_a_connection_does_not_bounce_messages_between_its_own_channels():
    """Two consumers on one connection hold unacked quorum messages; when the connection closes,
    each message is returned exactly once (x-delivery-count 1 on the next delivery), not
    redelivered to the connection's other, still-closing channel and returned twice."""
    broker = await Broker().start()
    try:
        conn = await aiormq.connect(broker.url)
        first, second = await conn.channel(), await conn.channel()
        await first.queue_declare("qq", durable=True, arguments={"x-queue-type": "quorum"})
        for ch, prefetch in ((first, 1), (second, 2)):  # the second could take the first's message
            await ch.basic_qos(prefetch_count=prefetch)
            await ch.basic_consume("qq", lambda m: None)
        for i in range(2):
            await first.basic_publish(b"%d" % i, routing_key="qq")
        await wait_until(lambda: broker.queues()[0]["messages_unacknowledged"] >= 2, timeout=5)
        await conn.close()
        other = await aiormq.connect(broker.url)
        ch = await other.channel()
        counts = [
            (await ch.basic_get("qq", no_ack=True)).header.properties.headers["x-delivery-count"] for _ in range(2)
        ]
        assert counts == [1, 1]
        await other.close()
    finally:
        await broker.stop()


async def test_max_length_zero_still_feeds_a_waiting_consumer(channel):
    """RabbitMQ delivers to a waiting consumer before it enqueues, so x-max-length 0 (drop-head)
    makes a "deliver now or drop" queue: consumed messages arrive, the rest are dead-lettered."""
    await channel.queue_declare("dropped", durable=True)
    await channel.queue_declare(
        "zero",
        arguments={"x-max-length": 0, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dropped"},
        durable=True,
    )
    await channel.basic_publish(b"nobody-waiting", routing_key="zero")
    got: list = []
    await channel.basic_consume("zero", got.append, no_ack=True)
    await channel.basic_publish(b"taken", routing_key="zero")
    await wait_until(lambda: got, timeout=5)
    assert [m.body for m in got] == [b"taken"]
    assert (await channel.basic_get("dropped", no_ack=True)).body == b"nobody-waiting"


async def test_quorum_queue_returns_go_to_the_back_in_return_order(channel):
    """Unlike classic queues (original position), RabbitMQ 3.10 quorum queues append returned
    messages behind the ready ones, in the order they were returned (checked on 3.10.8)."""
    await channel.queue_declare("qr", durable=True, arguments={"x-queue-type": "quorum"})
    for body in (b"a", b"b", b"c", b"d"):
        await channel.basic_publish(body, routing_key="qr")
    got = [await channel.basic_get("qr") for _ in range(3)]
    await channel.basic_nack(got[2].delivery.delivery_tag, requeue=True)
    await channel.basic_nack(got[0].delivery.delivery_tag, requeue=True)
    order = [(await channel.basic_get("qr", no_ack=True)).body for _ in range(3)]
    assert order == [b"d", b"c", b"a"]


async def test_dead_lettering_may_use_an_internal_exchange(channel):
    """Clients cannot publish to an internal exchange, but the broker's own dead-lettering can (and
    must not fail inside a TTL timer)."""
    await channel.exchange_declare("dlx-internal", exchange_type="fanout", internal=True)
    await channel.queue_declare("dead", durable=True)
    await channel.queue_bind("dead", "dlx-internal")
    await channel.queue_declare(
        "short", arguments={"x-message-ttl": 10, "x-dead-letter-exchange": "dlx-internal"}, durable=True
    )
    await channel.basic_publish(b"m", routing_key="short")
    async with asyncio.timeout(5):
        while True:
            got = await channel.basic_get("dead", no_ack=True)
            if isinstance(got.delivery, spec.Basic.GetOk):
                break
            await asyncio.sleep(0.02)
    assert got.header.properties.headers["x-death"][0]["reason"] == "expired"


async def test_consumer_priority_serves_high_priority_consumers_first(channel):
    """x-priority (checked against RabbitMQ 3.10.8 with the same calls): consumers of priority 10
    share messages round-robin while they have prefetch room; priority 0 gets only the overflow."""
    conn = channel.connection
    channels = [channel, await conn.channel(), await conn.channel()]
    await channel.queue_declare("cp", durable=True)
    got: dict[str, list] = {"low": [], "high1": [], "high2": []}
    for ch, (label, priority) in zip(channels, (("low", 0), ("high1", 10), ("high2", 10))):
        await ch.basic_qos(prefetch_count=2)
        await ch.basic_consume("cp", got[label].append, arguments={"x-priority": priority})
    for i in range(7):
        await channel.basic_publish(b"%d" % i, routing_key="cp")
    await wait_until(lambda: sum(map(len, got.values())) >= 6, timeout=5)
    assert {k: [m.body for m in v] for k, v in got.items()} == {
        "low": [b"4", b"5"],
        "high1": [b"0", b"2"],
        "high2": [b"1", b"3"],
    }
