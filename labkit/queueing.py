"""A live M/M/c queue: Poisson publishes into a broker queue, served by c workers, every wait measured.

Why: chapter 4 lays the M/M/c formulas (:func:`labkit.theory.mmc_wait`, Erlang C) over a real queue,
and a fair comparison needs the experiment to be exactly what the formulas assume, built from real
parts: seeded Poisson arrivals (open-loop publishes with :mod:`labkit.load`), exponential work times,
and ``c`` servers sharing one first-come-first-served line (one consumer working on ``c`` messages at a
time, with an unlimited prefetch so the line forms in front of the servers, not behind a broker round
trip per message).

Two things make a short live run differ from the textbook, and this module measures both instead of
hiding them:

- a loaded event loop stretches every sleep a little, so the servers are slower than the nominal
  ``service_time``. :attr:`QueueRun.predicted_wait` evaluates the formula at the *measured* arrival
  and service rates (λ̂, μ̂): it tests the queueing, not the timer accuracy;
- the mean wait of a busy queue converges slowly (successive waits are strongly correlated): at
  ρ = 0.6 one server needs about 5,000 messages for ±15 % nineteen times out of twenty.
  :meth:`QueueRun.wait_halfwidth` is the batch-means 95 % half-width from the run itself
  (Law and Kelton, *Simulation Modeling and Analysis*, §9.5.3), so a reader sees how much of a
  difference is noise. The probability of waiting at all (:attr:`QueueRun.wait_probability`, Erlang C
  itself) settles much sooner, which makes it the quantity a short run can check.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit import load, theory
from labkit._validate import integer, positive
from labkit.lifecycle import wait_until
from labkit.metrics import Record

if TYPE_CHECKING:
    from labkit.lab import Lab

__all__ = ["WAITED", "QueueRun", "drain", "mmc_experiment"]

#: A message "waited" if a server took it more than this long after it arrived (s). A message that finds
#: a free server starts within microseconds: the consumer takes the slot without yielding to the loop.
WAITED = 1e-4

#: Student t quantiles t(0.975, k - 1) for k batches, for the batch-means half-width.
_T975 = {5: 2.776, 10: 2.262, 20: 2.093}


@dataclass
class QueueRun:
    """What one M/M/c run measured: one record per message, in arrival order.

    Each record's ``scheduled`` is the publish time, ``info["received"]`` the arrival at the consumer,
    ``start``/``end`` the work; the wait in line is ``start - received``.
    """

    servers: int
    offered_rate: float
    service_time: float
    records: list[Record]

    @property
    def n(self) -> int:
        return len(self.records)

    def waits(self) -> list[float]:
        """Seconds each message waited for a free server, in arrival order."""
        return [r.start - r.info["received"] for r in self.records]

    @property
    def arrival_rate(self) -> float:
        """Measured λ̂ (messages per second) over the span of the arrivals."""
        times = [r.info["received"] for r in self.records]
        span = max(times) - min(times)
        return (len(times) - 1) / span if span > 0 else math.nan

    @property
    def service_rate(self) -> float:
        """Measured μ̂ per server: 1 / mean work time."""
        return 1.0 / statistics.fmean(r.end - r.start for r in self.records)

    @property
    def utilization(self) -> float:
        """Measured ρ̂ = λ̂ / (c μ̂)."""
        return self.arrival_rate / (self.servers * self.service_rate)

    @property
    def mean_wait(self) -> float:
        """Measured mean wait in line W_q (s)."""
        return statistics.fmean(self.waits())

    @property
    def wait_probability(self) -> float:
        """Measured fraction of messages that found every server busy (the quantity Erlang C predicts)."""
        return sum(w > WAITED for w in self.waits()) / self.n

    @property
    def predicted_wait_probability(self) -> float:
        """Erlang C at the measured rates; 1 if the measured load is not below capacity."""
        if self.utilization >= 1:
            return 1.0
        return theory.erlang_c(self.servers, self.arrival_rate, self.service_rate)

    @property
    def predicted_wait(self) -> float:
        """Erlang C mean wait at the measured rates (s); inf if the measured load is not below capacity."""
        if self.utilization >= 1:
            return math.inf
        return theory.mmc_wait(self.servers, self.arrival_rate, self.service_rate)

    @property
    def nominal_wait(self) -> float:
        """Erlang C mean wait at the configured rates (s)."""
        return theory.mmc_wait(self.servers, self.offered_rate, 1.0 / self.service_time)

    def wait_halfwidth(self, batches: int = 5) -> float:
        """95 % half-width of the mean wait by batch means (``batches`` of consecutive messages)."""
        if batches not in _T975:
            raise ValueError(f"batches must be one of {sorted(_T975)}, got {batches!r}")
        waits = self.waits()
        size = len(waits) // batches
        if size < 2:
            return math.inf
        means = [statistics.fmean(waits[k * size : (k + 1) * size]) for k in range(batches)]
        return _T975[batches] * statistics.stdev(means) / math.sqrt(batches)

    def summary(self) -> dict[str, float]:
        """The headline numbers (rates per second, waits in milliseconds)."""
        return {
            "servers": self.servers,
            "n": self.n,
            "rho": self.utilization,
            "arrival_rate": self.arrival_rate,
            "service_rate": self.service_rate,
            "wait_probability": self.wait_probability,
            "erlang_c": self.predicted_wait_probability,
            "mean_wait_ms": self.mean_wait * 1e3,
            "predicted_wait_ms": self.predicted_wait * 1e3,
            "halfwidth_ms": self.wait_halfwidth() * 1e3,
        }


async def mmc_experiment(
    lab,
    servers: int,
    utilization: float,
    service_time: float,
    duration: float,
    *,
    seed: int = 0,
    progress: bool | None = True,
    drain_timeout: float = 30.0,
) -> QueueRun:
    """Run an M/M/``servers`` queue at ``utilization`` ρ = λ/(cμ) for ``duration`` s of arrivals.

    ``service_time`` is the mean (exponential) work time in seconds; λ = ρ·c/service_time. Uses a fresh
    queue on ``lab``'s broker and removes its consumer and queue afterwards. Runs of different settings
    can go concurrently (``asyncio.gather``); each has its own queue and consumer.

    Runs with the same ``seed`` share their random numbers (common random numbers, Law and Kelton §11.2):
    the same arrivals, closer together at a higher rate, and the same work times. Compared with each
    other, they then differ by their setting, not by luck: the mean waits of two 20-second runs at
    ρ = 0.3 and 0.6 (theory: 3.5 times apart) came out less than twice apart in 5.2 % of 10,000 replays
    of the M/M/1 recursion with independent draws, and in 0.22 % with shared ones.
    """
    integer("servers", servers, 1)
    positive("utilization", utilization)
    if utilization >= 1:
        raise ValueError(f"utilization must be < 1 for a stable queue, got {utilization!r}")
    positive("service_time", service_time)
    positive("duration", duration)
    positive("drain_timeout", drain_timeout)
    rate = utilization * servers / service_time
    queue = f"mmc-{servers}-{uuid.uuid4().hex[:10]}"
    name = f"mmc c={servers} rho={utilization:g} s={service_time:g} seed={seed}"
    worker = await lab.consumer(
        queue,
        work_time=service_time,
        distribution="exponential",
        prefetch=0,
        concurrency=servers,
        name=name,
        draws=f"mmc s={service_time:g} seed={seed}",  # the same work times for every setting of one seed
    )
    try:
        sent = await load.open_loop(
            lambda i: lab.publish(queue, b""), rate=rate, duration=duration, seed=seed, progress=progress
        )
        published = sum(r.ok for r in sent)
        await wait_until(
            lambda: worker.processed >= published,
            timeout=drain_timeout,
            interval=0.02,
            what=lambda: f"{name}: {published} processed ({worker.processed} so far)",
        )
        records = sorted(worker.records, key=lambda r: r.info["received"])
    finally:
        await lab.remove(worker)
        await lab.delete_queue(queue)
    return QueueRun(servers, rate, service_time, records)


async def drain(
    lab: Lab,
    queue: str,
    work_times: Sequence[float],
    messages: int,
    prefetch: int,
    *,
    backlog_first: bool = False,
    concurrency: int = 1,
) -> dict[str, Any]:
    """One consumer per work time on ``queue``, ``messages`` published: the time until all are done.

    ``backlog_first``: publish before the consumers start (time only the draining); else publish to
    consumers that are already waiting, so the broker deals the messages out among them. Returns
    ``{"throughput", "elapsed", "shares"}``: messages per second from the first work started to the last
    done, that time, and each consumer's share. Consumers and queue are removed afterwards.
    """
    integer("messages", messages, 1)
    integer("prefetch", prefetch, 1)
    if not work_times:
        raise ValueError("work_times must name at least one consumer's work time")
    orders = [lab.publish(queue, b"order") for _ in range(messages)]
    if backlog_first:
        await lab.declare_queue(queue)
        await asyncio.gather(*orders)
    consumers = [
        await lab.consumer(queue, work_time=w, prefetch=prefetch, concurrency=concurrency, name=f"consumer {k}")
        for k, w in enumerate(work_times)
    ]
    if not backlog_first:
        await asyncio.gather(*orders)
    await wait_until(
        lambda: sum(c.processed for c in consumers) >= messages, timeout=30, what=f"{messages} messages processed"
    )
    records = [r for c in consumers for r in c.records]
    elapsed = max(r.end for r in records) - min(r.start for r in records)  # first work to last done
    shares = [c.processed / messages for c in consumers]
    for c in consumers:
        await lab.remove(c)
    await lab.delete_queue(queue)
    return {"throughput": messages / elapsed, "elapsed": elapsed, "shares": shares}
