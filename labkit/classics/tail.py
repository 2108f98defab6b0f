"""The tail at scale (Dean & Barroso, CACM 2013): fan-out makes rare hiccups common; hedging cuts them.

Why: a reply that is slow 1 % of the time is harmless alone, but a request that waits for 100 replies
waits for at least one slow one 1 - 0.99^100 = 63 % of the time. The paper's cure is the hedged request:
if the first copy is not back by the 95th-percentile wait, send a second copy and take whichever answers
first; the paper cut the 99.9th percentile from 1,800 ms to 74 ms for 2 % more requests.

One :class:`TailScenario` drives three things: the live run (lab services with a
:class:`labkit.fanout.Hiccup`), a SimPy simulation whose fast replies are drawn from the hop times the
calibration measured, and the closed forms below.
"""

from __future__ import annotations

import asyncio
import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import simpy

from labkit import theory
from labkit._validate import between, integer, positive, probability
from labkit.classics.calibrate import quantile_band
from labkit.fanout import Hiccup
from labkit.load import closed_loop
from labkit.metrics import percentile

__all__ = [
    "PUBLISHED",
    "TailScenario",
    "FanoutResult",
    "HedgeResult",
    "start_servers",
    "live_fanout",
    "live_hedging",
    "simulate_fanout",
    "simulate_hedging",
    "hedge_prediction",
    "reply_survival",
    "reduction_range",
]

#: What the paper reports: (per-reply slow probability, fan-out, fraction of requests slow) and the hedged
#: BigTable benchmark (p99.9 before and after, in seconds, and the extra requests sent).
PUBLISHED = {
    "p": 0.01,
    "fanout": 100,
    "slow_fraction": 0.63,
    "p999_before": 1.800,
    "p999_after": 0.074,
    "extra_requests": 0.02,
}


@dataclass(frozen=True)
class TailScenario:
    """``p``: chance a reply hiccups; ``slow``: how long a hiccup lasts (s); ``fanout``: replies one request
    waits for; ``requests``: fanned-out requests measured, ``parallel`` at a time; ``servers``: lab services the calls spread over;
    ``calls``: single calls per arm of the hedging experiment; ``hedge_at``: the percentile of the unhedged
    latency after which a hedge is sent; ``concurrency``: callers in the hedging experiment."""

    p: float = 0.01
    slow: float = 0.2
    fanout: int = 100
    requests: int = 40
    parallel: int = 4
    servers: int = 4
    calls: int = 1000
    hedge_at: float = 95.0
    concurrency: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        probability("p", self.p)
        positive("slow", self.slow)
        for name in ("fanout", "requests", "parallel", "servers", "calls", "concurrency"):
            integer(name, getattr(self, name), 1)
        between("hedge_at", self.hedge_at, 1, 99.9)

    @property
    def predicted_slow_fraction(self) -> float:
        """1 - (1 - p)^N: the closed form."""
        return theory.fanout_slow_probability(self.p, self.fanout)


@dataclass(frozen=True)
class FanoutResult:
    latencies: tuple[float, ...]  # seconds, one per fanned-out request
    hiccuped: tuple[bool, ...]  # whether any of its replies hiccuped

    def slow_fraction(self, threshold: float) -> float:
        """Fraction of requests slower than ``threshold`` seconds (what a user sees)."""
        return sum(t > threshold for t in self.latencies) / len(self.latencies)

    @property
    def hiccup_fraction(self) -> float:
        """Fraction of requests that waited for at least one hiccup (what the servers did)."""
        return sum(self.hiccuped) / len(self.hiccuped)


@dataclass(frozen=True)
class HedgeResult:
    plain: tuple[float, ...]  # latencies without hedging (s)
    hedged: tuple[float, ...]  # latencies with hedging (s)
    hedge_delay: float  # seconds waited before the second copy
    hedges: int  # second copies sent
    plain_hiccups: int  # plain calls whose answer was a hiccup (the caller waited it out)
    hedged_hiccups: int  # hedged calls whose answer was a hiccup (the hedge did not rescue it)

    def quantile(self, q: float, hedged: bool) -> float:
        return percentile(list(self.hedged if hedged else self.plain), q)

    @property
    def extra_requests(self) -> float:
        """Second copies as a fraction of requests: the load hedging added."""
        return self.hedges / len(self.hedged)

    @property
    def plain_over_delay(self) -> float:
        """Fraction of plain calls still out at the hedge delay: the extra load a hedge should cost."""
        return sum(t > self.hedge_delay for t in self.plain) / len(self.plain)

    def reduction(self, q: float = 99.9) -> float:
        """How many times shorter the q-th percentile became with hedging."""
        return self.quantile(q, False) / self.quantile(q, True)


async def start_servers(lab: Any, scenario: TailScenario) -> list[Any]:
    """``scenario.servers`` lab services that answer at once, except that each reply hiccups for
    ``slow`` seconds with probability ``p`` (independently, seeded)."""
    return [
        await lab.service(
            f"leaf-{k}", service_time=0.0, handler=Hiccup(scenario.p, scenario.slow, seed=scenario.seed * 1000 + k)
        )
        for k in range(scenario.servers)
    ]


async def live_fanout(lab: Any, servers: list[Any], scenario: TailScenario) -> FanoutResult:
    """Send ``requests`` requests, ``parallel`` at a time, each fanning out to ``fanout`` calls in parallel
    (spread round-robin over ``servers``) and waiting for all of them."""
    latencies, hiccuped = [], []
    loop = asyncio.get_running_loop()

    async def one(i: int) -> dict:
        t = loop.time()
        answers = await asyncio.gather(*(lab.call(servers[k % len(servers)]) for k in range(scenario.fanout)))
        latencies.append(loop.time() - t)
        hiccuped.append(any(a.get("hiccup") for a in answers))
        return {}

    await closed_loop(one, scenario.parallel, max_requests=scenario.requests, progress=False)
    return FanoutResult(tuple(latencies), tuple(hiccuped))


async def _hedged(call, delay: float) -> tuple[Any, bool]:
    """Start ``call()``; if it is not done after ``delay`` s start a second copy; return the first answer
    and whether a hedge was sent. The loser is cancelled."""
    first = asyncio.ensure_future(call())
    done, _ = await asyncio.wait({first}, timeout=delay)
    if done:
        return first.result(), False
    second = asyncio.ensure_future(call())
    done, pending = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return done.pop().result(), True


async def live_hedging(lab: Any, servers: list[Any], scenario: TailScenario) -> HedgeResult:
    """Hedging live. A warm-up of plain calls fixes the hedge delay at its ``hedge_at``-th percentile; then a
    plain arm and a hedged arm (half the callers each, ``calls`` calls each) run side by side, so that both
    see the same machine: the hedged arm's own extra load slows the plain arm too. Copies go to the next
    server in turn."""
    turn = iter(range(10**12))

    def call():
        return lab.call(servers[next(turn) % len(servers)])

    async def plain_op(i: int) -> dict:
        return {"hiccup": bool((await call()).get("hiccup"))}

    warmup = await closed_loop(
        plain_op, scenario.concurrency, max_requests=max(200, scenario.calls // 4), progress=False
    )
    delay = warmup.percentile(scenario.hedge_at)
    hedges = 0

    async def hedged_op(i: int) -> dict:
        nonlocal hedges
        answer, hedge = await _hedged(call, delay)
        hedges += hedge
        return {"hiccup": bool(answer.get("hiccup"))}

    half = max(1, scenario.concurrency // 2)
    plain, hedged = await asyncio.gather(
        closed_loop(plain_op, half, max_requests=scenario.calls, progress=False),
        closed_loop(hedged_op, half, max_requests=scenario.calls, progress=False),
    )
    return HedgeResult(
        tuple(plain.latencies()),
        tuple(hedged.latencies()),
        delay,
        hedges,
        sum(r.info.get("hiccup", False) for r in plain),
        sum(r.info.get("hiccup", False) for r in hedged),
    )


# -- simulation ------------------------------------------------------------------------------------------


def _reply(rng: random.Random, hops: tuple[float, ...], scenario: TailScenario) -> tuple[float, bool]:
    """One reply: a measured hop time, plus a hiccup with probability p; and whether it hiccuped."""
    slow = rng.random() < scenario.p
    return rng.choice(hops) + (scenario.slow if slow else 0.0), slow


def simulate_fanout(scenario: TailScenario, hops: tuple[float, ...], requests: int | None = None) -> FanoutResult:
    """The fan-out in SimPy: each request starts ``fanout`` reply processes and waits for all of them."""
    rng = random.Random(scenario.seed)
    env = simpy.Environment()
    latencies, hiccuped = [], []

    def reply(out: list[bool]):
        hop = rng.choice(hops)
        slow = rng.random() < scenario.p
        out.append(slow)
        yield env.timeout(hop + (scenario.slow if slow else 0.0))

    def client():
        flags: list[bool]
        for _ in range(requests or scenario.requests):
            start, flags = env.now, []
            yield env.all_of([env.process(reply(flags)) for _ in range(scenario.fanout)])
            latencies.append(env.now - start)
            hiccuped.append(any(flags))

    env.process(client())
    env.run()
    return FanoutResult(tuple(latencies), tuple(hiccuped))


def simulate_hedging(
    scenario: TailScenario, hops: tuple[float, ...], hedge_at: float | None = None, calls: int | None = None
) -> HedgeResult:
    """Hedging in SimPy: a plain arm sets the hedge delay at its ``hedge_at``-th percentile, then a hedged
    arm races a second copy started after that delay against the first."""
    rng = random.Random(scenario.seed + 1)
    n = calls or scenario.calls
    env = simpy.Environment()
    plain = [_reply(rng, hops, scenario) for _ in range(n)]
    delay = percentile([t for t, _ in plain], scenario.hedge_at if hedge_at is None else hedge_at)
    hedged, hedges, hiccups = [], 0, 0

    def request():
        nonlocal hedges, hiccups
        start = env.now
        took, slow = _reply(rng, hops, scenario)
        first = env.timeout(took, value=slow)
        yield first | env.timeout(delay)
        if not first.processed:
            hedges += 1
            took2, slow2 = _reply(rng, hops, scenario)
            second = env.timeout(took2, value=slow2)
            done = yield first | second
            slow = next(iter(done.values()))
        hiccups += slow
        hedged.append(env.now - start)

    def client():
        for _ in range(n):
            yield env.process(request())

    env.process(client())
    env.run()
    return HedgeResult(tuple(t for t, _ in plain), tuple(hedged), delay, hedges, sum(s for _, s in plain), hiccups)


def reply_survival(scenario: TailScenario, ordered_hops: list[float], t: float) -> float:
    """P(X > t) for a reply time X = H + slow·B: H one of the measured hop times (``ordered_hops``, sorted),
    B a hiccup with probability p. At the hedge delay it is the share of requests that get a second copy."""

    def s_hop(x: float) -> float:
        return 1.0 - bisect.bisect_right(ordered_hops, x) / len(ordered_hops)

    return (1 - scenario.p) * s_hop(t) + scenario.p * s_hop(t - scenario.slow)


def _quantile(survival: Callable[[float], float], level: float, above: float) -> float:
    """The ``level``-th percentile of a distribution given by its survival function: the least t, found by
    bisection on [0, ``above``], where the survival has fallen to 1 - level/100."""
    lo, hi = 0.0, above
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if survival(mid) > 1 - level / 100 else (lo, mid)
    return hi


class _Hedging:
    """The closed forms of one scenario over one set of hop times: a reply time X = H + slow·B (H a
    measured hop time, B a hiccup with probability p) survives t with S(t) = (1-p)·S_H(t) + p·S_H(t-slow);
    hedged after d, the answer T = min(X1, d + X2) survives t with S(t) for t < d and S(t)·S(t-d) after."""

    def __init__(self, scenario: TailScenario, hops: tuple[float, ...]) -> None:
        self.scenario, self.ordered = scenario, sorted(hops)
        self.above = self.ordered[-1] + 2 * scenario.slow + 1.0  # past every reply and hedged answer

    def reply(self, t: float) -> float:
        return reply_survival(self.scenario, self.ordered, t)

    def reply_quantile(self, level: float) -> float:
        return _quantile(self.reply, level, self.above)

    def hedged_quantile(self, delay: float, level: float) -> float:
        return _quantile(
            lambda t: self.reply(t) if t < delay else self.reply(t) * self.reply(t - delay), level, self.above
        )


def hedge_prediction(
    scenario: TailScenario, hops: tuple[float, ...], hedge_at: float | None = None, q: float = 99.9
) -> dict[str, float]:
    """Closed form for hedging after the ``hedge_at``-th percentile d of a reply time (see :class:`_Hedging`):
    the hedge fires for S(d) = 1 - hedge_at/100 of requests (the extra load), and the q-th percentile of the
    hedged answer is where its survival falls to 1 - q/100."""
    at = scenario.hedge_at if hedge_at is None else between("hedge_at", hedge_at, 1, 99.9)
    between("q", q, 1, 99.99)
    model = _Hedging(scenario, hops)
    d = model.reply_quantile(at)
    before, after = model.reply_quantile(q), model.hedged_quantile(d, q)
    return {
        "hedge_delay": d,
        "extra_requests": model.reply(d),
        "before": before,
        "after": after,
        "reduction": before / after,
    }


def reduction_range(
    scenario: TailScenario, hops: tuple[float, ...], result: HedgeResult, q: float = 99.9, z: float = 3.0
) -> tuple[float, float]:
    """The q-th percentile reductions the closed form allows a simulation the size of ``result``, hedging
    after ``result``'s own delay, by chance alone (z sigmas on each arm).

    Why a range and not a tolerance: each arm's q-th percentile is one order statistic of its draws (the
    20th-slowest of 20,000 at p99.9). Drawn from a few hundred measured hop times, the tail is a handful of
    far-apart values on a loaded machine, so that statistic may land on a neighbour twice as large, and no
    fixed percentage holds. The range is the closed form's quantiles at the ends of
    :func:`~labkit.classics.calibrate.quantile_band` for each arm: from the fastest plain over the slowest
    hedged to the slowest plain over the fastest hedged.
    """
    between("q", q, 1, 99.99)
    model = _Hedging(scenario, hops)
    plain = [model.reply_quantile(level) for level in quantile_band(q, len(result.plain), z)]
    hedged = [model.hedged_quantile(result.hedge_delay, level) for level in quantile_band(q, len(result.hedged), z)]
    return plain[0] / hedged[1], plain[1] / hedged[0]
