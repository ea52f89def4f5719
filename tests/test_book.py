"""Checks of the built book: offline assets, typeset math, references, and live figures.

Run after the book is built (``make book``, or ``jupyter-book build book/``); the tests
skip, saying why, when the built HTML, Chromium, chromedriver or Selenium is missing
(Debian: ``apt-get install -y chromium chromium-driver``; ``selenium`` is in
requirements.txt). Nothing is served: the pages are opened from ``file://`` in headless
Chromium whose host resolver maps every name to nothing, which is how a reader without
the internet sees them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
except ImportError:  # pragma: no cover - the skip below says so
    webdriver = None

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = (ROOT / "book" / "_build" / "html", ROOT / "_build" / "html")
HTML = next((p for p in CANDIDATES if (p / "index.html").exists()), None)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CDN = re.compile(r"https?://cdn|cdnjs|unpkg|jsdelivr", re.IGNORECASE)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
# Every host name resolves to nothing: a page that tried the network would miss it.
NO_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND"
LIVE_FIGURE_CLASS = "snn-live-figure"  # snnlib.widgets.LIVE_FIGURE_CLASS (no snnlib import needed here)
# The live figures of each chapter, in page order: the controls each must have.
LIVE_FIGURES = {
    "notebooks/network": [("threshold ϑ", "τ", "delay spread")],
    "notebooks/dropout": [("p",), ("kind", "p", "mask", "site")],
}
# The browser tests' window: a laptop's, in which the book's text column is about 770 px wide.
WINDOW_WIDTH = 1400
# Each equation of chapters 2 and 3 links to its section of the API page.
API_LINKS = {
    "notebooks/network": ("api-eq1", "api-eq2", "api-eq3", "api-threshold"),
    "notebooks/dropout": ("api-dropout",),
}

needs_book = pytest.mark.skipif(
    HTML is None, reason="the book is not built (no book/_build/html or _build/html): run `make book` first")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
needs_selenium = pytest.mark.skipif(
    webdriver is None or CHROMIUM is None or CHROMEDRIVER is None,
    reason="the live-figure test needs selenium (pip install -r requirements.txt), chromium and "
           "chromedriver (apt-get install -y chromium chromium-driver)")


def toc_entries() -> list[str]:
    """The root and the ``file:`` entries of _toc.yml, in order (a light parse: no yaml import)."""
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


# The book's root (_toc.yml's root:): the study's answer, computed from the records (notebooks/index.ipynb).
LANDING = "notebooks/index"


def built_page(name: str) -> Path:
    return HTML / f"{name}.html"


WIDGET_STATE = re.compile(r'<script type="application/vnd\.jupyter\.widget-state\+json">.*?</script>', re.DOTALL)


def without_widget_state(html: str) -> str:
    """The page without its embedded widget state (base64 images, in which any short
    string turns up by chance)."""
    return WIDGET_STATE.sub("", html)


@needs_book
def test_every_toc_entry_is_built():
    pages = toc_entries()
    assert pages[0] == LANDING and "notebooks/question" in pages
    # the build's index.html sends a reader who opens the book's folder to the landing page
    assert f'url={LANDING}.html"' in built_page("index").read_text(encoding="utf-8")
    missing = [p for p in pages if not built_page(p).exists()]
    assert not missing, f"toc entries without a built page: {missing}"


@needs_book
def test_chapters_are_numbered_in_parts():
    html = built_page("notebooks/network").read_text(encoding="utf-8")
    for caption in ("Question and model", "Experiments", "Analysis", "Reproduce", "Reference"):
        assert caption in html, f"part caption {caption!r} missing from the navigation"
    assert re.search(r'<h1><span class="section-number">2\. </span>The network', html), "chapter 2 is not numbered"


@needs_book
@pytest.mark.parametrize("page", toc_entries())
def test_no_cdn_and_local_assets_exist(page):
    path = built_page(page)
    if not path.exists():
        pytest.skip(f"{page} is not built")
    html = without_widget_state(path.read_text(encoding="utf-8"))
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
    scripts = ("_static/mathjax/tex-mml-chtml.js", "_static/requirejs/require.js", "_static/widgets-offline.js",
               "_static/jupyter-widgets/html-manager/embed-amd.js")
    for script in scripts:
        assert script in html, f"{script} is not loaded by network.html"
    # the book's mending script between RequireJS and the widget manager (book/_ext/static)
    assert html.index(scripts[1]) < html.index(scripts[2]) < html.index(scripts[3])
    assert 'type="application/vnd.jupyter.widget-state+json"' in html, "no saved widget state embedded"


@needs_book
@pytest.mark.parametrize("page, anchors", sorted(API_LINKS.items()))
def test_equations_link_to_the_api_page(page, anchors):
    html = built_page(page).read_text(encoding="utf-8")
    api = built_page("api").read_text(encoding="utf-8")
    for anchor in anchors:
        assert f'api.html#{anchor}"' in html, f"{page} does not link to the API section {anchor}"
        assert f'id="{anchor}"' in api, f"the API page has no section {anchor}"


@needs_book
def test_bibliography_lists_every_reference_and_chapters_cite():
    keys = re.findall(r"^@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text(), flags=re.MULTILINE)
    html = built_page("bibliography").read_text(encoding="utf-8")
    entries = re.findall(r'<div class="citation" id="id\d+"', html)
    assert len(entries) == len(keys), f"{len(entries)} bibliography entries for {len(keys)} bib keys"
    for page in ("notebooks/question", "notebooks/network", "notebooks/dropout"):
        assert "bibliography.html#id" in built_page(page).read_text(encoding="utf-8"), f"{page} cites nothing"


# The words a reader of the analysis chapters must decode, each a term of book/glossary.md.
GLOSSARY_TERMS = ("site", "cell", "current", "per-step-mask", "per-sample-mask", "time_consistent", "Holm-family",
                  "primary-test", "secondary-test", "running-maximum", "second-edition", "third-edition",
                  "feature_alpha", "control", "seed", "pre-registration")


@needs_book
def test_glossary_defines_the_books_words_and_the_landing_page_links_it():
    html = built_page("glossary").read_text(encoding="utf-8")
    missing = [term for term in GLOSSARY_TERMS if f'id="term-{term}"' not in html]
    assert not missing, f"the glossary does not define {missing}"
    landing = built_page(LANDING).read_text(encoding="utf-8")
    assert 'href="../glossary.html"' in landing, "the landing page does not link the glossary"


def chromium(args: list[str], profile: Path, timeout: int = 50) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, NO_NETWORK, "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--virtual-time-budget=20000", *args]
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
    ("notebooks/network", {"widget-slider": 3, LIVE_FIGURE_CLASS: 1}),
    ("notebooks/dropout", {"widget-dropdown": 1, "widget-slider": 2, "widget-toggle-buttons": 2,
                           LIVE_FIGURE_CLASS: 2}),
])
def test_math_typeset_and_widgets_rendered(page, widget_classes, tmp_path):
    dom = rendered_dom(page, tmp_path / "profile")
    n_math = dom.count("<mjx-container")
    assert n_math >= 10, f"MathJax typeset only {n_math} formulas in {page}"
    assert "<mjx-merror" not in dom and 'data-mjx-error' not in dom, f"MathJax reported a TeX error in {page}"
    found = classes(dom)
    for cls, n in widget_classes.items():
        assert found.count(cls) >= n, f"{page}: expected {n} rendered {cls}, found {found.count(cls)}"
    rendered = without_widget_state(dom)
    figures = re.split(rf'class="[^"]*\b{LIVE_FIGURE_CLASS}\b[^"]*"', rendered)[1:]
    assert len(figures) == widget_classes[LIVE_FIGURE_CLASS], f"{page}: {len(figures)} live figures rendered"
    assert all("<img" in chunk[:20000] for chunk in figures), f"{page}: a live figure shows no image"


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


# ---------------------------------------------------------------- live figures (Selenium)

# SHA-256 of the bytes behind the <img> (a blob: URL made by the widget manager).
_IMAGE_DIGEST = """
const img = arguments[0], done = arguments[arguments.length - 1];
fetch(img.src).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b))
  .then(h => done(Array.from(new Uint8Array(h)).map(x => x.toString(16).padStart(2, '0')).join('')))
  .catch(e => done('error: ' + e));
"""


def start_chromium(host_rules: str, window: str, script_timeout: float):
    """Headless Chromium under Selenium with :data:`CHROMIUM_FLAGS` and ``host_rules``; skips the
    test, saying why, when chromedriver cannot start it."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, host_rules, "--disable-dev-shm-usage", f"--window-size={window}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for driver.get_log
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as err:  # e.g. chromedriver and chromium of different versions
        pytest.skip(f"chromedriver could not start chromium: {str(err).splitlines()[0]}")
    driver.set_script_timeout(script_timeout)
    return driver


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium(NO_NETWORK, f"{WINDOW_WIDTH},1600", 20)
    yield driver
    driver.quit()


def _wait(condition, timeout: float = 15.0, step: float = 0.2):
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > end:
            return value
        time.sleep(step)


def shown_image(driver, figure) -> str | None:
    """Digest of the one image the live figure displays (None while it shows none)."""
    imgs = [img for img in figure.find_elements(By.TAG_NAME, "img") if img.is_displayed()]
    if len(imgs) != 1:
        return None
    digest = driver.execute_async_script(_IMAGE_DIGEST, imgs[0])
    assert not digest.startswith("error"), digest
    return digest


def controls_of(figure) -> list:
    return figure.find_elements(By.CSS_SELECTOR, ".widget-hslider, .widget-dropdown, .widget-toggle-buttons")


def control_label(control) -> str:
    return control.find_element(By.CSS_SELECTOR, ".widget-label").text.strip()


def move(driver, control, forward: bool = True) -> None:
    """Moves a control one position (a slider by the arrow keys, as a reader's keyboard would)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", control)
    classes_ = control.get_attribute("class").split()
    if "widget-hslider" in classes_:
        control.find_element(By.CSS_SELECTOR, ".noUi-handle").send_keys(
            Keys.ARROW_RIGHT if forward else Keys.ARROW_LEFT)
    elif "widget-dropdown" in classes_:
        select = Select(control.find_element(By.TAG_NAME, "select"))
        index = [o.get_attribute("value") for o in select.options].index(
            select.first_selected_option.get_attribute("value"))
        select.select_by_index(index + 1 if forward else index - 1)
    else:
        buttons = control.find_elements(By.TAG_NAME, "button")
        index = next(i for i, b in enumerate(buttons) if "mod-active" in b.get_attribute("class"))
        buttons[index + 1 if forward else index - 1].click()


@needs_book
@needs_selenium
@pytest.mark.parametrize("page", sorted(LIVE_FIGURES))
def test_live_figures_respond_without_kernel_or_network(browser, page):
    """Every control of every live figure changes the displayed image, and moving it back
    shows the first image again: the precomputed stacks and their browser-side links work
    from file:// with no kernel and no network."""
    browser.get(built_page(page).as_uri())
    expected = LIVE_FIGURES[page]
    figures = _wait(lambda: [f for f in browser.find_elements(By.CSS_SELECTOR, f".{LIVE_FIGURE_CLASS}")
                             if shown_image(browser, f)] or None, timeout=30)
    assert figures and len(figures) == len(expected), \
        f"{page}: {len(figures or [])} live figures rendered, expected {len(expected)}"
    for figure, labels in zip(figures, expected, strict=True):
        controls = controls_of(figure)
        assert tuple(control_label(c) for c in controls) == labels
        first = shown_image(browser, figure)
        for control in controls:
            label = control_label(control)
            move(browser, control, forward=True)
            moved = _wait(lambda fig=figure, first=first: shown_image(browser, fig) not in (None, first))
            assert moved, f"{page}: moving {label!r} did not change the figure"
            move(browser, control, forward=False)
            back = _wait(lambda fig=figure, first=first: shown_image(browser, fig) == first)
            assert back, f"{page}: moving {label!r} back did not restore the figure"


@needs_book
@needs_selenium
@pytest.mark.parametrize("page", sorted(LIVE_FIGURES))
def test_widget_pages_log_no_console_error(browser, page):
    """Chapters 2 and 3 with their live figures rendered log no error in the browser console: no
    script error (the widget manager typesets its labels through MathJax 2's ``MathJax.Hub.Queue``,
    which MathJax 3 lacks: book/_ext/static/widgets-offline.js) and no missing file (the manager's
    font files, looked for beside the page), from file:// with no network."""
    browser.get_log("browser")  # what earlier tests left in the log
    browser.get(built_page(page).as_uri())
    figures = _wait(lambda: [f for f in browser.find_elements(By.CSS_SELECTOR, f".{LIVE_FIGURE_CLASS}")
                             if shown_image(browser, f)] or None, timeout=30)
    assert figures, f"{page}: no live figure rendered"
    browser.execute_async_script("document.fonts.ready.then(() => arguments[arguments.length - 1]())")
    time.sleep(1)  # a late error of the widget manager's promises
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"{page} logs {len(errors)} console error(s):\n" + "\n".join(errors)


@needs_book
@needs_selenium
@pytest.mark.parametrize("width", [1280, WINDOW_WIDTH])
def test_live_figures_fit_their_frame(browser, width):
    """No live figure is wider than its frame, so none shows a horizontal scrollbar: ipywidgets gave each image a
    2 px margin on both sides on top of its full width, 4 px too wide in a 1280 px window (book/_ext/static/book.css
    takes the side margins away)."""
    browser.set_window_size(width, 1600)
    try:
        for page in sorted(LIVE_FIGURES):
            browser.get(built_page(page).as_uri())
            figures = _wait(lambda: [f for f in browser.find_elements(By.CSS_SELECTOR, f".{LIVE_FIGURE_CLASS}")
                                     if shown_image(browser, f)] or None, timeout=30)
            assert figures, f"{page}: no live figure rendered"
            sizes = browser.execute_script(  # the boxes that would scroll: overflow auto or scroll
                "return Array.from(document.querySelectorAll(arguments[0])).flatMap(f => "
                "[f, f.parentElement, ...f.querySelectorAll('*')].filter(e => "
                "['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).map(e => [e.scrollWidth, e.clientWidth]))",
                f".{LIVE_FIGURE_CLASS}")
            wide = [(scroll, client) for scroll, client in sizes if client and scroll > client]
            assert not wide, f"{page} at {width} px: content wider than its frame (scroll, client width): {wide}"
    finally:
        browser.set_window_size(WINDOW_WIDTH, 1600)


# The first screen of a laptop whose browser is 1280 px wide (the page's viewport, without the browser's bars).
FIRST_SCREEN = (1280, 800)


@needs_book
@needs_selenium
def test_landing_page_answers_in_its_first_screen(browser):
    """The landing page in a 1280 x 800 viewport: its answer's figure whole, beside the answer's first sentences
    (its list starts above the fold), and the page's title on top; wider than the text column nothing."""
    width, height = FIRST_SCREEN
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        browser.get(built_page(LANDING).as_uri())
        _wait(lambda: browser.execute_script("return document.readyState") == "complete", timeout=15)
        figure, answer, title = browser.execute_script("""
            const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
                               return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
            const item = document.querySelector('.tag_answer li');  // the first line of the first sentence
            const text = item && document.createTreeWalker(item, NodeFilter.SHOW_TEXT).nextNode();
            const first = document.createRange();
            if (text) first.selectNodeContents(text);
            return [box(document.querySelector('.tag_answer img')), text ? first.getClientRects()[0].toJSON() : null,
                    box(document.querySelector('article h1'))];""")
        assert figure and answer and title, "the landing page has no answer cell (tagged 'answer') or no title"
        assert 0 <= figure["top"] and figure["bottom"] <= height, f"the figure is not whole in the first screen: {figure}"
        assert answer["top"] < height / 2 and answer["right"] <= figure["left"], \
            f"the answer's sentences do not start beside the figure: {answer}, figure {figure}"
        assert title["bottom"] <= answer["top"]
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# ---------------------------------------------------------------- tables (Selenium)

PLACEHOLDERS = {"", "-", "\u2013", "\u2014", "n/a"}  # hyphen, en dash, em dash, "n/a", empty

# Every table of the page with every <details> opened (collapsed tables count: a reader opens
# them), as its width, its container's, the article's, and its body rows' cell texts.
_TABLES = """
document.querySelectorAll('details').forEach(d => { d.open = true; });
const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const style = getComputedStyle(article);
const column = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
return Array.from(article.querySelectorAll('table')).filter(t => t.getClientRects().length > 0).map(t => ({
  width: t.scrollWidth,
  container: t.parentElement.clientWidth,
  column: column,
  head: Array.from(t.querySelectorAll('thead th')).map(c => c.innerText.trim()),
  rows: Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.innerText.trim())),
}));
"""


def is_placeholder(text: str) -> bool:
    return text.strip().lower() in PLACEHOLDERS


# A cell that counts no data: "0", "0 vs 10", "10 vs 0", "0 of 5".
NO_DATA = re.compile(r"0(\s+(vs|of)\s+\d+)?|\d+\s+vs\s+0")


def placeholder_row(cells: list[str]) -> bool:
    """A row that shows nothing: it ends in at least two placeholders ("-", "n/a" or empty) and
    either they fill at least half of the row (all but its first few label cells, e.g.
    ``MNIST | dropout | - | - | n/a``) or they follow a count of no data (``... | test accuracy |
    0 vs 10 | - | - | - | n/a``). A row with something after its placeholders (the base network's
    ``MNIST | none | - | - | - | 20 | 97.31``) or with values before two of them (``MNIST | 3 | tau 3 |
    40.08 | 40.53 | | ``) shows something."""
    trailing = len(cells) - next((i for i in range(len(cells), 0, -1) if not is_placeholder(cells[i - 1])), 0)
    if trailing < 2 or trailing == len(cells):
        return trailing >= 2
    return 2 * trailing >= len(cells) or bool(NO_DATA.fullmatch(cells[-trailing - 1].strip()))


def test_placeholder_rows_are_recognised():
    assert placeholder_row(["0 vs 10", "-", "-", "n/a"])
    assert placeholder_row(["C1", "CIFAR-10", "dropout", "current", "test accuracy", "0 vs 10", "-", "-", "-", "n/a"])
    assert placeholder_row(["MNIST", "dropout", "hidden", "0", "-", "-", "-"])
    assert placeholder_row(["MNIST", "dropout", "-", "-", "n/a"])
    assert placeholder_row(["waiting", "", "\u2014"])
    assert placeholder_row(["", "-"])
    assert not placeholder_row(["MNIST", "none", "-", "-", "-", "20", "10", "97.31 \u00b1 0.16"])
    assert not placeholder_row(["C1", "MNIST", "dropout", "10 vs 10", "+0.41", "4.8e-06", "-"])
    assert not placeholder_row(["MNIST", "3", "delay_spread 1, tau 3", "40.08", "40.53", "", ""])
    assert not placeholder_row(["MNIST", "ensembles", "better in the mean", "dropout: shift NLL", "-", "-"])
    assert not placeholder_row(["budget", "9", "0"])


def table_problems(tables: list[dict]) -> list[str]:
    """What is wrong with the tables of a page: wider than their column, placeholder rows."""
    problems = []
    for n, table in enumerate(tables, start=1):
        name = f"table {n} ({' | '.join(table['head'][:4]) or 'no header'}{' | ...' if len(table['head']) > 4 else ''})"
        room = min(table["container"], table["column"])
        if table["width"] > room + 1:  # a pixel of rounding
            problems.append(f"{name} is {table['width']} px wide in a column of {room:.0f} px")
        empty = [" | ".join(cells) for cells in table["rows"] if placeholder_row(cells)]
        if empty:
            problems.append(f"{name} has {len(empty)} placeholder row(s), e.g. {empty[0]!r}")
    return problems


@needs_book
@needs_selenium
@pytest.mark.parametrize("page", toc_entries())
def test_tables_fit_their_column_and_show_something(browser, page):
    """Every table of every page (collapsed ones opened), at a laptop's window width: no table is
    wider than its column (its scroll width against its container's client width), and no row
    shows only placeholders after its labels (a test or a cell without data belongs in a sentence
    that says what is missing, not in a row of dashes)."""
    path = built_page(page)
    if not path.exists():
        pytest.skip(f"{page} is not built")
    browser.get(path.as_uri())
    _wait(lambda: browser.execute_script("return document.readyState") == "complete", timeout=15)
    problems = table_problems(browser.execute_script(_TABLES))
    assert not problems, f"{page} at {WINDOW_WIDTH} px:\n" + "\n".join(problems)


# A page a reader can take in: at most this tall at WINDOW_WIDTH (the API and the bibliography are references
# and may be longer), with no table of more rows shown open (a longer one sits in a collapsed section).
MAX_PAGE_HEIGHT = 15_000
MAX_VISIBLE_ROWS = 40
LONG_PAGES = ("api", "bibliography")


@needs_book
@needs_selenium
@pytest.mark.parametrize("page", toc_entries())
def test_pages_stay_readable(browser, page):
    """Every page at a laptop's window width is at most MAX_PAGE_HEIGHT px tall (but the reference pages of
    LONG_PAGES) and shows no table of more than MAX_VISIBLE_ROWS body rows unless the reader opens it."""
    path = built_page(page)
    if not path.exists():
        pytest.skip(f"{page} is not built")
    browser.get(path.as_uri())
    _wait(lambda: browser.execute_script("return document.readyState") == "complete", timeout=15)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    rows = browser.execute_script("return Array.from(document.querySelectorAll('article table'))"
                                  ".filter(t => t.checkVisibility()).map(t => t.querySelectorAll('tbody tr').length)")
    if page not in LONG_PAGES:
        assert height <= MAX_PAGE_HEIGHT, f"{page} is {height} px tall at {WINDOW_WIDTH} px (limit {MAX_PAGE_HEIGHT})"
    assert all(n <= MAX_VISIBLE_ROWS for n in rows), f"{page} shows a table of {max(rows)} rows open"
