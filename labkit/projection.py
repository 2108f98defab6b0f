"""An eventually consistent shop: a write model, an event, a projection and a read model, all live.

Why: "eventually consistent" is only useful once you can say *how* eventually. This module builds the
smallest real system that has a staleness window, so chapter 05 can measure it:

- :class:`OrderService` -- the **write model**: an aiohttp service with its own SQLite store. ``POST
  /orders`` commits an order and publishes an ``order-placed`` event (with publisher confirms) before it
  answers, so every acknowledged write is in the broker. The order's ``version`` (its position in the
  store's write log) is the *version token* a client may keep. ``GET /customers/{c}/orders`` reads the
  write side itself (the read-your-writes fix).
- :class:`Projection` -- a consumer (:class:`labkit.consumers.Consumer`) that applies each event to the read
  model after ``work_time`` of indexing work, one event at a time by default (so the queue in front of it is
  an M/M/1 queue when writes are Poisson and the work exponential). It can be paused, as during a deploy.
- :class:`ReadModel` -- the **read model** (an order history per customer) behind its own aiohttp service.
  ``GET /customers/{c}/orders`` answers from whatever has been applied; with ``?min_version=N`` it first
  waits until every write up to version N is applied (version-token reads). ``GET /orders/{id}/status`` is
  the status resource a ``202 Accepted`` write points to.
- :class:`Shop` -- the three together on one queue, with the timings the chapter analyses: when each order
  was committed and when it became visible (:meth:`Shop.staleness`).

Everything listens on 127.0.0.1; ``await shop.stop()`` releases the servers, the connections and the queue.
``await lab.start(Shop(...))`` starts one owned by a :class:`labkit.lab.Lab`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import math
import sqlite3
import time
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
import aiormq
from aiohttp import web

from labkit import tracing
from labkit._validate import amqp_url as check_amqp_url
from labkit._validate import integer, non_negative, one_of, positive
from labkit.consumers import Consumer, publish
from labkit.lifecycle import CONNECTION_ERRORS, AmqpWorker, HttpApp, Part, unique, wait_until
from labkit.metrics import Clock, Record, Recording, as_t0
from labkit.queues import declare_run_queue
from labkit.services import DISTRIBUTIONS

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["PREFER_ASYNC", "OrderService", "Projection", "ReadModel", "Shop"]

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

    def __init__(self, channel: aiormq.abc.AbstractChannel, queue: str, status_base: str,
                 tracer: tracing.Tracer | None = None):
        super().__init__(name="order service")
        self.channel, self.queue, self.status_base, self.tracer = channel, queue, status_base, tracer
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE TABLE orders (version INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
                        " customer TEXT NOT NULL, item TEXT NOT NULL, amount REAL NOT NULL)")
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
            version = self.db.execute("INSERT INTO orders (id, customer, item, amount) VALUES (?, ?, ?, ?)",
                                      (order_id, customer, item, amount)).lastrowid
        self.committed_at[order_id] = time.monotonic()
        event = {"type": "order-placed", "id": order_id, "customer": customer, "item": item, "amount": amount,
                 "version": version}
        correlation_id, _ = tracing.from_http(request.headers)
        await publish(self.channel, self.queue, json.dumps(event).encode(), message_id=order_id,
                      correlation_id=correlation_id, tracer=self.tracer, content_type="application/json")
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
        return {"customer": customer, "orders": list(self.histories.get(customer, ())), "position": self.position,
                "source": "read model"}

    async def _history(self, request: web.Request) -> web.Response:
        customer = _customer(request)
        token = request.query.get("min_version")
        if token is not None:
            if not token.isdigit():
                return web.json_response({"error": f"min_version must be an integer >= 0, got {token!r}"}, status=400)
            if not await self.wait_for(int(token)):
                return web.json_response({"error": f"projection did not reach version {token} in "
                                                   f"{self.wait_timeout} s", "position": self.position}, status=504)
        return web.json_response(self.history(customer))

    async def _status(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        done = order_id in self.visible_at
        return web.json_response({"id": order_id, "state": "done" if done else "pending", "position": self.position})


class Projection(Part):
    """The consumer that turns events into read-model rows, with a pause switch (a deploy, a crash, a GC).

    While paused, the worker holds the event it has in hand and the broker keeps the rest (queue depth
    grows); on resume it catches up at its own pace.
    """

    def __init__(self, amqp_url: str, queue: str, read_model: ReadModel, *, work_time: float = 0.01,
                 distribution: str = "exponential", prefetch: int = 10, concurrency: int = 1, seed: int = 0,
                 tracer: tracing.Tracer | None = None):
        self.read_model = read_model
        self.consumer = Consumer(amqp_url, queue, work_time=work_time, distribution=distribution, prefetch=prefetch,
                                 concurrency=concurrency, handler=self._apply, declare=False, name="projection",
                                 seed=seed, tracer=tracer)
        self._running = asyncio.Event()
        self._running.set()
        #: [start, end] monotonic times of each pause (end None while paused)
        self.pauses: list[list[float | None]] = []
        self._held: dict[str, float] = {}  # message id -> seconds its event was held by a pause

    name = "projection"

    async def start(self) -> Self:
        await self.consumer.start()
        return self

    async def stop(self) -> None:
        self._running.set()  # release a handler waiting on the pause before the connection closes
        await self.consumer.stop()

    @property
    def running(self) -> bool:
        return self.consumer.running

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        """Stop applying events (idempotent)."""
        if not self.paused:
            self._running.clear()
            self.pauses.append([time.monotonic(), None])

    def resume(self) -> None:
        """Apply events again (idempotent)."""
        if self.paused:
            self._running.set()
            self.pauses[-1][1] = time.monotonic()

    async def pause_during(self, start: float, end: float, t0: Clock | float | None = None) -> None:
        """Pause from ``start`` to ``end`` seconds after ``t0`` (e.g. spawned next to a load run)."""
        non_negative("start", start)
        positive("end - start", end - start)
        origin = as_t0(t0)
        await asyncio.sleep(max(0.0, origin + start - time.monotonic()))
        self.pause()
        try:
            await asyncio.sleep(max(0.0, origin + end - time.monotonic()))
        finally:
            self.resume()

    def bands(self, t0: Clock | float | None = None) -> list[dict[str, Any]]:
        """The pauses as ``[{"label", "start", "end"}]`` in seconds after ``t0``, for ``plots.add_fault_bands``."""
        origin = as_t0(t0)
        return [{"label": "projection paused", "start": s - origin, "end": None if e is None else e - origin}
                for s, e in self.pauses]

    def service_rate(self) -> float:
        """Measured μ: events applied per second of the worker's busy time (1 / mean work per event, time
        held by a pause left out), NaN before the first event. Feed it to ``labkit.theory`` with the
        measured write rate."""
        times = [r.service_time - self._held.get(r.info.get("message_id"), 0.0)
                 for r in self.consumer.records if r.ok]
        return len(times) / sum(times) if times and sum(times) > 0 else math.nan

    async def _apply(self, message: Any) -> None:
        if self.paused:
            held = time.monotonic()
            await self._running.wait()
            self._held[message.header.properties.message_id] = time.monotonic() - held
        self.read_model.apply(json.loads(message.body))


class _EventQueue(AmqpWorker):
    """The shop's own connection: declares the per-run event queue, on whose channel orders are published."""

    def __init__(self, amqp_url: str, queue: str):
        super().__init__(amqp_url, name=f"shop events {queue}")
        self.queue = queue

    async def declare(self, channel: aiormq.abc.AbstractChannel) -> None:
        await declare_run_queue(channel, self.queue)

    async def stop(self) -> None:
        """Delete the queue (nothing of the run is left on the broker), then close."""
        if self._channel is not None and not self._channel.is_closed:
            try:
                await self._channel.queue_delete(self.queue)
            except CONNECTION_ERRORS:
                pass  # the broker or the link went away: x-expires deletes the queue later
        await super().stop()


class Shop(Part):
    """Write model + event + projection + read model on one fresh queue. See the module docstring.

    ``work_time`` is the projection's mean seconds of work per event (``distribution`` "exponential" or
    "fixed"); ``prefetch``/``concurrency`` configure its consumer; ``wait_timeout`` bounds version-token reads.
    Started with ``await lab.start(Shop(...))``, it takes the lab's broker, seed and tracer (unless given).
    """

    name = "shop"

    def __init__(self, amqp_url: str | None = None, *, work_time: float = 0.01, distribution: str = "exponential",
                 prefetch: int = 10, concurrency: int = 1, wait_timeout: float = 5.0, seed: int | None = None,
                 tracer: tracing.Tracer | None = None):
        self.amqp_url = None if amqp_url is None else check_amqp_url("amqp_url", amqp_url)
        self.queue = unique("shop-order-placed")
        self.read_model = ReadModel(wait_timeout)
        self.options = {"work_time": non_negative("work_time", work_time),
                        "distribution": one_of("distribution", distribution, DISTRIBUTIONS),
                        "prefetch": integer("prefetch", prefetch, 0, 65535),
                        "concurrency": integer("concurrency", concurrency, 1)}
        self.seed = None if seed is None else integer("seed", seed, 0)
        self.tracer = tracer
        self.projection: Projection | None = None
        self.events: _EventQueue | None = None
        self.orders: OrderService | None = None
        self._http: aiohttp.ClientSession | None = None

    def attach(self, lab: Any) -> None:
        """Take the lab's broker, seed and tracer where none was given (called by ``lab.start``)."""
        self.amqp_url = self.amqp_url or lab.amqp_url
        self.seed = lab.seed if self.seed is None else self.seed
        self.tracer = self.tracer or lab.tracer

    @property
    def running(self) -> bool:
        return self.events is not None

    async def start(self) -> Self:
        self._check_stopped()
        if self.amqp_url is None:
            raise ValueError("amqp_url must be given, or the shop started with `await lab.start(Shop(...))`")
        self.events = _EventQueue(self.amqp_url, self.queue)
        self.projection = Projection(self.amqp_url, self.queue, self.read_model, seed=self.seed or 0,
                                     tracer=self.tracer, **self.options)
        try:
            channel = (await self.events.start()).channel
            await self.read_model.start()
            await self.projection.start()
            self.orders = await OrderService(channel, self.queue, self.read_url, self.tracer).start()
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        """Stop taking writes, stop the projection, delete the queue, close everything (safe to call twice)."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        for part in (self.orders, self.projection, self.events, self.read_model):
            if part is not None:
                await part.stop()
        self.events = None

    # -- a client's view -----------------------------------------------------------------------------

    async def place(self, customer: str, *, item: str = "book", headers: dict[str, str] | None = None) -> Any:
        """POST an order; the answer has its ``id`` and ``version`` (and, with ``headers=PREFER_ASYNC``,
        a 202 with the ``status`` URL to poll)."""
        async with self._client().post(self.orders_url, json={"customer": customer, "item": item},
                                       headers=headers) as resp:
            if resp.status not in (201, 202):
                raise RuntimeError(f"placing an order for {customer!r} failed: HTTP {resp.status} "
                                   f"{await resp.text()}")
            return await resp.json()

    async def get_json(self, url: str, **params: Any) -> Any:
        """GET ``url`` (a history or status URL of this shop) and return its JSON answer (200 only)."""
        async with self._client().get(url, params=params) as resp:
            if resp.status != 200:
                raise RuntimeError(f"GET {url} failed: HTTP {resp.status} {await resp.text()}")
            return await resp.json()

    async def orders_of(self, customer: str, side: str = "read", **params: Any) -> list[str]:
        """The order ids in ``customer``'s history, read from the read model or (``side="write"``) the
        write model; ``min_version=N`` makes the read model wait until it has applied version N."""
        return list((await self.get_json(self.history_url(customer, side), **params))["orders"])

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("the shop is not running: start it first")
        return self._http

    @property
    def write_url(self) -> str:
        """Base URL of the order service (write model)."""
        return f"http://127.0.0.1:{self._port(self.orders)}/"

    @property
    def read_url(self) -> str:
        """Base URL of the read model."""
        return f"http://127.0.0.1:{self._port(self.read_model)}/"

    @property
    def orders_url(self) -> str:
        """Where to POST an order: ``{"customer": ..., "item": ..., "amount": ...}``."""
        return self.write_url + "orders"

    def history_url(self, customer: str, side: str = "read") -> str:
        """URL of ``customer``'s order history on the read model (``side="read"``) or the write model."""
        if side not in ("read", "write"):
            raise ValueError(f"side must be one of 'read', 'write', got {side!r}")
        return f"{self.read_url if side == 'read' else self.write_url}customers/{customer}/orders"

    async def backlog(self) -> int:
        """Events waiting in the broker for the projection (ready messages; passive declare)."""
        if self.events is None or self.events.channel is None:
            raise RuntimeError("the shop is not running: start it first")
        ok = await self.events.channel.queue_declare(self.queue, passive=True)
        return ok.message_count

    async def caught_up(self, timeout: float = 10.0) -> bool:
        """Wait until every committed order is visible in the read model; False if ``timeout`` s passed."""
        try:
            await wait_until(lambda: self.orders is None
                             or self.read_model.position >= len(self.orders.committed_at), timeout=timeout,
                             what="the read model to catch up")
        except TimeoutError:
            return False
        return True

    def backlog_timeline(self, t0: Clock | float | None = None) -> tuple[list[float], list[int]]:
        """``(t, n)``: orders stored but not yet visible, after every change, in seconds after ``t0``: the
        whole pipeline's backlog (broker queue, prefetch buffer and the event in hand). Plot as steps."""
        origin = as_t0(t0)
        changes = sorted([(c, 1) for c in (self.orders.committed_at.values() if self.orders else ())]
                         + [(v, -1) for v in self.read_model.visible_at.values()])
        n, ts, ns = 0, [], []
        for t, step in changes:
            n += step
            ts.append(t - origin)
            ns.append(n)
        return ts, ns

    def staleness(self, t0: Clock | float | None = None) -> Recording:
        """One record per order: ``scheduled`` = committed, ``end`` = visible in the read model, so
        ``record.latency`` is that write's staleness window. Orders not yet visible are failures ("pending")."""
        visible = self.read_model.visible_at
        now = time.monotonic()
        records = [Record(c, c, visible.get(order_id, now), order_id in visible,
                          None if order_id in visible else "pending", {"id": order_id})
                   for order_id, c in (self.orders.committed_at.items() if self.orders else ())]
        return Recording(records, t0=t0)

    @staticmethod
    def _port(part: Any) -> int:
        if part is None or not part.running:
            raise RuntimeError("the shop is not running: start it first")
        return part.port

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Shop {state} queue={self.queue!r} position={self.read_model.position}>"
