"""book/_ext/offline_assets.py decides per page what to load and when cached outputs are stale.

The full path (Sphinx build + browser) is checked by test_built_book.py; these are the fast, focused
checks of the decisions, run against a stand-in for the Sphinx application that records what the
extension asks for.
"""

from __future__ import annotations

import importlib.util
import json
import posixpath
from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit import render

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("offline_assets", ROOT / "book" / "_ext" / "offline_assets.py")
offline_assets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline_assets)

FIGURE = f'<div class="{render.FIGURE_CLASS}" id="x"></div>'
WIDGET = '<script type="application/vnd.jupyter.widget-view+json">{"model_id": "m"}</script>'


class RecordingApp:
    """What the extension touches of sphinx.application.Sphinx, recording add_js_file calls."""

    def __init__(self, outdir: Path, mode: str = "cache", cache_path: str = ""):
        self.builder = SimpleNamespace(format="html")
        self.config = SimpleNamespace(nb_execution_mode=mode, nb_execution_cache_path=cache_path)
        self.outdir = str(outdir)
        self.scripts: list[tuple[str | None, dict]] = []

    def add_js_file(self, filename, **kwargs):
        self.scripts.append((filename, kwargs))


def page_context(pagename: str, body: str) -> dict:
    """The two context entries the extension reads: the body and a relative-URL pathto."""

    def pathto(target: str, resource: bool = False) -> str:
        return posixpath.relpath(target, posixpath.dirname(pagename) or ".")

    return {"body": body, "pathto": pathto}


def scripts_for(tmp_path, pagename, body):
    app = RecordingApp(tmp_path)
    offline_assets.add_page_scripts(app, pagename, "page.html", page_context(pagename, body), None)
    return app.scripts


def test_plain_pages_load_nothing(tmp_path):
    assert scripts_for(tmp_path, "book/glossary", "<p>no figures here</p>") == []


def test_figure_page_gets_require_and_a_config_pointing_at_the_vendored_plotly(tmp_path):
    scripts = scripts_for(tmp_path, "chapters/01-x", FIGURE)
    files = [f for f, _ in scripts if f]
    assert files == ["../_vendor/require.js"]
    config_body = next(kw["body"] for f, kw in scripts if f is None and "require.config" in kw["body"])
    config = json.loads(config_body.removeprefix("require.config(").removesuffix(");"))
    assert config["paths"][render.REQUIRE_MODULE] == "../_vendor/plotly.min"  # relative to chapters/
    assert config["shim"][render.REQUIRE_MODULE] == {"exports": "Plotly"}
    assert not any("embed-amd" in (f or "") for f, _ in scripts)


def test_widget_page_also_gets_the_embedder_with_a_local_cdn(tmp_path):
    scripts = scripts_for(tmp_path, "intro", WIDGET)
    embed = [(f, kw) for f, kw in scripts if f and f.endswith("embed-amd.js")]
    assert len(embed) == 1
    assert embed[0][1]["data-jupyter-widgets-cdn"] == "_vendor/widgets-cdn/"  # never a remote CDN
    assert any(f is None and "MathJax" in kw["body"] for f, kw in scripts)
    priorities = {f: kw["priority"] for f, kw in scripts if f}
    assert priorities["../_vendor/require.js"] < priorities["../_vendor/html-manager/embed-amd.js"]


def test_non_html_builders_are_left_alone(tmp_path):
    app = RecordingApp(tmp_path)
    app.builder.format = "latex"
    offline_assets.add_page_scripts(app, "intro", "page.html", page_context("intro", FIGURE + WIDGET), None)
    assert app.scripts == []


def js(filename, **attrs):
    """A script entry as Sphinx keeps it (a file name or None/"" plus tag attributes)."""
    return SimpleNamespace(filename=filename, attributes=attrs)


def test_duplicate_scripts_are_dropped_keeping_order():
    scripts = [js("a.js"), js(None, body="const X = 1"), js("b.js"), js("", body="const X = 1"), js("a.js")]
    context = {"script_files": scripts}
    offline_assets.drop_duplicate_scripts(None, "p", "page.html", context, None)
    assert [(s.filename, s.attributes) for s in context["script_files"]] == [
        ("a.js", {}),
        (None, {"body": "const X = 1"}),
        ("b.js", {}),
    ]
    assert context["script_files"] is scripts  # edited in place, as Sphinx expects


@pytest.fixture
def build_dir(tmp_path):
    """A _build/ with html/ as outdir and a filled jupyter cache next to it."""
    (tmp_path / "html").mkdir()
    cache = tmp_path / ".jupyter_cache"
    cache.mkdir()
    (cache / "global.db").write_text("cached outputs")
    return tmp_path


def test_cache_without_a_fingerprint_is_cleared_then_kept(build_dir):
    app = RecordingApp(build_dir / "html")
    offline_assets.clear_stale_cache(app)
    assert not (build_dir / ".jupyter_cache").exists()
    assert (build_dir / offline_assets.FINGERPRINT_FILE).read_text() == offline_assets.source_fingerprint(
        offline_assets.LABKIT_DIR
    )

    (build_dir / ".jupyter_cache").mkdir()  # the build fills it again
    offline_assets.clear_stale_cache(app)
    assert (build_dir / ".jupyter_cache").exists(), "same labkit: the cache must survive"


def test_cache_from_another_labkit_is_cleared(build_dir):
    (build_dir / offline_assets.FINGERPRINT_FILE).write_text("fingerprint of an older labkit")
    offline_assets.clear_stale_cache(RecordingApp(build_dir / "html"))
    assert not (build_dir / ".jupyter_cache").exists()


def test_notebooks_are_read_again_only_when_labkit_changed(build_dir):
    env = SimpleNamespace(found_docs={"book/intro", "chapters/01-a", "chapters/02-b"},
                          doc2path=lambda doc: f"/src/{doc}.{'md' if doc.startswith('book') else 'ipynb'}")
    app = RecordingApp(build_dir / "html")
    offline_assets.clear_stale_cache(app)  # no fingerprint yet: the cache is cleared
    assert offline_assets.notebooks_outdated(app, env, set(), set(), set()) == ["chapters/01-a", "chapters/02-b"]
    offline_assets.clear_stale_cache(app)  # same labkit: nothing to re-read
    assert offline_assets.notebooks_outdated(app, env, set(), set(), set()) == []


def test_explicit_cache_path_is_honoured(build_dir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("cache") / "jc"
    elsewhere.mkdir()
    offline_assets.clear_stale_cache(RecordingApp(build_dir / "html", cache_path=str(elsewhere)))
    assert not elsewhere.exists()
    assert (build_dir / ".jupyter_cache").exists(), "only the configured cache is touched"


def test_force_mode_never_touches_the_cache(build_dir):
    offline_assets.clear_stale_cache(RecordingApp(build_dir / "html", mode="force"))
    assert (build_dir / ".jupyter_cache" / "global.db").exists()
    assert not (build_dir / offline_assets.FINGERPRINT_FILE).exists()


def test_fingerprint_follows_python_sources_only(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    (pkg / "notes.txt").write_text("not code")
    fingerprint = offline_assets.source_fingerprint
    before = fingerprint(pkg)

    (pkg / "notes.txt").write_text("edited, still not code")
    assert fingerprint(pkg) == before
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    assert fingerprint(pkg) != before
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    assert fingerprint(pkg) == before
    (pkg / "c.py").write_text("")
    assert fingerprint(pkg) != before
    assert offline_assets.LABKIT_DIR == Path(render.__file__).resolve().parent
