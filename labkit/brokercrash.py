"""The broker itself crashes mid-stream: which messages survive, and what durability costs.

Why: chapter 06 asks "what if the broker dies?". Three publishers send the same numbered stream, each
into its own durable queue, while the broker is killed (SIGKILL) and restarted on the experiment's
timeline (``lab.broker.crash()`` / ``restart()``):

- ``transient``: delivery_mode 1, publisher confirms and retry. The broker confirmed every message, but
  a confirm for a transient message only says "I have it in memory": the crash erases them.
- ``fire-and-forget``: persistent (delivery_mode 2), no confirms, and a publisher that gives up on a
  failed publish. What reached the broker is on disk and survives; what it sent while the broker was down
  is gone.
- ``confirmed``: persistent, confirms and retry until confirmed. Nothing is lost (a duplicate is possible).

:func:`confirm_cost` then measures the price in the same lab: confirm latency of persistent messages to
a durable queue (written and fsynced before the confirm) against transient ones (memory only), sent
alternately so a busy machine slows both alike.

On RabbitMQ (``AMQP_URL``) the lab cannot kill the broker. The outage is simulated by a fault proxy that
drops every publisher connection and refuses new ones for the same time; the broker keeps its memory,
so transient messages survive there, and :attr:`CrashRun.crashed` is False with the reason in
:attr:`CrashRun.note`.

    run = await brokercrash.run(lab)             # rate 150/s for 2 s, crash at 0.6 s
    run.streams["confirmed"]["lost"]             # 0
    brokercrash.figure(run).show()               # every message's fate on the timeline
    cost = await brokercrash.confirm_cost(lab)   # {"persistent": {"p50_ms": ...}, "transient": {...}}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiormq
from pamqp import commands

from labkit import plots
from labkit._validate import integer, positive
from labkit.metrics import percentile, sleep_until
from labkit.publisher import RETRYABLE, Publisher

__all__ = ["STREAMS", "CrashRun", "run", "confirm_cost", "figure"]

#: stream name -> (persistent, confirms, retry)
STREAMS: dict[str, tuple[bool, bool, bool]] = {
    "transient": (False, True, True),
    "fire-and-forget": (True, False, False),
    "confirmed": (True, True, True),
}
LABELS = {
    "transient": "transient + confirms + retry",
    "fire-and-forget": "persistent, no confirms, no retry",
    "confirmed": "persistent + confirms + retry",
}
BODY = b'{"amount": 20}'


@dataclass
class CrashRun:
    """What one run saw. Times are seconds since the run started."""

    #: per stream: published (the publish returned: confirmed, or written without confirms), kept
    #: (distinct ids in the queue afterwards), lost, duplicates; published_before_crash (publish returned
    #: before the broker went down) and kept_of_those
    streams: dict[str, dict[str, int]]
    #: per stream: (time the message was due, "kept" or "lost") for every message
    fates: dict[str, list[tuple[float, str]]]
    #: when the broker was down: (crash, back up)
    outage: tuple[float, float]
    #: True when the broker really crashed (embedded); False when the outage was simulated (RabbitMQ)
    crashed: bool
    note: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _QuietReconnects(logging.Filter):
    """aiormq logs an error for every refused connect and a traceback for every connection the crash
    closed; while the broker is down on purpose those are the experiment, not news (the publishers count
    their failures themselves)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            record.getMessage().startswith("error when creating transport")
            or isinstance(exc, aiormq.exceptions.AMQPConnectionError)
        )


@contextlib.contextmanager
def _quiet_reconnects():
    logger, quiet = logging.getLogger("aiormq.connection"), _QuietReconnects()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


async def _outage(lab: Any, proxy: Any, at: float, down_for: float) -> tuple[float, float]:
    """Take the broker down at ``at`` (monotonic) for ``down_for`` s; return (down, up) monotonic times."""
    await sleep_until(at)
    down = time.monotonic()
    if proxy is None:
        await lab.broker.crash()
        await asyncio.sleep(down_for)
        await lab.broker.restart()
    else:
        proxy.down()
        await asyncio.sleep(down_for)
        proxy.up()
    return down, time.monotonic()


async def _stream(
    url: str, queue: str, spec: tuple[bool, bool, bool], n: int, rate: float, t0: float
) -> dict[int, float | None]:
    """Publish message i at t0 + i/rate; returns {i: when its publish returned, None if it failed}."""
    persistent, confirms, retry = spec
    publisher = await Publisher(
        url, confirms=confirms, persistent=persistent, backoff=0.02, max_attempts=100_000 if retry else 1
    ).start()
    outcome: dict[int, float | None] = {}
    try:
        for i in range(n):
            await sleep_until(t0 + i / rate)
            try:
                await publisher.publish(queue, BODY, message_id=str(i))
                outcome[i] = time.monotonic()
            except RETRYABLE:
                outcome[i] = None  # this publisher gives up: the message is dropped
    finally:
        await publisher.stop()
    return outcome


async def _drain(lab: Any, queue: str) -> list[int]:
    """Every message id in ``queue`` (taken, so the queue ends empty)."""
    channel = await lab.channel(publisher_confirms=False)
    ids: list[int] = []
    try:
        while True:
            got = await channel.basic_get(queue, no_ack=True)
            if isinstance(got.delivery, commands.Basic.GetEmpty):
                return ids
            ids.append(int(got.header.properties.message_id))
    finally:
        await channel.close()


async def run(
    lab: Any, *, rate: float = 150.0, duration: float = 2.0, crash_at: float = 0.6, down_for: float = 0.3
) -> CrashRun:
    """Publish the three streams for ``duration`` s at ``rate`` msg/s each; the broker goes down at
    ``crash_at`` s for ``down_for`` s (plus its restart time); then count what each queue kept."""
    positive("rate", rate)
    positive("duration", duration)
    positive("down_for", down_for)
    if not 0 < positive("crash_at", crash_at) < duration:
        raise ValueError(f"crash_at must be in (0, duration={duration}), got {crash_at!r}")
    n = integer("messages", round(rate * duration), 2)
    queues = {name: await lab.declare_queue(lab.unique(f"crash-{name}")) for name in STREAMS}
    crashed = lab.broker_kind == "embedded"
    proxy, note = None, ""
    if not crashed:
        proxy = await lab.proxy("amqp", name="publishers -> RabbitMQ")
        note = (
            "The lab cannot crash the RabbitMQ at AMQP_URL: a proxy dropped every publisher connection "
            "instead. RabbitMQ kept running, so it kept its transient messages too."
        )
    url = lab.amqp_url if proxy is None else proxy.via(lab.amqp_url)
    t0 = time.monotonic() + 0.05
    try:
        with _quiet_reconnects():
            outage = asyncio.ensure_future(_outage(lab, proxy, t0 + crash_at, down_for))
            outcomes = await asyncio.gather(
                *(_stream(url, queues[name], spec, n, rate, t0) for name, spec in STREAMS.items())
            )
            down, up = await outage
    finally:
        if proxy is not None:
            await lab.remove(proxy)
    streams, fates = {}, {}
    for (name, queue), outcome in zip(queues.items(), outcomes):
        ids = await _drain(lab, queue)
        await lab.delete_queue(queue)
        kept = set(ids)
        before = [i for i, done in outcome.items() if done is not None and done < down]
        streams[name] = {
            "published": sum(done is not None for done in outcome.values()),
            "kept": len(kept),
            "lost": n - len(kept),
            "duplicates": len(ids) - len(kept),
            "published_before_crash": len(before),
            "kept_of_those": sum(i in kept for i in before),
        }
        fates[name] = [(i / rate, "kept" if i in kept else "lost") for i in range(n)]
    return CrashRun(streams, fates, (down - t0, up - t0), crashed, note, time.monotonic() - t0)


async def confirm_cost(lab: Any, n: int = 200) -> dict[str, dict[str, float]]:
    """Publish ``n`` messages one at a time with confirms into a durable queue, alternately persistent
    and transient; per kind: median and p90 confirm latency (ms) and the rate one publisher gets (msg/s)."""
    integer("n", n, 2)
    queue = await lab.declare_queue(lab.unique("confirm-cost"))
    channel = await lab.channel()
    latencies: dict[str, list[float]] = {"persistent": [], "transient": []}
    try:
        for i in range(n):
            kind = "persistent" if i % 2 else "transient"
            props = commands.Basic.Properties(delivery_mode=2 if kind == "persistent" else 1)
            start = time.perf_counter()
            await channel.basic_publish(BODY, routing_key=queue, properties=props)
            latencies[kind].append(time.perf_counter() - start)
    finally:
        await channel.close()
        await lab.delete_queue(queue)
    return {
        kind: {
            "p50_ms": percentile(values, 50) * 1e3,
            "p90_ms": percentile(values, 90) * 1e3,
            "rate": len(values) / sum(values),
        }
        for kind, values in latencies.items()
    }


def figure(run: CrashRun):
    """Every message of every stream on the timeline, kept or lost, with the outage shaded."""
    fig = plots.figure(
        "The broker crashes mid-stream: which messages survive?", "time the message was due (s)", "stream"
    )
    for fate, color, symbol in (
        ("kept", plots.OKABE_ITO["bluish green"], "circle"),
        ("lost", plots.OKABE_ITO["black"], "x"),
    ):
        xs, ys = [], []
        for name, fates in run.fates.items():
            for t, f in fates:
                if f == fate:
                    xs.append(t)
                    ys.append(LABELS[name])
        fig.add_scatter(x=xs, y=ys, mode="markers", name=fate, marker=dict(color=color, symbol=symbol, size=5))
    label = "broker down (crash → restart)" if run.crashed else "connections dropped (simulated)"
    return plots.add_fault_bands(fig, [(max(0.0, run.outage[0]), run.outage[1], label)])
