"""Exponential backoff and jitter (Brooker, AWS Architecture Blog 2015), simulated and live.

Why: clients that collide on an optimistic-concurrency write and back off *identically* collide again;
jitter spreads them out. Brooker's post measured, with a small simulator, the total write calls and the time
until every client has written once, for no jitter and three jittered schedules: jitter cuts both.

One :class:`OccScenario` drives a SimPy model of his scenario (each client reads the row's version, writes it
back conditionally, and on a conflict sleeps the next delay of its schedule and tries again) and a live run
of the same clients against a lab service holding the row (:class:`OccRow`). The schedules are
:func:`labkit.theory.backoff_schedule`'s, shifted to start at 2·base as Brooker's do (his first retry
sleeps ``expo(1)``); decorrelated jitter starts from ``base`` in both.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import simpy

from labkit import theory
from labkit._validate import integer, non_negative, one_of, positive

__all__ = ["KINDS", "LABELS", "OccScenario", "OccRow", "lockstep_calls", "schedule", "simulate", "live"]

#: The four schedules the chapter compares, and their names in Brooker's post.
KINDS = ("capped", "full_jitter", "equal_jitter", "decorrelated_jitter")
LABELS = {
    "capped": "no jitter",
    "full_jitter": "full jitter",
    "equal_jitter": "equal jitter",
    "decorrelated_jitter": "decorrelated jitter",
    "none": "no backoff",
}


@dataclass(frozen=True)
class OccScenario:
    """``clients`` writers of one row; ``base``/``cap`` of the backoff (s); ``delay``: seconds the row's
    service takes before it answers (the controlled part of the network delay); ``runs``: simulated runs
    to average."""

    clients: int = 20
    base: float = 0.001
    cap: float = 0.4
    delay: float = 0.002
    runs: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        integer("clients", self.clients, 1)
        integer("runs", self.runs, 1)
        positive("base", self.base)
        positive("cap", self.cap)
        non_negative("delay", self.delay)


def lockstep_calls(clients: int) -> int:
    """Write calls when every client backs off identically and stays in lock-step: each round all remaining
    clients write and one wins, so N + (N - 1) + ... + 1 = N(N + 1)/2 -- the worst case, and what
    no-jitter clients that share one event loop do."""
    n = integer("clients", clients, 1)
    return n * (n + 1) // 2


def schedule(kind: str, scenario: OccScenario, seed: int) -> list[float]:
    """One client's sleeps before retries 1, 2, ... (enough for every client to have to wait its turn)."""
    one_of("kind", kind, KINDS)
    base = scenario.base if kind == "decorrelated_jitter" else 2 * scenario.base
    return theory.backoff_schedule(kind, base, scenario.cap, attempts=scenario.clients + 8, seed=seed)


def simulate(kind: str, scenario: OccScenario, hops: tuple[float, ...]) -> dict[str, float]:
    """Mean write calls and completion time (s) over ``runs`` SimPy runs; a message takes half a measured
    hop, and a request ``delay`` more (as the live service sleeps before answering)."""
    rng = random.Random(scenario.seed)
    calls = elapsed = 0.0
    for _ in range(scenario.runs):
        env = simpy.Environment()
        row = {"version": 0, "writes": 0}

        def one_way(request: bool) -> float:
            return rng.choice(hops) / 2 + (scenario.delay if request else 0.0)

        def writer(env: simpy.Environment, row: dict[str, int], delays: list[float]):
            attempt = 0
            while True:
                yield env.timeout(one_way(True))
                seen = row["version"]
                yield env.timeout(one_way(False) + one_way(True))
                row["writes"] += 1
                won = row["version"] == seen
                if won:
                    row["version"] += 1
                yield env.timeout(one_way(False))
                if won:
                    return
                yield env.timeout(delays[min(attempt, len(delays) - 1)])
                attempt += 1

        for _ in range(scenario.clients):
            env.process(writer(env, row, schedule(kind, scenario, rng.getrandbits(32))))
        env.run()
        calls += row["writes"]
        elapsed += env.now
    return {"calls": calls / scenario.runs, "time": elapsed / scenario.runs}


class OccRow:
    """A service ``handler`` holding one versioned row: ``{"op": "read"}`` returns its version;
    ``{"op": "write", "version": v}`` bumps it if v is current (``written`` true) and counts every write."""

    def __init__(self) -> None:
        self.version = 0
        self.writes = 0

    async def __call__(self, body: bytes) -> dict[str, Any]:
        request = json.loads(body)
        if request.get("op") == "read":
            return {"version": self.version}
        self.writes += 1
        written = request.get("version") == self.version
        self.version += written
        return {"written": written}


async def live(lab: Any, kind: str, scenario: OccScenario, runs: int = 3) -> dict[str, float]:
    """``clients`` writers against a fresh row service: mean write calls and seconds until all have written,
    over ``runs`` live runs.

    Why a mean: the schedules differ by a few milliseconds, and a loaded machine can pause the kernel's
    event loop for longer than that. One paused run wakes every jittered client at once (no jitter left)
    or breaks the lock-step of the unjittered ones. Beside six busy processes, full jitter's gain in calls
    fell to 1.03-1.06 in 2 of 35 single runs; the mean of three stayed at 1.37 or more in 8 of 8.
    """
    integer("runs", runs, 1)
    row = OccRow()  # its version carries over from run to run: only "still current?" matters
    service = await lab.service(f"occ-row-{kind}", service_time=scenario.delay, handler=row)
    rng = random.Random(scenario.seed)
    loop = asyncio.get_running_loop()

    async def writer(delays: list[float]) -> None:
        attempt = 0
        while True:
            version = (await lab.call(service, body=b'{"op": "read"}'))["version"]
            write = json.dumps({"op": "write", "version": version}).encode()
            if (await lab.call(service, body=write))["written"]:
                return
            await asyncio.sleep(delays[min(attempt, len(delays) - 1)])
            attempt += 1

    try:
        elapsed = 0.0
        for _ in range(runs):
            start = loop.time()
            await asyncio.gather(
                *(writer(schedule(kind, scenario, rng.getrandbits(32))) for _ in range(scenario.clients))
            )
            elapsed += loop.time() - start
        return {"calls": row.writes / runs, "time": elapsed / runs}
    finally:
        await lab.remove(service)
