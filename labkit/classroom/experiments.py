"""The course's experiments with the class as the system, run from the instructor's kernel.

Why here and not in the notebook: each experiment is "command the learners, publish, watch the reports,
count" and must end in numbers a check can compare inside one run (no absolute times). Every function
returns a plain result object the dashboard draws and the notebook asserts on; ``sample`` is called with
(t, depth) while the work queue is watched, so a live dashboard can follow along.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pamqp.commands import Basic

from .. import theory
from ..lifecycle import started, wait_until
from . import topology as t
from .instructor import Classroom


@dataclass
class WorkRun:
    """One batch of work through the class: who did what, when, and the work queue's depth over time."""

    sent: int
    started: float
    published: float = 0.0  # seconds after start when the last message was confirmed (the spike's length)
    done: dict[str, str] = field(default_factory=dict)  # message id -> learner who reported it first
    times: list[float] = field(default_factory=list)  # seconds after start of each first completion
    duplicates: int = 0
    redelivered: int = 0
    depth: list[tuple[float, int]] = field(default_factory=list)

    @property
    def per_learner(self) -> Counter:
        return Counter(self.done.values())

    @property
    def lost(self) -> int:
        return self.sent - len(self.done)

    @property
    def makespan(self) -> float:
        return max(self.times) if self.times else float("nan")

    def capacity(self) -> float:
        """Messages per second while the backlog waited: the middle 80 % of completions (start-up and the
        last stragglers left out)."""
        times = sorted(self.times)
        lo, hi = times[len(times) // 10], times[(9 * len(times)) // 10 - 1]
        return (0.8 * len(times)) / (hi - lo) if hi > lo else float("nan")


async def run_work(
    classroom: Classroom,
    count: int,
    prefetch: int = 1,
    timeout: float = 60.0,
    during: Callable[[WorkRun], Any] | None = None,
    sample: Callable | None = None,
    learners: list[str] | None = None,
) -> WorkRun:
    """Learners consume ``class.work`` with ``prefetch``; the instructor publishes ``count`` messages at once
    and waits until every one is reported done. ``during(run)`` is awaited as a task alongside (faults)."""
    names = learners or classroom.present
    working: set[str] = set()

    def on_working(report: dict) -> None:
        if report.get("t") == "working":
            working.add(report["name"])

    classroom.listeners.append(on_working)
    await classroom.command("work", to=names, prefetch=prefetch)
    await wait_until(lambda: working >= set(names), timeout=20.0, what="every learner consuming")
    classroom.listeners.remove(on_working)
    run = WorkRun(count, time.monotonic())
    tag = f"w{int(run.started * 1000) % 10**8}"

    def on_done(report: dict) -> None:
        if report.get("t") != "done" or not str(report.get("id", "")).startswith(tag):
            return
        run.redelivered += bool(report.get("redelivered"))
        if report["id"] in run.done:
            run.duplicates += 1
        else:
            run.done[report["id"]] = report["name"]
            run.times.append(time.monotonic() - run.started)

    classroom.listeners.append(on_done)
    try:
        persistent = Basic.Properties(delivery_mode=2)
        await asyncio.gather(
            *(
                started(classroom.channel, "the classroom").basic_publish(
                    json.dumps({"id": f"{tag}-{k}"}).encode(), routing_key=t.WORK, properties=persistent
                )
                for k in range(count)
            )
        )  # a spike: all at once, confirmed
        run.published = time.monotonic() - run.started
        extra = asyncio.ensure_future(during(run)) if during else None

        async def sampled_until_done() -> bool:
            now = time.monotonic() - run.started
            run.depth.append((now, await classroom.depth()))
            if sample:
                sample(now, run.depth[-1][1])
            return len(run.done) >= count

        await wait_until(
            sampled_until_done,
            timeout=timeout,
            interval=0.05,
            what=lambda: f"all {count} messages done ({len(run.done)} so far)",
        )
        if extra:
            await extra
    finally:
        classroom.listeners.remove(on_done)
        await classroom.command("idle", to=names)
    return run


def fluid(run: WorkRun, capacity: float | None = None) -> theory.Backlog:
    """The fluid model of the spike (all ``sent`` at once) drained at the class's measured capacity."""
    burst = max(1e-3, run.published)
    capacity = capacity or run.capacity()
    return theory.fluid_backlog(
        [(0.0, burst, run.sent / burst), (burst, burst + 10 * run.sent / capacity, 0.0)], capacity
    )


def predicted_finish(run: WorkRun, capacity: float | None = None) -> float:
    """When the fluid model says the last message is done: when the backlog drains, or when the spike
    ends if the class drained it as fast as it came (a large class can outrun one publisher)."""
    return max(fluid(run, capacity).drain_time, run.published)


@dataclass
class FanoutRun:
    sent: int
    lag: dict[str, list[float]] = field(default_factory=dict)  # learner -> seconds, publish to report received

    @property
    def missing(self) -> int:
        return sum(self.sent - len(v) for v in self.lag.values())


async def fanout(classroom: Classroom, count: int = 20, interval: float = 0.02, timeout: float = 30.0) -> FanoutRun:
    """Each learner subscribes its own queue to ``class.fanout``; the instructor publishes ``count`` events.
    Lag is measured on the instructor's clock (publish → the learner's report arrives), so learners'
    clocks never matter."""
    names = set(classroom.present)
    subscribed: set[str] = set()
    run = FanoutRun(count, {name: [] for name in names})
    sent_at: dict[str, float] = {}

    def on_report(report: dict) -> None:
        if report.get("t") == "subscribed":
            subscribed.add(report["name"])
        elif report.get("t") == "got" and report.get("id") in sent_at and report["name"] in run.lag:
            run.lag[report["name"]].append(report["recv"] - sent_at[report["id"]])

    classroom.listeners.append(on_report)
    try:
        await classroom.command("subscribe")
        await wait_until(lambda: subscribed >= names, timeout=20.0, what="every learner subscribing")
        for k in range(count):
            event = f"f{k}-{time.monotonic_ns() % 10**9}"
            sent_at[event] = time.time()
            await started(classroom.channel, "the classroom").basic_publish(
                json.dumps({"id": event}).encode(), exchange=t.FANOUT
            )
            await asyncio.sleep(interval)
        await wait_until(lambda: run.missing == 0, timeout=timeout, what="every event reaching every learner")
    finally:
        classroom.listeners.remove(on_report)
    return run


@dataclass
class CouplingRun:
    calls: dict[str, list[dict]] = field(default_factory=dict)  # mode -> call reports
    outage: tuple[float, float] = (0.0, 0.0)  # seconds after start, instructor's clock
    processed: Counter = field(default_factory=Counter)  # mode -> calls the service handled

    def success(self, mode: str, during_outage: bool) -> float:
        """Share of calls that succeeded, among those sent during (or outside) the outage."""
        a, b = self.outage
        picked = [c for c in self.calls.get(mode, []) if (a <= c["t_sent"] < b) == during_outage]
        return sum(c["ok"] for c in picked) / len(picked) if picked else float("nan")


async def temporal_coupling(
    classroom: Classroom,
    count: int = 30,
    interval: float = 0.05,
    outage: tuple[float, float] = (0.4, 1.4),
    timeout: float = 0.2,
) -> CouplingRun:
    """Learners call the instructor's service, first synchronously (request/reply, ``timeout``), then by
    queue (publish, confirmed); the service is down (its consumer cancelled) from ``outage[0]`` to
    ``outage[1]`` seconds into each phase. Queued calls wait and are all handled after recovery."""
    run = CouplingRun(outage=outage)
    names = set(classroom.present)
    ch = await started(classroom.conn, "the classroom").channel(publisher_confirms=False)

    async def serve(message: Any) -> None:
        props = message.header.properties
        run.processed[json.loads(message.body).get("mode", "?")] += 1
        if props.reply_to:
            await ch.basic_publish(
                b"ok", routing_key=props.reply_to, properties=Basic.Properties(correlation_id=props.correlation_id)
            )
        await ch.basic_ack(message.delivery_tag)

    try:
        for mode in ("sync", "async"):
            reports: list[dict] = []
            start = time.time()

            def on_call(report: dict, reports: list = reports, start: float = start) -> None:
                if report.get("t") == "call":
                    reports.append({**report, "t_sent": report["sent"] - start})

            classroom.listeners.append(on_call)
            consumer = await ch.basic_consume(t.SERVICE, serve)
            await classroom.command("call", mode=mode, count=count, interval=interval, timeout=timeout)
            await asyncio.sleep(outage[0])
            await ch.basic_cancel(consumer.consumer_tag or "")  # the service goes down
            await asyncio.sleep(outage[1] - outage[0])
            consumer = await ch.basic_consume(t.SERVICE, serve)  # and comes back

            def every_call_reported(reports: list = reports) -> bool:
                return len(reports) >= count * len(names)

            await wait_until(every_call_reported, timeout=30.0, what=f"every {mode} call")
            if mode == "async":
                await wait_until(
                    lambda: run.processed["async"] >= count * len(names), timeout=30.0, what="every queued call handled"
                )
            await ch.basic_cancel(consumer.consumer_tag or "")
            classroom.listeners.remove(on_call)
            run.calls[mode] = reports
    finally:
        await ch.close()
    return run


async def killed_mid_run(
    classroom: Classroom,
    count: int,
    kill: Callable[[str], Any],
    victim: str | None = None,
    after: float = 0.3,
    prefetch: int = 10,
    **options: Any,
) -> tuple[WorkRun, str]:
    """Competing consumers with ``prefetch``; once ``after`` of the work is done, ``kill(victim)`` (a SIGKILL
    for a simulated learner, or ``crash`` for a real one): its unacked messages go to the others."""
    victim = victim or classroom.present[0]

    async def during(run: WorkRun) -> None:
        await wait_until(lambda: len(run.done) >= after * count, timeout=30.0, what="the first part of the work")
        result = kill(victim)
        if asyncio.iscoroutine(result):
            await result
        classroom.members[victim].present = False  # it will say no goodbye

    run = await run_work(classroom, count, prefetch=prefetch, during=during, **options)
    return run, victim


def share_spread(run: WorkRun, service_times: dict[str, float]) -> float:
    """How unequal the work was, weighted by speed: the correlation of work done with 1/service time (≈ 1:
    faster learners did proportionally more; ≈ 0 or below: work was dealt out regardless of speed)."""
    names = [n for n in service_times if n in run.per_learner]
    if len(names) < 3:
        return float("nan")
    done = [run.per_learner[n] for n in names]
    speed = [1 / service_times[n] for n in names]
    if len(set(done)) == 1:
        return 0.0
    return statistics.correlation(done, speed)
