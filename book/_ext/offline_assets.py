"""Sphinx extension: serve plotly, require.js and the widget embedder from ``_vendor/``, offline.

Why: the book must draw its figures and widgets with no network. Jupyter Book 1 injects every file under
``_static/`` into every page, and myst-nb's defaults load require.js and the widget embedder from CDNs. So:

- at builder start, ``book/_vendor/`` (committed: require.js, ``@jupyter-widgets/html-manager``'s
  ``embed-amd.js``, MathJax, which ``_config.yml`` names as ``mathjax_path``) and the installed plotly
  package's ``plotly.min.js`` are copied to ``<outdir>/_vendor/``;
- each page that holds a ``labkit`` plotly figure or a widget view gets require.js and a require.js
  config mapping ``plotly`` to that copy; pages with widget views also get ``embed-amd.js``, whose CDN
  fallback is pointed at ``_vendor/`` too, so an unknown widget module fails locally instead of calling out;
- every page loses duplicate ``<script>`` tags: Jupyter Book 1 registers sphinx-thebe's inline config
  twice, and the second ``const THEBE_JS_URL`` throws a SyntaxError on every page;
- in ``cache`` execution mode, the jupyter-cache is cleared when the ``labkit`` sources change, because
  the cache keys only on a notebook's code cells and would otherwise replay outputs of an older lab.

Configure with ``nb_ipywidgets_js: {}`` so myst-nb adds only the widget state, not its CDN scripts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from labkit import render
from sphinx.application import Sphinx
from sphinx.util import logging

LOG = logging.getLogger(__name__)

VENDOR_SOURCE = Path(__file__).resolve().parent.parent / "_vendor"
VENDOR_OUT = "_vendor"
# Files under book/_vendor that are documentation or tooling, not assets to serve.
NOT_SERVED = {"README.md", "refresh.sh"}
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
# After Sphinx's and the theme's scripts (priority 200-800), so nothing loaded later meets require.js.
PRIORITY = 900
# Notebooks' outputs depend on the lab kit's code, not only on their own cells.
LABKIT_DIR = Path(render.__file__).resolve().parent
FINGERPRINT_FILE = ".labkit-fingerprint"
# ipywidgets typesets widget descriptions through MathJax 2's ``MathJax.Hub.Queue`` whenever
# ``window.MathJax`` exists; the book loads MathJax 3, so without this every widget with a description
# throws on a page that also has math. Installed on "load", before the embedder renders the widgets.
MATHJAX2_SHIM = """window.addEventListener("load", function () {
  var mj = window.MathJax;
  if (mj && !mj.Hub) {
    mj.Hub = {Queue: function (job) { if (mj.typesetPromise) { mj.typesetPromise([job[2]]); } }};
  }
});"""


def copy_assets(app: Sphinx) -> None:
    """Copy the vendored files and the installed plotly.min.js to ``<outdir>/_vendor``."""
    if app.builder.format != "html":
        return
    out = Path(app.outdir) / VENDOR_OUT
    for source in VENDOR_SOURCE.rglob("*"):
        if source.is_file() and source.name not in NOT_SERVED:
            target = out / source.relative_to(VENDOR_SOURCE)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    shutil.copyfile(render.plotlyjs_path(), out / "plotly.min.js")


def add_page_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    """Add require.js (+ config) to pages with figures or widgets, and the embedder to widget pages."""
    if app.builder.format != "html":
        return
    body = context.get("body", "")
    has_widgets = WIDGET_VIEW_MIME in body
    if not (has_widgets or f'class="{render.FIGURE_CLASS}"' in body):
        return

    def vendor(path: str) -> str:
        return context["pathto"](f"{VENDOR_OUT}/{path}", resource=True)

    config = {
        "paths": {
            render.REQUIRE_MODULE: vendor("plotly.min"),
            # embed-amd.js's bundles look for their fonts next to the URL require.js gives their module,
            # so every @jupyter-widgets module id must resolve into html-manager/ itself.
            "@jupyter-widgets": vendor("html-manager"),
            "@jupyter-widgets/html-manager/dist": vendor("html-manager"),
        },
        "shim": {render.REQUIRE_MODULE: {"exports": "Plotly"}},
        "waitSeconds": 0,  # plotly.min.js is 4.8 MB: a slow link must not time the figure out
    }
    # add_js_file prefixes relative names with "_static/"; "../" steps back out to the output root.
    app.add_js_file(f"../{VENDOR_OUT}/require.js", priority=PRIORITY)
    app.add_js_file(None, body=f"require.config({json.dumps(config)});", priority=PRIORITY + 1)
    if has_widgets:
        app.add_js_file(None, body=MATHJAX2_SHIM, priority=PRIORITY + 1)
        app.add_js_file(
            f"../{VENDOR_OUT}/html-manager/embed-amd.js",
            priority=PRIORITY + 2,
            **{"data-jupyter-widgets-cdn": vendor("widgets-cdn") + "/"},
        )


def drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    """Keep the first of scripts that are the same file or inline body with the same attributes.

    (The copies differ only in how Sphinx spells "no file": ``None`` or ``""``.)
    """
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for js in scripts:
        key = (js.filename or "", tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique  # in place: Sphinx restores the list before the next page


def source_fingerprint(root: Path) -> str:
    """Hash of the Python sources under ``root`` (their paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def clear_stale_cache(app: Sphinx) -> None:
    """In ``cache`` mode, drop the jupyter-cache when labkit changed since it was filled, and remember it
    (``app.labkit_changed``) so that :func:`notebooks_outdated` has Sphinx read every notebook again."""
    app.labkit_changed = False
    if app.config.nb_execution_mode != "cache":
        return
    # myst-nb's default when JB1 leaves nb_execution_cache_path empty: <outdir>/../.jupyter_cache
    cache = Path(app.config.nb_execution_cache_path or Path(app.outdir).parent / ".jupyter_cache")
    stamp = cache.parent / FINGERPRINT_FILE
    current = source_fingerprint(LABKIT_DIR)
    if cache.exists() and (not stamp.exists() or stamp.read_text() != current):
        LOG.info("labkit changed since the notebooks were cached: clearing %s", cache)
        shutil.rmtree(cache)
        app.labkit_changed = True
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current)


def notebooks_outdated(app: Sphinx, env: Any, added: set, changed: set, removed: set) -> list[str]:
    """Every notebook, when labkit changed: Sphinx re-reads only the files that changed, so an unchanged
    notebook would keep the page it built from the old labkit's outputs, even with the cache cleared."""
    if not getattr(app, "labkit_changed", False):
        return []
    return sorted(doc for doc in env.found_docs if str(env.doc2path(doc)).endswith(".ipynb"))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", copy_assets)
    app.connect("builder-inited", clear_stale_cache)
    app.connect("env-get-outdated", notebooks_outdated)
    app.connect("html-page-context", add_page_scripts)
    # After every other html-page-context handler has added its scripts.
    app.connect("html-page-context", drop_duplicate_scripts, priority=999)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
