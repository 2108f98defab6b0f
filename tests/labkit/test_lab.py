"""labkit.lab: one lab per kernel, owning (and releasing) everything it starts."""

import asyncio
import gc

import aiohttp
import aiormq
import psutil
import pytest

from labkit import Lab
from labkit.lab import HTTPStatusError
from labkit.lifecycle import wait_until
from labkit.queues import declare_run_queue


@pytest.fixture
def frozen_heap():
    """Leave the objects that existed before the test out of its garbage collections (``gc.freeze``).

    ``_resources`` runs a full collection so that a dropped cycle holding a socket or task is not counted
    as a leak; scanning the whole pytest process's heap (~200k objects) each time cost ~0.3 s, most of these
    tests' time. Frozen objects are not scanned; everything the test creates still is. No collection before
    freezing (it would cost that full scan once more): older garbage stays frozen, and counts the same in
    every sample, until ``gc.unfreeze()`` hands it back to the collector."""
    gc.freeze()
    yield
    gc.unfreeze()


def _resources():
    """What a leak would grow: our fds and sockets, asyncio tasks, child processes."""
    me = psutil.Process()
    gc.collect()
    return {
        "fds": me.num_fds(),
        "sockets": len(me.net_connections(kind="all")),
        "tasks": len(asyncio.all_tasks()),
        "children": len(me.children(recursive=True)),
    }


async def _exercise(lab, queue):
    """Start one of everything a chapter uses and push a request and a message through it."""
    payment = await lab.service("payment", service_time=0.0)
    order = await lab.service("order", service_time=0.0, downstream=[payment])
    await lab.call(order)
    worker = await lab.consumer(queue, work_time=0.0, prefetch=2)
    await lab.publish(queue, b"x")
    sampler = await lab.sample_queue(queue, interval=0.01)
    lab.spawn(asyncio.sleep(3600), name="forgotten background task")
    await worker.wait_processed(1)
    return sampler


async def test_restarting_twenty_times_leaks_nothing(shared_broker_url, unique, frozen_heap):
    # The session's broker for all twenty labs keeps this test fast; the next test covers the broker process.
    queue = unique("leak")
    counts = []
    for _ in range(20):
        lab = await Lab.start(seed=0, amqp_url=shared_broker_url)  # a re-run "start the lab" cell
        await _exercise(lab, queue)
        counts.append(_resources())
    await lab.stop()
    after = _resources()
    # iteration 1 warms up pools and executors; from then on every iteration must cost the same
    for key in ("tasks", "children"):
        assert counts[-1][key] == counts[1][key], (key, counts)
    for key in ("fds", "sockets"):
        assert counts[-1][key] <= counts[1][key] + 3, (key, [c[key] for c in counts])
    assert after["tasks"] == 1, asyncio.all_tasks()  # only this test's own task remains
    assert after["sockets"] < counts[0]["sockets"]


async def test_restarting_with_the_embedded_broker_reaps_its_process(monkeypatch, unique, frozen_heap):
    monkeypatch.delenv("AMQP_URL", raising=False)
    before = _resources()
    for _ in range(3):
        lab = await Lab.start(seed=0)
        assert lab.broker_kind == "embedded"
        await _exercise(lab, unique("reap"))
        assert _resources()["children"] == before["children"] + 1
    await lab.stop()
    after = _resources()
    assert (after["children"], after["tasks"]) == (before["children"], before["tasks"])
    assert after["fds"] <= before["fds"] + 3


async def test_everything_listens_on_loopback_only(unique):
    async with Lab(seed=0) as lab:
        sampler = await _exercise(lab, unique("listen"))
        await lab.proxy(lab.services["payment"])
        procs = [psutil.Process()] + psutil.Process().children(recursive=True)
        listening = [c for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert len(listening) >= 3  # two services and a proxy (plus the embedded broker, if any)
        assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
        await lab.remove(sampler)
        await lab.delete_queue(sampler.queue)


async def test_starting_a_lab_stops_the_previous_one():
    first = await Lab.start(seed=0, amqp=False)
    svc = await first.service("order", service_time=0.0)
    url = svc.url
    second = await Lab.start(seed=1, amqp=False)
    try:
        assert not first.running and second.running and Lab._current is second
        with pytest.raises(aiohttp.ClientConnectionError):
            await second.call(url)
        with pytest.raises(RuntimeError, match="not running"):
            await first.service("order")
    finally:
        await second.stop()
    assert Lab._current is None


async def test_async_with_stops_on_exit_and_stop_is_idempotent():
    async with Lab(amqp=False) as lab:
        assert lab.running and lab.broker_kind is None and lab.amqp_url is None
        with pytest.raises(RuntimeError, match="no broker"):
            await lab.consumer("q")
    assert not lab.running
    await lab.stop()
    with pytest.raises(RuntimeError, match=r"already running|not running"):
        await lab.call("http://127.0.0.1:1/")


async def test_amqp_url_selects_an_external_broker(monkeypatch):
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")  # nothing connects until used
    async with Lab() as lab:
        assert (lab.broker_kind, lab.amqp_url) == ("rabbitmq", "amqp://guest:guest@127.0.0.1:1/")


async def test_call_raises_on_failure_and_mark_restarts_the_timeline(http_lab):
    svc = await http_lab.service("payment", service_time=0.0, failure_rate=1.0)
    with pytest.raises(HTTPStatusError) as err:
        await http_lab.call(svc)
    assert err.value.status == 500 and "injected failure" in str(err.value)
    before = http_lab.t0
    await asyncio.sleep(0.01)
    clock = http_lab.mark()
    assert clock.t0 > before and 0 <= http_lab.now() < 1


async def test_replacing_and_removing_parts(http_lab):
    old = await http_lab.service("order", service_time=0.0)
    new = await http_lab.service("order", service_time=0.0)
    assert http_lab.services == {"order": new} and old._runner is None
    await http_lab.remove(new)
    assert http_lab.services == {}
    with pytest.raises(ValueError, match="thing"):
        await http_lab.remove(new)


async def test_stop_cancels_background_tasks():
    lab = await Lab.start(amqp=False)
    task = lab.spawn(asyncio.sleep(3600))
    await lab.stop()
    assert task.cancelled()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"amqp_url": "http://x"}, "amqp_url"),
        ({"http_timeout": 0}, "http_timeout"),
        ({"broker_options": "fast"}, "broker_options"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        Lab(**kwargs)


async def test_proxy_target_is_validated(http_lab):
    with pytest.raises(ValueError, match="target"):
        await http_lab.proxy(70000)
    with pytest.raises(ValueError, match="target"):
        await http_lab.proxy(object())


async def test_stop_warns_about_a_failed_part_but_still_releases_the_rest(unique):
    lab = await Lab.start(seed=0)
    queue = unique("gone")
    await lab.declare_queue(queue)
    sampler = await lab.sample_queue(queue, interval=0.01)
    svc = await lab.service("order", service_time=0.0)
    await lab.delete_queue(queue)  # the sampler's next passive declare fails with 404
    await wait_until(lambda: sampler.error is not None, timeout=10, what="the sampler's 404")
    with pytest.warns(RuntimeWarning, match="NOT_FOUND|no queue"):
        await lab.stop()
    assert svc._runner is None and not lab.running


async def test_a_proxy_in_front_of_a_service_injects_faults_and_is_owned(http_lab):
    from labkit.faults import Latency

    payment = await http_lab.service("payment", service_time=0.0)
    proxy = await http_lab.proxy(payment)
    order = await http_lab.service("order", service_time=0.0, downstream=[proxy], timeout=2.0)
    assert (await http_lab.call(order))["downstream"][0]["name"] == "payment"
    proxy.down()
    with pytest.raises(HTTPStatusError) as err:
        await http_lab.call(order)
    assert err.value.status == 502
    proxy.up()
    proxy.set(Latency(150))
    await http_lab.call(order)
    assert order.records[-1].latency > 0.15 > payment.records[-1].latency
    assert http_lab.proxies == [proxy]
    await http_lab.remove(proxy)
    assert http_lab.proxies == []


async def test_a_proxy_can_front_the_broker(lab):
    proxy = await lab.proxy("amqp")
    assert proxy.upstream_port == int(lab.amqp_url.rsplit(":", 1)[1].strip("/"))


async def test_reset_records_starts_a_fresh_experiment(lab, unique):
    svc = await lab.service("order", service_time=0.0)
    queue = unique("reset")
    worker = await lab.consumer(queue, work_time=0.0)
    await lab.call(svc)
    await lab.publish(queue)
    await worker.wait_processed(1)
    old_t0 = lab.t0
    clock = lab.reset_records()
    assert clock is lab.clock and lab.t0 > old_t0
    assert (len(svc.records), len(worker.records), worker.processed, lab.tracer.spans) == (0, 0, 0, [])
    await lab.delete_queue(queue)


async def test_the_lab_shows_its_parts_and_hides_passwords(http_lab):
    svc = await http_lab.service("payment", service_time=0.05, capacity=3)
    await http_lab.proxy(svc)
    await http_lab.call(svc)
    page = http_lab._repr_html_()
    assert "payment" in page and "50 ms fixed" in page and "proxy :" in page and "<td>1</td>" in page
    http_lab.amqp_url = "amqp://app:s3cret@127.0.0.1:5672/"
    assert "s3cret" not in http_lab._repr_html_() and "s3cret" not in repr(http_lab)


async def test_messaging_and_call_arguments_are_validated(lab):
    with pytest.raises(ValueError, match="queue"):
        await lab.queue_depth("")
    with pytest.raises(ValueError, match="queue"):
        await lab.delete_queue(None)
    with pytest.raises(ValueError, match="body"):
        await lab.publish("q", "text, not bytes")
    with pytest.raises(ValueError, match="routing_key"):
        await lab.publish(7, b"")
    with pytest.raises(ValueError, match="body"):
        await lab.call("http://127.0.0.1:9/", body={"json": 1})


async def test_own_hands_an_outside_component_to_the_lab():
    class Part:
        stopped = 0

        async def stop(self):
            Part.stopped += 1

    lab = await Lab.start(amqp=False)
    first, second = Part(), Part()
    assert lab.own(first) is first and lab.own(first) is first  # owning twice is harmless
    lab.own(second)
    await lab.remove(second)
    assert Part.stopped == 1
    with pytest.raises(ValueError, match="thing"):
        lab.own(object())
    await lab.stop()
    assert Part.stopped == 2


async def test_concurrent_first_publishes_share_one_connection_and_keep_their_order(lab, unique):
    queue = unique("order")
    reader = await aiormq.connect(lab.amqp_url)
    try:
        channel = await reader.channel()
        await declare_run_queue(channel, queue, expires_ms=30_000)
        assert lab._connection is None  # nothing opened yet: the publishes below race to open it
        await asyncio.gather(*(lab.publish(queue, str(i).encode()) for i in range(50)))
        assert lab._default_channel.connection is lab._connection
        bodies = [(await channel.basic_get(queue, no_ack=True)).body for _ in range(50)]
        assert bodies == [str(i).encode() for i in range(50)]
    finally:
        await reader.close()
