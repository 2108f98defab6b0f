"""aio-pika (built on aiormq) against the lab's broker and, with AMQP_URL, against RabbitMQ: its RPC and
master/worker patterns and transactions, as a learner would write them.

Why: learners go from aiormq to aio-pika, and its patterns use what the course's own code does not:
aio-pika's RPC.close() cancels its reply consumer (the auto-delete reply queue goes) and then unbinds
that queue, which RabbitMQ answers with unbind-ok. And its defaults declare transient non-exclusive
queues, which RabbitMQ 4.3 refuses: the tests show the declaration a learner writes for 4.3 (the
reconnect-after-restart case lives in the persistence tests).
"""

from __future__ import annotations

import asyncio
import os
import uuid

import aio_pika
import aiormq
import pytest
from aio_pika.patterns import RPC, Master

from labkit.broker import Broker

AMQP_URL = os.environ.get("AMQP_URL")
KINDS = ["embedded-4.3", "embedded-3.10"] + (["rabbitmq"] if AMQP_URL else [])
WAIT = 10.0


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
async def url(kind):
    if kind == "rabbitmq":
        yield AMQP_URL
        return
    broker = await Broker(rabbitmq=kind.split("-")[1]).start()
    yield broker.url
    await broker.stop()


@pytest.fixture
async def connection(url):
    connection = await aio_pika.connect(url)
    yield connection
    await connection.close()


def unique(kind: str) -> str:
    return f"aiopika.{kind}.{uuid.uuid4().hex[:12]}"


async def test_rpc_round_trip_and_close(connection):
    channel = await connection.channel()
    # exclusive=True: the reply queue is this connection's own (aio-pika's default, a transient shared
    # queue, is refused by RabbitMQ 4.3); the method queue is durable and auto-deletes with its consumer.
    rpc = await RPC.create(channel, exclusive=True)
    method = unique("multiply")

    async def multiply(*, x: int, y: int) -> int:
        return x * y

    await rpc.register(method, multiply, durable=True, auto_delete=True)
    assert await asyncio.wait_for(rpc.call(method, kwargs={"x": 6, "y": 7}), WAIT) == 42
    assert await asyncio.wait_for(rpc.proxy.__getattr__(method)(x=2, y=3), WAIT) == 6
    await rpc.unregister(multiply)
    await rpc.close()  # cancel (the auto-delete reply queue goes), then unbind it: unbind-ok
    assert not channel.is_closed


async def test_rpc_defaults_are_refused_by_rabbitmq_4_3_only(kind, connection):
    if kind == "rabbitmq":
        pytest.skip("depends on the RabbitMQ version; the embedded profiles show both answers")
    channel = await connection.channel()
    if kind == "embedded-3.10":
        rpc = await RPC.create(channel)  # durable=False, auto_delete=True, not exclusive: fine on 3.10
        await rpc.close()
        return
    with pytest.raises(aiormq.exceptions.ConnectionInternalError, match="transient_nonexcl_queues"):
        await RPC.create(channel)


async def test_master_worker_shares_tasks_between_workers(connection):
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1)
    master = Master(channel)
    queue = unique("tasks")
    done: list[tuple[str, int]] = []
    all_done = asyncio.Event()

    def handler(name: str):
        async def work(*, n: int) -> None:
            done.append((name, n))
            if len(done) == 10:
                all_done.set()
            await asyncio.sleep(0.01)

        return work

    first = await master.create_worker(queue, handler("first"), durable=True, auto_delete=True)
    second = await master.create_worker(queue, handler("second"), durable=True, auto_delete=True)
    for n in range(10):
        await master.proxy.__getattr__(queue)(n=n)
    await asyncio.wait_for(all_done.wait(), WAIT)
    assert sorted(n for _, n in done) == list(range(10))
    assert {name for name, _ in done} == {"first", "second"}
    await first.close()
    await second.close()


async def test_transaction_commits_and_rolls_back(connection):
    channel = await connection.channel(publisher_confirms=False)  # a channel is transactional or confirming
    queue = await channel.declare_queue(unique("tx"), durable=True, arguments={"x-expires": 60_000})
    async with channel.transaction():
        await channel.default_exchange.publish(aio_pika.Message(b"kept"), routing_key=queue.name)
    transaction = channel.transaction()
    await transaction.select()
    await channel.default_exchange.publish(aio_pika.Message(b"gone"), routing_key=queue.name)
    await transaction.rollback()
    message = await queue.get(no_ack=True)
    assert message.body == b"kept"
    assert await queue.get(no_ack=True, fail=False) is None
    await queue.delete()
