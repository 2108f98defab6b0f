"""At-least-once, end to end: consumers die mid-stream and not one confirmed message is lost.

Why: chapter 06 tells readers that a publisher confirm plus a manual ack means "delivered at least
once, even if a consumer crashes". This is that promise under fire: while a publisher sends with
confirms, consumers that never ack are killed by dropping their TCP connection (no AMQP close, like a
crashed process), and the survivors must end up acking every confirmed message. Against the embedded
broker in its own process always, and against RabbitMQ too when AMQP_URL is set.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import aiormq
import pytest
from aiormq.connection import TCPTransportFactory
from pamqp import commands

from labkit.broker.process import BrokerProcess

AMQP_URL = os.environ.get("AMQP_URL")
MESSAGES = 2000
VICTIMS = 5  # consumers killed, one per slice of the stream
SURVIVORS = 2
SETTLE = 30.0  # seconds the survivors get to drain everything; far more than they need


class Killable(TCPTransportFactory):
    """aiormq's TCP transport, remembered so the test can drop the socket without an AMQP close."""

    async def create(self, url, **kwargs):
        reader, self.writer = await super().create(url, **kwargs)
        return reader, self.writer

    def kill(self) -> None:
        self.writer.transport.abort()


@pytest.fixture(params=["embedded"] + (["rabbitmq"] if AMQP_URL else []))
async def url(request):
    if request.param == "rabbitmq":
        yield AMQP_URL
        return
    bp = await BrokerProcess.start()
    yield bp.url
    await bp.stop()


class Ledger:
    """What the test saw: confirmed publishes, survivor acks, victim deliveries, redeliveries."""

    def __init__(self) -> None:
        self.confirmed: set[int] = set()
        self.acked: set[int] = set()
        self.seen_by_victims: set[int] = set()
        self.redelivered: set[int] = set()
        self.all_acked = asyncio.Event()

    def ack(self, number: int, redelivered: bool) -> None:
        self.acked.add(number)
        if redelivered:
            self.redelivered.add(number)
        if len(self.acked) == MESSAGES:
            self.all_acked.set()


async def survivor(url: str, queue: str, ledger: Ledger, connections: list) -> None:
    connection = await aiormq.connect(url)
    connections.append(connection)
    channel = await connection.channel(publisher_confirms=False)
    await channel.basic_qos(prefetch_count=10)

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        await message.channel.basic_ack(message.delivery_tag)
        ledger.ack(int(message.body), message.redelivered)

    await channel.basic_consume(queue, on_message)


async def victim(url: str, queue: str, ledger: Ledger, publishing: asyncio.Task) -> int:
    """Consume without acking; once holding messages (or the stream ended), drop the TCP connection."""
    transport = Killable()
    connection = aiormq.Connection(url, transport_factory=transport)
    await connection.connect()
    received = 0
    holding = asyncio.Event()
    try:
        channel = await connection.channel(publisher_confirms=False)
        await channel.basic_qos(prefetch_count=50)

        def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal received
            received += 1
            ledger.seen_by_victims.add(int(message.body))
            if received >= 20:
                holding.set()

        await channel.basic_consume(queue, on_message)
        waits = [asyncio.ensure_future(holding.wait()), publishing]
        await asyncio.wait(waits, timeout=SETTLE, return_when=asyncio.FIRST_COMPLETED)
        waits[0].cancel()
        transport.kill()  # mid-stream: the broker sees a dead socket, never a close or an ack
    finally:
        await connection.close()
    return received


async def publish(url: str, queue: str, ledger: Ledger) -> None:
    """MESSAGES numbered messages with publisher confirms, 50 in flight at a time."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()  # confirms on

        async def one(number: int) -> None:
            confirmation = await channel.basic_publish(str(number).encode(), routing_key=queue)
            if isinstance(confirmation, commands.Basic.Ack):
                ledger.confirmed.add(number)

        for start in range(0, MESSAGES, 50):
            await asyncio.gather(*(one(n) for n in range(start, min(start + 50, MESSAGES))))
            await asyncio.sleep(0.005)  # leave room for the victims to be fed and killed mid-stream
    finally:
        await connection.close()


async def test_every_confirmed_message_is_acked_despite_consumers_killed_mid_stream(url):
    queue = f"noloss-{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    connections: list = []
    setup = await aiormq.connect(url)
    try:
        channel = await setup.channel()
        await channel.queue_declare(queue, durable=True)
        for _ in range(SURVIVORS):
            await survivor(url, queue, ledger, connections)

        publishing = asyncio.ensure_future(publish(url, queue, ledger))
        held = [await victim(url, queue, ledger, publishing) for _ in range(VICTIMS)]
        await publishing
        try:
            await asyncio.wait_for(ledger.all_acked.wait(), SETTLE)
        except asyncio.TimeoutError:
            pass  # the assertions below say what is missing

        assert len(ledger.confirmed) == MESSAGES, "the broker must confirm every publish"
        assert ledger.confirmed - ledger.acked == set(), "confirmed messages were lost"
        assert sum(held) > 0 and ledger.seen_by_victims, "no consumer was killed holding messages"
        assert ledger.seen_by_victims <= ledger.redelivered, (
            "every message a killed consumer held must come back with redelivered=True"
        )
        for connection in connections:
            await connection.close()
        connections.clear()
        left = await channel.queue_declare(queue, passive=True)
        assert left.message_count == 0
    finally:
        for connection in connections:
            await connection.close()
        channel = await setup.channel()
        await channel.queue_delete(queue)
        await setup.close()
