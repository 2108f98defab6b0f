"""The in-flight plateau: throughput grows with messages in flight until the bottleneck saturates.

Why: a consumer with prefetch P has at most P unacknowledged messages; each spends the work time w in the
consumer and a round trip r between its ack and the next delivery. By Little's law throughput is
X = P / (w + r) -- until the consumer's C parallel workers are all busy, where X = C / w and a larger
prefetch only makes messages wait longer inside the consumer. RabbitMQ's guidance on prefetch (and on
outstanding publisher confirms) is this curve: enough in flight to cover the round trip, no more.

One :class:`InflightScenario` drives the live run (a consumer owned by the lab, on the lab's broker or another
one, draining a pre-filled queue once per prefetch value), a SimPy model of the same loop, and the closed form.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiormq
import simpy

from labkit._validate import integer, non_negative, positive
from labkit.consumers import Consumer
from labkit.lifecycle import wait_until
from labkit.queues import declare_run_queue

__all__ = ["InflightScenario", "predicted", "simulate", "live"]


@dataclass(frozen=True)
class InflightScenario:
    """``work``: seconds of work per message; ``workers``: messages the consumer works on at once;
    ``prefetch``: the values swept; ``messages``: per value."""

    work: float = 0.01
    workers: int = 2
    prefetch: tuple[int, ...] = (1, 2, 3, 4, 8, 16)
    messages: int = 60

    def __post_init__(self) -> None:
        positive("work", self.work)
        integer("workers", self.workers, 1)
        integer("messages", self.messages, 1)
        if not self.prefetch or any(not isinstance(p, int) or p < 1 for p in self.prefetch):
            raise ValueError(f"prefetch must be a non-empty tuple of integers >= 1, got {self.prefetch!r}")

    @property
    def capacity(self) -> float:
        """The bottleneck: C / w messages per second."""
        return self.workers / self.work


def predicted(scenario: InflightScenario, prefetch: int, round_trip: float, slack: float = 0.0) -> float:
    """Little's law with a ceiling: min(P / (w + r), C / w) messages per second, where the work w includes
    the timer ``slack`` (a sleep of w seconds really lasts w + slack)."""
    non_negative("round_trip", round_trip)
    work = scenario.work + non_negative("slack", slack)
    return min(prefetch / (work + round_trip), scenario.workers / work)


def simulate(scenario: InflightScenario, prefetch: int, round_trip: float, slack: float = 0.0) -> dict[str, float]:
    """SimPy: the broker keeps ``prefetch`` messages out; each travels r/2, waits for one of ``workers``,
    is worked on for ``work`` + ``slack``, and its ack travels r/2 before the broker sends the next one."""
    work = scenario.work + non_negative("slack", slack)
    env = simpy.Environment()
    workers = simpy.Resource(env, capacity=scenario.workers)
    left = [scenario.messages]
    inside: list[float] = []

    def slot():
        while left[0] > 0:
            left[0] -= 1
            yield env.timeout(round_trip / 2)
            arrived = env.now
            with workers.request() as turn:
                yield turn
                yield env.timeout(work)
            inside.append(env.now - arrived)
            yield env.timeout(round_trip / 2)

    for _ in range(prefetch):
        env.process(slot())
    env.run()
    return {"throughput": scenario.messages / env.now, "in_consumer": sum(inside) / len(inside)}


async def live(
    lab: Any,
    scenario: InflightScenario,
    prefetch: int,
    queue: str,
    *,
    amqp_url: str | None = None,
    timeout: float = 30.0,
) -> dict:
    """Fill ``queue`` with ``messages`` messages, drain it with a consumer of this prefetch and ``workers``
    parallel workers, and return its throughput (msg/s) and mean time in the consumer (s). ``amqp_url``
    picks another broker than the lab's (e.g. the embedded one next to RabbitMQ, to draw both)."""
    integer("prefetch", prefetch, 1)
    url = amqp_url or lab.amqp_url
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await declare_run_queue(channel, queue)
        await asyncio.gather(*(channel.basic_publish(b"x", routing_key=queue) for _ in range(scenario.messages)))
        consumer = await lab.start(
            Consumer(
                url,
                queue,
                work_time=scenario.work,
                prefetch=prefetch,
                concurrency=scenario.workers,
                declare=False,
                name=f"plateau-p{prefetch}",
            )
        )
        try:
            await wait_until(
                lambda: consumer.processed >= scenario.messages,
                timeout=timeout,
                what=lambda: f"prefetch {prefetch}: {consumer.processed} of {scenario.messages} acks",
            )
            records = list(consumer.records)
        finally:
            await lab.remove(consumer)
        await channel.queue_delete(queue)
    finally:
        await connection.close()
    first = min(r.info["received"] for r in records)
    last = max(r.end for r in records)
    return {
        "throughput": len(records) / (last - first),
        "in_consumer": sum(r.end - r.info["received"] for r in records) / len(records),
    }
