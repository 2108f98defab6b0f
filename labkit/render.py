"""A plotly renderer that draws in JupyterLab, VS Code and the built book, all without a network.

Why: plotly's default renderer emits only ``application/vnd.plotly.v1+json``. JupyterLab and VS Code draw
that natively, but Jupyter Book's HTML drops it; ``notebook_connected`` fetches plotly.js from a CDN (the
book must read offline) and ``notebook`` inlines 4.8 MB of JavaScript into every figure. The ``labkit``
renderer emits both the plotly mimetype and a small ``text/html`` part with ``include_plotlyjs=False``
semantics: the HTML draws through ``require(["plotly"], ...)``, and the book's Sphinx extension
(``book/_ext/offline_assets.py``) serves require.js and the installed package's own ``plotly.min.js`` from
``_vendor/`` on the pages that hold a figure, so the JavaScript always matches the Python package's version.
The HTML also carries the figure's text alternative, written from its data by :mod:`labkit.alt_text`:
``role="img"`` with an ``aria-label`` on the figure, and the whole text in a visually hidden paragraph.

``labkit.plots`` calls :func:`activate` on import; a notebook never needs to.
"""

from __future__ import annotations

import html
import json
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer, PlotlyRenderer

from labkit import alt_text

__all__ = ["RENDERER", "REQUIRE_MODULE", "FIGURE_CLASS", "BookRenderer", "activate", "fit_legend", "plotlyjs_path"]

#: Name under which the renderer is registered in ``plotly.io.renderers``.
RENDERER = "labkit"
#: The require.js module id the HTML asks for; the book maps it to ``_vendor/plotly.min``.
REQUIRE_MODULE = "plotly"
#: CSS class on every figure's div; the book adds its scripts only to pages that contain it.
FIGURE_CLASS = "labkit-plotly"
#: Figure height when the layout sets none (plotly's own HTML default).
DEFAULT_HEIGHT_PX = 525

_PLOTLY_MIME = "application/vnd.plotly.v1+json"

# role="img" with an aria-label makes the figure one image to a screen reader, and the visually hidden
# paragraph (the usual "sr-only" CSS) carries the whole text, linked by aria-describedby.
_HIDDEN = (
    "position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;"
    "clip:rect(0,0,0,0);white-space:normal;border:0"
)
_HTML = """\
<div class="{cls}" id="{div_id}" role="img" aria-label="{label}" aria-describedby="{div_id}-text" \
style="height:{height}px; width:100%;"></div>
<p class="{cls}-text" id="{div_id}-text" style="{hidden}">{text}</p>
<script type="text/javascript">
(function () {{
  var fig = {fig};
  if (typeof require !== "function") {{
    document.getElementById("{div_id}").textContent =
      "(plotly figure: this page does not load require.js, open the notebook in JupyterLab or the built book)";
    return;
  }}
  require(["{module}"], function (Plotly) {{ Plotly.newPlot("{div_id}", fig); }});
}})();
</script>"""


class BookRenderer(MimetypeRenderer):
    """Render a figure as the plotly mimetype plus offline, require.js-based HTML.

    ``config`` is plotly's figure config (e.g. ``{"displaylogo": False}``), passed to both parts.
    """

    def __init__(self, config: dict[str, Any] | None = None):
        if config is not None and not isinstance(config, dict):
            raise ValueError(f"config must be a dict or None, got {config!r}")
        self._mime = PlotlyRenderer(config=config)

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
        fig_dict = fit_legend(fig_dict)
        bundle = self._mime.to_mimebundle(fig_dict)
        fig = bundle[_PLOTLY_MIME]
        height = fig.get("layout", {}).get("height") or DEFAULT_HEIGHT_PX
        text = alt_text.describe(fig)
        bundle["text/html"] = _HTML.format(
            cls=FIGURE_CLASS,
            div_id=f"{FIGURE_CLASS}-{uuid.uuid4().hex}",
            height=int(height),
            label=html.escape(alt_text.short(text), quote=True),
            text=html.escape(text, quote=False),
            hidden=_HIDDEN,
            # "</" inside a <script> would end it early; "<\/" is the same JSON string.
            fig=json.dumps(fig, separators=(",", ":")).replace("</", "<\\/"),
            module=REQUIRE_MODULE,
        )
        return bundle


#: Legend rows that fit between a figure's title and its plot (the house template's top margin).
LEGEND_ROWS_ABOVE = 2
#: Width, in px, a legend row is assumed to have: a book page's figure is about 680 px wide, less margins.
LEGEND_ROW_PX = 580
_LEGEND_ROW_HEIGHT_PX = 24


def _legend_px(name: str) -> float:
    """Estimated width of one legend entry: symbol and gap, plus about 7.5 px per character at 14 px."""
    return 45 + 7.5 * len(name)


def fit_legend(fig: dict[str, Any]) -> dict[str, Any]:
    """Move a legend too long for the space above the plot to the bottom of the figure, with room for it.

    Why: the house legend sits between the title and the plot; one with many or long entries wraps into
    more rows than fit there and covers the title. A figure that places its legend itself is left alone.
    """
    layout = fig.get("layout") or {}
    legend = layout.get("legend") or {}
    if any(key in legend for key in ("y", "yref", "orientation")) or layout.get("showlegend") is False:
        return fig
    names = [str(t.get("name")) for t in fig.get("data") or [] if t.get("name") and t.get("showlegend") is not False]
    if len(names) < 2:
        return fig
    # plotly lays a horizontal legend out as a grid (every column as wide as the widest entry) over the
    # plot area, which long category labels on the y axis (a waterfall's spans, a diagram's processes) narrow
    labels = [
        y for t in fig.get("data") or [] if isinstance(t.get("y"), (list, tuple)) for y in t["y"] if isinstance(y, str)
    ]
    labels += [str(text) for text in (layout.get("yaxis") or {}).get("ticktext") or ()]
    width = LEGEND_ROW_PX - 7 * max((len(label) for label in labels), default=0)
    per_row = max(1, int(width // max(_legend_px(name) for name in names)))
    rows = -(-len(names) // per_row)
    if rows <= LEGEND_ROWS_ABOVE:
        return fig
    extra = _LEGEND_ROW_HEIGHT_PX * rows
    margin = dict(layout.get("margin") or {})
    margin.update(t=60, b=70 + extra)
    height = (layout.get("height") or 420) + extra
    return {
        **fig,
        "layout": {
            **layout,
            "height": height,
            "margin": margin,
            "legend": {
                **legend,
                "orientation": "h",
                "yref": "container",
                "y": 0.0,
                "yanchor": "bottom",
                "x": 0.0,
                "xanchor": "left",
            },
        },
    }


def activate(make_default: bool = True) -> str:
    """Register the ``labkit`` renderer (idempotent) and, unless told not to, make it the default.

    Returns the renderer's name, so ``fig.show(renderer=activate(False))`` also works.
    """
    if not isinstance(make_default, bool):
        raise ValueError(f"make_default must be True or False, got {make_default!r}")
    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = BookRenderer()
    if make_default:
        pio.renderers.default = RENDERER
    return RENDERER


def plotlyjs_path() -> Path:
    """The ``plotly.min.js`` shipped inside the installed plotly package (what the book serves)."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found in the installed plotly package at {path}")
    return path
