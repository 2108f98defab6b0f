"""Every figure's text alternative names what it shows and its key numbers, from its own data."""

from __future__ import annotations

import base64
import re
from array import array
from types import SimpleNamespace

import plotly.graph_objects as go
import pytest

from labkit import alt_text, plots, render


def test_a_timeline_says_where_each_series_starts_ends_and_peaks():
    fig = plots.timeline(
        {"p99": ([0.5, 0.7, 0.9], [12, 400, 180])},
        title="p99 by load",
        y_title="p99 (ms)",
        faults=[(1.0, 2.0, "email down")],
    )
    text = alt_text.describe(fig)
    assert text.startswith("Figure: p99 by load.")
    assert "rises from 12 ms at 0.5 s to 180 ms at 0.9 s" in text
    assert "highest 400 ms at 0.7 s" in text
    assert "Band email down: from 1 to 2 s" in text


def test_measured_vs_predicted_states_each_verdict():
    fig = plots.measured_vs_predicted(
        ["sync", "async"],
        [0.61, 0.7],
        [0.63, 1.0],
        tolerance=0.1,
        relative=False,
        x_title="design",
        y_title="success (fraction)",
        title="Availability",
    )
    text = alt_text.describe(fig)
    assert "sync: measured 0.61, predicted 0.63, within the tolerance of ±0.1" in text
    assert "async: measured 0.7, predicted 1, outside the tolerance of ±0.1" in text
    assert "upper bound" not in text  # the band's edges are said once, by the verdicts


def test_a_cdf_names_its_percentiles():
    text = alt_text.describe(plots.latency_cdf({"sync": [0.010] * 98 + [0.200, 0.300]}))
    assert "sync: 100 requests, p50 10 ms, p99" in text


def test_a_waterfall_counts_spans_and_time():
    span = lambda i, start, end, parent=None, kind="client": SimpleNamespace(  # noqa: E731
        span_id=i, parent_id=parent, name=f"s{i}", kind=kind, start=start, end=end, ok=True
    )
    fig = plots.trace_waterfall([span(1, 0.0, 0.1), span(2, 0.01, 0.09, 1, "server")], title="One call")
    text = alt_text.describe(fig)
    assert "2 spans over 100 ms; the first, s1, lasts 100 ms; client: 1; server: 1" in text
    assert "s1  [1] from 0 to 100 ms" in text


def test_bars_and_categories_are_listed_with_their_values():
    fig = plots.figure("Throughput", "design", "throughput (orders/s)")
    fig.add_trace(go.Bar(x=["sync", "async"], y=[80.0, 120.5], name="measured"))
    assert "measured: sync 80 orders/s, async 120 orders/s" in alt_text.describe(fig)


def test_binary_encoded_arrays_are_read():
    data = base64.b64encode(array("d", [1.0, 2.0, 4.0]).tobytes()).decode()
    fig = {
        "data": [{"type": "scatter", "name": "n", "x": [0, 1, 2], "y": {"dtype": "f8", "bdata": data}}],
        "layout": {"title": {"text": "T"}},
    }
    assert "rises from 1 at 0 to 4 at 2" in alt_text.describe(fig)


def test_an_empty_figure_says_so_and_bad_input_is_named():
    assert alt_text.describe(go.Figure()) == "Figure. No data."
    with pytest.raises(ValueError, match="fig must be a plotly figure"):
        alt_text.describe([1, 2])
    with pytest.raises(ValueError, match="limit must be at least 10"):
        alt_text.short("text", 3)


def test_short_cuts_at_a_word():
    assert alt_text.short("word " * 100, 20) == "word word word word…"
    assert alt_text.short("short", 20) == "short"


def test_the_renderer_puts_the_text_on_the_figure_and_in_a_hidden_paragraph():
    fig = plots.timeline({"depth <q>": ([0, 1], [0, 76])}, title="Queue", y_title="messages")
    html = render.BookRenderer().to_mimebundle(fig.to_plotly_json())["text/html"]
    div = re.search(
        r'<div class="labkit-plotly" id="([^"]+)" role="img" aria-label="([^"]+)" '
        r'aria-describedby="([^"]+)"',
        html,
    )
    assert div and div.group(3) == div.group(1) + "-text"
    assert "76" in div.group(2) and "&lt;q&gt;" in div.group(2)  # escaped, so markup cannot break out
    paragraph = re.search(rf'<p class="labkit-plotly-text" id="{div.group(3)}" style="([^"]+)">(.*?)</p>', html)
    assert "clip:rect(0,0,0,0)" in paragraph.group(1) and "rises from 0 at 0 s to 76 at 1 s" in paragraph.group(2)


def test_a_legend_too_long_for_the_top_moves_below_the_plot():
    many = plots.timeline(
        {f"a long series name number {i}": ([0, 1], [i, i]) for i in range(6)}, title="T", y_title="y (ms)"
    ).to_plotly_json()
    moved = render.fit_legend(many)
    assert moved["layout"]["legend"]["yref"] == "container" and moved["layout"]["legend"]["y"] == 0.0
    assert moved["layout"]["margin"]["b"] > 70 and moved["layout"]["height"] > 420
    few = plots.timeline({"sync": ([0, 1], [1, 1]), "async": ([0, 1], [1, 1])}, title="T", y_title="y").to_plotly_json()
    assert render.fit_legend(few) is few
    placed = dict(many, layout=dict(many["layout"], legend={"y": -0.3}))
    assert render.fit_legend(placed) is placed  # a figure that places its own legend is left alone


def test_an_attempts_figure_has_a_row_per_item_and_says_what_failed():
    fig = plots.attempts(
        {"evt-1": [(10.0, False), (10.2, True)], "evt-2": [(10.1, True)]},
        t0=10.0,
        faults=[(0.0, 0.15, "receiver down")],
        title="Deliveries",
    )
    failed, delivered = fig.data
    assert list(failed.x) == [0.0] and list(delivered.y) == ["evt-1", "evt-2"]
    text = alt_text.describe(fig)
    assert "failed attempt: evt-1 0" not in text and "Band receiver down: from 0 to 0.15 s" in text


def test_the_legend_grid_counts_rows_by_its_widest_entry():
    """Three entries, one of them long: plotly gives each its own row, which is too many above the plot."""
    fig = plots.timeline(
        {"a": ([0, 1], [1, 1]), "b": ([0, 1], [1, 1]), "reads at a fixed delay that saw the order": ([0, 1], [1, 1])},
        title="T",
        y_title="y",
    ).to_plotly_json()
    assert render.fit_legend(fig)["layout"]["legend"]["yref"] == "container"


def test_long_category_labels_leave_less_room_for_the_legend():
    fig = plots.figure("T", "x (s)", "process")
    for name in ("publish", "delivery", "ack / nack", "HTTP call", "refused / error"):
        fig.add_trace(go.Scatter(x=[0, 1], y=["consumer:capstone-df1269.images", "broker"], name=name))
    assert render.fit_legend(fig.to_plotly_json())["layout"]["legend"]["yref"] == "container"


def test_tick_texts_count_as_category_labels():
    fig = plots.figure("T", "x (s)", "process")
    for name in ("publish", "delivery", "ack / nack", "HTTP call", "refused / error"):
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name=name))
    fig.update_yaxes(tickvals=[0, 1], ticktext=["consumer:capstone-df1269.images", "broker"])
    assert render.fit_legend(fig.to_plotly_json())["layout"]["legend"]["yref"] == "container"
