"""Records, recordings and the queue-depth sampler (against RabbitMQ and the embedded broker)."""

import asyncio
import math
import time
import uuid

import aiormq
import pytest

from labkit.lifecycle import wait_until
from labkit.metrics import Clock, QueueDepthSampler, Record, Recording, as_t0, percentile, sleep_until
from labkit.queues import declare_run_queue


def rec(scheduled, start, end, ok=True, error=None, **info):
    return Record(scheduled, start, end, ok, error, info)


def test_latency_counts_from_scheduled_time():
    r = rec(10.0, 10.3, 10.5)
    assert r.latency == pytest.approx(0.5)  # not 0.2: the 0.3 s the sender was late counts
    assert r.send_error == pytest.approx(0.3)
    assert r.service_time == pytest.approx(0.2)


def test_percentile_interpolates_like_numpy():
    values = [1, 2, 3, 4]
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 4
    assert percentile(values, 50) == 2.5
    assert percentile(values, 25) == pytest.approx(1.75)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"q must be in \[0, 100\], got 101"):
        percentile(values, 101)


def make_recording():
    # 10 ops scheduled at 0.0, 0.1, ... 0.9 after t0=100; every third fails; latency grows with i
    records = [
        rec(
            100 + i / 10,
            100 + i / 10,
            100 + i / 10 + 0.01 * (i + 1),
            ok=i % 3 != 0,
            error=None if i % 3 else "timeout",
            path="a" if i < 5 else "b",
        )
        for i in range(10)
    ]
    return Recording(records, t0=100.0, duration=1.0)


def test_recording_statistics():
    r = make_recording()
    assert len(r) == 10
    assert r.success_rate() == pytest.approx(0.6)
    assert r.errors() == {"timeout": 4}
    ok_lat = sorted(0.01 * (i + 1) for i in range(10) if i % 3)
    assert r.latencies() == pytest.approx(ok_lat)
    assert r.percentile(50) == pytest.approx(percentile(ok_lat, 50))
    assert r.percentile(100, include="all") == pytest.approx(0.10)
    assert r.percentile(0, include="failed") == pytest.approx(0.01)
    assert r.throughput() == pytest.approx(6.0)
    assert r.throughput("all") == pytest.approx(10.0)
    assert r.mean() == pytest.approx(sum(ok_lat) / 6)
    assert r.send_error_percentile(99) == pytest.approx(0.0)


def test_recording_defaults_t0_and_duration_from_records():
    r = Recording([rec(5, 5, 6), rec(7, 7, 9)])
    assert r.t0 == 5 and r.duration == 4
    empty = Recording([])
    assert len(empty) == 0 and math.isnan(empty.success_rate()) and math.isnan(empty.percentile(50))


def test_window_and_group_by():
    r = make_recording()
    first = r.window(0, 0.5)
    assert len(first) == 5 and first.t0 == 100
    assert first.duration == pytest.approx(0.5)
    assert len(r.window(0.5, math.inf)) == 5
    groups = r.group_by("path")
    assert {k: len(v) for k, v in groups.items()} == {"a": 5, "b": 5}
    assert len(r.group_by("missing")[None]) == 10


def test_timeseries_bins_by_scheduled_time():
    ts = make_recording().timeseries(bin_s=0.5)
    assert ts["t"] == [0.0, 0.5]
    assert ts["count"] == [5, 5]
    assert ts["ok"] == [3, 3]  # i = 1, 2, 4 | 5, 7, 8
    assert ts["failed"] == [2, 2]
    assert ts["success_rate"] == [0.6, 0.6]
    assert ts["rate"] == [10.0, 10.0]
    assert ts["p50"][1] == pytest.approx(0.08)


def test_timeseries_empty_bins_are_nan_and_end_binning():
    r = Recording([rec(10.1, 10.1, 12.5)], t0=10.0, duration=3)
    ts = r.timeseries(1.0)
    assert ts["count"] == [1, 0, 0]
    assert math.isnan(ts["success_rate"][1]) and math.isnan(ts["p50"][2])
    assert r.timeseries(1.0, by="end")["count"] == [0, 0, 1]
    shifted = r.timeseries(1.0, t0=9.0)
    assert shifted["count"][:2] == [0, 1]


def test_in_flight_time_average():
    # one op in flight over [0.5, 2.5), another over [1.0, 1.5): bins of 1 s
    r = Recording([rec(10.5, 10.5, 12.5), rec(11.0, 11.2, 11.5)], t0=10.0, duration=3)
    series = r.in_flight(1.0)
    assert series["t"] == [0.0, 1.0, 2.0]
    assert series["in_flight"] == pytest.approx([0.5, 1.5, 0.5])


def test_in_flight_obeys_littles_law():
    r = make_recording()  # every op ends inside the 1.1 s after t0
    whole = r.in_flight(bin_s=1.1)["in_flight"][0]
    assert whole == pytest.approx(len(r) / 1.1 * r.mean("all"))


def test_recording_validation():
    r = make_recording()
    with pytest.raises(ValueError, match="include must be one of 'ok', 'failed', 'all'"):
        r.percentile(50, include="good")
    with pytest.raises(ValueError, match="bin_s must be > 0"):
        r.timeseries(0)
    with pytest.raises(ValueError, match="bin_s must be > 0"):
        r.in_flight(-1)
    with pytest.raises(ValueError, match=r"records must be labkit\.metrics\.Record objects, got 3"):
        Recording([rec(1, 1, 2), 3])
    with pytest.raises(ValueError, match="by must be one of"):
        r.timeseries(1, by="sent")
    with pytest.raises(ValueError, match=r"t_end - t_start must be > 0"):
        r.window(1, 1)


def test_summary_and_repr():
    s = make_recording().summary()
    assert s["n"] == 10 and s["success_rate"] == pytest.approx(0.6)
    assert "success_rate=0.600" in repr(make_recording())


async def test_clock_shares_one_timeline():
    clock = Clock()
    await asyncio.sleep(0.02)
    assert clock.now() >= 0.015
    assert clock.at(1.0) == clock.t0 + 1.0
    assert as_t0(clock) == clock.t0
    assert as_t0(12.5) == 12.5
    with pytest.raises(ValueError, match="t0 must be >= 0"):
        as_t0(-1)


async def test_sleep_until_is_never_early():
    lateness = []
    for k in range(30):
        when = time.monotonic() + 0.0005 * (k % 7)
        await sleep_until(when)
        lateness.append(time.monotonic() - when)
    assert min(lateness) >= 0
    await sleep_until(time.monotonic() - 1)  # a time in the past returns at once
    with pytest.raises(ValueError, match="when must be >= 0"):
        await sleep_until(-1)


@pytest.fixture
async def amqp_channel(amqp_url):
    """A channel on RabbitMQ and on the embedded broker: the sampler must read both the same way."""
    conn = await aiormq.connect(amqp_url)
    try:
        yield await conn.channel()
    finally:
        await conn.close()


async def test_queue_depth_sampler_follows_publishes(amqp_channel):
    name = f"labkit-test-depth-{uuid.uuid4().hex[:8]}"
    await declare_run_queue(amqp_channel, name)
    sampler_ch = await amqp_channel.connection.channel()
    try:
        async with QueueDepthSampler(sampler_ch, name, interval=0.02) as sampler:
            await asyncio.sleep(0.1)
            for _ in range(30):
                await amqp_channel.basic_publish(b"x", routing_key=name)
            await asyncio.sleep(0.2)
            await amqp_channel.queue_purge(name)
            await asyncio.sleep(0.2)
        ts = sampler.timeseries()
        assert ts["messages"][0] == 0
        assert sampler.max() == 30
        assert ts["messages"][-1] == 0
        assert ts["t"] == sorted(ts["t"]) and len(ts["t"]) >= 5
        assert set(ts["consumers"]) == {0}
    finally:
        await amqp_channel.queue_delete(name)


async def test_queue_depth_sampler_reports_missing_queue(amqp_channel):
    ch = await amqp_channel.connection.channel()
    sampler = await QueueDepthSampler(ch, f"labkit-missing-{uuid.uuid4().hex[:8]}", interval=0.01).start()
    await wait_until(lambda: sampler.error is not None, timeout=10, what="the sampler's 404")
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await sampler.stop()
    assert sampler._task is None


def test_sampler_validation():
    with pytest.raises(ValueError, match="interval must be > 0"):
        QueueDepthSampler(object(), "q", interval=0)
    with pytest.raises(ValueError, match="queue must be a non-empty"):
        QueueDepthSampler(object(), "", interval=1)
