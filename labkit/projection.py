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
import json
import math
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import aiormq

from labkit import tracing
from labkit._validate import amqp_url as check_amqp_url
from labkit._validate import integer, non_negative, one_of, positive
from labkit.consumers import Consumer
from labkit.draws import DISTRIBUTIONS
from labkit.lifecycle import CONNECTION_ERRORS, AmqpWorker, Part, stopped_on_failure, unique, wait_until
from labkit.metrics import Clock, Record, Recording, as_t0
from labkit.orders import PREFER_ASYNC, OrderService, ReadModel
from labkit.queues import declare_run_queue

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["PREFER_ASYNC", "OrderService", "Projection", "ReadModel", "Shop"]


class Projection(Part):
    """The consumer that turns events into read-model rows, with a pause switch (a deploy, a crash, a GC).

    While paused, the worker holds the event it has in hand and the broker keeps the rest (queue depth
    grows); on resume it catches up at its own pace.
    """

    def __init__(
        self,
        amqp_url: str,
        queue: str,
        read_model: ReadModel,
        *,
        work_time: float = 0.01,
        distribution: str = "exponential",
        prefetch: int = 10,
        concurrency: int = 1,
        seed: int = 0,
        tracer: tracing.Tracer | None = None,
    ):
        self.read_model = read_model
        self.consumer = Consumer(
            amqp_url,
            queue,
            work_time=work_time,
            distribution=distribution,
            prefetch=prefetch,
            concurrency=concurrency,
            handler=self._apply,
            declare=False,
            name="projection",
            seed=seed,
            tracer=tracer,
        )
        self._running = asyncio.Event()
        self._running.set()
        #: [start, end] monotonic times of each pause (end None while paused)
        self.pauses: list[tuple[float, float | None]] = []  # (paused at, resumed at or None)
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
            self.pauses.append((time.monotonic(), None))

    def resume(self) -> None:
        """Apply events again (idempotent)."""
        if self.paused:
            self._running.set()
            self.pauses[-1] = (self.pauses[-1][0], time.monotonic())

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
        return [
            {"label": "projection paused", "start": s - origin, "end": None if e is None else e - origin}
            for s, e in self.pauses
        ]

    def service_rate(self) -> float:
        """Measured μ: events applied per second of the worker's busy time (1 / mean work per event, time
        held by a pause left out), NaN before the first event. Feed it to ``labkit.theory`` with the
        measured write rate."""
        times = [
            r.service_time - self._held.get(r.info.get("message_id") or "", 0.0) for r in self.consumer.records if r.ok
        ]
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

    def __init__(
        self,
        amqp_url: str | None = None,
        *,
        work_time: float = 0.01,
        distribution: str = "exponential",
        prefetch: int = 10,
        concurrency: int = 1,
        wait_timeout: float = 5.0,
        seed: int | None = None,
        tracer: tracing.Tracer | None = None,
    ):
        self.amqp_url = None if amqp_url is None else check_amqp_url("amqp_url", amqp_url)
        self.queue = unique("shop-order-placed")
        self.read_model = ReadModel(wait_timeout)
        self.options: dict[str, Any] = {
            "work_time": non_negative("work_time", work_time),
            "distribution": one_of("distribution", distribution, DISTRIBUTIONS),
            "prefetch": integer("prefetch", prefetch, 0, 65535),
            "concurrency": integer("concurrency", concurrency, 1),
        }
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
        self.projection = Projection(
            self.amqp_url, self.queue, self.read_model, seed=self.seed or 0, tracer=self.tracer, **self.options
        )
        async with stopped_on_failure(self):
            channel = (await self.events.start()).channel
            if channel is None:
                raise RuntimeError("the event queue started without a channel")
            await self.read_model.start()
            await self.projection.start()
            self.orders = await OrderService(channel, self.queue, self.read_url, self.tracer).start()
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
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
        async with self._client().post(
            self.orders_url, json={"customer": customer, "item": item}, headers=headers
        ) as resp:
            if resp.status not in (201, 202):
                raise RuntimeError(f"placing an order for {customer!r} failed: HTTP {resp.status} {await resp.text()}")
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
        return ok.message_count or 0  # a declare-ok always carries it; aiormq types it optional

    async def caught_up(self, timeout: float = 10.0) -> bool:
        """Wait until every committed order is visible in the read model; False if ``timeout`` s passed."""
        try:
            await wait_until(
                lambda: self.orders is None or self.read_model.position >= len(self.orders.committed_at),
                timeout=timeout,
                what="the read model to catch up",
            )
        except TimeoutError:
            return False
        return True

    def backlog_timeline(self, t0: Clock | float | None = None) -> tuple[list[float], list[int]]:
        """``(t, n)``: orders stored but not yet visible, after every change, in seconds after ``t0``: the
        whole pipeline's backlog (broker queue, prefetch buffer and the event in hand). Plot as steps."""
        origin = as_t0(t0)
        changes = sorted(
            [(c, 1) for c in (self.orders.committed_at.values() if self.orders else ())]
            + [(v, -1) for v in self.read_model.visible_at.values()]
        )
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
        records = [
            Record(
                c,
                c,
                visible.get(order_id, now),
                order_id in visible,
                None if order_id in visible else "pending",
                {"id": order_id},
            )
            for order_id, c in (self.orders.committed_at.items() if self.orders else ())
        ]
        return Recording(records, t0=t0)

    @staticmethod
    def _port(part: Any) -> int:
        if part is None or not part.running:
            raise RuntimeError("the shop is not running: start it first")
        return part.port

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Shop {state} queue={self.queue!r} position={self.read_model.position}>"
