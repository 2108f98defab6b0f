"""A plotly renderer that draws in JupyterLab, VS Code and the built book, all without a network.

Why: plotly's default renderer emits only ``application/vnd.plotly.v1+json``. JupyterLab and VS Code draw
that natively, but Jupyter Book's HTML drops it; ``notebook_connected`` fetches plotly.js from a CDN (the
book must read offline) and ``notebook`` inlines 4.8 MB of JavaScript into every figure. The ``labkit``
renderer emits both the plotly mimetype and a small ``text/html`` part with ``include_plotlyjs=False``
semantics: the HTML draws through ``require(["plotly"], ...)``, and the book's Sphinx extension
(``book/_ext/offline_assets.py``) serves require.js and the installed package's own ``plotly.min.js`` from
``_vendor/`` on the pages that hold a figure, so the JavaScript always matches the Python package's version.

``labkit.plots`` calls :func:`activate` on import; a notebook never needs to.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer, PlotlyRenderer

__all__ = ["RENDERER", "REQUIRE_MODULE", "FIGURE_CLASS", "BookRenderer", "activate", "plotlyjs_path"]

#: Name under which the renderer is registered in ``plotly.io.renderers``.
RENDERER = "labkit"
#: The require.js module id the HTML asks for; the book maps it to ``_vendor/plotly.min``.
REQUIRE_MODULE = "plotly"
#: CSS class on every figure's div; the book adds its scripts only to pages that contain it.
FIGURE_CLASS = "labkit-plotly"
#: Figure height when the layout sets none (plotly's own HTML default).
DEFAULT_HEIGHT_PX = 525

_PLOTLY_MIME = "application/vnd.plotly.v1+json"

_HTML = """\
<div class="{cls}" id="{div_id}" style="height:{height}px; width:100%;"></div>
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
        bundle = self._mime.to_mimebundle(fig_dict)
        fig = bundle[_PLOTLY_MIME]
        height = fig.get("layout", {}).get("height") or DEFAULT_HEIGHT_PX
        bundle["text/html"] = _HTML.format(
            cls=FIGURE_CLASS,
            div_id=f"{FIGURE_CLASS}-{uuid.uuid4().hex}",
            height=int(height),
            # "</" inside a <script> would end it early; "<\/" is the same JSON string.
            fig=json.dumps(fig, separators=(",", ":")).replace("</", "<\\/"),
            module=REQUIRE_MODULE,
        )
        return bundle


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
