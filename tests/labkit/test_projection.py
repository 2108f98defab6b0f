"""labkit.projection: write model + event + projection + read model, on real sockets and the lab's broker."""

import asyncio
import math
import random

import aiohttp
import aiormq
import pytest

from labkit import theory
from labkit.projection import PREFER_ASYNC, Shop


async def _post(lab, shop, customer, headers=None):
    async with lab.http.post(shop.orders_url, json={"customer": customer}, headers=headers) as r:
        return r.status, dict(r.headers), await r.json()


async def _get(lab, url, **params):
    async with lab.http.get(url, params=params) as r:
        return r.status, await r.json()


async def test_write_is_visible_on_the_write_side_at_once_and_in_the_read_model_eventually(lab):
    shop = await lab.start(Shop(work_time=0.2, distribution="fixed"))
    status, _, order = await _post(lab, shop, "alice")
    assert status == 201 and order["version"] == 1 and order["customer"] == "alice"
    _, mine = await _get(lab, shop.history_url("alice", side="write"))
    _, read = await _get(lab, shop.history_url("alice"))
    assert mine["orders"] == [order["id"]]
    assert read["orders"] == [] and read["position"] == 0  # 200 ms of projection work still to go
    assert await shop.caught_up(timeout=10)
    _, read = await _get(lab, shop.history_url("alice"))
    assert read["orders"] == [order["id"]] and read["position"] == 1
    staleness = shop.staleness()
    assert len(staleness) == 1 and staleness.success_rate() == 1.0
    assert staleness.records[0].latency >= 0.2  # at least the projection's work
    assert shop.projection.service_rate() <= 1 / 0.2


async def test_202_points_to_a_status_resource_that_turns_done(lab):
    shop = await lab.start(Shop(work_time=0.1, distribution="fixed"))
    status, headers, order = await _post(lab, shop, "bob", PREFER_ASYNC)
    assert status == 202 and headers["Location"] == order["status"]
    assert order["status"].startswith(shop.read_url)
    _, first = await _get(lab, order["status"])
    assert first["state"] == "pending"
    assert await shop.caught_up(timeout=10)
    _, last = await _get(lab, order["status"])
    assert last["state"] == "done"


async def test_version_token_read_waits_for_the_projection(lab):
    shop = await lab.start(Shop(work_time=0.15, distribution="fixed"))
    orders = [(await _post(lab, shop, "carol"))[2] for _ in range(3)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, read = await _get(lab, shop.history_url("carol"), min_version=orders[-1]["version"])
    waited = loop.time() - started
    assert status == 200 and read["orders"] == [o["id"] for o in orders] and read["position"] >= 3
    assert waited >= 0.15  # it had to wait for at least the last event's work
    status, read = await _get(lab, shop.history_url("carol"), min_version=0)  # already satisfied
    assert status == 200


async def test_version_token_read_times_out_with_504_while_paused(lab):
    shop = await lab.start(Shop(work_time=0.0, wait_timeout=0.2))
    shop.projection.pause()
    _, _, order = await _post(lab, shop, "dave")
    status, body = await _get(lab, shop.history_url("dave"), min_version=order["version"])
    assert status == 504 and body["position"] == 0
    shop.projection.resume()
    assert await shop.caught_up(timeout=10)
    assert shop.projection.bands(shop.projection.pauses[0][0])[0]["start"] == 0


async def test_pause_holds_events_in_the_broker_and_resume_catches_up(lab):
    shop = await lab.start(Shop(work_time=0.0, prefetch=1))
    shop.projection.pause()
    for _ in range(6):
        await _post(lab, shop, "erin")
    await asyncio.sleep(0.2)
    assert shop.read_model.position == 0
    assert await shop.backlog() >= 4  # the projection holds at most its prefetch; the rest waits in the broker
    t, n = shop.backlog_timeline()
    assert n[-1] == 6 and max(n) == 6
    shop.projection.resume()
    assert await shop.caught_up(timeout=10)
    t, n = shop.backlog_timeline()
    assert n[-1] == 0 and t == sorted(t)
    assert not math.isnan(shop.projection.service_rate())


async def test_watermark_waits_for_gaps_and_ignores_redeliveries():
    from labkit.projection import ReadModel

    model = ReadModel(wait_timeout=1.0)
    waiter = asyncio.ensure_future(model.wait_for(2))
    assert model.apply({"id": "b", "customer": "x", "version": 2})
    await asyncio.sleep(0)
    assert model.position == 0 and not waiter.done()  # version 1 is still missing
    assert model.apply({"id": "a", "customer": "x", "version": 1})
    assert await waiter and model.position == 2
    assert not model.apply({"id": "a", "customer": "x", "version": 1})  # a redelivery changes nothing
    assert model.history("x")["orders"] == ["b", "a"]
    assert await model.wait_for(5, timeout=0.05) is False


async def test_bad_requests_are_rejected_with_400(lab):
    shop = await lab.start(Shop())
    async with lab.http.post(shop.orders_url, json={"item": "no customer"}) as r:
        assert r.status == 400 and "customer" in (await r.json())["error"]
    async with lab.http.post(shop.orders_url, json={"customer": "x", "amount": -1}) as r:
        assert r.status == 400 and "amount must be >= 0" in (await r.json())["error"]
    status, body = await _get(lab, shop.history_url("x"), min_version="soon")
    assert status == 400 and "min_version" in body["error"]


async def test_staleness_follows_mm1_roughly(lab):
    """One in-order projection under Poisson writes is an M/M/1 queue: the mean staleness window of a
    few hundred writes lands within a wide band of 1/(μ − λ) computed from the measured rates."""
    shop = await lab.start(Shop(work_time=0.01))
    rng = random.Random(3)
    loop = asyncio.get_running_loop()
    tasks, start = [], loop.time()
    t = start
    for i in range(120):
        t += rng.expovariate(40)
        await asyncio.sleep(max(0.0, t - loop.time()))
        tasks.append(asyncio.ensure_future(_post(lab, shop, f"c{i % 7}")))
    await asyncio.gather(*tasks)
    assert await shop.caught_up(timeout=20)
    lam = len(tasks) / (t - start)
    mu = shop.projection.service_rate()
    if lam >= 0.9 * mu:
        pytest.skip(f"machine too loaded for the comparison: λ={lam:.0f}/s, μ={mu:.0f}/s")
    predicted = theory.mm1_response(lam, mu)
    measured = shop.staleness().mean()
    assert 0.4 * predicted <= measured <= 2.5 * predicted, (measured, predicted, lam, mu)


async def test_stop_releases_the_queue_and_sockets(lab):
    shop = await lab.start(Shop())
    queue, port = shop.queue, shop.read_model.port
    await lab.remove(shop)
    channel = await lab.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):  # the queue is gone: 404
        await channel.queue_declare(queue, passive=True)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await shop.stop()  # stopping twice is fine


async def test_the_lab_stops_what_it_owns(lab):
    shop = await lab.start(Shop())
    url = shop.history_url("x", side="write")
    with pytest.raises(ValueError, match="part must have async start"):
        await lab.start(object())
    await lab.stop()
    assert not shop.running
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url)


def test_invalid_arguments_name_the_argument():
    with pytest.raises(ValueError, match="amqp_url must start with amqp://"):
        Shop("http://nope")
    with pytest.raises(ValueError, match="work_time must be >= 0"):
        Shop("amqp://guest:guest@127.0.0.1:1/", work_time=-1)
    with pytest.raises(ValueError, match="wait_timeout must be > 0"):
        Shop("amqp://guest:guest@127.0.0.1:1/", wait_timeout=0)
    with pytest.raises(ValueError, match="side must be one of"):
        Shop("amqp://guest:guest@127.0.0.1:1/").history_url("x", side="both")


async def test_a_client_places_orders_and_reads_both_sides(lab):
    shop = await lab.start(Shop(work_time=0.0))
    order = await shop.place("bob")
    assert order["version"] == 1 and await shop.orders_of("bob", side="write") == [order["id"]]
    assert await shop.orders_of("bob", min_version=order["version"]) == [order["id"]]
    accepted = await shop.place("bob", headers=PREFER_ASYNC)
    assert (await shop.get_json(accepted["status"]))["id"] == accepted["id"]
    with pytest.raises(RuntimeError, match="HTTP 400"):
        await shop.place("")
    await lab.remove(shop)
    with pytest.raises(RuntimeError, match="not running"):
        await shop.place("bob")
