"""Fan-out: one event to many consumers, and one request to many services.

Why: chapter 07 compares two ways of telling N parties about one thing. Asynchronously, the producer
publishes once to an exchange with one queue per consumer (:class:`Fanout` declares that topology and
removes it again), and each consumer falls behind at its own pace (:func:`lag_timeline` measures by how
much). Synchronously, a caller waits for all N replies, so one occasional hiccup in any of them makes the
whole request slow (:class:`Hiccup` is that hiccup, injected into a :class:`labkit.services.Service`):
the tail at scale, 1 - (1 - p)^N. :class:`OrderProducer` is the shop that publishes, and
:func:`lag_figure` and :func:`tail_figure` draw the chapter's two experiments against their theory.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiormq
import plotly.graph_objects as go

from labkit import plots
from labkit._validate import integer, non_negative, one_of, probability
from labkit.metrics import Clock, as_t0
from labkit.queues import declare_run_queue
from labkit.streams import queue_name
from labkit.theory import Backlog, fanout_slow_probability

if TYPE_CHECKING:
    from labkit.lab import Lab

__all__ = [
    "EXCHANGE_TYPES",
    "Fanout",
    "Hiccup",
    "OrderProducer",
    "lag_figure",
    "lag_timeline",
    "new_order",
    "tail_figure",
]

EXCHANGE_TYPES = ("fanout", "topic", "direct")


class Hiccup:
    """A service ``handler`` that pauses ``delay`` seconds with probability ``p`` (seeded), else returns at once.

    Why a handler and not a service-time distribution: the tail-at-scale argument needs replies that are
    *usually* fast and *occasionally* very slow (a garbage-collection pause, a cold cache), independent
    from call to call. ``calls`` and ``slow`` count what it did, so a run can be checked against its draws.
    """

    def __init__(self, p: float, delay: float, seed: int = 0):
        self.p = probability("p", p)
        self.delay = non_negative("delay", delay)
        self._rng = random.Random(integer("seed", seed, 0))
        self.calls = self.slow = 0

    def configure(self, *, p: float | None = None, delay: float | None = None) -> None:
        """Change the hiccup probability and/or delay while the service runs (e.g. from a widget)."""
        new_p = self.p if p is None else probability("p", p)
        self.delay = self.delay if delay is None else non_negative("delay", delay)
        self.p = new_p

    async def __call__(self, body: bytes) -> dict[str, Any]:
        self.calls += 1
        hiccup = self._rng.random() < self.p
        if hiccup:
            self.slow += 1
            await asyncio.sleep(self.delay)
        return {"hiccup": hiccup}

    def __repr__(self) -> str:
        return f"<Hiccup p={self.p} delay={self.delay}s calls={self.calls} slow={self.slow}>"


def lag_timeline(
    published: Iterable[float], done: Iterable[float], t0: Clock | float | None = None
) -> tuple[list[float], list[int]]:
    """A consumer's lag over time: events published so far minus events it has finished, as steps.

    ``published`` and ``done`` are ``time.monotonic()`` readings (e.g. records' ``scheduled`` and ``end``);
    the result is ``(t, lag)`` with t in seconds since ``t0``, one point per event, ready for
    :func:`labkit.plots.timeline` with ``step=True``.
    """
    pub, fin = sorted(published), sorted(done)
    if len(fin) > len(pub):
        raise ValueError(f"done must not have more events than published, got {len(fin)} > {len(pub)}")
    origin = as_t0(t0)
    times = sorted({*pub, *fin})
    lags = [bisect.bisect_right(pub, t) - bisect.bisect_right(fin, t) for t in times]
    return [t - origin for t in times], lags


class Fanout:
    """An exchange with ``queues`` bound to it (``routing_key`` pattern for topic/direct), declared by
    :meth:`start` on ``channel`` and deleted, queues and exchange, by :meth:`stop`.

    Publishing once to ``exchange`` puts a copy in every queue: the producer neither knows nor waits for
    the consumers, and adding one is binding one more queue (:meth:`add`).
    """

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        exchange: str,
        queues: Sequence[str] = (),
        *,
        exchange_type: str = "fanout",
        routing_key: str = "#",
    ):
        if not isinstance(exchange, str) or not exchange:
            raise ValueError(f"exchange must be a non-empty exchange name, got {exchange!r}")
        self.channel = channel
        self.exchange = exchange
        self.exchange_type = one_of("exchange_type", exchange_type, EXCHANGE_TYPES)
        if not isinstance(routing_key, str):
            raise ValueError(f"routing_key must be a string, got {routing_key!r}")
        self.routing_key = routing_key
        self._pending = [queue_name(q) for q in queues]
        self.queues: list[str] = []
        self._started = False

    async def start(self) -> Fanout:
        if self._started:
            raise RuntimeError(f"fan-out {self.exchange!r} is already started")
        await self.channel.exchange_declare(self.exchange, exchange_type=self.exchange_type)
        self._started = True
        for queue in self._pending:
            await self.add(queue)
        return self

    async def add(self, queue: str, *, declare: bool = True, routing_key: str | None = None) -> str:
        """Bind ``queue`` (declared here as a per-run queue, durable with x-expires, unless ``declare=False``,
        e.g. for a stream)
        with ``routing_key`` (default: the fan-out's): from now on it gets a copy of every event, not
        of earlier ones. :meth:`stop` deletes it with the rest."""
        if not self._started:
            raise RuntimeError("start the fan-out before adding queues")
        queue_name(queue)
        if routing_key is not None and not isinstance(routing_key, str):
            raise ValueError(f"routing_key must be a string or None, got {routing_key!r}")
        if declare:
            await declare_run_queue(self.channel, queue)
        await self.channel.queue_bind(
            queue, self.exchange, routing_key=self.routing_key if routing_key is None else routing_key
        )
        self.queues.append(queue)
        return queue

    async def stop(self) -> None:
        """Delete the queues and the exchange (safe to call twice)."""
        if not self._started:
            return
        self._started = False
        queues, self.queues = self.queues, []
        for queue in queues:
            await self.channel.queue_delete(queue)
        await self.channel.exchange_delete(self.exchange)

    def __repr__(self) -> str:
        return f"<Fanout {self.exchange_type} {self.exchange!r} -> {len(self.queues)} queues>"


def new_order(i: int) -> dict[str, Any]:
    """Order ``i``: seven customers in turn, amounts spread over 10..99, the same on every run."""
    return {"id": f"order-{i:04d}", "customer": f"customer-{i % 7}", "amount": 10 + (i * 37) % 90}


class OrderProducer:
    """The shop: one publish per order to ``exchange`` with ``routing_key``; it knows no consumer.

    It keeps what the checks need: ``orders`` (index -> order), ``sent`` (order ids in publish order; one
    publish at a time, so exactly the order the broker gets them) and ``sent_wall`` (order id -> wall-clock
    time of publishing, for reading a stream from a timestamp).
    """

    def __init__(self, lab: Lab, exchange: str, routing_key: str = "order.placed"):
        if not isinstance(exchange, str) or not exchange:
            raise ValueError(f"exchange must be a non-empty exchange name, got {exchange!r}")
        self.lab, self.exchange, self.routing_key = lab, exchange, routing_key
        self.orders: dict[int, dict[str, Any]] = {}
        self.sent: list[str] = []
        self.sent_wall: dict[str, float] = {}
        self._publishing = asyncio.Lock()

    async def place_order(self, i: int) -> None:
        """Publish order ``i`` (created on first use, the same order on a retry)."""
        order = self.orders.setdefault(i, new_order(i))
        async with self._publishing:
            self.sent.append(order["id"])
            self.sent_wall[order["id"]] = time.time()
            body = json.dumps(order).encode()
            await self.lab.publish(self.routing_key, body, exchange=self.exchange, message_id=order["id"])


def lag_figure(
    lags: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    fluid: Backlog,
    joined_at: float,
    model: str = "email: fluid model",
) -> go.Figure:
    """Each consumer's lag as steps, the fluid model's backlog dashed, and when the late consumer joined."""
    fig = plots.timeline(
        lags, title="Each consumer's lag: events published minus events done", y_title="lag (events)", step=True
    )
    ts = [k * 0.05 for k in range(int((fluid.drain_time + 0.3) / 0.05))]
    line = dict(color=plots.OKABE_ITO["black"], dash="dash", width=1.5)
    fig.add_trace(go.Scatter(x=ts, y=[fluid(t) for t in ts], name=model, mode="lines", line=line))
    fig.add_vline(x=joined_at, line_dash="dot", annotation_text="loyalty added")
    return fig


def tail_figure(
    p: float, measured: Mapping[int, float], measured_async: Mapping[int, float], errors: Mapping[int, float]
) -> go.Figure:
    """How often a fan-out of N is slow: theory 1 - (1 - p)^N over N = 1..max, the sync fan-out measured
    with its error bars, and the async one (a publish, which waits for no consumer)."""
    fanouts = list(measured)
    ns = [1 + k for k in range(max(fanouts))]
    fig = plots.figure(
        "Tail at scale: how often the caller is slow",
        "N (services called per request)",
        "requests slower than the hiccup (%)",
        xaxis_type="log",
    )
    theory_line = dict(color=plots.OKABE_ITO["black"], dash="dash")
    fig.add_trace(
        go.Scatter(
            x=ns,
            y=[100 * fanout_slow_probability(p, n) for n in ns],
            mode="lines",
            name=f"theory 1 − (1 − {p:g})ᴺ",
            line=theory_line,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=fanouts,
            y=[100 * measured[n] for n in fanouts],
            mode="markers",
            name="sync fan-out",
            error_y=dict(type="data", array=[100 * errors[n] for n in fanouts], visible=True, thickness=1),
            marker=dict(size=11, color=plots.COLORS[0]),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=fanouts,
            y=[100 * measured_async[n] for n in fanouts],
            mode="markers+lines",
            name="async fan-out (publish)",
            marker=dict(size=11, symbol="diamond", color=plots.COLORS[1]),
        )
    )
    return fig
