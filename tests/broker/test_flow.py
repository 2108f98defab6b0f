"""Memory alarm: only connections that publish get blocked; consumers keep draining and that clears it.

Why: a lab usually consumes on one connection and publishes on another. If the alarm blocked every
connection (aiormq stops writing, acks included, on connection.blocked) nothing could ever drain the
queue. RabbitMQ blocks a connection only when it publishes during an alarm; so does the broker.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq
import pytest

from labkit.broker import Broker
from labkit.lifecycle import wait_until

LIMIT = 10_000
BODY = b"x" * 4_000


@pytest.fixture
async def broker():
    b = await Broker(memory_limit=LIMIT).start()
    yield b
    await b.stop()


async def test_consumers_are_not_blocked_and_their_draining_unblocks_the_publisher(broker, caplog):
    caplog.set_level(logging.WARNING, logger="aiormq.connection")
    consumer_conn = await aiormq.connect(broker.url)
    consumer = await consumer_conn.channel()
    await consumer.queue_declare("flow", durable=True)
    publisher_conn = await aiormq.connect(broker.url)
    publisher = await publisher_conn.channel()
    for _ in range(LIMIT // len(BODY) + 1):
        await publisher.basic_publish(BODY, routing_key="flow")
    await wait_until(lambda: broker.memory.blocked and "blocked by" in caplog.text, timeout=5)
    late_conn = await aiormq.connect(broker.url)  # connecting during the alarm is fine too
    await late_conn.channel()
    blocked_logs = [r for r in caplog.records if "blocked by" in r.getMessage()]
    assert len(blocked_logs) == 1, "only the publishing connection is blocked"

    drained = asyncio.Event()
    got = []

    async def on_message(message):
        got.append(message.body)
        await consumer.basic_ack(message.delivery.delivery_tag)
        if len(got) == 3:
            drained.set()

    await consumer.basic_consume("flow", on_message)
    await asyncio.wait_for(drained.wait(), 5)
    await wait_until(lambda: not broker.memory.blocked and "was unblocked" in caplog.text, timeout=5)
    await asyncio.wait_for(publisher.basic_publish(b"after", routing_key="flow"), 5)
    for conn in (late_conn, publisher_conn, consumer_conn):
        await conn.close()


async def test_reset_clears_the_alarm(broker):
    conn = await aiormq.connect(broker.url)
    ch = await conn.channel()
    await ch.queue_declare("flow", durable=True)
    for _ in range(LIMIT // len(BODY) + 1):
        await ch.basic_publish(BODY, routing_key="flow")
    assert broker.memory.blocked
    await broker.reset()
    assert not broker.memory.blocked and broker.memory.used == 0
    await asyncio.wait_for(ch.queue_declare("again", durable=True), 5)  # the connection is read again
    await conn.close()
