"""labkit.render: the figure bundle carries the plotly mimetype and offline HTML that waits for require.js."""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from labkit import render

MIME = "application/vnd.plotly.v1+json"


@pytest.fixture
def restore_default_renderer():
    before = pio.renderers.default
    yield
    pio.renderers.default = before


def bundle(fig: go.Figure) -> dict:
    return render.BookRenderer().to_mimebundle(fig.to_dict())


def test_activate_registers_and_makes_default(restore_default_renderer):
    pio.renderers.default = "json"
    assert render.activate(make_default=False) == "labkit"
    assert "labkit" in pio.renderers and pio.renderers.default == "json"
    assert render.activate() == "labkit"
    assert pio.renderers.default == "labkit"


def test_bundle_has_plotly_mimetype_and_html_without_plotlyjs():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="p50"))
    out = bundle(fig)
    assert set(out) == {MIME, "text/html"}
    assert out[MIME]["data"][0]["y"] == [3, 1, 2]
    html = out["text/html"]
    assert f'class="{render.FIGURE_CLASS}"' in html
    assert f'require(["{render.REQUIRE_MODULE}"]' in html
    # No inlined library, no CDN: the page supplies plotly.js.
    assert len(html) < 20_000
    assert "<script src" not in html and "cdn" not in html.lower()


def test_html_carries_the_same_figure_as_the_mimetype():
    fig = go.Figure(go.Bar(x=["sync", "async"], y=[120.5, 3.2]))
    out = bundle(fig)
    embedded = re.search(r"var fig = (\{.*\});\n", out["text/html"]).group(1)
    assert json.loads(embedded) == out[MIME]


def test_script_end_tag_in_figure_text_cannot_close_the_script():
    fig = go.Figure(go.Scatter(x=[1], y=[1], name="</script><b>x</b>"))
    html = bundle(fig)["text/html"]
    assert html.count("</script>") == 1  # only the real end tag
    assert json.loads(re.search(r"var fig = (\{.*\});\n", html).group(1))["data"][0]["name"] == "</script><b>x</b>"


def test_layout_height_sizes_the_div_and_ids_are_unique():
    fig = go.Figure(go.Scatter(x=[1], y=[1]), layout={"height": 333})
    first, second = bundle(fig)["text/html"], bundle(fig)["text/html"]
    assert "height:333px" in first
    ids = [re.search(r'id="([^"]+)"', h).group(1) for h in (first, second)]
    assert ids[0] != ids[1]
    assert "height:525px" in bundle(go.Figure())["text/html"]


def test_figure_config_reaches_both_parts():
    out = render.BookRenderer(config={"displaylogo": False}).to_mimebundle(go.Figure().to_dict())
    assert out[MIME]["config"]["displaylogo"] is False
    assert '"displaylogo":false' in out["text/html"]


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_activate_rejects_non_bool(bad):
    with pytest.raises(ValueError, match=r"make_default must be True or False, got"):
        render.activate(bad)


@pytest.mark.parametrize("bad", ["displaylogo", ["x"], 3])
def test_renderer_rejects_non_dict_config(bad):
    with pytest.raises(ValueError, match=r"config must be a dict or None, got"):
        render.BookRenderer(config=bad)


def test_plotlyjs_path_is_the_installed_library():
    path = render.plotlyjs_path()
    head = path.read_text(encoding="utf-8", errors="replace")[:200]
    assert path.name == "plotly.min.js" and "plotly.js" in head
    assert path.stat().st_size > 1_000_000
