"""labkit.queueing: a live M/M/c queue on the lab's broker (embedded, or AMQP_URL), and its arithmetic."""

import asyncio
import math

import pytest

from labkit import theory
from labkit.metrics import Record
from labkit.queueing import WAITED, QueueRun, drain, mmc_experiment


def _run(servers, arrivals, works, waits):
    """A QueueRun from hand-made timings: arrival times, work times and waits (s)."""
    records = [
        Record(t - 0.001, t + w, t + w + s, True, None, {"received": t}) for t, s, w in zip(arrivals, works, waits)
    ]
    return QueueRun(servers, offered_rate=1.0, service_time=1.0, records=records)


def test_rates_waits_and_predictions_from_the_records():
    run = _run(1, arrivals=[0, 1, 2, 3, 4], works=[0.5] * 5, waits=[0, 0.2, 0, 0.4, 0])
    assert run.n == 5 and run.waits() == pytest.approx([0, 0.2, 0, 0.4, 0])
    assert run.arrival_rate == pytest.approx(1.0)  # 4 gaps in 4 s
    assert run.service_rate == pytest.approx(2.0)
    assert run.utilization == pytest.approx(0.5)
    assert run.mean_wait == pytest.approx(0.12)
    assert run.wait_probability == pytest.approx(0.4)
    assert run.predicted_wait == pytest.approx(theory.mm1_wait(1.0, 2.0))
    assert run.predicted_wait_probability == pytest.approx(0.5)  # Erlang C with one server is ρ


def test_overloaded_run_predicts_unbounded_wait_and_certain_waiting():
    run = _run(1, arrivals=[0, 1, 2], works=[2.0] * 3, waits=[0, 1, 2])
    assert run.utilization > 1
    assert run.predicted_wait == math.inf and run.predicted_wait_probability == 1.0


def test_batch_means_halfwidth_is_zero_for_identical_batches_and_validates_batches():
    run = _run(1, arrivals=list(range(10)), works=[0.1] * 10, waits=[0.0, 0.1] * 5)
    assert run.wait_halfwidth(5) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="batches must be one of"):
        run.wait_halfwidth(7)
    assert _run(1, [0, 1, 2], [0.1] * 3, [0] * 3).wait_halfwidth(5) == math.inf  # too few for 5 batches


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"servers": 0}, "servers"),
        ({"utilization": 0}, "utilization must be > 0"),
        ({"utilization": 1.0}, "utilization must be < 1"),
        ({"service_time": -0.01}, "service_time"),
        ({"duration": 0}, "duration"),
    ],
)
async def test_arguments_are_validated_before_anything_starts(kwargs, message):
    args = {"servers": 1, "utilization": 0.5, "service_time": 0.01, "duration": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        await mmc_experiment(None, **args)


async def test_a_live_queue_waits_more_when_busier_and_cleans_up(lab):
    # both runs at once (each has its own queue and consumer; the work is sleeping): half the wall time
    quiet, busy = await asyncio.gather(
        *(mmc_experiment(lab, 1, rho, 0.01, duration=1.5, seed=3, progress=False) for rho in (0.2, 0.8))
    )
    for run in (quiet, busy):
        assert run.n > 10 and all(r.ok for r in run.records)
        assert all(w >= 0 for w in run.waits())
        received = [r.info["received"] for r in run.records]
        assert received == sorted(received)
        assert all(r.end - r.start > 0 for r in run.records)  # exponential work times, slept for real
    # same work times, four times the arrivals: far more messages find the worker busy, and wait longer
    assert busy.wait_probability > quiet.wait_probability + 0.2
    assert busy.mean_wait > 2 * quiet.mean_wait
    assert lab.consumers == []  # its consumer was removed (and its queue deleted)


async def test_two_servers_share_one_line(lab):
    run = await mmc_experiment(lab, 2, 0.5, 0.02, duration=1.5, seed=5, progress=False)
    waited = [w for w in run.waits() if w > WAITED]
    started = sorted(r.start for r in run.records)
    ended = sorted(r.end for r in run.records)
    # at some moment two messages were in service at once: both servers worked
    overlap = any(s < e for s, e in zip(started[1:], ended[:-1]))
    assert overlap and len(waited) < run.n


async def test_drain_deals_messages_out_among_consumers_and_times_a_backlog(lab, unique):
    queue = unique("drain")
    two = await drain(lab, queue, [0.002, 0.002], 20, prefetch=1)
    assert sum(two["shares"]) == pytest.approx(1.0) and all(share > 0 for share in two["shares"])
    assert two["throughput"] == pytest.approx(20 / two["elapsed"])
    backlog = await drain(lab, unique("drain"), [0.001], 10, prefetch=10, backlog_first=True, concurrency=10)
    assert backlog["shares"] == [1.0]
    with pytest.raises(ValueError, match="work_times"):
        await drain(lab, queue, [], 10, prefetch=1)
