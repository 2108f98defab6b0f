"""A retried POST creates duplicates; a PUT or a POST with an Idempotency-Key does not (real sockets)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from labkit.rest import Orders, retrying


@pytest.fixture
async def orders():
    async with Orders(work_time=0.1) as o:
        yield o


async def settle(orders, writes):
    for _ in range(50):
        if orders.writes >= writes:
            return
        await asyncio.sleep(0.02)


async def test_a_retried_post_creates_an_order_per_attempt(orders):
    outcomes = await retrying("POST", orders.url + "orders", body={"item": "book"}, timeout=0.05, attempts=3)
    await settle(orders, 3)
    assert outcomes == ["timeout"] * 3 and len(orders.orders) == 3


async def test_a_retried_put_or_keyed_post_creates_one(orders):
    await retrying("PUT", orders.url + "orders/o-1", body={"item": "book"}, timeout=0.05, attempts=3)
    await retrying(
        "POST",
        orders.url + "orders",
        body={"item": "pen"},
        headers={"Idempotency-Key": "k-1"},
        timeout=0.05,
        attempts=3,
    )  # the retries arrive while the first is still being done
    await settle(orders, 4)
    again = await retrying(
        "POST", orders.url + "orders", body={"item": "pen"}, headers={"Idempotency-Key": "k-1"}, timeout=1.0, attempts=1
    )
    assert again == ["200"] and sorted(o["item"] for o in orders.orders.values()) == ["book", "pen"]


async def test_get_reads_and_misses_with_404(orders):
    async with aiohttp.ClientSession() as session:
        async with session.put(orders.url + "orders/o-2", json={"item": "cup"}) as r:
            assert r.status == 201
        async with session.get(orders.url + "orders/o-2") as r:
            assert (await r.json())["item"] == "cup"
        async with session.get(orders.url + "orders/none") as r:
            assert r.status == 404


async def test_bad_arguments_are_named(orders):
    with pytest.raises(ValueError, match="method must be"):
        await retrying("GET", orders.url, timeout=1, attempts=1)
    with pytest.raises(ValueError, match="attempts"):
        await retrying("PUT", orders.url, timeout=1, attempts=0)
