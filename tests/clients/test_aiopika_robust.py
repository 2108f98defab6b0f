"""aio-pika's ``connect_robust`` rides out a broker restart: it reconnects, declares its exchanges and
queues again, rebinds them and resumes its consumers, while the durable queue kept its persistent
message.

Why: "what if the broker dies?" has two halves. The broker's half is durability (the embedded broker's
log, tests/broker/test_persistence.py); the client's half is reconnecting with its topology, which is
what learners reach for in aio-pika. On the embedded broker the lab really kills it (SIGKILL) and
restarts it on the same port. The shared RabbitMQ cannot be killed from a test, so there the outage is
simulated with a fault proxy that resets every connection and refuses new ones for a moment: the client
sees what it would see if the broker died (its socket dropped), though RabbitMQ keeps its state.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import aio_pika
import pytest

from labkit.broker.process import BrokerProcess
from labkit.faults import FaultProxy

AMQP_URL = os.environ.get("AMQP_URL")
WAIT = 20.0  # seconds; generous for a loaded 2-core machine
OUTAGE = 0.5  # seconds the broker stays down


class EmbeddedOutage:
    """The embedded broker, killed and restarted on the same port with its data directory."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.broker: BrokerProcess | None = None

    async def start(self) -> str:
        self.broker = await BrokerProcess.start(data_dir=self.data_dir)
        return self.broker.url

    async def interrupt(self) -> None:
        await self.broker.crash()
        await asyncio.sleep(OUTAGE)
        await self.broker.restart()

    async def stop(self) -> None:
        await self.broker.stop()


class ProxiedOutage:
    """RabbitMQ behind a fault proxy taken down resets every connection and refuses new ones."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.proxy: FaultProxy | None = None

    async def start(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        self.proxy = await FaultProxy(parts.hostname, parts.port or 5672, "rabbitmq").start()
        return self.proxy.via(self.url)

    async def interrupt(self) -> None:
        self.proxy.down()
        await asyncio.sleep(OUTAGE)
        self.proxy.up()

    async def stop(self) -> None:
        await self.proxy.stop()


@pytest.fixture(params=["embedded"] + (["rabbitmq"] if AMQP_URL else []))
async def outage(request, tmp_path):
    broker = EmbeddedOutage(str(tmp_path / "data")) if request.param == "embedded" else ProxiedOutage(AMQP_URL)
    broker.url = await broker.start()
    yield broker
    await broker.stop()


async def test_connect_robust_reconnects_with_its_topology_after_a_broker_restart(outage):
    tag = uuid.uuid4().hex[:8]
    connection = await aio_pika.connect_robust(outage.url, reconnect_interval=0.2)
    try:
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        channel = await connection.channel()  # publisher confirms on, as aio-pika defaults
        exchange = await channel.declare_exchange(f"robust-ex-{tag}", aio_pika.ExchangeType.FANOUT, durable=True)
        kept = await channel.declare_queue(f"robust-kept-{tag}", durable=True, arguments={"x-expires": 60_000})
        events = await channel.declare_queue(exclusive=True)  # gone with the crash: the client declares it again
        await kept.bind(exchange)
        await events.bind(exchange)
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await received.put(message.body)

        await events.consume(on_message)
        await exchange.publish(aio_pika.Message(b"before", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "")
        assert await asyncio.wait_for(received.get(), WAIT) == b"before"

        await outage.interrupt()
        await asyncio.wait_for(reconnected.wait(), WAIT)

        await exchange.publish(aio_pika.Message(b"after", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "")
        assert await asyncio.wait_for(received.get(), WAIT) == b"after"  # queue, binding and consumer are back
        bodies = []
        while (message := await kept.get(no_ack=True, fail=False)) is not None:
            bodies.append(message.body)
        assert bodies == [b"before", b"after"]  # the persistent message outlived the outage
        await kept.delete(if_unused=False, if_empty=False)
        await exchange.delete()
    finally:
        await connection.close()
