"""The broker-crash experiment (labkit.brokercrash) and the Lab's side of a crash: its data directory,
``lab.broker.crash()`` / ``restart()``, and a lab that keeps working afterwards."""

from __future__ import annotations

import os

import pytest

from labkit import brokercrash
from labkit.lab import Lab

AMQP_URL = os.environ.get("AMQP_URL")


async def test_a_real_crash_loses_transient_messages_only_and_confirms_with_retry_lose_nothing(monkeypatch):
    monkeypatch.delenv("AMQP_URL", raising=False)  # only the embedded broker can really crash
    async with Lab(seed=1) as lab:
        run = await brokercrash.run(lab, rate=100, duration=1.5, crash_at=0.5, down_for=0.2)
        assert run.crashed and not run.note
        transient, fire, confirmed = (run.streams[k] for k in ("transient", "fire-and-forget", "confirmed"))
        assert transient["published_before_crash"] >= 10 and transient["kept_of_those"] == 0
        assert fire["kept_of_those"] >= 0.8 * fire["published_before_crash"] > 0  # on disk before the crash
        assert fire["lost"] >= 1 and fire["published"] < 150  # it gave up while the broker was down
        assert confirmed["lost"] == 0 and confirmed["kept"] == 150
        assert 0.5 <= run.outage[0] < run.outage[1]
        assert {fate for fates in run.fates.values() for _t, fate in fates} == {"kept", "lost"}
        assert len(brokercrash.figure(run).data) == 2
        cost = await brokercrash.confirm_cost(lab, n=20)
        assert set(cost) == {"persistent", "transient"}
        assert all(c["p50_ms"] > 0 and c["rate"] > 0 for c in cost.values())
        # the lab's own connection died with the broker: its next use reconnects
        queue = await lab.declare_queue(lab.unique("after-crash"))
        await lab.publish(queue, b"still here")
        assert await lab.queue_depth(queue) == 1
        await lab.delete_queue(queue)


@pytest.mark.skipif(not AMQP_URL, reason="needs RabbitMQ at AMQP_URL")
async def test_on_rabbitmq_the_outage_is_simulated_and_says_so():
    async with Lab(seed=1) as lab:
        run = await brokercrash.run(lab, rate=100, duration=1.2, crash_at=0.4, down_for=0.2)
        assert not run.crashed and "cannot crash" in run.note
        assert run.streams["confirmed"]["lost"] == 0
        assert run.streams["transient"]["kept_of_those"] == run.streams["transient"]["published_before_crash"]
        with pytest.raises(RuntimeError, match="cannot crash or restart"):
            _ = lab.broker


async def test_bad_arguments_are_refused_by_name():
    async with Lab(seed=1, amqp=False) as lab:
        with pytest.raises(ValueError, match="crash_at must be in"):
            await brokercrash.run(lab, duration=1.0, crash_at=2.0)
        with pytest.raises(ValueError, match="rate must be"):
            await brokercrash.run(lab, rate=0)
        with pytest.raises(RuntimeError, match="runs no embedded broker"):
            _ = lab.broker


async def test_the_lab_owns_its_data_directory_and_durable_state_survives_its_restart(monkeypatch):
    monkeypatch.delenv("AMQP_URL", raising=False)
    lab = await Lab.start(seed=1)
    try:
        data_dir = lab.broker.data_dir
        assert os.path.isdir(data_dir)
        queue = await lab.declare_queue(lab.unique("kept"))
        await lab.publish(queue, b"persistent", delivery_mode=2)
        await lab.publish(queue, b"transient")
        await lab.broker.crash()
        await lab.broker.restart()
        assert await lab.queue_depth(queue) == 1
    finally:
        await lab.stop()
    assert not os.path.exists(data_dir)
