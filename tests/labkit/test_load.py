"""Load generation: arrival processes, open loop without coordinated omission, bounds, closed loop."""

import asyncio
import statistics
import time

import aiohttp
import pytest
from aiohttp import web

from labkit.load import RateProfile, arrival_times, closed_loop, open_loop, spike
from labkit.metrics import Clock

# --- arrival processes ---------------------------------------------------------------------------------


def test_constant_arrivals_are_evenly_spaced():
    times = list(arrival_times(RateProfile(((0, 1, 100),), "constant")))
    assert len(times) == 100
    assert times[0] == 0
    assert all(b - a == pytest.approx(0.01) for a, b in zip(times, times[1:]))


def test_poisson_arrivals_have_exponential_gaps():
    times = list(arrival_times(RateProfile(((0, 100, 50),)), seed=3))
    assert len(times) == pytest.approx(5000, rel=0.05)  # sd ≈ 71
    gaps = [b - a for a, b in zip(times, times[1:])]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 50, rel=0.05)
    assert statistics.stdev(gaps) / mean == pytest.approx(1.0, abs=0.06)  # CV of an exponential is 1
    assert times == sorted(times) and 0 <= times[0] and times[-1] < 100


def test_poisson_arrivals_are_seeded():
    p = RateProfile(((0, 2, 100),))
    assert list(arrival_times(p, seed=1)) == list(arrival_times(p, seed=1))
    assert list(arrival_times(p, seed=1)) != list(arrival_times(p, seed=2))


def test_spike_profile_counts_follow_rates():
    p = spike(base=100, peak=400, start=10, length=10, duration=30)
    assert p.segments == ((0, 10, 100), (10, 20, 400), (20, 30, 100))
    assert p.expected_count() == 6000
    assert p.rate_at(15) == 400 and p.rate_at(31) == 0
    times = list(arrival_times(p, seed=0))
    before = sum(t < 10 for t in times)
    during = sum(10 <= t < 20 for t in times)
    assert during / before == pytest.approx(4, rel=0.12)
    assert len(times) == pytest.approx(6000, rel=0.05)


def test_zero_rate_segment_sends_nothing():
    p = RateProfile(((0, 1, 100), (1, 2, 0), (2, 3, 100)), "constant")
    times = list(arrival_times(p))
    assert len(times) == 200
    assert not [t for t in times if 1 <= t < 2]


def test_arrival_times_needs_a_profile():
    with pytest.raises(ValueError, match=r"profile must be a RateProfile"):
        next(arrival_times([(0, 1, 10)]))


def test_profile_until_cuts():
    p = spike(10, 20, 1, 1, 5).until(1.5)
    assert p.duration == 1.5 and p.segments[-1] == (1, 1.5, 20)


def test_profile_validation():
    with pytest.raises(ValueError, match=r"segments\[0\].rate must be >= 0, got -1"):
        RateProfile(((0, 1, -1),))
    with pytest.raises(ValueError, match=r"segments\[1\].t_start must equal"):
        RateProfile(((0, 1, 1), (2, 3, 1)))
    with pytest.raises(ValueError, match="process must be one of 'poisson', 'constant'"):
        RateProfile(((0, 1, 1),), "bursty")
    with pytest.raises(ValueError, match=r"duration - \(start \+ length\) must be > 0"):
        spike(10, 100, 5, 5, 9)
    with pytest.raises(ValueError, match="peak must be > 0"):
        spike(10, 0, 1, 1, 5)


# --- open loop -----------------------------------------------------------------------------------------------


async def test_open_loop_records_every_request_with_info():
    async def op(i):
        await asyncio.sleep(0.005)
        return {"i": i}

    rec = await open_loop(op, rate=200, duration=0.25, arrivals="constant", progress=False)
    assert len(rec) == 50
    assert rec.success_rate() == 1.0
    assert sorted(r.info["i"] for r in rec) == list(range(50))
    assert rec.duration == 0.25
    assert rec.throughput() == pytest.approx(200)


async def test_open_loop_launches_on_schedule_even_when_requests_are_slow():
    """No coordinated omission: 10 requests that each take 1 s all start within the 0.2 s schedule."""
    rec = await open_loop(lambda i: asyncio.sleep(1.0), rate=50, duration=0.2, arrivals="constant", progress=False)
    starts = [r.start for r in rec]
    assert len(rec) == 10
    assert max(starts) - min(starts) < 0.5  # a closed loop of 1 would have needed 9 s
    assert all(r.send_error >= 0 for r in rec)  # never sent early
    assert rec.send_error_percentile(50) < 0.5 * rec.percentile(50)


async def test_open_loop_send_times_follow_the_clock():
    clock = Clock()
    rec = await open_loop(
        lambda i: asyncio.sleep(0), rate=100, duration=0.1, arrivals="constant", progress=False, t0=clock
    )
    assert rec.t0 == clock.t0
    assert [r.scheduled - clock.t0 for r in rec] == pytest.approx([k / 100 for k in range(10)])


async def test_failures_are_recorded_not_raised():
    async def op(i):
        if i % 2:
            raise ValueError("boom")
        return None

    rec = await open_loop(op, rate=500, duration=0.1, arrivals="constant", progress=False)
    assert rec.success_rate() == 0.5
    assert rec.errors() == {"ValueError: boom": 25}


async def test_per_request_timeout():
    rec = await open_loop(
        lambda i: asyncio.sleep(5), rate=100, duration=0.05, arrivals="constant", timeout=0.05, progress=False
    )
    assert len(rec) == 5 and rec.errors() == {"timeout": 5}
    assert max(r.service_time for r in rec) < 2.5  # cut well before the 5 s sleep


async def test_stragglers_are_cancelled_as_timeouts_and_nothing_leaks():
    started = time.monotonic()
    rec = await open_loop(
        lambda i: asyncio.sleep(30), rate=100, duration=0.05, arrivals="constant", drain_timeout=0.1, progress=False
    )
    assert time.monotonic() - started < 10  # returned long before the 30 s operations would finish
    assert rec.errors() == {"timeout": 5}
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_max_requests_bounds_the_run():
    rec = await open_loop(lambda i: asyncio.sleep(0), rate=1000, max_requests=20, progress=False)
    assert len(rec) == 20


async def test_open_loop_with_spike_profile_and_progress_bar():
    p = spike(base=100, peak=400, start=0.1, length=0.1, duration=0.3, process="constant")
    rec = await open_loop(lambda i: asyncio.sleep(0), arrivals=p, progress=True)
    ts = rec.timeseries(0.1)
    assert ts["count"] == [10, 40, 10]


async def test_open_loop_validation():
    async def op(i):
        return None

    cases = [
        (dict(rate=-1, duration=1), "rate must be > 0, got -1"),
        (dict(rate=10, duration=0), "duration must be > 0, got 0"),
        (dict(rate=10), "duration must be > 0 .* unless max_requests"),
        (dict(rate=10, duration=1, arrivals="gamma"), "arrivals must be one of 'poisson', 'constant' or a RateProfile"),
        (dict(rate=10, duration=1, max_requests=0), r"max_requests must be an integer >= 1, got 0"),
        (dict(rate=10, arrivals=spike(1, 2, 1, 1, 3)), "rate must be None when arrivals is a RateProfile"),
        (dict(rate=10, duration=1, timeout=0), "timeout must be > 0"),
        (dict(rate=10, duration=1, drain_timeout=-1), "drain_timeout must be >= 0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            await open_loop(op, progress=False, **kwargs)
    with pytest.raises(ValueError, match="op must be an async function"):
        await open_loop("op", rate=1, duration=1, progress=False)


# --- open vs closed loop against a real aiohttp service --------------------------------------------------------


@pytest.fixture
async def one_at_a_time_service():
    """An aiohttp service that serves one request at a time, 20 ms each (capacity 50 req/s)."""
    lock = asyncio.Lock()

    async def handle(request):
        async with lock:
            await asyncio.sleep(0.02)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:

        async def op(i):
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                resp.raise_for_status()
                return {"status": resp.status}

        yield op
    await runner.cleanup()


async def test_open_loop_sees_queueing_that_closed_loop_hides(one_at_a_time_service):
    op = one_at_a_time_service
    closed = await closed_loop(op, concurrency=1, duration=0.5, progress=False)
    opened = await open_loop(op, rate=100, duration=0.5, arrivals="constant", progress=False)  # 2× capacity
    assert closed.success_rate() == opened.success_rate() == 1.0
    assert len(opened) == 50  # offered load does not back off
    assert len(closed) < 0.8 * len(opened)  # the closed loop slowed down to the service's pace
    assert opened.percentile(99) > 3 * closed.percentile(99)


async def test_closed_loop_concurrency_bounds_in_flight():
    in_flight = peak = 0

    async def op(i):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1

    rec = await closed_loop(op, concurrency=3, max_requests=30, progress=False)
    assert len(rec) == 30 and peak == 3


async def test_closed_loop_think_time_reduces_throughput():
    async def op(i):
        await asyncio.sleep(0.005)

    busy = await closed_loop(op, concurrency=2, duration=0.3, progress=False)
    thinking = await closed_loop(op, concurrency=2, duration=0.3, think_time=0.02, progress=False)
    assert thinking.throughput() < 0.75 * busy.throughput()


async def test_closed_loop_cancels_stragglers():
    rec = await closed_loop(
        lambda i: asyncio.sleep(30), concurrency=2, duration=0.05, drain_timeout=0.05, progress=False
    )
    assert rec.errors() == {"timeout": 2}
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_closed_loop_validation():
    async def op(i):
        return None

    with pytest.raises(ValueError, match=r"concurrency must be an integer >= 1, got 0"):
        await closed_loop(op, concurrency=0, duration=1)
    with pytest.raises(ValueError, match="duration or max_requests must be given"):
        await closed_loop(op, concurrency=1)
    with pytest.raises(ValueError, match="think_time must be >= 0"):
        await closed_loop(op, concurrency=1, duration=1, think_time=-1)


async def test_non_dict_results_are_kept_as_result():
    async def op(i):
        return i * 10

    rec = await open_loop(op, rate=100, max_requests=3, arrivals="constant", progress=False)
    assert sorted(r.info["result"] for r in rec) == [0, 10, 20]


def test_endless_profile_with_zero_rate_tail_ends():
    p = RateProfile(((0, 1, 10), (1, float("inf"), 0)), "constant")
    assert len(list(arrival_times(p))) == 10


async def test_stale_clock_warns():
    stale = Clock(time.monotonic() - 5)
    with pytest.warns(RuntimeWarning, match="t0 is 5.0 s behind the first arrival"):
        rec = await open_loop(
            lambda i: asyncio.sleep(0), rate=10, duration=0.3, arrivals="constant", t0=stale, progress=False
        )
    assert len(rec) == 3
