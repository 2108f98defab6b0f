"""labkit.storms: attempt times from traces, bins and the peak retry rate."""

import pytest

from labkit import tracing
from labkit.storms import attempts, binned, peak_rate


def test_attempts_groups_a_calls_spans_by_request_in_time_order():
    tracer = tracing.Tracer()
    for cid, start in (("a", 1.3), ("a", 1.0), ("b", 1.1)):
        span = tracing.Span(cid, tracing.new_id()[:16], None, "order -> email", "client", start, start + 0.01)
        tracer.add(span)
    tracer.add(tracing.Span("a", "x", None, "other", "client", 1.2, 1.3))
    assert attempts(tracer, "order -> email", t0=1.0) == {"a": [0.0, pytest.approx(0.3)], "b": [pytest.approx(0.1)]}


def test_binned_counts_per_bin_and_drops_what_is_outside():
    assert binned([0.0, 0.04, 0.05, 0.19, 0.2, -0.1], width=0.05, duration=0.2) == [2, 1, 0, 1]


def test_peak_rate_finds_a_burst_across_bin_edges_and_averages_several_peaks():
    burst = [1.02 + i * 0.004 for i in range(10)]  # 10 within 40 ms, straddling 1.05
    spread = [k * 0.1 for k in range(30)]  # one every 100 ms
    assert peak_rate(burst + spread, window=0.05, peaks=1) == pytest.approx(10 / 0.05)
    assert peak_rate(spread, window=0.05) == pytest.approx(1 / 0.05)
    with pytest.raises(ValueError, match="peaks must be an integer >= 1"):
        peak_rate(spread, 0.05, peaks=0)
