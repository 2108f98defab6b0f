"""labkit.services: real aiohttp services on 127.0.0.1 with service time, capacity, failures, downstream."""

import asyncio
import random
import statistics
import time

import aiohttp
import pytest

from labkit.lab import HTTPStatusError
from labkit.lifecycle import wait_until
from labkit.services import STORY, CircuitBreaker, Service, sampler, target_url


async def _status(lab, svc, **kw):
    try:
        await lab.call(svc, **kw)
        return 200
    except HTTPStatusError as exc:
        return exc.status


async def test_chain_propagates_correlation_id_and_builds_a_span_tree(http_lab):
    c = await http_lab.service("inventory", service_time=0.0)
    b = await http_lab.service("payment", service_time=0.0, downstream=[c])
    a = await http_lab.service("order", service_time=0.0, downstream=[b])
    answer = await http_lab.call(a, correlation_id="cid-chain")
    assert answer["ok"] and answer["correlation_id"] == "cid-chain"
    assert answer["downstream"][0]["name"] == "payment"
    spans = http_lab.tracer.trace("cid-chain")
    servers = [s.name for s in spans if s.kind == "server"]
    assert servers == ["order", "payment", "inventory"]
    by_id = {s.span_id: s for s in spans}
    for span in spans[1:]:
        assert span.parent_id in by_id, f"{span.name} is not linked to its caller"
        parent = by_id[span.parent_id]
        assert parent.start <= span.start and span.end <= parent.end
    for svc in (a, b, c):
        assert len(svc.records) == 1 and svc.records[0].info["correlation_id"] == "cid-chain"


async def test_service_time_is_the_floor_of_latency_and_chains_add_up(http_lab):
    slow = await http_lab.service("email", service_time=0.08)
    fast = await http_lab.service("order", service_time=0.0)
    chain = await http_lab.service("fulfillment", service_time=0.0, downstream=[slow, slow])
    for svc in (slow, fast, chain):
        for _ in range(3):
            await http_lab.call(svc)
    lat = {s.name: min(r.latency for r in s.records) for s in (slow, fast, chain)}
    assert lat["email"] >= 0.08
    assert lat["order"] < lat["email"] / 2
    assert lat["fulfillment"] >= 2 * 0.08  # sequential downstream calls: the caller waits for both


async def test_parallel_downstream_waits_for_the_slowest_not_the_sum(http_lab):
    slow = [await http_lab.service(n, service_time=0.15) for n in ("fraud", "inventory", "payment")]
    par = await http_lab.service("order", service_time=0.0, downstream=slow, parallel=True)
    seq = await http_lab.service("checkout", service_time=0.0, downstream=slow)
    await http_lab.call(par)
    await http_lab.call(seq)
    assert par.records[0].latency < seq.records[0].latency * 0.7


async def test_capacity_with_no_waiting_line_sheds_excess_with_503(http_lab):
    svc = await http_lab.service("payment", service_time=0.5, capacity=1, queue_limit=0)
    statuses = await asyncio.gather(*(_status(http_lab, svc) for _ in range(5)))
    assert sorted(statuses) == [200, 503, 503, 503, 503]
    rejected = [r for r in svc.records if not r.ok]
    assert all(r.error.startswith("overloaded") for r in rejected)
    assert max(r.latency for r in rejected) < min(r.latency for r in svc.records if r.ok)


async def test_capacity_with_unbounded_line_queues_requests(http_lab):
    svc = await http_lab.service("payment", service_time=0.1, capacity=2)
    statuses = await asyncio.gather(*(_status(http_lab, svc) for _ in range(6)))
    assert statuses == [200] * 6
    assert svc.max_in_flight == 6 and svc.in_flight == 0
    waited = sorted(r.start - r.scheduled for r in svc.records)
    latencies = sorted(r.latency for r in svc.records)
    assert waited[-1] >= 0.15  # the last pair waited for two earlier rounds
    assert latencies[-1] >= 2 * latencies[0]
    times, counts = svc.in_flight_timeline()
    assert max(counts) == 6 and counts[-1] == 0 and times == sorted(times) and times[0] == 0
    on_lab_clock, _ = svc.in_flight_timeline(http_lab.clock)
    assert on_lab_clock[0] > 0 and on_lab_clock[-1] - on_lab_clock[0] == pytest.approx(times[-1])


async def test_configure_live_resizes_capacity_and_failure_rate(http_lab):
    svc = await http_lab.service("payment", service_time=0.3, capacity=1)
    calls = [asyncio.ensure_future(_status(http_lab, svc)) for _ in range(4)]
    await wait_until(lambda: svc.waiting >= 3, timeout=10, what="three requests waiting")
    svc.configure(capacity=4)  # the three waiting requests start at once
    assert svc.waiting == 0
    assert await asyncio.gather(*calls) == [200] * 4
    svc.configure(failure_rate=1.0, service_time=0.0)
    assert await _status(http_lab, svc) == 500
    assert svc.capacity == 4, "configure must keep settings it was not given"


async def test_failures_are_seeded_and_near_the_rate(http_lab):
    patterns = []
    for name in ("fraud", "fraud", "analytics"):
        svc = await http_lab.service(name, service_time=0.0, failure_rate=0.3)
        patterns.append([await _status(http_lab, svc) for _ in range(120)])
    assert patterns[0] == patterns[1], "same seed and name must give the same failures"
    assert patterns[0] != patterns[2], "different services must get independent failures"
    share = patterns[0].count(500) / 120
    assert 0.15 < share < 0.45


async def test_downstream_failure_and_timeout_propagate_as_502_and_504(http_lab):
    broken = await http_lab.service("payment", service_time=0.0, failure_rate=1.0)
    stuck = await http_lab.service("email", service_time=2.0)
    a = await http_lab.service("order", downstream=[broken])
    b = await http_lab.service("checkout", downstream=[stuck], timeout=0.1)
    with pytest.raises(HTTPStatusError) as err_a:
        await http_lab.call(a)
    with pytest.raises(HTTPStatusError) as err_b:
        await http_lab.call(b)
    assert err_a.value.status == 502 and "payment" in err_a.value.body["error"]
    assert err_b.value.status == 504 and "timeout" in err_b.value.body["error"]


async def test_sequential_chain_stops_at_first_failure(http_lab):
    broken = await http_lab.service("payment", service_time=0.0, failure_rate=1.0)
    after = await http_lab.service("email", service_time=0.0)
    order = await http_lab.service("order", downstream=[broken, after])
    assert await _status(http_lab, order) == 502
    assert len(after.records) == 0


async def test_connector_limit_caps_concurrent_downstream_calls(http_lab):
    down = await http_lab.service("payment", service_time=0.1)
    up = await http_lab.service("order", service_time=0.0, downstream=[down], connector_limit=1)
    assert await asyncio.gather(*(_status(http_lab, up) for _ in range(4))) == [200] * 4
    assert down.max_in_flight == 1  # the pool, not the downstream, was the bottleneck
    assert up.max_in_flight == 4


async def test_handler_adds_fields_and_its_exception_fails_the_request(http_lab):
    seen = []

    async def handler(body):
        seen.append(body)
        if body == b"bad":
            raise RuntimeError("no stock")
        return {"reserved": True}

    svc = await http_lab.service("inventory", service_time=0.0, handler=handler)
    assert (await http_lab.call(svc, body=b"sku-1"))["reserved"] is True
    with pytest.raises(HTTPStatusError) as err:
        await http_lab.call(svc, body=b"bad")
    assert err.value.status == 500 and "no stock" in err.value.body["error"]
    assert seen == [b"sku-1", b"bad"]


async def test_story_services_get_their_default_service_time(http_lab):
    svc = await http_lab.service("email")
    assert svc.service_time == STORY["email"]
    assert "email" in repr(svc)


async def test_stop_closes_the_port_and_reset_clears_records(http_lab):
    svc = Service("order", service_time=0.0)
    await svc.start()
    url = svc.url
    await http_lab.call(url)
    assert len(svc.records) == 1
    svc.reset_records()
    assert len(svc.records) == 0 and svc.in_flight_timeline() == ([], [])
    await svc.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = svc.url
    with pytest.raises(aiohttp.ClientError):
        await http_lab.call(url)


def test_exponential_sampler_has_the_mean_and_spread():
    draw = sampler(0.05, "exponential", random.Random(1))
    values = [draw() for _ in range(5000)]
    assert 0.045 < statistics.mean(values) < 0.055
    assert statistics.pstdev(values) > 0.04  # exponential: sd == mean
    fixed = sampler(0.05, "fixed", random.Random(1))
    assert {fixed() for _ in range(10)} == {0.05}


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"service_time": -1}, "service_time"),
        ({"distribution": "normal"}, "distribution"),
        ({"capacity": 0}, "capacity"),
        ({"queue_limit": -1, "capacity": 1}, "queue_limit"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"connector_limit": 0}, "connector_limit"),
        ({"timeout": 0}, "timeout"),
        ({"port": 70000}, "port"),
        ({"downstream": ["ftp://example.org/"]}, "downstream"),
        ({"downstream": [object()]}, "downstream"),
        ({"seed": -1}, "seed"),
        ({"retries": -1}, "retries"),
        ({"backoff": "linear"}, "backoff"),
        ({"backoff_base": 0}, "backoff_base"),
        ({"backoff_cap": -1}, "backoff_cap"),
        ({"breaker": 5}, "breaker"),
        ({"breaker": {"threshold": 3}}, "breaker"),
        ({"handler": "reserve stock"}, "handler"),
        ({"downstream": ["http://127.0.0.1:9/"], "breaker": {"failure_threshold": 0}}, "failure_threshold"),
        ({"downstream": ["http://127.0.0.1:9/"], "breaker": {"reset_timeout": 0}}, "reset_timeout"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        Service("order", **kwargs)


def test_invalid_name_and_target():
    with pytest.raises(ValueError, match="name"):
        Service("")
    with pytest.raises(ValueError, match="downstream"):
        target_url(12)


async def test_a_rejected_configure_changes_nothing(http_lab):
    svc = await http_lab.service("payment", service_time=0.02, capacity=2)
    with pytest.raises(ValueError, match="capacity"):
        svc.configure(service_time=0.5, failure_rate=0.5, capacity=0)
    assert (svc.service_time, svc.failure_rate, svc.capacity) == (0.02, 0.0, 2)


async def test_retries_hide_flaky_failures_but_multiply_downstream_load(http_lab):
    flaky = await http_lab.service("payment", service_time=0.0, failure_rate=0.5)
    plain = await http_lab.service("order", service_time=0.0, downstream=[flaky])
    retrying = await http_lab.service("checkout", service_time=0.0, downstream=[flaky], retries=3, backoff_base=0.001)
    plain_ok = [await _status(http_lab, plain) for _ in range(40)].count(200)
    before = len(flaky.records)
    retry_ok = [await _status(http_lab, retrying) for _ in range(40)].count(200)
    assert retry_ok >= 32 and retry_ok > plain_ok
    assert len(flaky.records) - before > 40 * 1.4  # the retry storm the downstream sees


async def test_circuit_breaker_fails_fast_then_probes_and_closes(http_lab):
    down = await http_lab.service("payment", service_time=0.0, failure_rate=1.0)
    up = await http_lab.service(
        "order", service_time=0.0, downstream=[down], breaker={"failure_threshold": 3, "reset_timeout": 0.2}
    )
    statuses = [await _status(http_lab, up) for _ in range(8)]
    assert statuses == [502] * 8 and len(down.records) == 3  # after 3 failures it stopped calling
    assert "circuit open" in up.records[-1].error
    await asyncio.sleep(0.25)
    assert await _status(http_lab, up) == 502 and len(down.records) == 4  # one trial, failed: open again
    down.configure(failure_rate=0.0)
    await asyncio.sleep(0.25)
    assert await _status(http_lab, up) == 200 and await _status(http_lab, up) == 200
    breaker = up.breakers["payment"]
    assert [s for _, s in breaker.transitions] == ["open", "half_open", "open", "half_open", "closed"]
    bands = breaker.open_bands(t0=breaker.transitions[0][0])
    assert len(bands) == 1 and bands[0][0] == 0 and bands[0][1] >= 0.4


def test_circuit_breaker_allows_one_trial_at_a_time():
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.01)
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state == "open" and not breaker.allow()
    time.sleep(0.02)
    assert breaker.allow() and not breaker.allow()  # half-open: the second caller must wait
    breaker.record(True)
    assert breaker.state == "closed" and breaker.allow()
    assert breaker.open_bands(t0=0.0)[0][1] is not None


async def test_a_service_can_answer_202_accepted_and_callers_count_it_as_success(http_lab):
    intake = await http_lab.service("order", service_time=0.0, success_status=202)
    front = await http_lab.service("checkout", service_time=0.0, downstream=[intake])
    assert (await http_lab.call(intake))["ok"] is True
    assert (await http_lab.call(front))["downstream"][0]["status"] == 202
    assert intake.records[0].ok and intake.records[0].info["status"] == 202
    with pytest.raises(ValueError, match="success_status"):
        Service("order", success_status=302)


def test_breaker_states_follow_the_transition_table_and_ignore_late_results_while_open():
    from labkit.resilience import BREAKER_TRANSITIONS, BreakerState

    assert BREAKER_TRANSITIONS[BreakerState.OPEN] == {BreakerState.HALF_OPEN}
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=60)
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    breaker.record(True)  # a call that went out before it opened: no news about the downstream now
    assert breaker.state == "open" and not breaker.allow()
    with pytest.raises(RuntimeError, match="cannot go from open to closed"):
        breaker._to(BreakerState.CLOSED)
