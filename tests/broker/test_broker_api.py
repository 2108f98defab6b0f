"""The Broker object the lab drives: argument checks, lifecycle without leaks, introspection, reset,
and message-byte accounting that returns to zero (the memory alarm depends on it).

Why here and not in tests/conformance: these are the embedded broker's own Python API, which RabbitMQ
does not have. Everything on the wire goes through aiormq, like the notebooks.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

import aiormq
import pytest
from pamqp import commands as spec

from labkit.broker import Broker
from labkit.lifecycle import wait_until

BODY = b"x" * 100


def name(kind: str = "q") -> str:
    return f"bk.{kind}.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def broker():
    b = await Broker().start()
    yield b
    await b.stop()


@pytest.fixture
async def channel(broker):
    conn = await aiormq.connect(broker.url)
    yield await conn.channel()
    await conn.close()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"port": -1}, "port"),
        ({"port": 70000}, "port"),
        ({"heartbeat": -5}, "heartbeat"),
        ({"frame_max": 100}, "frame_max"),
        ({"channel_max": 0}, "channel_max"),
        ({"memory_limit": 0}, "memory_limit"),
        ({"user": ""}, "user"),
        ({"password": "a\x00b"}, "password"),
        ({"host": "0.0.0.0"}, "host"),
        ({"handshake_timeout": 0}, "handshake_timeout"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"^{argument} must be"):
        Broker(**kwargs)


def test_url_before_start_explains_what_to_do():
    with pytest.raises(RuntimeError, match="start"):
        _ = Broker().url


async def test_url_carries_credentials_and_the_ephemeral_port():
    broker = await Broker(user="alice", password="s3:c@ret/").start()
    try:
        assert broker.url == f"amqp://alice:s3%3Ac%40ret%2F@127.0.0.1:{broker.port}/"
        assert broker.port > 0
        conn = await aiormq.connect(broker.url)  # the escaped password authenticates
        await conn.close()
    finally:
        await broker.stop()


async def test_stop_closes_clients_and_frees_the_port():
    broker = await Broker().start()
    port = broker.port
    conn = await aiormq.connect(broker.url)
    await broker.stop()
    await wait_until(lambda: conn.is_closed, timeout=5)
    assert not broker.connections
    with socket.socket() as probe:  # the listening socket is gone: the port can be bound again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    await broker.stop()  # idempotent


async def test_stop_leaves_no_tasks_or_timers_behind():
    before = set(asyncio.all_tasks())
    broker = await Broker(heartbeat=1).start()
    conn = await aiormq.connect(broker.url)
    ch = await conn.channel()
    await ch.queue_declare(name(), arguments={"x-message-ttl": 60_000}, durable=True)
    await ch.basic_publish(BODY, routing_key="")
    await conn.close()
    await broker.stop()
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}
    loop = asyncio.get_running_loop()
    assert not [h for h in loop._scheduled if not h.cancelled() and "labkit" in repr(getattr(h, "_callback", ""))]


async def test_queues_reports_depths_consumers_and_rates(broker, channel):
    q = name()
    await channel.queue_declare(q, durable=True)
    for _ in range(5):
        await channel.basic_publish(BODY, routing_key=q)
    first = {row["name"]: row for row in broker.queues()}[q]
    assert first == {
        "name": q,
        "type": "classic",
        "messages_ready": 5,
        "messages_unacknowledged": 0,
        "consumers": 0,
        "publish_rate": 0.0,
        "deliver_rate": 0.0,
        "ack_rate": 0.0,
    }
    await channel.basic_qos(prefetch_count=2)
    got: list = []
    await channel.basic_consume(q, got.append)
    await wait_until(lambda: len(got) == 2, timeout=5)
    for _ in range(10):
        await channel.basic_publish(BODY, routing_key=q)
    await asyncio.sleep(0.05)
    row = {row["name"]: row for row in broker.queues()}[q]
    assert (row["messages_ready"], row["messages_unacknowledged"], row["consumers"]) == (13, 2, 1)
    assert row["publish_rate"] > 0 and row["deliver_rate"] > 0 and row["ack_rate"] == 0


async def test_queue_types_are_reported(broker, channel):
    names = {kind: name(kind) for kind in ("classic", "quorum", "stream")}
    for kind, q in names.items():
        await channel.queue_declare(q, durable=True, arguments={"x-queue-type": kind})
    types = {row["name"]: row["type"] for row in broker.queues()}
    assert {types[q] for q in names.values()} == set(names)


async def test_reset_deletes_queues_and_exchanges_and_cancels_consumers(broker, channel):
    q, ex = name(), name("ex")
    await channel.exchange_declare(ex, exchange_type="fanout")
    await channel.queue_declare(q, durable=True)
    await channel.queue_bind(q, ex)
    cancelled = asyncio.Event()
    channel.on_consumer_cancel_callbacks.add(lambda frame: cancelled.set())
    await channel.basic_consume(q, lambda m: None)
    await channel.basic_publish(BODY, routing_key=q)
    await broker.reset()
    assert broker.queues() == []
    await asyncio.wait_for(cancelled.wait(), 5)
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.exchange_declare(ex, passive=True)
    conn = await aiormq.connect(broker.url)  # the broker keeps serving after a reset
    fresh = await conn.channel()
    await fresh.exchange_declare("amq.topic", passive=True)
    await conn.close()


async def test_overview_totals(broker, channel):
    q = name()
    await channel.queue_declare(q, durable=True)
    await channel.basic_publish(BODY, routing_key=q)
    overview = broker.overview()
    assert overview["connections"] == 1 and overview["channels"] == 1 and overview["queues"] == 1
    assert overview["messages_ready"] == 1 and overview["message_bytes"] == len(BODY)
    assert overview["blocked"] is False


async def test_stored_bytes_return_to_zero_after_every_kind_of_removal(broker, channel):
    """Ack, reject, nack-requeue-then-ack, expiry, overflow, purge, delete and dead-lettering all
    release exactly what they stored; otherwise the memory alarm would drift."""
    dlq, main = name("dlq"), name("main")
    await channel.queue_declare(dlq, durable=True)
    await channel.queue_declare(
        main,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq, "x-max-length": 3},
        durable=True,
    )
    for _ in range(5):  # two overflow into the dead-letter queue
        await channel.basic_publish(BODY, routing_key=main)
    get = [await channel.basic_get(main) for _ in range(3)]
    await channel.basic_reject(get[0].delivery.delivery_tag, requeue=False)  # -> dlq
    await channel.basic_nack(get[1].delivery.delivery_tag, requeue=True)
    await channel.basic_ack(get[2].delivery.delivery_tag)
    again = await channel.basic_get(main)
    assert again.delivery.redelivered
    await channel.basic_ack(again.delivery.delivery_tag)
    await channel.basic_publish(BODY, routing_key=main, properties=spec.Basic.Properties(expiration="1"))
    await asyncio.sleep(0.05)
    assert (await channel.queue_declare(dlq, passive=True)).message_count == 4  # 2 maxlen, 1 rejected, 1 expired
    assert broker.memory.used == 4 * len(BODY)
    await channel.queue_purge(dlq)
    await channel.basic_publish(BODY, routing_key=main)
    await channel.queue_delete(main)
    assert broker.memory.used == 0


async def test_acks_after_a_reset_do_not_drive_the_byte_count_negative(broker, channel):
    """Unacked messages of a deleted queue are released with the queue; their late acks (and
    requeues, and rejects) must not subtract again, or the memory alarm would drift low."""
    q = name()
    await channel.queue_declare(q, arguments={"x-dead-letter-exchange": "amq.fanout"}, durable=True)
    for _ in range(3):
        await channel.basic_publish(BODY, routing_key=q)
    got = [await channel.basic_get(q) for _ in range(3)]
    assert broker.memory.used == 3 * len(BODY)
    await broker.reset()
    assert broker.memory.used == 0
    await channel.basic_ack(got[0].delivery.delivery_tag)
    await channel.basic_nack(got[1].delivery.delivery_tag, requeue=True)
    await channel.basic_reject(got[2].delivery.delivery_tag, requeue=False)
    await channel.queue_declare(name(), durable=True)  # a round trip: the acks above have been processed
    assert broker.memory.used == 0
