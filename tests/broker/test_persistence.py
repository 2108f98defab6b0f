"""Durability across a restart, as on RabbitMQ: durable exchanges, queues and bindings and persistent
messages in durable queues come back; transient ones vanish; acked messages stay gone; a torn or
garbled log tail costs only the records it cut; compaction keeps the log bounded.

The broker runs in this process and is restarted with a new Broker on the same data directory (what
the process restart in test_crash_safety.py does after a kill -9).
"""

from __future__ import annotations

import os

import aiormq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands

from labkit.broker import Broker, store
from labkit.broker.store import Store, is_persistent

PERSISTENT = commands.Basic.Properties(delivery_mode=2)
TRANSIENT = commands.Basic.Properties(delivery_mode=1)


async def bodies(channel, queue: str) -> list[bytes]:
    out = []
    while True:
        got = await channel.basic_get(queue, no_ack=True)
        if isinstance(got.delivery, commands.Basic.GetEmpty):
            return out
        out.append(got.body)


class Restarting:
    """A broker on ``data_dir`` that can be stopped and started again, with one client connection."""

    def __init__(self, data_dir: str, **options) -> None:
        self.data_dir = data_dir
        self.options = options
        self.broker: Broker | None = None
        self.connection = None

    async def start(self):
        self.broker = await Broker(data_dir=self.data_dir, **self.options).start()
        self.connection = await aiormq.connect(self.broker.url)
        return await self.connection.channel()

    async def restart(self):
        await self.stop()
        return await self.start()

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()
        if self.broker is not None:
            await self.broker.stop()
        self.connection = self.broker = None


@pytest.fixture
async def node(tmp_path):
    node = Restarting(str(tmp_path / "data"))
    yield node
    await node.stop()


async def test_durable_queue_keeps_persistent_messages_in_order_and_drops_transient_ones(node):
    channel = await node.start()
    await channel.queue_declare("orders", durable=True)
    for i in range(5):
        await channel.basic_publish(b"p%d" % i, routing_key="orders", properties=PERSISTENT)
        await channel.basic_publish(b"t%d" % i, routing_key="orders", properties=TRANSIENT)
    await channel.basic_publish(b"default", routing_key="orders")  # no delivery_mode: transient
    channel = await node.restart()
    assert await bodies(channel, "orders") == [b"p0", b"p1", b"p2", b"p3", b"p4"]


async def test_transient_queues_and_exchanges_vanish_even_with_persistent_messages(tmp_path):
    node = Restarting(str(tmp_path / "data"), rabbitmq="3.10")  # 4.3 refuses transient queues outright
    channel = await node.start()
    await channel.queue_declare("scratch", durable=False)
    await channel.exchange_declare("flash", exchange_type="fanout", durable=False)
    await channel.basic_publish(b"gone", routing_key="scratch", properties=PERSISTENT)
    channel = await node.restart()
    assert "scratch" not in node.broker.vhost.queues and "flash" not in node.broker.vhost.exchanges
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.queue_declare("scratch", passive=True)
    await node.stop()


async def test_durable_exchanges_and_bindings_route_after_restart(node):
    channel = await node.start()
    await channel.exchange_declare("events", exchange_type="topic", durable=True)
    await channel.exchange_declare("audit", exchange_type="fanout", durable=True)
    await channel.queue_declare("billing", durable=True, arguments={"x-max-length": 10})
    await channel.queue_declare("log", durable=True)
    await channel.queue_bind("billing", "events", routing_key="order.*")
    await channel.queue_bind("log", "audit")
    await channel.exchange_bind("audit", "events", routing_key="#")
    await channel.queue_bind("billing", "amq.direct", routing_key="direct")
    await channel.queue_unbind("billing", "amq.direct", routing_key="direct")
    channel = await node.restart()
    await channel.basic_publish(b"o1", exchange="events", routing_key="order.paid", properties=PERSISTENT)
    await channel.basic_publish(b"d1", exchange="amq.direct", routing_key="direct", properties=PERSISTENT)
    assert await bodies(channel, "billing") == [b"o1"]
    assert await bodies(channel, "log") == [b"o1"]
    # the redeclaration is checked against what was recovered: same arguments pass, others fail
    await channel.queue_declare("billing", durable=True, arguments={"x-max-length": 10})
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await channel.queue_declare("billing", durable=True)


async def test_deleted_things_stay_deleted_and_a_redeclared_queue_starts_empty(node):
    channel = await node.start()
    await channel.exchange_declare("ex", exchange_type="direct", durable=True)
    await channel.queue_declare("q", durable=True)
    await channel.queue_bind("q", "ex", routing_key="k")
    await channel.basic_publish(b"old", routing_key="q", properties=PERSISTENT)
    await channel.queue_delete("q")
    await channel.exchange_delete("ex")
    await channel.queue_declare("q", durable=True)
    await channel.exchange_declare("ex", exchange_type="direct", durable=True)
    await channel.basic_publish(b"new", routing_key="q", properties=PERSISTENT)
    channel = await node.restart()
    assert await bodies(channel, "q") == [b"new"]
    await channel.basic_publish(b"routed?", exchange="ex", routing_key="k", properties=PERSISTENT)
    assert await bodies(channel, "q") == []  # the old binding died with the old exchange


async def test_acked_messages_stay_gone_unacked_and_requeued_ones_come_back(node):
    channel = await node.start()
    await channel.queue_declare("work", durable=True)
    for i in range(4):
        await channel.basic_publish(b"%d" % i, routing_key="work", properties=PERSISTENT)
    first = await channel.basic_get("work")
    await channel.basic_ack(first.delivery.delivery_tag)
    await channel.basic_get("work")  # delivered, never acked: the crash "requeues" it
    await channel.basic_publish(b"purged", routing_key="work", properties=PERSISTENT)
    channel = await node.restart()
    assert await bodies(channel, "work") == [b"1", b"2", b"3", b"purged"]
    await channel.basic_publish(b"x", routing_key="work", properties=PERSISTENT)
    await channel.queue_purge("work")
    channel = await node.restart()
    assert await bodies(channel, "work") == []


async def test_dead_lettered_persistent_messages_survive_in_a_durable_dead_letter_queue(node):
    channel = await node.start()
    await channel.queue_declare("dlq", durable=True)
    await channel.queue_declare(
        "jobs", durable=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
    )
    await channel.basic_publish(b"poison", routing_key="jobs", properties=PERSISTENT)
    got = await channel.basic_get("jobs")
    await channel.basic_reject(got.delivery.delivery_tag, requeue=False)
    channel = await node.restart()
    assert await bodies(channel, "jobs") == []
    assert await bodies(channel, "dlq") == [b"poison"]


async def test_quorum_queues_and_large_messages_survive(node):
    channel = await node.start()
    await channel.queue_declare("qq", durable=True, arguments={"x-queue-type": "quorum"})
    big = os.urandom(400_000)  # several frames
    await channel.basic_publish(big, routing_key="qq", properties=PERSISTENT)
    channel = await node.restart()
    assert node.broker.vhost.queues["qq"].kind == "quorum"
    assert await bodies(channel, "qq") == [big]


async def test_a_second_broker_cannot_share_the_data_directory(node):
    await node.start()
    with pytest.raises(ValueError, match="in use by another broker"):
        await Broker(data_dir=node.data_dir).start()


def test_bad_data_dir_is_refused_with_its_name():
    with pytest.raises(ValueError, match="data_dir must be"):
        Broker(data_dir="")


async def test_compaction_keeps_the_log_bounded_and_the_content(node, monkeypatch):
    monkeypatch.setattr(store, "COMPACT_MIN", 20_000)
    channel = await node.start()
    await channel.queue_declare("churn", durable=True)
    await channel.basic_publish(b"keeper", routing_key="churn", properties=PERSISTENT)
    keeper = await channel.basic_get("churn")  # held unacked through the churn: must survive compaction
    for _ in range(300):
        await channel.basic_publish(b"x" * 500, routing_key="churn", properties=PERSISTENT)
        got = await channel.basic_get("churn", no_ack=True)
        assert got.body == b"x" * 500
    log = node.broker.store
    assert log.compactions >= 1
    assert os.path.getsize(log.path) < 3 * 20_000  # 300 x 500 B went through it
    assert keeper.body == b"keeper"
    channel = await node.restart()
    assert await bodies(channel, "churn") == [b"keeper"]


def _fill(directory: str, count: int) -> int:
    """A log with a durable queue and ``count`` messages; returns the size after the queue record."""
    import asyncio

    async def run():
        async with Broker(data_dir=directory) as broker:
            connection = await aiormq.connect(broker.url)
            channel = await connection.channel()
            await channel.queue_declare("q", durable=True)
            size = broker.store.size + broker.store._pending_bytes
            for i in range(count):
                await channel.basic_publish(b"m%03d" % i, routing_key="q", properties=PERSISTENT)
            await connection.close()
            return size

    return asyncio.run(run())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10_000), garbage=st.binary(max_size=40))
def test_a_torn_tail_costs_only_the_records_it_cut(tmp_path_factory, cut, garbage):
    directory = str(tmp_path_factory.mktemp("torn"))
    header = _fill(directory, 20)
    path = os.path.join(directory, store.LOG)
    size = os.path.getsize(path)
    keep = min(cut, size)
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.seek(keep)
        f.write(garbage)
    log = Store(directory)
    try:
        bodies_back = [msg.body for _queue, msg in log.recovered]
        assert bodies_back == [b"m%03d" % i for i in range(len(bodies_back))]  # a prefix, whole messages
        if keep == size and not garbage:
            assert len(bodies_back) == 20
        if keep < header:
            assert bodies_back == []
        assert os.path.getsize(path) <= keep  # the bad tail is cut before anything is appended
    finally:
        log.close()


def test_is_persistent_reads_delivery_mode_behind_the_variable_length_properties():
    from pamqp.header import ContentHeader

    for props, expected in [
        (commands.Basic.Properties(), False),
        (TRANSIENT, False),
        (PERSISTENT, True),
        (
            commands.Basic.Properties(
                content_type="text/plain", content_encoding="utf-8", headers={"a": "b" * 300}, delivery_mode=2
            ),
            True,
        ),
        (commands.Basic.Properties(content_type="x", headers={"k": 2}), False),
    ]:
        assert is_persistent(ContentHeader(body_size=1, properties=props).marshal()) is expected


async def test_broker_process_crash_and_restart_keep_the_url_and_only_what_was_durable(tmp_path):
    from labkit.broker.process import BrokerProcess

    bp = await BrokerProcess.start(data_dir=str(tmp_path / "data"))
    try:
        url = bp.url
        connection = await aiormq.connect(url)
        channel = await connection.channel()
        await channel.queue_declare("kept", durable=True)
        await channel.basic_publish(b"persistent", routing_key="kept", properties=PERSISTENT)
        await channel.basic_publish(b"transient", routing_key="kept", properties=TRANSIENT)
        await bp.crash()
        assert bp.returncode == -9
        # no AMQP close, the connection reset: what a client of RabbitMQ 3.10.8 sees when it is killed
        with pytest.raises(aiormq.exceptions.AMQPConnectionError, match="reset"):
            await connection.closing
        await bp.restart()
        assert bp.url == url and bp.returncode is None
        connection = await aiormq.connect(url)
        got = await (await connection.channel()).basic_get("kept", no_ack=True)
        assert got.body == b"persistent" and got.delivery.redelivered  # RabbitMQ flags recovered messages too
        await connection.close()
    finally:
        await bp.stop()


async def test_a_committed_transaction_survives_a_restart_a_rolled_back_one_does_not(node):
    await node.start()
    channel = await node.connection.channel(publisher_confirms=False)  # tx and confirms do not mix
    await channel.queue_declare("ledger", durable=True)
    await channel.tx_select()
    await channel.basic_publish(b"rolled back", routing_key="ledger", properties=PERSISTENT)
    await channel.tx_rollback()
    await channel.basic_publish(b"committed", routing_key="ledger", properties=PERSISTENT)
    await channel.tx_commit()
    channel = await node.restart()
    assert await bodies(channel, "ledger") == [b"committed"]
