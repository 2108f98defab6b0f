"""Retries, retry budgets and the retry storm of layered retries (Google SRE book, chapters 21 and 22).

Why: when a backend is down, every retry is extra load on it exactly when it can least take it. "Handling
Overload" gives the numbers: with up to 3 attempts per request the load on a failing backend approaches
3x; a per-client retry budget (retry only while retries are under 10 % of requests) holds it near 1.1x.
"Addressing Cascading Failures" adds the layers: if three layers each make 4 attempts (3 retries), one
user request becomes 4³ = 64 attempts on the bottom service.

The same :class:`Retrier` (attempts and an optional :class:`RetryBudget`) makes the decisions in the live run
(lab services, a failing backend) and in the SimPy simulation; the closed forms are
:func:`labkit.theory.retry_amplification` and :func:`budget_amplification`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import simpy

from labkit import theory
from labkit._validate import integer, positive, probability

__all__ = [
    "PUBLISHED",
    "RetryBudget",
    "Retrier",
    "BudgetScenario",
    "budget_amplification",
    "chain_amplification",
    "live_load",
    "simulate_load",
    "start_chain",
    "live_chain",
    "simulate_chain",
]

#: The book's figures: load on a failing backend with 3 attempts, with a 10 % budget, and attempts
#: reaching the bottom of three layers that each make 4 attempts.
PUBLISHED = {
    "attempts": 3,
    "load_no_budget": 3.0,
    "budget": 0.1,
    "load_budget": 1.1,
    "layers": 3,
    "layer_attempts": 4,
    "storm": 64,
}


class RetryBudget:
    """Allow a retry only while retries stay under ``ratio`` of the requests this client has made."""

    def __init__(self, ratio: float = 0.1):
        self.ratio = positive("ratio", ratio)
        self.requests = self.retries = 0

    def request(self) -> None:
        self.requests += 1

    def allow(self) -> bool:
        """Take a retry from the budget if there is one left."""
        if self.retries + 1 > self.ratio * self.requests:
            return False
        self.retries += 1
        return True


class Retrier:
    """Up to ``attempts`` tries of one call, stopping at the first success; with a ``budget``, a retry also
    needs the budget's consent. Counts the calls it made."""

    def __init__(self, attempts: int = 3, budget: RetryBudget | None = None):
        self.attempts = integer("attempts", attempts, 1)
        self.budget = budget
        self.calls = 0

    def retry_after(self, tries: int) -> bool:
        """After ``tries`` failed tries, may another go out?"""
        return tries < self.attempts and (self.budget is None or self.budget.allow())

    async def call(self, op: Callable[[], Awaitable[Any]]) -> Any:
        """``await op()`` with retries; the last failure is raised."""
        if self.budget is not None:
            self.budget.request()
        tries = 0
        while True:
            tries += 1
            self.calls += 1
            try:
                return await op()
            except Exception:
                if not self.retry_after(tries):
                    raise


@dataclass(frozen=True)
class BudgetScenario:
    """``failure``: probability a backend call fails; ``attempts`` per request; ``budget`` ratio;
    ``requests`` per client; ``clients``; for the chain: ``layers`` each making ``retries`` + 1 attempts,
    and ``chain_requests`` top-level requests."""

    failure: float = 1.0
    attempts: int = 3
    budget: float = 0.1
    requests: int = 100
    clients: int = 4
    layers: int = 3
    retries: int = 3
    chain_requests: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        probability("failure", self.failure)
        positive("budget", self.budget)
        for name in ("attempts", "requests", "clients", "layers", "chain_requests"):
            integer(name, getattr(self, name), 1)
        integer("retries", self.retries, 0)


def budget_amplification(failure: float, attempts: int, budget: float | None) -> float:
    """Expected backend calls per request: 1 + f + ... + f^(attempts-1) without a budget; with one, retries
    are capped at ``budget`` per request, so min(that, 1 + budget)."""
    plain = theory.retry_amplification(failure, attempts - 1)
    return plain if budget is None else min(plain, 1 + budget)


def chain_amplification(retries: int, layers: int, budget: float | None) -> float:
    """Bottom calls per request with the bottom down: (retries + 1)^layers, or with a budget at every layer
    (1 + budget)^layers in the long run (each layer adds at most ``budget`` retries per call it gets)."""
    integer("layers", layers, 1)
    return theory.retry_amplification(1.0, retries, layers) if budget is None else (1 + budget) ** layers


async def live_load(lab: Any, scenario: BudgetScenario, budget: bool) -> float:
    """Calls reaching a backend that fails with probability ``failure`` per request sent by ``clients``
    clients (each ``requests`` requests, its own budget), as a multiple of the requests."""
    backend = await lab.service(
        f"backend-{'budget' if budget else 'plain'}", service_time=0.0, failure_rate=scenario.failure
    )
    try:

        async def client() -> None:
            retrier = Retrier(scenario.attempts, RetryBudget(scenario.budget) if budget else None)
            for _ in range(scenario.requests):
                try:
                    await retrier.call(lambda: lab.call(backend))
                except Exception:
                    pass  # the request failed: what counts here is the load it made

        await asyncio.gather(*(client() for _ in range(scenario.clients)))
        return len(backend.records) / (scenario.requests * scenario.clients)
    finally:
        await lab.remove(backend)


def simulate_load(scenario: BudgetScenario, budget: bool) -> float:
    """The same clients in SimPy: each call takes one time unit and fails with probability ``failure``."""
    rng = random.Random(scenario.seed)
    env = simpy.Environment()
    calls = 0

    def client():
        nonlocal calls
        retrier = Retrier(scenario.attempts, RetryBudget(scenario.budget) if budget else None)
        for _ in range(scenario.requests):
            if retrier.budget is not None:
                retrier.budget.request()
            tries = 0
            while True:
                tries += 1
                calls += 1
                yield env.timeout(1)
                if rng.random() >= scenario.failure or not retrier.retry_after(tries):
                    break

    for _ in range(scenario.clients):
        env.process(client())
    env.run()
    return calls / (scenario.requests * scenario.clients)


async def start_chain(lab: Any, scenario: BudgetScenario, budget: bool = False) -> tuple[Any, Any]:
    """A chain of ``layers`` lab services above a bottom service that is down (every call fails). Each layer
    retries its downstream ``retries`` times (with a budget: while its retries stay under ``budget``).
    Returns (top, bottom)."""
    bottom = await lab.service("storage", service_time=0.0, failure_rate=1.0)
    below = bottom
    for k in range(scenario.layers, 0, -1):
        name = f"layer-{k}"
        if budget:
            below = await lab.service(
                name,
                service_time=0.0,
                handler=_Forward(lab, below, Retrier(scenario.retries + 1, RetryBudget(scenario.budget))),
            )
        else:
            below = await lab.service(
                name,
                service_time=0.0,
                downstream=[below],
                retries=scenario.retries,
                backoff="capped",
                backoff_base=0.0005,
                backoff_cap=0.002,
            )
    return below, bottom


class _Forward:
    """A service handler that calls one downstream through a :class:`Retrier` (failing if it fails)."""

    def __init__(self, lab: Any, target: Any, retrier: Retrier):
        self.lab, self.target, self.retrier = lab, target, retrier

    async def __call__(self, body: bytes) -> dict[str, Any]:
        await self.retrier.call(lambda: self.lab.call(self.target))
        return {}


async def live_chain(lab: Any, top: Any, bottom: Any, requests: int) -> float:
    """Send ``requests`` requests to the top of the chain (no client retries); bottom calls per request."""
    bottom.reset_records()
    for _ in range(requests):
        try:
            await lab.call(top)
        except Exception:
            pass  # every request fails: the bottom is down
    return len(bottom.records) / requests


def simulate_chain(scenario: BudgetScenario, requests: int, budget: bool = False) -> float:
    """The chain in SimPy: a call to layer k waits for layer k+1's answer, retrying as the live layers do;
    the bottom fails every call. Returns bottom calls per request."""
    env = simpy.Environment()
    retriers = [
        Retrier(scenario.retries + 1, RetryBudget(scenario.budget) if budget else None) for _ in range(scenario.layers)
    ]
    bottom_calls = 0

    def call(depth: int):
        nonlocal bottom_calls
        yield env.timeout(1)
        if depth == scenario.layers:
            bottom_calls += 1
            return False
        retrier = retriers[depth]
        if retrier.budget is not None:
            retrier.budget.request()
        tries = 0
        while True:
            tries += 1
            ok = yield env.process(call(depth + 1))
            if ok or not retrier.retry_after(tries):
                return ok

    def client():
        for _ in range(requests):
            yield env.process(call(0))

    env.process(client())
    env.run()
    return bottom_calls / requests
