"""The formulas the chapters lay over their measurements.

Why a module of its own: every chapter ends by comparing what the lab measured with what theory predicts,
so the predictions must be written once, cited, and unit-tested against textbook values. Everything here
is pure arithmetic (no I/O, no clock), in consistent units chosen by the caller (seconds and requests per
second in the chapters).

Sources:

- Availability of a series system: any reliability text, e.g. Trivedi, *Probability and Statistics with
  Reliability, Queuing and Computer Science Applications* (2nd ed., 2016), §3.5 "series systems".
- Little's law: J. D. C. Little, "A Proof for the Queuing Formula L = λW", Operations Research 9(3), 1961.
- M/M/1 and M/M/c (Erlang C): L. Kleinrock, *Queueing Systems, Vol. 1* (1975), §3.2 and §3.5;
  M. Harchol-Balter, *Performance Modeling and Design of Computer Systems* (2013), ch. 13-14.
- Fluid (deterministic) approximation of a queue under a time-varying rate: G. F. Newell, *Applications
  of Queueing Theory* (2nd ed., 1982), ch. 2; Kleinrock, *Queueing Systems, Vol. 2* (1976), ch. 2.
- Fan-out tail: J. Dean and L. A. Barroso, "The Tail at Scale", Communications of the ACM 56(2), 2013.
- Backoff schedules: M. Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.
- Retry amplification: Beyer et al., *Site Reliability Engineering* (O'Reilly, 2016), ch. 22
  "Addressing Cascading Failures", section "Retries".
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit._validate import between, integer, non_negative, one_of, positive, probability

__all__ = [
    "chain_availability",
    "async_chain_availability",
    "littles_law_L",
    "littles_law_W",
    "mm1_utilization",
    "mm1_wait",
    "mm1_response",
    "mm1_response_percentile",
    "mm1_response_cdf",
    "mm1_queue_length",
    "mm1_in_system",
    "erlang_c",
    "mmc_wait",
    "mmc_response",
    "Backlog",
    "rate_segments",
    "fluid_backlog",
    "fanout_slow_probability",
    "BACKOFF_KINDS",
    "backoff_schedule",
    "retry_amplification",
    "fixed_slope_line",
]


# --- availability --------------------------------------------------------------------------------------


def _availabilities(availabilities: Iterable[float]) -> list[float]:
    values = list(availabilities)
    if not values:
        raise ValueError("availabilities must be a non-empty sequence of probabilities in [0, 1], got []")
    return [probability(f"availabilities[{i}]", a) for i, a in enumerate(values)]


def chain_availability(availabilities: Iterable[float]) -> float:
    """Availability of a synchronous chain A→B→C→…: the product of the parts' availabilities.

    A request succeeds only if every hop is up at the same moment (independent failures; Trivedi §3.5),
    which is why a chain of four 99 %-available services is only 96 % available.
    """
    return math.prod(_availabilities(availabilities))


def async_chain_availability(availabilities: Iterable[float], edge: int = 1) -> float:
    """Availability a caller sees when only the first ``edge`` hops are synchronous.

    Behind a queue, the later hops can be down when the request arrives and still finish it later, so the
    caller's success depends only on the synchronous edge (e.g. ``edge=2``: the API and the broker).
    """
    values = _availabilities(availabilities)
    integer("edge", edge, 1, len(values))
    return math.prod(values[:edge])


# --- Little's law ----------------------------------------------------------------------------------------


def littles_law_L(arrival_rate: float, time_in_system: float) -> float:
    """Mean number in the system, L = λ·W (Little 1961); holds for any stable system in steady state."""
    positive("arrival_rate", arrival_rate)
    non_negative("time_in_system", time_in_system)
    return arrival_rate * time_in_system


def littles_law_W(number_in_system: float, arrival_rate: float) -> float:
    """Mean time in the system, W = L / λ (Little 1961): e.g. a backlog of 500 at 100/s means 5 s waits."""
    non_negative("number_in_system", number_in_system)
    positive("arrival_rate", arrival_rate)
    return number_in_system / arrival_rate


# --- M/M/1 and M/M/c ---------------------------------------------------------------------------------------


def _stable(arrival_rate: float, service_rate: float, servers: int = 1) -> float:
    """Validate the rates and return the utilisation ρ = λ / (c·μ), which must be < 1."""
    positive("arrival_rate", arrival_rate)
    positive("service_rate", service_rate)
    integer("servers", servers, 1)
    rho = arrival_rate / (servers * service_rate)
    if rho >= 1:
        raise ValueError(
            f"arrival_rate must be < servers * service_rate = {servers * service_rate!r} for a stable queue, "
            f"got {arrival_rate!r}"
        )
    return rho


def mm1_utilization(arrival_rate: float, service_rate: float) -> float:
    """ρ = λ/μ: the fraction of time the single server is busy (Kleinrock §3.2)."""
    return _stable(arrival_rate, service_rate)


def mm1_wait(arrival_rate: float, service_rate: float) -> float:
    """Mean time waiting in the queue before service, W_q = ρ / (μ − λ) (Kleinrock eq. 3.26)."""
    rho = _stable(arrival_rate, service_rate)
    return rho / (service_rate - arrival_rate)


def mm1_response(arrival_rate: float, service_rate: float) -> float:
    """Mean response time (wait + service), W = 1 / (μ − λ) (Kleinrock eq. 3.26)."""
    _stable(arrival_rate, service_rate)
    return 1.0 / (service_rate - arrival_rate)


def mm1_response_percentile(q: float, arrival_rate: float, service_rate: float) -> float:
    """q-th percentile (0-100) of the M/M/1 FCFS response time: W ~ Exp(μ − λ), so −ln(1 − q/100) / (μ − λ).

    (Kleinrock §3.2; Harchol-Balter ch. 13.) The median is ln 2 / (μ − λ), i.e. 0.69 × the mean: a chapter's
    p50 should be compared with this, not with the mean.
    """
    between("q", q, 0, 100)
    _stable(arrival_rate, service_rate)
    if q == 100:
        return math.inf
    return -math.log1p(-q / 100) / (service_rate - arrival_rate)


def mm1_queue_length(arrival_rate: float, service_rate: float) -> float:
    """Mean number waiting (not in service), L_q = ρ² / (1 − ρ) (Kleinrock §3.2)."""
    rho = _stable(arrival_rate, service_rate)
    return rho * rho / (1.0 - rho)


def mm1_in_system(arrival_rate: float, service_rate: float) -> float:
    """Mean number in the system (waiting + in service), L = ρ / (1 − ρ) (Kleinrock eq. 3.24)."""
    rho = _stable(arrival_rate, service_rate)
    return rho / (1.0 - rho)


def mm1_response_cdf(t: float, arrival_rate: float, service_rate: float) -> float:
    """P(response time ≤ t) in a FIFO M/M/1 queue: 1 − e^{−(μ − λ)·t} (Kleinrock §3.2, the sojourn time
    is exponential with rate μ − λ). Chapter 05 reads it as the chance that a read ``t`` seconds after a
    write already sees it, when one projection applies events in order."""
    non_negative("t", t)
    _stable(arrival_rate, service_rate)
    return 1.0 - math.exp(-(service_rate - arrival_rate) * t)


def erlang_c(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Probability that an arrival must wait in an M/M/c queue (Erlang C; Kleinrock eq. 3.40).

    C(c, a) = [aᶜ/c! · 1/(1−ρ)] / [Σₖ₌₀^{c−1} aᵏ/k! + aᶜ/c! · 1/(1−ρ)], with a = λ/μ and ρ = a/c.
    Computed with the stable recurrence over the Erlang B formula so large c does not overflow.
    """
    rho = _stable(arrival_rate, service_rate, servers)
    a = arrival_rate / service_rate
    blocking = 1.0  # Erlang B with 0 servers
    for k in range(1, servers + 1):
        blocking = a * blocking / (k + a * blocking)
    return blocking / (1.0 - rho + rho * blocking)


def mmc_wait(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean wait in queue of an M/M/c system, W_q = C(c, a) / (c·μ − λ) (Kleinrock eq. 3.43)."""
    return erlang_c(servers, arrival_rate, service_rate) / (servers * service_rate - arrival_rate)


def mmc_response(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean response time of an M/M/c system, W = W_q + 1/μ."""
    return mmc_wait(servers, arrival_rate, service_rate) + 1.0 / service_rate


# --- fluid backlog of a spike ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """A piecewise-linear backlog Q(t), from the fluid model of a queue (Newell ch. 2).

    ``points`` are the breakpoints (t, Q); between them Q is linear. After the last point Q continues with
    ``final_slope`` (0 when the queue is empty and stable, > 0 when the last rate exceeds capacity).
    """

    points: tuple[tuple[float, float], ...]
    capacity: float
    final_slope: float

    def __call__(self, t: float) -> float:
        """Backlog at time t (0 before the profile starts)."""
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, q0), (t1, q1) in zip(pts, pts[1:]):
            if t <= t1:
                return q0 + (q1 - q0) * (t - t0) / (t1 - t0)
        t_last, q_last = pts[-1]
        return q_last + self.final_slope * (t - t_last)

    def wait(self, t: float) -> float:
        """Fluid FIFO wait for a request arriving at t: the backlog ahead of it divided by capacity."""
        return self(t) / self.capacity

    @property
    def peak(self) -> float:
        """Largest backlog (inf if it grows without bound after the profile)."""
        return math.inf if self.final_slope > 0 else max(q for _, q in self.points)

    @property
    def peak_time(self) -> float:
        """First time the backlog reaches its peak."""
        if self.final_slope > 0:
            return math.inf
        top = self.peak
        return next(t for t, q in self.points if q == top)

    @property
    def drain_time(self) -> float:
        """Time at which the backlog is back to 0 after its peak (inf if it never drains)."""
        if self.final_slope > 0 or self.points[-1][1] > 0:
            return math.inf
        after = [t for t, q in self.points if t >= self.peak_time and q == 0]
        return after[0]


def rate_segments(profile: Any, name: str = "profile", endless: bool = False) -> tuple[tuple[float, float, float], ...]:
    """Validate a piecewise-constant rate profile and return it as ``((t_start, t_end, rate), ...)`` floats.

    ``profile`` is a sequence of contiguous segments or any object with a ``.segments`` attribute; times
    are ≥ 0 seconds, rates ≥ 0 per second; ``endless`` lets the last segment run to ``math.inf``. Shared
    by ``fluid_backlog`` and ``labkit.load.RateProfile`` so a profile means the same thing to both.
    """
    raw = profile.segments if hasattr(profile, "segments") else profile
    try:
        segs = tuple((float(t0), float(t1), float(rate)) for t0, t1, rate in raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of (t_start, t_end, rate) segments, got {profile!r}") from None
    if not segs:
        raise ValueError(f"{name} must have at least one (t_start, t_end, rate) segment, got {profile!r}")
    for i, (t0, t1, rate) in enumerate(segs):
        non_negative(f"{name}[{i}].t_start", t0)
        positive(f"{name}[{i}].length", t1 - t0, allow_inf=endless and i == len(segs) - 1)
        non_negative(f"{name}[{i}].rate", rate)
        if i and t0 != segs[i - 1][1]:
            previous = segs[i - 1][1]
            raise ValueError(f"{name}[{i}].t_start must equal the previous segment's end {previous!r}, got {t0!r}")
    return segs


def fluid_backlog(profile: Any, capacity: float) -> Backlog:
    """Backlog Q(t) of a queue with service capacity c fed by a piecewise-constant arrival rate λ(t).

    dQ/dt = λ(t) − c while Q > 0 (or λ > c), and Q ≥ 0: the deterministic fluid model (Newell ch. 2), which
    predicts a spike's peak backlog (λ_peak − c)·length and its drain time peak / (c − λ_base). ``profile``
    is a sequence of contiguous ``(t_start, t_end, rate)`` segments, or any object with such a
    ``.segments`` attribute (e.g. ``labkit.load.spike(...)``). After the last segment, its rate continues.
    """
    positive("capacity", capacity)
    segs = rate_segments(profile)
    points = [(segs[0][0], 0.0)]
    q = 0.0
    for t0, t1, rate in segs:
        slope = rate - capacity
        if q > 0 and slope < 0 and t0 + q / -slope < t1:
            empty_at = t0 + q / -slope
            points.append((empty_at, 0.0))
            q = 0.0
        elif q > 0 or slope > 0:
            q = max(0.0, q + slope * (t1 - t0))
        points.append((t1, q))
    last_slope = segs[-1][2] - capacity
    if q > 0 and last_slope < 0:
        points.append((segs[-1][1] + q / -last_slope, 0.0))
        final_slope = 0.0
    else:
        final_slope = max(0.0, last_slope) if (q > 0 or last_slope > 0) else 0.0
    return Backlog(points=tuple(points), capacity=float(capacity), final_slope=final_slope)


# --- fan-out, backoff, retries -----------------------------------------------------------------------------


def fanout_slow_probability(p: float, n: int) -> float:
    """Probability that a request fanning out to n backends waits for at least one slow reply: 1 − (1 − p)ᴺ.

    Dean and Barroso (2013): with p = 1 % slow replies, a fan-out of 100 is slow 63 % of the time.
    """
    probability("p", p)
    integer("n", n, 1)
    return 1.0 - (1.0 - p) ** n


BACKOFF_KINDS = ("exponential", "capped", "full_jitter", "equal_jitter", "decorrelated_jitter")


def backoff_schedule(
    kind: str,
    base: float,
    cap: float = math.inf,
    attempts: int = 5,
    seed: int | None = 0,
) -> list[float]:
    """Delays before retries 1..attempts, following Brooker, "Exponential Backoff And Jitter" (AWS, 2015).

    - ``exponential``: base·2ⁿ (no cap: what a naive client does)
    - ``capped``: min(cap, base·2ⁿ)
    - ``full_jitter``: uniform(0, min(cap, base·2ⁿ))
    - ``equal_jitter``: t/2 + uniform(0, t/2) with t = min(cap, base·2ⁿ)
    - ``decorrelated_jitter``: sleep = min(cap, uniform(base, 3·previous sleep)), starting from base

    n counts from 0. Jittered kinds draw from ``random.Random(seed)`` so a chapter's plot is reproducible;
    pass ``seed=None`` for fresh randomness.
    """
    one_of("kind", kind, BACKOFF_KINDS)
    positive("base", base)
    positive("cap", cap, allow_inf=True)
    integer("attempts", attempts, 0)
    rng = random.Random(seed)
    delays: list[float] = []
    sleep = base
    for n in range(attempts):
        ceiling = min(cap, base * 2.0**n)
        if kind == "exponential":
            delays.append(base * 2.0**n)
        elif kind == "capped":
            delays.append(ceiling)
        elif kind == "full_jitter":
            delays.append(rng.uniform(0, ceiling))
        elif kind == "equal_jitter":
            delays.append(ceiling / 2 + rng.uniform(0, ceiling / 2))
        else:
            sleep = min(cap, rng.uniform(base, sleep * 3))
            delays.append(sleep)
    return delays


def retry_amplification(failure_probability: float, retries: int, depth: int = 1) -> float:
    """Expected calls reaching the bottom service per top-level request, when every layer retries.

    Each call to the bottom fails independently with probability p; each of the ``depth`` layers above it
    makes up to 1 + ``retries`` attempts, stopping at the first success. One layer makes on average
    A(q) = 1 + q + … + q^r attempts when an attempt fails with probability q; a layer's call fails with
    q_k = p^((r+1)^(k−1)), and by Wald's identity the expected bottom calls are Πₖ A(q_k). With the bottom
    down (p = 1) this is (r+1)^depth: three layers retrying 3 times send 64 calls per request — the retry
    storm of the SRE book, ch. 22.
    """
    probability("failure_probability", failure_probability)
    integer("retries", retries, 0)
    integer("depth", depth, 1)
    total = 1.0
    q = failure_probability
    for _ in range(depth):
        total *= sum(q**j for j in range(retries + 1))
        q = q ** (retries + 1)
    return total


# --- fitting a line whose slope theory fixes -------------------------------------------------------------


def fixed_slope_line(
    x: Sequence[float], measured: Mapping[str, Sequence[float]], slope: float, names: Iterable[str]
) -> list[float]:
    """offset + slope × x, the offset being the median residual of the named series' measurements.

    Theory fixes a line's slope (1 for a caller that waits for the downstream, 0 for one that does not);
    only its constant is fitted, and the median keeps one slow outlier from moving it.
    """
    residuals = [m - slope * xi for name in names for m, xi in zip(measured[name], x, strict=True)]
    if not residuals:
        raise ValueError("names: name at least one measured series to fit the offset to")
    offset = statistics.median(residuals)
    return [offset + slope * xi for xi in x]
