"""labkit.plots: house-style figures built from the kit's own data types, offline."""

import math

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from labkit import plots
from labkit.metrics import Record, Recording
from labkit.tracing import Span


def _recording(latencies, ok=None, t0=100.0, gap=0.1):
    ok = ok or [True] * len(latencies)
    return Recording(
        [
            Record(t0 + i * gap, t0 + i * gap, t0 + i * gap + lat, good, None if good else "boom")
            for i, (lat, good) in enumerate(zip(latencies, ok))
        ],
        t0=t0,
    )


def _colors_used(fig):
    return {getattr(t, "line", None) and t.line.color for t in fig.data} - {None}


def test_palette_is_okabe_ito_and_the_template_is_registered():
    assert len(set(plots.COLORS)) == 8 and set(plots.COLORS) == set(plots.OKABE_ITO.values())
    assert plots.TEMPLATE in pio.templates
    fig = plots.figure("t", "x (s)", "y (ms)")
    assert list(fig.layout.template.layout.colorway) == plots.COLORS
    assert pio.renderers.default == "labkit"  # importing plots activates the offline renderer


def test_timeline_draws_series_and_fault_bands_from_a_proxy_or_tuples():
    fig = plots.timeline(
        {"in flight": ([0, 1, 2], [0, 3, 1]), "waiting": ([0, 2], [0, 0])},
        title="In flight",
        y_title="requests in flight",
        step=True,
        faults=[{"start": 0.5, "end": None, "label": "payment: down"}, (1.0, 1.5, "slow")],
    )
    assert [t.name for t in fig.data] == ["in flight", "waiting"]
    assert fig.data[0].line.shape == "hv"
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(r.x0, r.x1) for r in rects] == [(0.5, 2), (1.0, 1.5)]  # an open band runs to the end
    assert "payment: down" in {a.text for a in fig.layout.annotations}
    assert fig.layout.xaxis.title.text == "time since start (s)"


def test_latency_cdf_is_monotone_in_ms_and_marks_percentiles():
    fast, slow = _recording([0.010] * 50 + [0.020] * 50), [0.1, 0.2, 0.3, 0.4]
    fig = plots.latency_cdf({"async": fast, "sync": slow}, marks=(50,))
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["async", "sync"]
    assert list(lines[1].x) == pytest.approx([100, 200, 300, 400])
    assert list(lines[0].y) == sorted(lines[0].y) and lines[0].y[-1] == 1.0
    marks = [t for t in fig.data if t.mode == "markers+text"]
    assert marks[1].x[0] == pytest.approx(250) and marks[1].y[0] == 0.5
    assert lines[0].line.color != lines[1].line.color
    assert "(ms)" in fig.layout.xaxis.title.text


def test_latency_vs_parameter_overlays_theory_dashed():
    fig = plots.latency_vs(
        [0.2, 0.5, 0.8],
        {"mean": [0.012, 0.02, 0.05]},
        x_title="utilisation ρ",
        title="Waiting grows with load",
        theory={"M/M/1": ([0.1, 0.9], [0.011, 0.1])},
    )
    measured, theory = fig.data
    assert list(measured.y) == pytest.approx([12, 20, 50]) and theory.line.dash == "dash"
    assert theory.name == "M/M/1 (theory)" and fig.layout.yaxis.title.text == "latency (ms)"


def test_percentiles_bars_and_success_rate_bins():
    rec = _recording([0.01] * 10 + [0.05] * 10, ok=[True] * 15 + [False] * 5, gap=0.1)
    fig = plots.percentiles({"run": rec}, qs=(50, 99))
    assert list(fig.data[0].x) == ["p50", "p99"] and fig.data[0].y[1] > fig.data[0].y[0]
    fig = plots.success_rate({"sync": rec, "records": list(rec)}, bin_s=1.0, t0=100.0, faults=[(1.0, 2.0, "down")])
    assert list(fig.data[0].y) == pytest.approx([100, 50])
    assert list(fig.data[1].y) == pytest.approx([100, 50])
    assert fig.layout.yaxis.title.text == "requests succeeded (%)"


def test_queue_depth_from_sampler_timeseries_or_pairs():
    class FakeSampler:  # the QueueDepthSampler interface, without a broker
        def timeseries(self, t0=None):
            return {"t": [0, 1, 2], "messages": [0, 40, 0], "consumers": [1, 1, 1]}

    fig = plots.queue_depth({"orders": FakeSampler(), "emails": ([0, 1], [5, 0])})
    assert list(fig.data[0].y) == [0, 40, 0] and list(fig.data[1].y) == [5, 0]
    assert fig.layout.yaxis.title.text == "messages ready"


def test_measured_vs_predicted_flags_points_outside_the_band():
    fig = plots.measured_vs_predicted(
        [1, 2, 3],
        [0.99, 0.80, 0.70],
        [1.0, 0.9, 0.5],
        tolerance=0.05,
        x_title="services in the chain",
        y_title="availability",
    )
    upper, lower, predicted, measured = fig.data
    assert list(upper.y) == pytest.approx([1.05, 0.945, 0.525])
    assert lower.fill == "tonexty" and predicted.line.dash == "dash"
    assert list(measured.customdata) == ["within tolerance", "outside tolerance", "outside tolerance"]
    assert measured.marker.color[0] == plots.OKABE_ITO["bluish green"]
    absolute = plots.measured_vs_predicted(["a"], [1.5], [1.0], tolerance=0.6, relative=False, x_title="x", y_title="y")
    assert absolute.data[3].customdata[0] == "within tolerance"


def test_trace_waterfall_orders_and_indents_spans():
    spans = [
        Span("c", "s2", "s1", "order", "server", 10.001, 10.030),
        Span("c", "s1", None, "client -> order", "client", 10.000, 10.031),
        Span("c", "s3", "s2", "payment", "server", 10.005, 10.025, ok=False),
    ]
    fig = plots.trace_waterfall(spans)
    labels = list(fig.layout.yaxis.categoryarray)
    assert labels == ["client -> order  [1]", "└ order  [2]", "· └ payment  [3]"]  # depth drawn
    server = next(t for t in fig.data if t.name == "server")
    assert list(server.base) == pytest.approx([1, 5]) and list(server.x) == pytest.approx([29, 20])
    assert list(server.marker.line.width) == [0, 3]  # the failed span is outlined


def test_figures_render_offline_to_html_and_json():
    fig = plots.latency_cdf({"a": [0.1, 0.2]})
    bundle = pio.renderers["labkit"].to_mimebundle(fig.to_dict())
    assert "text/html" in bundle and "cdn" not in bundle["text/html"].lower()
    assert isinstance(fig, go.Figure) and fig.to_json()


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: plots.figure("", "x (s)", "y"), "title"),
        (lambda: plots.timeline({}, title="t", y_title="y"), "series"),
        (lambda: plots.timeline({"a": ([0, 1], [1])}, title="t", y_title="y"), "a"),
        (lambda: plots.timeline({"a": ([0], [1])}, title="t", y_title="y", faults=[(-1, 2, "x")]), "bands"),
        (lambda: plots.timeline({"a": ([0], [1])}, title="t", y_title="y", faults=[(3, 2, "x")]), "bands"),
        (lambda: plots.timeline({"a": ([0], [1])}, title="t", y_title="y", faults=["down"]), "bands"),
        (lambda: plots.latency_cdf({"a": ["fast"]}), "a"),
        (lambda: plots.success_rate({"a": [1, 2]}), "a"),
        (lambda: plots.success_rate({"a": []}, bin_s=0), "bin_s"),
        (lambda: plots.measured_vs_predicted([1], [1], [1], tolerance=-1, x_title="x", y_title="y"), "tolerance"),
        (lambda: plots.measured_vs_predicted([1, 2], [1], [1, 2], x_title="x", y_title="y"), "measured"),
        (lambda: plots.trace_waterfall([]), "spans"),
    ],
)
def test_invalid_inputs_name_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


def test_empty_bins_are_gaps_not_zeros():
    rec = _recording([0.01, 0.01], gap=2.0)
    fig = plots.success_rate({"r": rec}, bin_s=1.0, t0=100.0)
    assert fig.data[0].y[1] is None and not any(isinstance(v, float) and math.isnan(v) for v in fig.data[0].y)


def test_a_band_without_a_start_is_refused_by_name():
    with pytest.raises(ValueError, match=r"bands\[0\] has no start"):
        plots.add_fault_bands(plots.figure("t", "x", "y"), [{"end": 1.0, "label": "down"}])
