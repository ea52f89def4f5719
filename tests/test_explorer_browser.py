"""The results explorer (chapter "Explore the results") in a real browser, with no kernel and no network.

Headless Chromium under Selenium, with the flags of tests/test_book.py: the host resolver maps every name
to nothing, and the page is opened from ``file://``. Checked on the built chapter (skipped, saying why,
when the book is not built) and on the page :func:`snnlib.study.explorer.write_explorer` writes from the
committed records (skipped when results/ holds none): choosing another dataset, kind and site each
changes the view; a choice the design did not run is a disabled option that says why; a click on a square
of the overview grid selects that cell in the controls; switching to an uncertainty metric draws it; the
console logs no error; and every request the page made was for a local file. The time from navigation to
the first drawn view is printed (``pytest -s``) and kept in the test's ``user_properties``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_book import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, HTML, NO_NETWORK, _wait, webdriver

if webdriver is not None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "notebooks/explore"
MAX_READY_S = 10.0  # navigation to the first drawn view, on a busy 2-core machine
LOCAL = ("file:", "data:", "blob:", "about:")

needs_browser = pytest.mark.skipif(
    webdriver is None or CHROMIUM is None or CHROMEDRIVER is None,
    reason="the explorer's browser test needs selenium (pip install -r requirements.txt), chromium and "
           "chromedriver (apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory) -> Path:
    if not any((ROOT / "results").glob("paper/*/*/seed*/metrics.json")):
        pytest.skip("no run records in results/")
    from snnlib.study.explorer import write_explorer

    page = tmp_path_factory.mktemp("explorer") / "explorer.html"
    write_explorer(ROOT / "results", page)
    return page


@pytest.fixture(params=["chapter", "standalone"])
def page(request) -> str:
    if request.param == "chapter":
        built = HTML / f"{CHAPTER}.html" if HTML is not None else None
        if built is None or not built.exists():
            pytest.skip("the book is not built (no book/_build/html/notebooks/explore.html): run `make book` first")
        if "snn-explorer" not in built.read_text(encoding="utf-8"):
            pytest.skip("the built chapter holds no explorer (rebuild the book)")
        return built.as_uri()
    return request.getfixturevalue("standalone").as_uri()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, NO_NETWORK, "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(flag)
    # the console, and the DevTools network events: every request the page makes
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as err:
        pytest.skip(f"chromedriver could not start chromium: {str(err).splitlines()[0]}")
    try:
        yield driver
    finally:
        driver.quit()


def open_explorer(driver, url: str):
    driver.get(url)
    root = driver.find_element(By.CSS_SELECTOR, ".snn-explorer")
    assert _wait(lambda: root.get_attribute("data-ready") == "1", timeout=30), "the explorer drew nothing"
    return root


# A digest of what the reader sees: the chart's SVG, its title and the facts below it.
_VIEW = """
const root = arguments[0], svg = root.querySelector('.snx-chart svg');
const text = (svg ? svg.outerHTML : '') + root.querySelector('.snx-title').textContent +
             root.querySelector('.snx-facts').textContent;
let h = 0;
for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) | 0;
return [h, svg ? svg.querySelectorAll('path, line, circle').length : 0];
"""


def view(driver, root) -> tuple[int, int]:
    return tuple(driver.execute_script(_VIEW, root))


def select(root, key: str) -> Select:
    return Select(root.find_element(By.CSS_SELECTOR, f'select[data-key="{key}"]'))


def redrawn(root, before: str) -> bool:
    return _wait(lambda: root.get_attribute("data-renders") != before, timeout=15)


def choose(root, key: str, value: str) -> None:
    before = root.get_attribute("data-renders")
    select(root, key).select_by_value(value)
    assert redrawn(root, before), f"choosing {key} = {value} drew nothing"


def chosen(root) -> dict[str, str]:
    return {key: select(root, key).first_selected_option.get_attribute("value")
            for key in ("dataset", "kind", "site", "mask", "p", "epochs", "lr", "metric")}


def grid_square(root, label: str):
    squares = [s for s in root.find_elements(By.CSS_SELECTOR, ".snx-grid svg [aria-label]")
               if s.get_attribute("aria-label").startswith(label)]
    assert len(squares) == 1, f"{len(squares)} grid squares labelled {label!r}"
    return squares[0]


@needs_browser
def test_explorer_responds_without_kernel_or_network(browser, page, record_property):
    root = open_explorer(browser, page)
    ready_s = float(root.get_attribute("data-ready-at")) / 1000
    record_property("explorer_ready_s", ready_s)
    print(f"\n{page.rsplit('/', 1)[-1]}: the first view was drawn {ready_s:.2f} s after navigation")
    assert ready_s < MAX_READY_S
    start = chosen(root)
    assert (start["dataset"], start["kind"], start["site"], start["metric"]) == ("mnist", "dropout", "current", "test_acc")
    assert view(browser, root)[1] > 0, "the first view is an empty plot"

    # dataset, kind and site each change the view; the cell and its title follow
    for key, value, name in (("dataset", "cifar10", "CIFAR-10"), ("kind", "alpha", "alpha dropout"),
                             ("site", "hidden", "hidden spikes")):
        before = view(browser, root)
        choose(root, key, value)
        after = view(browser, root)
        assert after != before and after[1] > 0, f"choosing {key} = {value} did not change the view"
        assert chosen(root)[key] == value and name in root.find_element(By.CSS_SELECTOR, ".snx-title").text
    assert root.get_attribute("data-cell").startswith("cifar10|alpha|")

    # a choice the design did not run is disabled and says why; a setting that no longer fits moves
    choose(root, "kind", "feature")
    sites = {o.get_attribute("value"): o for o in select(root, "site").options}
    assert sites["hidden"].get_attribute("disabled") and "same operation" in sites["hidden"].text
    assert chosen(root)["site"] == "current" and "was not run" in root.find_element(By.CSS_SELECTOR, ".snx-note").text
    with pytest.raises(NotImplementedError):
        select(root, "site").select_by_value("hidden")

    # an uncertainty metric (where the runs were evaluated) draws its values per seed
    choose(root, "kind", "dropout")
    before = view(browser, root)
    choose(root, "metric", "nll")
    assert view(browser, root) != before and root.get_attribute("data-metric") == "nll"
    assert "MC dropout" in root.find_element(By.CSS_SELECTOR, ".snx-facts").text

    # a click on a square of the overview grid selects that cell in the controls
    square = grid_square(root, "MNIST, feature alpha dropout, input spikes")
    before, drawn = view(browser, root), root.get_attribute("data-renders")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", square)
    ActionChains(browser).move_to_element(square).click().perform()
    assert redrawn(root, drawn), "a click on the grid drew nothing"
    now = chosen(root)
    assert (now["dataset"], now["kind"], now["site"], now["p"], now["mask"]) == (
        "mnist", "feature_alpha", "input", "0.5", "step")
    assert view(browser, root) != before
    assert root.get_attribute("data-cell").startswith("mnist|feature_alpha|0.5|step|input|")

    # the console holds no error (a late one of a promise included), and the page asked only for local files
    time.sleep(0.5)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, "console errors:\n" + "\n".join(errors)
    requested = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.add(message["params"]["request"]["url"])
    requested |= set(browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"))
    assert requested and not [u for u in requested if not u.startswith(LOCAL)], sorted(requested)
