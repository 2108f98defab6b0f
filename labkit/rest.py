"""REST's methods under a retry: a POST that times out and is sent again, against a PUT and an
``Idempotency-Key``.

Why: a client that gets no answer cannot tell "the request never arrived" from "it was done and the
answer was lost", so it retries. HTTP says which methods are safe to retry: ``PUT`` and ``DELETE`` are
*idempotent* (doing them twice leaves the same state as once) and ``POST`` is not {RFC 9110 §9.2.2}.
:class:`Orders` is a small resource server that shows it: ``POST /orders`` creates a new order each time
it is called, unless the request carries an ``Idempotency-Key`` it has seen (then it waits for the first
request with that key and answers with the order it created); ``PUT /orders/<id>`` creates or replaces the order the *client* named;
``GET /orders/<id>`` reads one (404 if there is none). Each write takes ``work_time`` seconds, so a client
with a shorter timeout gives up on a request the server then completes.

    orders = await lab.start(Orders(work_time=0.1))
    answers = await retrying("POST", orders.url + "orders", timeout=0.05, attempts=3)
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
from aiohttp import web

from labkit._validate import integer, non_negative, one_of, positive
from labkit.lifecycle import HttpApp

__all__ = ["Orders", "retrying"]


class Orders(HttpApp):
    """An ``/orders`` resource: POST creates (deduplicated by ``Idempotency-Key``), PUT creates or replaces
    at a client-chosen id, GET reads. ``orders`` maps id to the order's body; ``writes`` counts the writes
    the server completed (including those whose answer nobody waited for)."""

    def __init__(self, *, work_time: float = 0.0, name: str = "orders", port: int = 0):
        super().__init__(name=name, port=port)
        self.work_time = non_negative("work_time", work_time)
        self.orders: dict[str, dict] = {}
        self.writes = 0
        self._by_key: dict[str, asyncio.Future[str]] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/orders", self._post)
        router.add_put("/orders/{id}", self._put)
        router.add_get("/orders/{id}", self._get)

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers.get("Idempotency-Key")
        if key in self._by_key:  # a retry: wait for the first request with this key, answer as it did
            order = await asyncio.shield(self._by_key[key])
            return web.json_response({"id": order, **self.orders[order]}, status=200)
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if key:  # reserved before the work, so a retry that arrives while it runs does not start another
            self._by_key[key] = done
        order = uuid.uuid4().hex[:8]
        try:
            await asyncio.sleep(self.work_time)
            self.orders[order] = body
            self.writes += 1
            done.set_result(order)
        except BaseException:
            if key:
                self._by_key.pop(key, None)
            done.cancel()
            raise
        return web.json_response({"id": order, **body}, status=201, headers={"Location": f"/orders/{order}"})

    async def _put(self, request: web.Request) -> web.Response:
        order, body = request.match_info["id"], await request.json()
        await asyncio.sleep(self.work_time)
        existed = order in self.orders
        self.orders[order] = body
        self.writes += 1
        return web.json_response({"id": order, **body}, status=200 if existed else 201)

    async def _get(self, request: web.Request) -> web.Response:
        order = request.match_info["id"]
        if order not in self.orders:
            return web.json_response({"error": f"no order {order}"}, status=404)
        return web.json_response({"id": order, **self.orders[order]})


async def retrying(
    method: str, url: str, *, body: dict | None = None, headers: dict | None = None, timeout: float, attempts: int
) -> list[str]:
    """Send the same request until it gets an answer (at most ``attempts`` times), giving up on each
    after ``timeout`` seconds, as a client with a short timeout and a retry loop does. Returns what each
    attempt got: a status code, or ``"timeout"``."""
    one_of("method", method, ("POST", "PUT"))
    positive("timeout", timeout)
    integer("attempts", attempts, 1)
    outcomes: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for _ in range(attempts):
            try:
                async with session.request(method, url, json=body or {}, headers=headers or {}) as response:
                    await response.read()
                    outcomes.append(str(response.status))
                    return outcomes
            except asyncio.TimeoutError:
                outcomes.append("timeout")
    return outcomes
