"""The broker tap: the embedded broker's side of a history (routing, drops, dead-letters), off by default."""

from __future__ import annotations

import asyncio

import aiormq

from labkit import history as H
from labkit.broker import Broker
from labkit.broker.tap import read
from labkit.consumers import publish


async def test_tap_is_off_by_default():
    async with Broker() as broker:
        assert broker.history is None and broker.vhost.tap is None


async def test_tap_records_routing_drops_and_dead_letters_and_merges_with_the_client(tmp_path):
    path = str(tmp_path / "broker.tsv")
    async with Broker(history=path) as broker:
        connection = await aiormq.connect(broker.url)
        channel = await connection.channel()
        await channel.queue_declare("parked", durable=True)
        await channel.queue_declare(
            "full",
            durable=True,
            arguments={"x-max-length": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "parked"},
        )
        await channel.queue_declare("tiny", durable=True, arguments={"x-max-length": 1})
        with H.record() as client:
            for i in range(3):
                await publish(channel, "full", b"x", message_id=f"full-{i}")
            for i in range(2):
                await publish(channel, "tiny", b"x", message_id=f"tiny-{i}")
            await publish(channel, "nowhere", b"x", message_id="unroutable")
        await connection.close()
    broker_side = read(path)
    kinds = {(e.message_id, e.kind): e.attrs for e in broker_side}
    assert kinds[("full-0", "dead-letter")]["reason"] == "maxlen"
    assert kinds[("tiny-0", "drop")]["reason"] == "maxlen"
    assert kinds[("unroutable", "drop")]["reason"] == "unroutable"
    assert kinds[("full-2", "route")]["queues"] == ["full"]
    assert {e.process for e in broker_side} == {"broker"}
    both = H.History.merged(client, broker_side)
    assert [e.t for e in both] == sorted(e.t for e in both) and len(both) == len(client) + len(broker_side)
    confirmed = both.where(message_id="tiny-0")
    assert [e.kind for e in confirmed][:3] == ["publish", "route", "confirm"]  # one clock for both processes
    lost = H.check(both, H.NoConfirmedLoss())["no confirmed message lost"]
    assert lost.violations == 6  # confirmed, none consumed: what the broker did with each is in its events
    assert "refused / error" in {t.name for t in H.diagram(both.where(message_id="unroutable")).figure.data}


async def test_a_broker_process_writes_its_side_where_the_lab_asks(tmp_path):
    from labkit.lab import Lab

    path = str(tmp_path / "lab-broker.tsv")
    async with Lab(broker_options={"history": path}) as lab:
        if lab.broker_kind != "embedded":
            return  # AMQP_URL points at RabbitMQ: no broker side to record
        await lab.publish("nobody-listens", b"x", message_id="m")
        await asyncio.sleep(0.3)  # the tap writes in batches every 0.1 s
        assert [(e.message_id, e.kind) for e in read(path)] == [("m", "drop")]
