"""The built book draws its figures, widgets and formulas offline.

Why: a book that renders only with a CDN at hand fails its readers on a train and fails silently in
review (a blank box where the figure was). This opens every page of ``_build/html`` in headless Chromium
served from 127.0.0.1, refuses every request to any other host, and checks that each plotly figure drew
an SVG with data traces, each widget view rendered, each formula was typeset, and nothing raised;
that each figure carries a text alternative naming its numbers (``labkit.alt_text``), and that no
figure's legend overlaps its title or its x axis's title.
Screenshots of every figure and widget go to ``_build/screenshots/`` for a human look.

Runs when named on the command line (``make book`` does: ``pytest tests/book/test_built_book.py``) and
skips otherwise, with the reason: a chapter page costs seconds of browser CPU, and inside ``make test``
it would check whichever build happens to be lying around. Also skips when the book has not been built.
``BOOK_HTML`` points it at another build, ``CHROMIUM`` at another browser binary.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = HTML.parent / "screenshots"
LOCAL_HOST = "127.0.0.1"
# Sphinx's generated pages hold no lesson content.
SKIPPED_PAGES = {"genindex.html", "search.html"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RENDER_TIMEOUT_MS = 30_000

if not (HTML / "index.html").is_file():
    pytest.skip(f"no built book at {HTML}: run `make book` first", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set CHROMIUM", allow_module_level=True)

PAGES = sorted(
    p.relative_to(HTML).as_posix()
    for p in HTML.rglob("*.html")
    if p.name not in SKIPPED_PAGES and not p.relative_to(HTML).parts[0].startswith("_")
)


def count(page: str, marker: str) -> int:
    return (HTML / page).read_text(encoding="utf-8").count(marker)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module", autouse=True)
def only_when_named(request):
    named = [arg.split("::")[0] for arg in request.config.args]
    if not any(Path(arg).resolve() == Path(__file__).resolve() for arg in named):
        pytest.skip(f"the built-book browser check runs when named: pytest {Path(__file__).relative_to(ROOT)}")


@pytest.fixture(scope="module")
def base_url():
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), functools.partial(_QuietHandler, directory=HTML))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    playwright = sync_api.sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
    yield browser
    browser.close()
    playwright.stop()


class PageLog:
    """What one page load did on the network and in its scripts."""

    def __init__(self, page):
        self.outside: list[str] = []  # requests to any host but 127.0.0.1 (refused)
        self.failed: list[str] = []  # local requests answered with an error status
        self.requested: list[str] = []
        self.errors: list[str] = []  # uncaught exceptions in the page's scripts
        page.route("**/*", self._route)
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.url}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route):
        url = urlparse(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname != LOCAL_HOST:
            self.outside.append(route.request.url)
            route.abort()
        else:
            self.requested.append(route.request.url)
            route.continue_()


def save_screenshots(page, page_path: str) -> None:
    """One PNG per figure and widget view (a full-page shot of a chapter costs seconds)."""
    stem = page_path.removesuffix(".html").replace("/", "__")
    for kind, selector in (("figure", ".labkit-plotly"), ("widget", ".widget-subarea")):
        for i, element in enumerate(page.query_selector_all(selector)):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            element.screenshot(path=str(SCREENSHOTS / f"{stem}__{kind}{i}.png"))


# Per drawn figure: its text alternative (role="img", an aria-label naming at least one number, and the
# hidden paragraph it points to, which names at least as many), and the parts of the SVG that must not
# overlap: the title with the legend, and the legend with the x axis's title. Figures in closed dropdowns
# have no size and are only checked for their text.
_FIGURE_CHECK = """() => [...document.querySelectorAll('.labkit-plotly')].flatMap((div, i) => {
    const problems = [];
    const name = `figure ${i} (${(div.querySelector('.gtitle') || {}).textContent || 'untitled'})`;
    const label = div.getAttribute('aria-label') || '';
    const text = document.getElementById(div.getAttribute('aria-describedby') || '');
    if (div.getAttribute('role') !== 'img') problems.push(`${name}: no role="img"`);
    if (!/\\d/.test(label)) problems.push(`${name}: its aria-label names no number: "${label}"`);
    if (!text || !/\\d/.test(text.textContent)) problems.push(`${name}: no hidden description with numbers`);
    const box = sel => { const e = div.querySelector(sel); if (!e) return null;
                         const r = e.getBoundingClientRect(); return r.width && r.height ? r : null; };
    const overlap = (a, b) => a && b && a.left < b.right - 1 && b.left < a.right - 1 &&
                                        a.top < b.bottom - 1 && b.top < a.bottom - 1;
    const [title, legend, xtitle] = [box('.gtitle'), box('.legend'), box('.xtitle')];
    if (overlap(title, legend)) problems.push(`${name}: the legend overlaps the title`);
    if (overlap(legend, xtitle)) problems.push(`${name}: the legend overlaps the x axis's title`);
    return problems;
})"""


def check_figures(page) -> list[str]:
    """What is wrong with the page's drawn figures, one line per problem (see _FIGURE_CHECK)."""
    return page.evaluate(_FIGURE_CHECK)


def test_pages_were_found():
    assert "book/intro.html" in PAGES, f"the built book at {HTML} has no intro page: {PAGES}"


@pytest.mark.parametrize("page_path", PAGES)
def test_page_renders_offline(browser, base_url, page_path):
    figures = count(page_path, 'class="labkit-plotly"')
    widgets = count(page_path, '<script type="application/vnd.jupyter.widget-view+json">')
    has_math = 'class="math' in (HTML / page_path).read_text(encoding="utf-8")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        log = PageLog(page)
        page.goto(base_url + page_path, wait_until="load")
        if figures:
            # Every figure div holds an SVG with at least one data trace (scatter, bar, pie ... or heatmap).
            # ">=": an Output widget's saved state can hold more figures than the page's static HTML.
            page.wait_for_function(
                """n => {
                    const divs = [...document.querySelectorAll('.labkit-plotly')];
                    return divs.length >= n && divs.every(d => d.querySelector('svg.main-svg g.trace, svg.main-svg g.hm'));
                }""",
                arg=figures,
                timeout=RENDER_TIMEOUT_MS,
            )
        figure_problems = check_figures(page) if figures else []
        if widgets:
            # The embedder puts each view in a .widget-subarea next to its script tag.
            page.wait_for_function(
                """n => {
                    const areas = [...document.querySelectorAll('.widget-subarea')];
                    return areas.length >= n && areas.every(a => a.querySelector('.jupyter-widgets'));
                }""",
                arg=widgets,
                timeout=RENDER_TIMEOUT_MS,
            )
        if has_math:
            # attached, not visible: a page whose only formula sits in a closed solution dropdown is typeset too
            page.wait_for_selector("mjx-container", state="attached", timeout=RENDER_TIMEOUT_MS)
        if figures or widgets:
            save_screenshots(page, page_path)
    finally:
        context.close()

    assert log.outside == [], f"{page_path} asked for hosts other than {LOCAL_HOST}: {log.outside}"
    assert log.errors == [], f"{page_path} raised in the browser: {log.errors}"
    assert log.failed == [], f"{page_path} requested missing files: {log.failed}"
    assert figure_problems == [], f"{page_path}: figures without a text alternative, or overlapping parts:\n" + \
        "\n".join(figure_problems)
    loaded_plotly = any(url.endswith("/plotly.min.js") for url in log.requested)
    assert loaded_plotly == bool(figures), (
        f"{page_path}: plotly.min.js loaded={loaded_plotly} but the page has {figures} figure(s): "
        "it must be served to exactly the pages that draw figures"
    )
