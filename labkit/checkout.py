"""The course's running story, end to end: one checkout built two ways over the same nine services.

Why: chapter 08 puts the whole argument together. The same steps -- validate, inventory, payment, save,
email, analytics, fraud, fulfillment, receipt -- run as real HTTP services, and two front doors use them:

- **all-sync** (``checkout.all_sync``): the checkout calls all nine in a row and answers when the last
  one has; its latency is their sum, and it fails when any of them is down.
- **hybrid** (``checkout.hybrid``): the checkout calls the four the customer needs an answer from
  (:data:`EDGE`: validate, inventory, payment, save), publishes one ``order.placed`` event to a topic
  exchange, and answers. One worker per :data:`SPINE` step consumes its own copy of the event and calls
  its service, retrying while the service is unreachable, so an outage delays the work but loses none.

The spine services named in ``links`` are reached through a :class:`labkit.faults.FaultProxy`
(``checkout.links[step]``), and both designs go through the same links, so one fault hits both. Every service records its side effects
per order (``checkout.effects``), which is how a chapter checks "every email was sent".

The saga: fulfillment answers its worker with success or failure. A failure (an HTTP error, not an
unreachable service) is published as ``fulfillment.failed``; a refund worker and a stock-release worker
consume it and call payment and inventory with the compensating action (:data:`labkit.saga.COMPENSATIONS`).
Every state an order reaches goes into ``checkout.log`` (:class:`labkit.saga.OrderLog`).

The correlation id of the customer's request travels in every HTTP header and in the AMQP
``correlation_id`` property of every event, so ``lab.tracer.trace(cid)`` holds the whole checkout,
synchronous edge and asynchronous spine (``plots.trace_waterfall`` draws it).

    checkout = await lab.start(Checkout())          # or Checkout(edge=(...)) for another split
    await lab.call(checkout.hybrid, body=b"order-1")
    await checkout.wait_settled(["order-1"])
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp

from labkit import tracing
from labkit._validate import integer, non_negative, positive
from labkit.fanout import Fanout
from labkit.lab import HTTPStatusError, Lab
from labkit.lifecycle import Part, stopped_on_failure, wait_until
from labkit.saga import COMPENSATIONS, OrderLog
from labkit.services import STORY, Service

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["EDGE", "SERVICE_TIMES", "SPINE", "STEPS", "Checkout", "critical_path", "split"]

#: The steps of one checkout, in the order an all-synchronous checkout calls them.
STEPS = ("validate", "inventory", "payment", "save", "email", "analytics", "fraud", "fulfillment", "receipt")
#: What the customer must wait for: is the order valid, in stock, paid and stored?
EDGE = STEPS[:4]
#: Everything that can happen after the customer has their answer.
SPINE = STEPS[4:]
#: Mean seconds of work per step (the story's values from :data:`labkit.services.STORY`, small ones for the rest).
SERVICE_TIMES = {"validate": 0.005, "save": 0.010, "receipt": 0.005, **{s: STORY[s] for s in STEPS if s in STORY}}

#: Errors that mean "the service could not be reached", which a spine worker waits out (HTTP errors do not).
UNREACHABLE = (aiohttp.ClientError, asyncio.TimeoutError)


class Checkout(Part):
    """Both checkout designs, their spine workers and the saga, started on a lab (which owns every part):
    ``checkout = await lab.start(Checkout())``. Stopping the checkout stops its parts.

    ``edge`` names the steps the hybrid checkout calls while the customer waits (default :data:`EDGE`);
    the other steps form its spine (``checkout.spine``), in :data:`STEPS` order. Try another split:
    ``Checkout(edge=("validate", "inventory", "save"))`` takes payment off the customer's wait.
    ``service_times`` overrides :data:`SERVICE_TIMES` per step; ``links`` names the steps reached
    through a fault proxy (each proxy costs CPU per call, so only where a fault will be switched on);
    ``timeout`` is how long a caller waits for
    one step; ``retry_delay`` is a spine worker's first pause between attempts on an unreachable service (doubling
    up to ``retry_cap``);
    ``workers`` how many messages each spine worker handles at once.
    """

    def __init__(
        self,
        lab: Lab | None = None,
        *,
        name: str = "checkout",
        edge: Iterable[str] = EDGE,
        service_times: dict[str, float] | None = None,
        links: Iterable[str] = ("email", "analytics"),
        timeout: float = 2.0,
        retry_delay: float = 0.05,
        retry_cap: float = 0.4,
        workers: int = 16,
    ):
        if not isinstance(name, str) or not name.replace("-", "").isalnum():
            raise ValueError(f"name must be letters, digits and dashes, got {name!r}")
        times = dict(SERVICE_TIMES)
        for step, value in (service_times or {}).items():
            if step not in STEPS:
                raise ValueError(f"service_times keys must be steps from {STEPS}, got {step!r}")
            times[step] = non_negative(f"service_times[{step!r}]", value)
        self.edge, self.spine = split(edge)
        self.link_steps = tuple(links) if not isinstance(links, str) else (links,)
        for step in self.link_steps:
            if step not in STEPS:
                raise ValueError(f"links must name steps from {STEPS}, got {step!r}")
        self.lab = lab
        self.name = f"{name}-{tracing.new_id()[:6]}"  # unique: several runs may share one RabbitMQ
        self.service_times = times
        self.timeout = positive("timeout", timeout)
        self.retry_delay = positive("retry_delay", retry_delay)
        self.retry_cap = positive("retry_cap", retry_cap)
        if retry_cap < retry_delay:
            raise ValueError(f"retry_cap must be >= retry_delay ({retry_delay}), got {retry_cap}")
        self.workers = integer("workers", workers, 1, 1000)
        self.exchange = f"{self.name}-events"
        #: step -> Counter of (order, action) -> times the service did it
        self.effects: dict[str, collections.Counter] = {s: collections.Counter() for s in STEPS}
        #: (step, order, action) -> monotonic time the service first did it
        self.effect_times: dict[tuple[str, str, str], float] = {}
        self.log = OrderLog()
        #: order -> correlation id of the hybrid checkout that placed it (to know when its trace is complete)
        self.correlation_ids: dict[str, str] = {}
        self.services: dict[str, Any] = {}
        self.links: dict[str, Any] = {}
        self.spine_workers: dict[str, Any] = {}
        self.compensators: dict[str, Any] = {}
        self.all_sync: Service | None = None
        self.hybrid: Service | None = None
        self._topology: Fanout | None = None
        self._parts: list[Any] = []

    def attach(self, lab: Lab) -> None:
        """Called by ``lab.start(checkout)``: the lab this checkout builds its parts on."""
        if self.lab is not None and self.lab is not lab:
            raise ValueError("this checkout was built for another lab")
        self.lab = lab

    @property
    def running(self) -> bool:
        return self.hybrid is not None

    @property
    def _lab(self) -> Lab:
        if self.lab is None:
            raise RuntimeError("start a checkout with `await lab.start(Checkout())`")
        return self.lab

    async def stop(self) -> None:
        """Stop the checkout's services, proxies, workers and topology (newest first); safe twice."""
        parts, self._parts = self._parts, []
        self.all_sync = self.hybrid = None
        for part in reversed(parts):
            try:
                await self._lab.remove(part)
            except ValueError:
                pass  # the lab has stopped it already (the lab stopped, or the part was removed)

    async def start(self) -> Self:
        self._check_stopped()
        if self.lab is None:
            raise ValueError("start a checkout with `await lab.start(Checkout())`")
        async with stopped_on_failure(self):
            await self._build(self.lab)
        return self

    async def _build(self, lab: Lab) -> None:
        keep = self._parts.append
        for step in STEPS:
            self.services[step] = await lab.service(
                f"{self.name}-{step}", service_time=self.service_times[step], handler=self._effect(step)
            )
            keep(self.services[step])
        for step in self.link_steps:
            self.links[step] = await lab.proxy(self.services[step], name=f"{step} link")
            keep(self.links[step])
        self._topology = await lab.start(
            Fanout(await lab.channel(), self.exchange, exchange_type="topic", routing_key="order.placed")
        )
        keep(self._topology)
        for step in self.spine:
            queue = await self._topology.add(f"{self.exchange}-{step}")
            self.spine_workers[step] = await self._worker(queue, self._spine(step), f"{step} worker")
            keep(self.spine_workers[step])
        for step, (action, _) in COMPENSATIONS.items():
            queue = await self._topology.add(f"{self.exchange}-{action}", routing_key="fulfillment.failed")
            self.compensators[step] = await self._worker(queue, self._compensate(step), f"{action} worker")
            keep(self.compensators[step])
        self.all_sync = await lab.service(f"{self.name}-all-sync", service_time=0.0, handler=self._all_sync)
        keep(self.all_sync)
        self.hybrid = await lab.service(f"{self.name}-hybrid", service_time=0.0, handler=self._hybrid)
        keep(self.hybrid)

    # -- what the chapter asks -----------------------------------------------------------------------

    def done(self, step: str, order: str, action: str = "do") -> bool:
        """Has ``step``'s service done ``action`` for ``order``?"""
        if step not in STEPS:
            raise ValueError(f"step must be one of {STEPS}, got {step!r}")
        return self.effects[step][(order, action)] > 0

    def settled(self, order: str) -> bool:
        """Has a hybrid order finished: every spine step done, the saga at rest (fulfilled or compensated)
        and every span of its trace finished? (A step's side effect is visible a moment before its
        worker's span ends: without the last condition a reader of the trace would race the worker.)"""
        if not (
            all(self.done(step, order) for step in self.spine if step != "fulfillment")
            and self.log.state(order) in ("fulfilled", "compensated")
        ):
            return False
        correlation_id = self.correlation_ids.get(order)
        return correlation_id is None or self._lab.tracer.open_spans(correlation_id) == 0

    async def wait_settled(self, orders: Iterable[str], timeout: float = 20.0) -> float:
        """Wait until every order in ``orders`` is :meth:`settled`, its trace complete; returns the
        monotonic time it happened. Raises ``TimeoutError`` naming how many were still pending."""
        pending = list(orders)

        def all_settled() -> bool:
            pending[:] = [o for o in pending if not self.settled(o)]
            return not pending

        await wait_until(
            all_settled,
            timeout=timeout,
            interval=0.02,
            what=lambda: f"{len(pending)} orders to settle (first: {pending[:3]})",
        )
        return time.monotonic()

    def reset(self) -> None:
        """Forget effects and the order log (between experiments)."""
        for counter in self.effects.values():
            counter.clear()
        self.effect_times.clear()
        self.log.clear()
        self.correlation_ids.clear()

    # -- the two front doors -------------------------------------------------------------------------

    async def _all_sync(self, body: bytes) -> dict[str, Any]:
        order = _order(body)
        for step in STEPS:
            await self._call(step, order)
        return {"order": order}

    async def _hybrid(self, body: bytes) -> dict[str, Any]:
        order = _order(body)
        correlation_id = tracing.current()[0]
        if correlation_id is not None:
            self.correlation_ids[order] = correlation_id
        for step in self.edge:
            await self._call(step, order)
        await self._lab.publish("order.placed", _body(order), exchange=self.exchange, message_id=order)
        self.log.record(order, "placed")
        if "fulfillment" in self.edge:  # fulfilled while the customer waited (a failure raised above)
            self.log.record(order, "fulfilled")
        return {"order": order}

    # -- the asynchronous spine and the saga ---------------------------------------------------------

    def _spine(self, step: str):
        async def work(message: Any) -> None:
            order = json.loads(message.body)["order"]
            ok = await self._until_reachable(step, order)
            if step == "fulfillment":
                self.log.record(order, "fulfilled" if ok else "fulfillment failed")
                if not ok:
                    await self._lab.publish(
                        "fulfillment.failed",
                        _body(order),
                        exchange=self.exchange,
                        message_id=f"{order}:fulfillment.failed",
                    )

        return work

    def _compensate(self, step: str):
        action, state = COMPENSATIONS[step]

        async def undo(message: Any) -> None:
            order = json.loads(message.body)["order"]
            if not await self._until_reachable(step, order, action):
                raise RuntimeError(f"{step} refused to {action} order {order}")  # nack: tried again
            self.log.record(order, state)

        return undo

    async def _until_reachable(self, step: str, order: str, action: str = "do") -> bool:
        """Call ``step`` until it answers: True if it did the work, False if it answered with an error.

        The pause between attempts doubles from ``retry_delay`` up to ``retry_cap``: a worker holding many
        messages must not hammer a service that is down (nor the CPU the rest of the lab shares)."""
        delay = self.retry_delay
        while True:
            try:
                await self._call(step, order, action)
                return True
            except HTTPStatusError:
                return False
            except UNREACHABLE:
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.retry_cap)

    async def _worker(self, queue: str, handler: Any, name: str) -> Any:
        return await self._lab.consumer(
            queue,
            work_time=0,
            handler=handler,
            prefetch=self.workers,
            concurrency=self.workers,
            idempotent=True,
            declare=False,
            name=name,
        )

    # -- the step services ---------------------------------------------------------------------------

    async def _call(self, step: str, order: str, action: str = "do") -> None:
        target = self.links.get(step) or self.services[step]
        await self._lab.call(target, body=_body(order, action), timeout=self.timeout)

    def _effect(self, step: str):
        """The step service's business logic: note that it did ``action`` for ``order``."""

        async def handle(body: bytes) -> dict[str, Any]:
            request = json.loads(body)
            key = (request["order"], request["action"])
            self.effects[step][key] += 1
            self.effect_times.setdefault((step, *key), time.monotonic())
            return {}

        return handle


def split(edge: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(edge, spine)``: the steps named in ``edge`` and the others, each in :data:`STEPS` order."""
    chosen = [edge] if isinstance(edge, str) else list(edge)
    for step in chosen:
        if step not in STEPS:
            raise ValueError(f"edge must name steps from {STEPS}, got {step!r}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"edge must name each step once, got {chosen!r}")
    return tuple(s for s in STEPS if s in chosen), tuple(s for s in STEPS if s not in chosen)


def critical_path(spans: list[tracing.Span]) -> dict[str, float]:
    """Where one checkout's time went, from its trace (seconds):

    - ``edge``: the customer's wait (the outermost span, the client's call);
    - ``hops``: the sum of the calls and publishes the front door made while the customer waited
      (the children of the front door's server span);
    - ``hop_cost``: what one HTTP hop adds to the work behind it (network, parsing, scheduling), the mean
      of (call - server work) over the door's calls. The critical-path rule predicts
      ``edge`` = ``hops`` + ``hop_cost`` (the customer's own hop);
    - ``spine``: how long work of this checkout went on after the customer had the answer.
    """
    if not spans:
        raise ValueError("spans must contain the spans of one trace, got none")
    ordered = sorted(spans, key=lambda s: s.start)
    client = ordered[0]
    door = next((s for s in ordered if s.parent_id == client.span_id and s.kind == "server"), None)
    if client.end is None or door is None:
        raise ValueError("spans must start with a finished client call answered by a traced service")
    calls = [s for s in ordered if s.parent_id == door.span_id and s.kind in ("client", "publish")]
    served = {s.parent_id: s for s in ordered if s.kind == "server"}
    costs = [(c.duration or 0.0) - (served[c.span_id].duration or 0.0) for c in calls if c.span_id in served]
    last = max(s.end or s.start for s in ordered)
    return {
        "edge": client.end - client.start,
        "hops": sum(c.duration or 0.0 for c in calls),
        "hop_cost": sum(costs) / len(costs) if costs else 0.0,
        "spine": max(0.0, last - client.end),
    }


def _order(body: bytes) -> str:
    order = body.decode()
    if not order:
        raise ValueError("the request body must be an order id")
    return order


def _body(order: str, action: str = "do") -> bytes:
    return json.dumps({"order": order, "action": action}).encode()
