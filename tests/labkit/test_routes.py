"""Service ``routes``: per-path downstreams, over real sockets (the setting of the cascading-failure chapter)."""

import asyncio
import time

import pytest

from labkit.lifecycle import wait_until
from labkit.services import Service


async def test_routes_pick_the_downstreams_of_each_path(http_lab):
    catalog = await http_lab.service("inventory", service_time=0.0)
    order = await http_lab.service("payment", service_time=0.0)
    shop = await http_lab.service(
        "order", service_time=0.0, downstream=[order, catalog], routes={"/browse": ["inventory"], "/about": []}
    )
    browse = await http_lab.call(shop, "browse")
    about = await http_lab.call(shop, "about")
    other = await http_lab.call(shop, "checkout")
    assert [c["name"] for c in browse["downstream"]] == ["inventory"]
    assert about["downstream"] == []
    assert [c["name"] for c in other["downstream"]] == ["payment", "inventory"]  # unlisted: every downstream
    assert (len(order.records), len(catalog.records)) == (1, 2)
    assert [r.info["path"] for r in shop.records] == ["/browse", "/about", "/checkout"]  # records keep the path


async def test_paths_sharing_workers_wait_for_each_other(http_lab):
    """A worker held by a request waiting on a slow downstream makes a request that never calls it wait:
    the mechanism of a cascading failure."""
    slow = await http_lab.service("email", service_time=0.4)
    fast = await http_lab.service("inventory", service_time=0.0)
    shared = await http_lab.service(
        "order",
        service_time=0.0,
        downstream=[slow, fast],
        capacity=1,
        routes={"/slow": ["email"], "/fast": ["inventory"]},
    )
    started = time.monotonic()
    await http_lab.call(shared, "fast")
    fast_alone = time.monotonic() - started
    held = asyncio.ensure_future(http_lab.call(shared, "slow"))
    await wait_until(lambda: slow.in_flight == 1, timeout=10, what="the slow call holding the only worker")
    started = time.monotonic()
    await http_lab.call(shared, "fast")
    fast_behind = time.monotonic() - started
    await held
    assert fast_behind >= 0.2 and fast_behind > 5 * fast_alone, (fast_alone, fast_behind)


@pytest.mark.parametrize(
    "routes",
    [
        ["/browse"],
        {"browse": ["inventory"]},
        {"/browse": "inventory"},
        {"/browse": ["payment"]},
        {1: []},
    ],
)
def test_bad_routes_name_the_argument(routes):
    with pytest.raises(ValueError, match="routes must be"):
        Service("order", downstream=["http://127.0.0.1:9/"], routes=routes)
