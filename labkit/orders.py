"""The shop's two HTTP sides: the write model (orders in SQLite, one event per order) and the read model
(histories built from the events, with version-token reads and a status resource).

See :mod:`labkit.projection` for the whole shop and why it is built this way.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import sqlite3
import time
import uuid
from typing import Any

import aiormq
from aiohttp import web

from labkit import tracing
from labkit._validate import integer, non_negative, positive
from labkit.consumers import publish
from labkit.lifecycle import HttpApp

__all__ = ["PREFER_ASYNC", "OrderService", "ReadModel"]

#: The request header (RFC 7240) with which a client asks for ``202 Accepted`` and a status resource.
PREFER_ASYNC = {"Prefer": "respond-async"}
_MAX_NAME = 100


def _customer(request: web.Request) -> str:
    customer = request.match_info["customer"]
    if not 0 < len(customer) <= _MAX_NAME:
        raise web.HTTPBadRequest(text=f"customer must be 1-{_MAX_NAME} characters, got {customer!r}")
    return customer


class OrderService(HttpApp):
    """The write model: orders in SQLite, one ``order-placed`` event per order, published before answering.

    ``status_base`` is the URL of the service holding the status resources (the read model's), used in the
    ``Location`` of a ``202 Accepted`` answer.
    """

    def __init__(
        self, channel: aiormq.abc.AbstractChannel, queue: str, status_base: str, tracer: tracing.Tracer | None = None
    ):
        super().__init__(name="order service")
        self.channel, self.queue, self.status_base, self.tracer = channel, queue, status_base, tracer
        self.db = sqlite3.connect(":memory:")
        self.db.execute(
            "CREATE TABLE orders (version INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
            " customer TEXT NOT NULL, item TEXT NOT NULL, amount REAL NOT NULL)"
        )
        self.db.execute("CREATE INDEX by_customer ON orders (customer)")
        #: order id -> monotonic time its row was committed (when the write "happened")
        self.committed_at: dict[str, float] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/orders", self._place)
        router.add_get("/customers/{customer}/orders", self._history)

    async def on_stop(self) -> None:
        self.db.close()

    def history(self, customer: str) -> dict[str, Any]:
        """The customer's order ids, oldest first, straight from the write store."""
        rows = self.db.execute("SELECT id FROM orders WHERE customer = ? ORDER BY version", (customer,)).fetchall()
        return {"customer": customer, "orders": [r[0] for r in rows], "source": "write model"}

    async def _place(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            customer, item, amount = body["customer"], str(body.get("item", "book")), float(body.get("amount", 10))
            if not isinstance(customer, str) or not 0 < len(customer) <= _MAX_NAME:
                raise ValueError(f"customer must be a string of 1-{_MAX_NAME} characters, got {customer!r}")
            non_negative("amount", amount)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad order: {exc}"}, status=400)
        order_id = uuid.uuid4().hex[:12]
        with self.db:  # one transaction: the order and its place in the write log
            version = self.db.execute(
                "INSERT INTO orders (id, customer, item, amount) VALUES (?, ?, ?, ?)",
                (order_id, customer, item, amount),
            ).lastrowid
        self.committed_at[order_id] = time.monotonic()
        event = {
            "type": "order-placed",
            "id": order_id,
            "customer": customer,
            "item": item,
            "amount": amount,
            "version": version,
        }
        correlation_id, _ = tracing.from_http(request.headers)
        await publish(
            self.channel,
            self.queue,
            json.dumps(event).encode(),
            message_id=order_id,
            correlation_id=correlation_id,
            tracer=self.tracer,
            content_type="application/json",
        )
        order = {"id": order_id, "customer": customer, "version": version}
        preferences = {p.split("=")[0].strip() for p in request.headers.get("Prefer", "").lower().split(",")}
        if "respond-async" in preferences:
            status = f"{self.status_base}orders/{order_id}/status"
            return web.json_response({**order, "status": status}, status=202, headers={"Location": status})
        return web.json_response(order, status=201)

    async def _history(self, request: web.Request) -> web.Response:
        return web.json_response(self.history(_customer(request)))


class ReadModel(HttpApp):
    """The read model: each customer's order history, as built by the projection from events.

    ``position`` is the version up to which *every* write has been applied (a watermark: events may be
    applied out of order by several workers, so a gap holds it back). ``wait_timeout`` bounds how long a
    version-token read waits for it.
    """

    def __init__(self, wait_timeout: float = 5.0):
        super().__init__(name="read model")
        self.wait_timeout = positive("wait_timeout", wait_timeout)
        self.histories: dict[str, list[str]] = {}
        #: order id -> monotonic time it became visible to readers
        self.visible_at: dict[str, float] = {}
        self.position = 0
        self._ahead: set[int] = set()  # applied versions beyond the watermark
        self._waiters: list[tuple[int, int, asyncio.Future]] = []  # heap of (version, tiebreak, future)
        self._tiebreak = itertools.count()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/customers/{customer}/orders", self._history)
        router.add_get("/orders/{order_id}/status", self._status)

    async def on_stop(self) -> None:
        for _, _, fut in self._waiters:
            fut.cancel()
        self._waiters.clear()

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one ``order-placed`` event; False if it was already applied (a redelivery)."""
        order_id, version = event["id"], integer("version", event["version"], 1)
        if order_id in self.visible_at:
            return False
        self.histories.setdefault(event["customer"], []).append(order_id)
        self.visible_at[order_id] = time.monotonic()
        self._ahead.add(version)
        while self.position + 1 in self._ahead:
            self.position += 1
            self._ahead.discard(self.position)
        while self._waiters and self._waiters[0][0] <= self.position:
            fut = heapq.heappop(self._waiters)[2]
            if not fut.done():
                fut.set_result(None)
        return True

    async def wait_for(self, version: int, timeout: float | None = None) -> bool:
        """Wait until every write up to ``version`` is applied; False if ``timeout`` (s) passed first."""
        integer("version", version, 0)
        if version <= self.position:
            return True
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (version, next(self._tiebreak), fut))
        try:
            await asyncio.wait_for(fut, self.wait_timeout if timeout is None else positive("timeout", timeout))
            return True
        except asyncio.TimeoutError:
            return False

    def history(self, customer: str) -> dict[str, Any]:
        return {
            "customer": customer,
            "orders": list(self.histories.get(customer, ())),
            "position": self.position,
            "source": "read model",
        }

    async def _history(self, request: web.Request) -> web.Response:
        customer = _customer(request)
        token = request.query.get("min_version")
        if token is not None:
            if not token.isdigit():
                return web.json_response({"error": f"min_version must be an integer >= 0, got {token!r}"}, status=400)
            if not await self.wait_for(int(token)):
                return web.json_response(
                    {
                        "error": f"projection did not reach version {token} in {self.wait_timeout} s",
                        "position": self.position,
                    },
                    status=504,
                )
        return web.json_response(self.history(customer))

    async def _status(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        done = order_id in self.visible_at
        return web.json_response({"id": order_id, "state": "done" if done else "pending", "position": self.position})
