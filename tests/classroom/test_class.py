"""A simulated class (learner processes) on each broker: join, consume, a learner killed, nothing lost,
refusals, a misbehaving learner contained. ``make test`` runs 3 learners on the embedded broker (and on
RabbitMQ when it answers); CLASSROOM_FULL=1 (the RabbitMQ pass of .ci/run) runs 30."""

from __future__ import annotations

import asyncio
import json
import os

import aiormq
import pytest
from pamqp.commands import Basic

from labkit.classroom import Classroom, Learner, SimulatedClass, topology
from labkit.classroom import experiments as ex
from labkit.lab import Lab
from labkit.lifecycle import wait_until

from .conftest import RABBITMQ_URL

SIZE = 30 if os.environ.get("CLASSROOM_FULL") else 3


@pytest.fixture
async def classroom(broker_kind, monkeypatch):
    monkeypatch.setattr(topology, "INBOX_MAX_LENGTH", 300)  # a flood fills a small inbox quickly
    lab = await Lab.start(amqp_url=RABBITMQ_URL if broker_kind == "rabbitmq" else None)
    room = await lab.start(Classroom())
    yield room
    await lab.stop()  # stops the class (vhost and users deleted) with the rest
    assert not room.running


async def test_class_joins_consumes_and_loses_nothing_when_one_is_killed(classroom):
    sim = await SimulatedClass(classroom.code, SIZE).start()
    try:
        await classroom.wait_for_learners(SIZE, timeout=30 + 3 * SIZE)
        run, victim = await ex.killed_mid_run(classroom, 20 * SIZE, sim.kill, prefetch=5, after=0.3)
        assert run.lost == 0 and len(run.done) == 20 * SIZE
        assert victim not in sim.alive
        assert run.redelivered > 0  # the victim's unacked messages went to the others
        rtt = await classroom.ping()
        assert set(rtt) == set(sim.alive)
    finally:
        await sim.stop()


async def test_a_learner_who_leaves_mid_run_loses_nothing(classroom):
    stays = await Learner.join(classroom.code, "stays", service_time=0.005)
    leaves = await Learner.join(classroom.code, "leaves", service_time=0.005)
    try:
        await wait_until(lambda: len(classroom.present) == 2, timeout=10, what="two learners")

        async def leave(run):
            await wait_until(lambda: run.per_learner["leaves"] >= 5, timeout=20, what="the leaver's first work")
            await leaves.leave()

        run = await ex.run_work(classroom, 100, prefetch=20, during=leave)
        assert run.lost == 0 and run.redelivered > 0
        # the goodbye reaches the instructor through the broker, after the leave returns: wait for it
        await wait_until(lambda: "leaves" not in classroom.present, timeout=10, what="the leaver's goodbye")
    finally:
        await stays.leave()
        await leaves.leave()


async def test_a_learner_told_to_idle_mid_message_keeps_its_connection(classroom):
    """Idle closes the work channel while the worker may be between its "done" report and its ack. An ack
    written after that channel.close costs the learner its whole connection (504 "expected 'channel.open'",
    as RabbitMQ answers once it has forgotten the channel)."""
    learner = await Learner.join(classroom.code, "toggles", service_time=0.002)
    try:
        await wait_until(lambda: "toggles" in classroom.present, timeout=10, what="the learner")

        async def toggle(run):
            for _ in range(15):
                await asyncio.sleep(0.02)
                await classroom.command("idle", to=["toggles"])
                await asyncio.sleep(0.01)
                await classroom.command("work", to=["toggles"], prefetch=20)

        run = await ex.run_work(classroom, 300, prefetch=20, during=toggle, timeout=30)
        assert run.lost == 0 and not learner.conn.is_closed
    finally:
        await learner.leave()


async def test_refusals_and_a_misbehaving_learner_is_contained(classroom):
    honest = await Learner.join(classroom.code, "honest")
    rogue = await Learner.join(classroom.code, "rogue")
    try:
        await classroom.wait_for_learners(2)
        # 403 on another learner's queues and on the instructor's queues, each on its own channel.
        for operation in (
            lambda ch: ch.queue_purge(topology.inbox("honest")),
            lambda ch: ch.basic_consume(topology.own("honest", "control"), lambda m: None),
            lambda ch: ch.queue_delete(topology.own("honest", "control")),
            lambda ch: ch.basic_get(topology.JOIN),
            lambda ch: ch.basic_publish(b"{}", exchange=topology.CONTROL),
        ):
            channel = await rogue.conn.channel()
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
                await operation(channel)
        # Malformed, oversized and spoofed reports are dropped and counted, not believed.
        ch = await rogue.conn.channel()
        props = Basic.Properties(user_id=rogue.user)
        await ch.basic_publish(b"not json", exchange=topology.INBOX, routing_key="rogue", properties=props)
        await ch.basic_publish(b"x" * 10_000, exchange=topology.INBOX, routing_key="rogue", properties=props)
        spoof = json.dumps({"t": "done", "name": "honest", "id": "w-forged"}).encode()
        await ch.basic_publish(spoof, exchange=topology.INBOX, routing_key="honest", properties=props)
        await wait_until(lambda: sum(classroom.errors.values()) >= 3, timeout=10, what="three bad reports counted")
        assert classroom.errors["malformed"] == 1 and classroom.errors["oversized"] == 1
        assert classroom.errors["spoofed"] == 1 and classroom.members["honest"].done == 0
        # A flood (while the instructor pings): it lands only in the rogue's own inbox, which never holds
        # more than its max-length (beyond it the broker nacks), and control messages still arrive.
        flood = await rogue.conn.channel()
        burst = asyncio.gather(
            *(
                flood.basic_publish(b"{}", exchange=topology.INBOX, routing_key="rogue", properties=props)
                for _ in range(1500)
            ),
            return_exceptions=True,
        )
        rtt, _ = await asyncio.gather(classroom.ping(among=["honest"]), burst)
        assert "honest" in rtt
        assert await classroom.depth(topology.inbox("rogue")) <= topology.INBOX_MAX_LENGTH
        await wait_until(lambda: classroom.errors["malformed"] > 100, timeout=10, what="the flood counted")
        assert classroom.members["honest"].errors == 0
        # A thousand channels: the user's max-channels closes the rogue's connection, only that one.
        with pytest.raises(aiormq.exceptions.AMQPError, match="user limit"):
            for _ in range(1000):
                await rogue.conn.channel()
        assert rogue.conn.is_closed and not honest.conn.is_closed
        assert "honest" in await classroom.ping(among=["honest"])
    finally:
        await honest.leave()
        await rogue.leave()


@pytest.mark.skipif(
    not os.environ.get("CLASSROOM_FULL"), reason="every experiment with the full class: CLASSROOM_FULL=1"
)
async def test_the_class_runs_every_experiment(classroom):
    """Done means: a class of SIZE simulated learners runs every experiment, start to finish."""
    sim = await SimulatedClass(classroom.code, SIZE).start()
    try:
        await classroom.wait_for_learners(SIZE, timeout=30 + 3 * SIZE)
        speeds = {m.name: m.service_time for m in classroom.members.values()}
        fair = await ex.run_work(classroom, 20 * SIZE, prefetch=1)
        greedy = await ex.run_work(classroom, 20 * SIZE, prefetch=100)
        assert fair.lost == greedy.lost == 0
        assert ex.share_spread(fair, speeds) > ex.share_spread(greedy, speeds)
        assert 0.5 < fair.makespan / ex.predicted_finish(fair) < 2
        fan = await ex.fanout(classroom, 10)
        assert fan.missing == 0 and len(fan.lag) == SIZE
        coupling = await ex.temporal_coupling(classroom, count=10, interval=0.1, outage=(0.3, 1.3))
        assert coupling.success("async", True) == 1.0 > coupling.success("sync", True)
        assert coupling.processed["async"] == 10 * SIZE
        run, victim = await ex.killed_mid_run(classroom, 20 * SIZE, sim.kill)
        assert run.lost == 0 and victim not in sim.alive
    finally:
        await sim.stop()
