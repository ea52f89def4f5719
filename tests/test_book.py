"""Checks of the built book: offline assets, typeset math and rendered widgets.

Run after the book is built (``make book``); the tests skip, saying why, when the
built HTML or Chromium is missing. Chromium: ``apt-get install -y chromium``.
Nothing is served: the pages are opened from ``file://`` in headless Chromium, which
is also how a reader without the internet sees them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = (ROOT / "book" / "_build" / "html", ROOT / "_build" / "html")
HTML = next((p for p in CANDIDATES if (p / "index.html").exists()), None)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHAPTERS = ("question", "network", "dropout")
CDN = re.compile(r"https?://cdn|cdnjs|unpkg|jsdelivr", re.IGNORECASE)

needs_book = pytest.mark.skipif(
    HTML is None, reason="the book is not built (no book/_build/html or _build/html): run `make book` first")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


def toc_pages() -> list[str]:
    """The ``notebooks/NAME`` entries of _toc.yml, in order (a light parse: no yaml import)."""
    text = (ROOT / "_toc.yml").read_text()
    return re.findall(r"^\s*(?:root|-\s*file):\s*(\S+)\s*$", text, flags=re.MULTILINE)


class _Assets(HTMLParser):
    """Collects the URLs a page loads: script src and stylesheet/icon href."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href") and a.get("rel") in ("stylesheet", "icon", "preload"):
            self.urls.append(a["href"])


def built_page(name: str) -> Path:
    return HTML / f"{name}.html"


@needs_book
def test_every_toc_entry_is_built():
    pages = toc_pages()
    assert pages and pages[0] == "notebooks/question"
    missing = [p for p in pages if not built_page(p).exists()]
    assert not missing, f"toc entries without a built page: {missing}"


@needs_book
@pytest.mark.parametrize("page", toc_pages())
def test_no_cdn_and_local_assets_exist(page):
    path = built_page(page)
    if not path.exists():
        pytest.skip(f"{page} is not built")
    html = path.read_text(encoding="utf-8")
    hits = sorted(set(m.group(0) for m in CDN.finditer(html)))
    assert not hits, f"{page}.html refers to a CDN: {hits}"
    parser = _Assets()
    parser.feed(html)
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page}.html loads {url} from the network"
        target = (path.parent / unquote(parts.path)).resolve()
        assert target.exists(), f"{page}.html loads {url}, which is not in the build"


@needs_book
def test_vendored_scripts_are_referenced():
    """The equations chapter loads MathJax, RequireJS and the widget manager from _static."""
    html = built_page("notebooks/network").read_text(encoding="utf-8")
    for script in ("_static/mathjax/tex-mml-chtml.js", "_static/requirejs/require.js",
                   "_static/jupyter-widgets/html-manager/embed-amd.js"):
        assert script in html, f"{script} is not loaded by network.html"
    assert 'type="application/vnd.jupyter.widget-state+json"' in html, "no saved widget state embedded"


def chromium(args: list[str], profile: Path, timeout: int = 50) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=20000",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def rendered_dom(page: str, profile: Path) -> str:
    result = chromium(["--dump-dom", built_page(page).as_uri()], profile)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def classes(dom: str) -> list[str]:
    return [c for attr in re.findall(r'class="([^"]*)"', dom) for c in attr.split()]


@needs_book
@needs_chromium
@pytest.mark.parametrize("page, widget_classes", [
    ("notebooks/network", {"widget-slider": 3}),
    ("notebooks/dropout", {"widget-dropdown": 1, "widget-slider": 2, "widget-checkbox": 1,
                              "widget-toggle-buttons": 1}),
])
def test_math_typeset_and_widgets_rendered(page, widget_classes, tmp_path):
    dom = rendered_dom(page, tmp_path / "profile")
    n_math = dom.count("<mjx-container")
    assert n_math >= 10, f"MathJax typeset only {n_math} formulas in {page}"
    assert "<mjx-merror" not in dom and 'data-mjx-error' not in dom, f"MathJax reported a TeX error in {page}"
    found = classes(dom)
    for cls, n in widget_classes.items():
        assert found.count(cls) >= n, f"{page}: expected {n} rendered {cls}, found {found.count(cls)}"
    # The interact output (a figure) is restored from the saved widget state.
    assert "widget-output" in found, f"{page}: no output widget rendered"
    outputs = dom.split("widget-output")[1:]
    assert any("<img" in chunk[:20000] for chunk in outputs), f"{page}: the output widget shows no figure"


@needs_book
@needs_chromium
def test_screenshot_of_equations_chapter(tmp_path):
    shot = tmp_path / "network.png"
    result = chromium(["--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}",
                       built_page("notebooks/network").as_uri()], tmp_path / "profile")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1280, 2400)
        grey = img.convert("L")
        lo, hi = grey.getextrema()
        # a rendered page has text (dark) on a light background, not a blank or error page
        assert hi - lo > 100, "the screenshot is blank"
        dark = sum(grey.histogram()[:128]) / (img.size[0] * img.size[1])
        assert 0.005 < dark < 0.6, f"unexpected share of dark pixels: {dark:.3f}"
