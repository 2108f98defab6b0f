"""Theory formulas against textbook values, internal consistency (Little's law) and small simulations."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import theory as th

# --- availability ---------------------------------------------------------------------------------------


def test_chain_availability_is_product():
    assert th.chain_availability([0.99] * 4) == pytest.approx(0.96059601)
    assert th.chain_availability([1.0, 0.5]) == 0.5


def test_async_chain_depends_only_on_edge():
    parts = [0.99, 0.999, 0.5, 0.0]
    assert th.async_chain_availability(parts, edge=2) == pytest.approx(0.99 * 0.999)
    assert th.async_chain_availability(parts) == 0.99
    assert th.async_chain_availability(parts, edge=4) == th.chain_availability(parts) == 0.0


def test_availability_validation():
    with pytest.raises(ValueError, match=r"availabilities\[1\] must be .*\[0, 1\]"):
        th.chain_availability([0.9, 1.2])
    with pytest.raises(ValueError, match="availabilities must be a non-empty"):
        th.chain_availability([])
    with pytest.raises(ValueError, match=r"edge must be an integer in \[1, 2\]"):
        th.async_chain_availability([0.9, 0.9], edge=3)


# --- Little's law, M/M/1 -------------------------------------------------------------------------------------


def test_littles_law():
    assert th.littles_law_L(10, 0.5) == 5
    assert th.littles_law_W(500, 100) == 5
    with pytest.raises(ValueError, match="arrival_rate must be > 0"):
        th.littles_law_L(0, 1)
    with pytest.raises(ValueError, match="time_in_system must be >= 0"):
        th.littles_law_L(1, -1)


def test_mm1_textbook_values():
    # λ = 0.5, μ = 1: ρ = 0.5, W_q = 1, W = 2, L_q = 0.5, L = 1 (Kleinrock §3.2)
    assert th.mm1_utilization(0.5, 1) == 0.5
    assert th.mm1_wait(0.5, 1) == pytest.approx(1.0)
    assert th.mm1_response(0.5, 1) == pytest.approx(2.0)
    assert th.mm1_queue_length(0.5, 1) == pytest.approx(0.5)
    assert th.mm1_in_system(0.5, 1) == pytest.approx(1.0)
    # ρ = 0.8 at μ = 100/s: W = 1/(100-80) = 50 ms, W_q = 40 ms
    assert th.mm1_response(80, 100) == pytest.approx(0.05)
    assert th.mm1_wait(80, 100) == pytest.approx(0.04)


def test_mm1_response_percentile():
    assert th.mm1_response_percentile(50, 80, 100) == pytest.approx(math.log(2) / 20)
    assert th.mm1_response_percentile(0, 80, 100) == 0
    assert th.mm1_response_percentile(100, 80, 100) == math.inf
    with pytest.raises(ValueError, match=r"q must be in \[0, 100\], got 120"):
        th.mm1_response_percentile(120, 1, 2)


def test_mm1_response_cdf_inverts_the_percentile():
    assert th.mm1_response_cdf(0, 80, 100) == 0
    for q in (10, 50, 99):
        assert th.mm1_response_cdf(th.mm1_response_percentile(q, 80, 100), 80, 100) == pytest.approx(q / 100)
    with pytest.raises(ValueError, match="t must be >= 0"):
        th.mm1_response_cdf(-1, 1, 2)


def test_mm1_formulas_match_a_simulated_queue():
    """Lindley's recursion over 200k seeded customers at ρ = 0.8 (the chapters' upper bound)."""
    rng = random.Random(11)
    lam, mu, n = 0.8, 1.0, 200_000
    wait, waits, responses = 0.0, [], []
    for _ in range(n):
        service = rng.expovariate(mu)
        waits.append(wait)
        responses.append(wait + service)
        wait = max(0.0, wait + service - rng.expovariate(lam))
    assert sum(waits) / n == pytest.approx(th.mm1_wait(lam, mu), rel=0.1)
    assert sum(responses) / n == pytest.approx(th.mm1_response(lam, mu), rel=0.1)
    responses.sort()
    assert responses[int(0.99 * n)] == pytest.approx(th.mm1_response_percentile(99, lam, mu), rel=0.1)


def test_mm1_rejects_unstable():
    with pytest.raises(ValueError, match=r"arrival_rate must be < servers \* service_rate = 1 .* got 1"):
        th.mm1_wait(1, 1)
    with pytest.raises(ValueError, match="service_rate must be > 0"):
        th.mm1_wait(1, -1)


@given(lam=st.floats(0.01, 100), rho=st.floats(0.01, 0.99))
def test_mm1_satisfies_littles_law(lam, rho):
    mu = lam / rho
    assert th.mm1_in_system(lam, mu) == pytest.approx(th.littles_law_L(lam, th.mm1_response(lam, mu)))
    assert th.mm1_queue_length(lam, mu) == pytest.approx(lam * th.mm1_wait(lam, mu))


# --- Erlang C, M/M/c --------------------------------------------------------------------------------------------


def test_erlang_c_known_value():
    # c = 2, λ = 1, μ = 0.75: a = 4/3, ρ = 2/3 → C = 8/15, W_q = C / (cμ − λ) = 16/15
    assert th.erlang_c(2, 1, 0.75) == pytest.approx(8 / 15)
    assert th.mmc_wait(2, 1, 0.75) == pytest.approx(16 / 15)
    assert th.mmc_response(2, 1, 0.75) == pytest.approx(16 / 15 + 4 / 3)


def test_erlang_c_call_centre_table():
    # 10 agents offered 8 erlangs wait with probability 40.92 % (standard Erlang C table value)
    assert th.erlang_c(10, 8, 1) == pytest.approx(0.4092, abs=5e-4)


def _erlang_c_direct(c, lam, mu):
    a, rho = lam / mu, lam / (c * mu)
    top = a**c / math.factorial(c) / (1 - rho)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@given(c=st.integers(1, 30), rho=st.floats(0.05, 0.95))
def test_erlang_c_matches_direct_formula(c, rho):
    lam, mu = rho * c * 2.0, 2.0
    assert th.erlang_c(c, lam, mu) == pytest.approx(_erlang_c_direct(c, lam, mu), rel=1e-9)


@given(lam=st.floats(0.1, 10), rho=st.floats(0.05, 0.95))
def test_one_server_mmc_is_mm1(lam, rho):
    mu = lam / rho
    assert th.erlang_c(1, lam, mu) == pytest.approx(rho)
    assert th.mmc_wait(1, lam, mu) == pytest.approx(th.mm1_wait(lam, mu))


def test_more_servers_wait_less():
    waits = [th.mmc_wait(c, 8, 1) for c in range(9, 14)]
    assert waits == sorted(waits, reverse=True)


def test_erlang_c_large_c_does_not_overflow():
    assert 0 < th.erlang_c(500, 480, 1) < 1


def test_mmc_validation():
    with pytest.raises(ValueError, match=r"servers must be an integer >= 1, got 0"):
        th.erlang_c(0, 1, 1)
    with pytest.raises(ValueError, match="stable"):
        th.mmc_wait(2, 2, 1)


# --- fluid backlog --------------------------------------------------------------------------------------------


SPIKE = [(0, 2, 50), (2, 5, 200), (5, 10, 50)]  # base 50/s, a 3 s spike to 200/s, capacity 100/s


def test_spike_backlog_peak_and_drain():
    b = th.fluid_backlog(SPIKE, capacity=100)
    assert b.peak == pytest.approx(300)  # (200 − 100) · 3
    assert b.peak_time == pytest.approx(5)
    assert b.drain_time == pytest.approx(11)  # 5 + 300 / (100 − 50), past the profile's end
    assert b(1) == 0
    assert b(3.5) == pytest.approx(150)
    assert b(8) == pytest.approx(150)
    assert b(20) == 0
    assert b.wait(5) == pytest.approx(3.0)  # 300 requests ahead at 100/s


def test_backlog_drains_inside_profile():
    b = th.fluid_backlog([(0, 1, 300), (1, 10, 0)], capacity=100)
    assert b.peak == pytest.approx(200)
    assert b.drain_time == pytest.approx(3)
    assert b(2) == pytest.approx(100)
    assert b.points == ((0, 0.0), (1, 200.0), (3.0, 0.0), (10, 0.0))


def test_backlog_below_capacity_stays_empty():
    b = th.fluid_backlog([(0, 5, 80)], capacity=100)
    assert b.peak == 0 and b(3) == 0


def test_backlog_overload_never_drains():
    b = th.fluid_backlog([(0, 1, 50), (1, 2, 150)], capacity=100)
    assert b(2) == pytest.approx(50)
    assert b(4) == pytest.approx(150)  # keeps growing at 50/s after the profile
    assert b.peak == math.inf and b.drain_time == math.inf


def test_backlog_accepts_object_with_segments():
    class P:
        segments = SPIKE

    assert th.fluid_backlog(P(), 100).peak == pytest.approx(300)


def test_backlog_validation():
    with pytest.raises(ValueError, match="capacity must be > 0"):
        th.fluid_backlog(SPIKE, 0)
    with pytest.raises(ValueError, match=r"profile\[1\].rate must be >= 0"):
        th.fluid_backlog([(0, 1, 5), (1, 2, -5)], 1)
    with pytest.raises(ValueError, match=r"profile\[1\].t_start must equal"):
        th.fluid_backlog([(0, 1, 5), (2, 3, 5)], 1)
    with pytest.raises(ValueError, match=r"profile\[0\].length must be > 0"):
        th.fluid_backlog([(1, 1, 5)], 1)
    with pytest.raises(ValueError, match=r"profile must be a sequence of \(t_start, t_end, rate\) segments"):
        th.fluid_backlog([(1, 2)], 1)
    with pytest.raises(ValueError, match=r"profile\[0\].length must be a finite number > 0, got inf"):
        th.fluid_backlog([(0, float("inf"), 5)], 1)


def test_backlog_matches_discrete_simulation():
    """Step a deterministic queue in 1 ms ticks; the fluid model must agree to within a few requests."""
    b = th.fluid_backlog(SPIKE, 100)
    q, dt = 0.0, 0.001
    for k in range(12000):
        t = k * dt
        rate = next((r for t0, t1, r in SPIKE if t0 <= t < t1), SPIKE[-1][2])
        q = max(0.0, q + (rate - 100) * dt)
        if k % 500 == 0:
            assert q == pytest.approx(b(t + dt), abs=1.0)


# --- fan-out, backoff, retry amplification -------------------------------------------------------------------


def test_fanout_tail_at_scale():
    assert th.fanout_slow_probability(0.01, 100) == pytest.approx(0.634, abs=1e-3)
    assert th.fanout_slow_probability(0.01, 1) == pytest.approx(0.01)
    assert th.fanout_slow_probability(0, 50) == 0
    with pytest.raises(ValueError, match=r"p must be .*\[0, 1\]"):
        th.fanout_slow_probability(1.5, 3)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        th.fanout_slow_probability(0.1, 0)


def test_backoff_exponential_and_capped():
    assert th.backoff_schedule("exponential", 0.1, attempts=6) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])
    assert th.backoff_schedule("capped", 0.1, cap=1, attempts=6) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1, 1])
    assert th.backoff_schedule("capped", 0.1, attempts=0) == []


def test_backoff_jitter_bounds():
    ceilings = th.backoff_schedule("capped", 0.1, cap=2, attempts=8)
    for seed in range(50):
        full = th.backoff_schedule("full_jitter", 0.1, cap=2, attempts=8, seed=seed)
        equal = th.backoff_schedule("equal_jitter", 0.1, cap=2, attempts=8, seed=seed)
        decor = th.backoff_schedule("decorrelated_jitter", 0.1, cap=2, attempts=8, seed=seed)
        assert all(0 <= d <= c for d, c in zip(full, ceilings))
        assert all(c / 2 <= d <= c for d, c in zip(equal, ceilings))
        assert all(0.1 <= d <= 2 for d in decor)
        assert all(d <= 3 * prev for prev, d in zip([0.1] + decor, decor))


def test_backoff_jitter_spreads_and_is_seeded():
    a = th.backoff_schedule("full_jitter", 1, cap=100, attempts=5, seed=1)
    assert a == th.backoff_schedule("full_jitter", 1, cap=100, attempts=5, seed=1)
    assert a != th.backoff_schedule("full_jitter", 1, cap=100, attempts=5, seed=2)
    # full jitter's mean is half the ceiling: check over many clients
    firsts = [th.backoff_schedule("full_jitter", 1, attempts=4, seed=s)[3] for s in range(2000)]
    assert sum(firsts) / len(firsts) == pytest.approx(4.0, rel=0.1)


def test_backoff_validation():
    with pytest.raises(ValueError, match="kind must be one of 'exponential'"):
        th.backoff_schedule("linear", 1)
    with pytest.raises(ValueError, match="base must be > 0"):
        th.backoff_schedule("capped", 0)
    with pytest.raises(ValueError, match="attempts must be an integer >= 0"):
        th.backoff_schedule("capped", 1, attempts=-1)


def test_retry_amplification_values():
    assert th.retry_amplification(1, retries=3, depth=3) == 64
    assert th.retry_amplification(0, retries=3, depth=3) == 1
    assert th.retry_amplification(0.5, retries=1) == pytest.approx(1.5)
    assert th.retry_amplification(0.5, retries=1, depth=2) == pytest.approx(1.5 * 1.25)


def _bottom_calls(rng, p, retries, depth):
    """Simulate one call at ``depth`` layers above the bottom: returns (succeeded, bottom calls made)."""
    if depth == 0:
        return rng.random() >= p, 1
    calls = 0
    for _ in range(retries + 1):
        ok, n = _bottom_calls(rng, p, retries, depth - 1)
        calls += n
        if ok:
            return True, calls
    return False, calls


@pytest.mark.parametrize("p,retries,depth", [(0.3, 2, 2), (0.6, 3, 2), (0.5, 1, 3)])
def test_retry_amplification_matches_simulation(p, retries, depth):
    rng = random.Random(7)
    trials = 20000
    mean = sum(_bottom_calls(rng, p, retries, depth)[1] for _ in range(trials)) / trials
    assert mean == pytest.approx(th.retry_amplification(p, retries, depth), rel=0.03)


@settings(max_examples=40, deadline=None)
@given(
    rates=st.lists(st.integers(0, 300), min_size=1, max_size=4),
    lengths=st.lists(st.integers(1, 20), min_size=4, max_size=4),
    capacity=st.integers(20, 200),
)
def test_fluid_backlog_matches_euler_steps_for_any_profile(rates, lengths, capacity):
    """Any piecewise profile: the closed form agrees with stepping dQ/dt = λ − c (Q ≥ 0) in 1 ms steps."""
    segs, t = [], 0.0
    for rate, length in zip(rates, lengths):
        segs.append((t, t + length / 10, rate))
        t += length / 10
    b = th.fluid_backlog(segs, capacity)
    q, dt, end = 0.0, 0.001, t + 3
    for k in range(int(end / dt)):
        now = k * dt
        rate = next((r for t0, t1, r in segs if t0 <= now < t1), segs[-1][2])
        q = max(0.0, q + (rate - capacity) * dt)
        if k % 97 == 0:
            assert b(now + dt) == pytest.approx(q, abs=0.5)
    assert b.peak >= max(b(x / 10) for x in range(int(end * 10))) - 1e-9


def test_fixed_slope_line_fits_only_the_offset_as_the_median_residual():
    x = [0.0, 1.0, 2.0]
    measured = {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.5, 3.0], "c": [9.0, 9.0, 9.0]}
    assert th.fixed_slope_line(x, measured, 1.0, ("a", "b")) == pytest.approx([1.0, 2.0, 3.0])
    assert th.fixed_slope_line(x, measured, 0.0, ("c",)) == pytest.approx([9.0, 9.0, 9.0])
    with pytest.raises(ValueError, match="names"):
        th.fixed_slope_line(x, measured, 1.0, ())
