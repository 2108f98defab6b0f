"""Brooker's backoff simulator, as published with "Exponential Backoff And Jitter" (AWS Architecture Blog,
2015): github.com/aws-samples/aws-arch-backoff-simulator, src/backoff_simulator.py at commit 66cb169.

Copyright Amazon.com, Inc. or its affiliates; licensed under the Apache License, Version 2.0. Modified:
ported to Python 3 (``xrange`` -> ``range``), the random generator and the parameters (clients, runs,
network delay, base, cap) passed in instead of fixed, results returned instead of written to CSV files,
and the per-write timestamp log left out. The model is unchanged: N clients each read the version of one
row and write it back conditionally (optimistic concurrency); a failed write backs off, then reads again.

Why it is here: the chapter compares its own SimPy model and its live run with the published simulator,
run with the published parameters (network delay |N(10, 2)| ms per message, base 5 ms, cap 2,000 ms).
"""

from __future__ import annotations

import heapq
import random

from labkit._validate import integer, one_of, positive

__all__ = ["KINDS", "PUBLISHED_PARAMETERS", "published_hops", "run"]

#: The published parameters (milliseconds) and sweep (clients 10, 20, ..., 190; 100 runs each).
PUBLISHED_PARAMETERS = {
    "net_mean": 10.0,
    "net_sd": 2.0,
    "base": 5.0,
    "cap": 2000.0,
    "runs": 100,
    "clients": tuple(range(10, 200, 10)),
}


def published_hops(n: int = 4000, seed: int = 0) -> tuple[float, ...]:
    """Round trips (seconds) of the published network, two messages of |N(10 ms, 2 ms)| each: what
    :func:`labkit.classics.backoff.simulate` draws from to model the published scenario."""
    rng = random.Random(seed)
    return tuple(
        (abs(rng.normalvariate(10.0, 2.0)) + abs(rng.normalvariate(10.0, 2.0))) / 1e3 for _ in range(integer("n", n, 1))
    )


class _Net:
    def __init__(self, mean, sd, rng):
        self.mean, self.sd, self.rng = mean, sd, rng

    def delay(self):
        return abs(self.rng.normalvariate(self.mean, self.sd))


class _Backoff:
    def __init__(self, base, cap, rng):
        self.base, self.cap, self.rng = base, cap, rng
        self.sleep = base

    def expo(self, n):
        return min(self.cap, pow(2, n) * self.base)


class _NoBackoff(_Backoff):
    def backoff(self, n):
        return 0


class _ExpoBackoff(_Backoff):
    def backoff(self, n):
        return self.expo(n)


class _ExpoBackoffEqualJitter(_Backoff):
    def backoff(self, n):
        v = self.expo(n)
        return v / 2 + self.rng.uniform(0, v / 2)


class _ExpoBackoffFullJitter(_Backoff):
    def backoff(self, n):
        v = self.expo(n)
        return self.rng.uniform(0, v)


class _ExpoBackoffDecorr(_Backoff):
    def backoff(self, n):
        self.sleep = min(self.cap, self.rng.uniform(self.base, self.sleep * 3))
        return self.sleep


#: Our names (those of :data:`labkit.theory.BACKOFF_KINDS`, plus "none") -> the simulator's classes.
KINDS = {
    "none": _NoBackoff,
    "capped": _ExpoBackoff,
    "full_jitter": _ExpoBackoffFullJitter,
    "equal_jitter": _ExpoBackoffEqualJitter,
    "decorrelated_jitter": _ExpoBackoffDecorr,
}


class _Stats:
    def __init__(self):
        self.failures = 0
        self.calls = 0


def _msg(tm, send_to, reply_to, payload):
    assert tm >= 0
    assert send_to is not None
    return (tm, id(send_to), send_to, reply_to, payload)  # id(): ties never compare bound methods


class _OccServer:
    def __init__(self, net, stats):
        self.version = 0
        self.net, self.stats = net, stats

    def write(self, tm, request):
        success = False
        self.stats.calls += 1
        if request[4] == self.version:
            self.version += 1
            success = True
        else:
            self.stats.failures += 1
        return _msg(tm + self.net.delay(), request[3], None, success)

    def read(self, tm, request):
        return _msg(tm + self.net.delay(), request[3], None, self.version)


class _OccClient:
    def __init__(self, server, net, backoff):
        self.server, self.net, self.backoff = server, net, backoff
        self.attempt = 0

    def start(self, tm):
        return _msg(tm + self.net.delay(), self.server.read, self.read_rsp, None)

    def read_rsp(self, tm, request):
        return _msg(tm + self.net.delay(), self.server.write, self.write_rsp, request[4])

    def write_rsp(self, tm, request):
        if not request[4]:
            self.attempt += 1
            return _msg(
                tm + self.net.delay() + self.backoff.backoff(self.attempt), self.server.read, self.read_rsp, None
            )
        return None


def _run_sim(queue):
    tm = 0
    while queue:
        msg = heapq.heappop(queue)
        assert msg[0] >= tm
        tm = msg[0]
        next_msg = msg[2](tm, msg)
        if next_msg is not None:
            heapq.heappush(queue, next_msg)
    return tm


def run(
    kind: str,
    clients: int,
    runs: int = 100,
    *,
    net_mean: float = 10.0,
    net_sd: float = 2.0,
    base: float = 5.0,
    cap: float = 2000.0,
    seed: int = 0,
) -> dict[str, float]:
    """Mean completion time (ms) and mean write calls per run of ``clients`` writers, as the published
    ``run()`` computes them for one row of its CSV."""
    cls = KINDS[one_of("kind", kind, tuple(KINDS))]
    integer("clients", clients, 1)
    integer("runs", runs, 1)
    for name, value in (("net_mean", net_mean), ("base", base), ("cap", cap)):
        positive(name, value)
    rng = random.Random(seed)
    stats, tm = _Stats(), 0.0
    for _ in range(runs):
        net = _Net(net_mean, net_sd, rng)
        server = _OccServer(net, stats)
        queue: list[tuple] = []  # the simulation's event heap of _msg tuples
        for _ in range(clients):
            heapq.heappush(queue, _OccClient(server, net, cls(base, cap, rng)).start(0))
        tm += _run_sim(queue)
    return {"time": tm / runs, "calls": stats.calls / runs}
