"""Chapters 2 and 3 in JupyterLab with a live kernel, driven in a real browser.

Starts ``jupyter lab`` with the settings of ``make lab`` (``jupyter-config/``) on a free
localhost port with a token, serving a temporary copy of ``notebooks/`` (whatever the lab
saves lands there, never in the committed notebooks). Headless Chromium, whose host
resolver maps every name but the server's address to nothing (the flags of
tests/test_book.py), opens each chapter, runs all its cells on the project's kernel, waits
for the live figures, then moves a slider with the arrow key as a reader would: the
threshold of chapter 2, the dropout probability ``p`` of both figures of chapter 3. The
image below must not change before the move, must show other bytes after it, and the old
ones when moved back. The time from the key press to the new image in the page is measured
in the browser, printed (``pytest -s``), kept in the test's ``user_properties``, and must
stay under ``MAX_LATENCY_S``.

Skips, saying why, when JupyterLab, Selenium, Chromium, chromedriver or the dataset cache
is missing. The server is stopped, and every kernel it started killed, even on failure.

JupyterLab keeps a checkpoint of every notebook it opens in ``.ipynb_checkpoints/`` beside it
(``notebooks/.ipynb_checkpoints/dropout-checkpoint.ipynb`` after ``make lab``): git ignores
those folders, and pytest does not collect them (``norecursedirs`` in pyproject.toml has
``.*`` again, which the project's list had dropped from pytest's default).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_book import (
    CHROMEDRIVER,
    CHROMIUM,
    LIVE_FIGURE_CLASS,
    NO_NETWORK,
    _wait,
    control_label,
    controls_of,
    move,
    shown_image,
    start_chromium,
    webdriver,
)

if webdriver is not None:
    from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parent.parent
LAB_CONFIG = ROOT / "jupyter-config"  # what `make lab` puts on JUPYTER_CONFIG_PATH
HAS_JUPYTERLAB = importlib.util.find_spec("jupyterlab") is not None
MAX_LATENCY_S = 2.0  # key press to the new image in the page
# The sliders moved, per chapter: (index of the live figure on the page, the control's label).
SLIDERS = {
    "network.ipynb": [(0, "threshold ϑ")],
    "dropout.ipynb": [(0, "p"), (1, "p")],
}
LIVE_FIGURES = {"network.ipynb": 1, "dropout.ipynb": 2}
# Every host name resolves to nothing, as in tests/test_book.py, except the server's address.
LOCAL_ONLY = f"{NO_NETWORK}, EXCLUDE 127.0.0.1"

needs_lab = pytest.mark.skipif(not HAS_JUPYTERLAB, reason="jupyterlab is not installed (pip install -r requirements.txt)")
needs_browser = pytest.mark.skipif(
    webdriver is None or CHROMIUM is None or CHROMEDRIVER is None,
    reason="the JupyterLab test needs selenium (pip install -r requirements.txt), chromium and "
           "chromedriver (apt-get install -y chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def _api(base: str, token: str, path: str, method: str = "GET") -> object:
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with _LOCAL.open(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def _processes_mentioning(text: str) -> list[int]:
    """Ids of this machine's processes whose command line contains ``text`` (Linux: /proc)."""
    pids = []
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:  # the process ended meanwhile
                pass
    return pids


def _kill_leftovers(marker: str) -> list[int]:
    """Kills (by id) the processes still naming ``marker`` a few seconds on; returns their ids."""
    if _wait(lambda: not _processes_mentioning(marker), timeout=5):
        return []
    pids = _processes_mentioning(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


class Lab:
    """A running JupyterLab server: its base URL, token, and log."""

    def __init__(self, base: str, token: str, log: Path):
        self.base, self.token, self.log = base, token, log

    def url(self, path: str) -> str:
        return f"{self.base}{path}?token={self.token}"

    def api(self, path: str, method: str = "GET") -> object:
        return _api(self.base, self.token, path, method)

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, real_data_dir):
    """JupyterLab on a copy of notebooks/, in its own process group, stopped at the end."""
    tmp = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", tmp / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    runtime = tmp / "runtime"  # connection files: every kernel's command line names this folder
    port, token = _free_port(), secrets.token_hex(24)
    env = {**os.environ,
           "JUPYTER_CONFIG_PATH": str(LAB_CONFIG),  # the settings of `make lab`
           "JUPYTER_CONFIG_DIR": str(tmp / "config"),  # none of the user's own settings
           "JUPYTER_DATA_DIR": str(tmp / "data"),
           "JUPYTER_RUNTIME_DIR": str(runtime),
           "SNNLIB_DATA": str(real_data_dir)}
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={tmp / 'notebooks'}",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--LabApp.user_settings_dir={tmp / 'settings'}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           "--LabApp.expose_app_in_browser=True"]
    log = tmp / "lab.log"
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    running = Lab(base, token, log)
    try:
        def up() -> bool:
            if server.poll() is not None:
                return True
            try:
                return bool(running.api("/api/status"))
            except OSError:
                return False

        assert _wait(up, timeout=60, step=0.25) and server.poll() is None, \
            f"JupyterLab did not start:\n{running.log_tail()}"
        yield running
    finally:
        # Ask the server to shut down its kernels and stop, then make sure: the process group,
        # and any kernel left (kernels run in their own sessions, outside the group).
        try:
            running.api("/api/shutdown", method="POST")
            server.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        leftovers = _kill_leftovers(str(runtime))
        if leftovers:
            print(f"\nJupyterLab left kernel processes {leftovers} running; killed them")


@pytest.fixture
def browser():
    # the script timeout: running all of chapter 3 takes about 2 min on a busy 2-core machine
    driver = start_chromium(LOCAL_ONLY, "1400,1000", 300)
    try:
        yield driver
    finally:
        driver.quit()


# The open notebook panel, once its kernel is connected and idle (null before).
_PANEL_READY = """
const app = window.jupyterapp, panel = app && app.shell.currentWidget;
if (!panel || !panel.sessionContext || !panel.context || !panel.context.isReady) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
if (!kernel || kernel.connectionStatus !== 'connected' || kernel.status !== 'idle') return null;
return [panel.context.path, kernel.name];
"""

# Clears the saved outputs (so that every figure seen comes from this run), runs all cells
# through JupyterLab's own command, and returns the errors of the cells that failed.
_RUN_ALL = """
const done = arguments[arguments.length - 1], app = window.jupyterapp;
const errors = () => app.shell.currentWidget.content.widgets
  .flatMap(cell => cell.model.type === 'code' ? cell.model.outputs.toJSON() : [])
  .filter(out => out.output_type === 'error').map(out => out.ename + ': ' + out.evalue);
app.commands.execute('notebook:clear-all-cell-outputs')
  .then(() => app.commands.execute('notebook:run-all-cells'))
  .then(ok => done({ok: ok, errors: errors()}))
  .catch(e => done({ok: false, errors: ['run-all failed: ' + e]}));
"""

# Watches a live figure: the time of the next key press in it, and of the first moment after
# it that the figure shows another <img> with a source, then once that image is decoded.
_WATCH = """
const fig = arguments[0];
const shown = () => {
  const imgs = Array.from(fig.querySelectorAll('img')).filter(i => i.checkVisibility());
  return imgs.length === 1 ? imgs[0] : null;
};
const state = {first: shown(), key: null, inPage: null, decoded: null};
window.__snnWatch = state;
fig.addEventListener('keydown', () => { if (state.key === null) state.key = performance.now(); }, true);
const seen = () => {
  const img = shown();
  if (state.key === null || state.inPage !== null || !img || img === state.first || !img.src) return;
  state.inPage = performance.now();
  observer.disconnect();
  img.decode().catch(() => null).then(() => { state.decoded = performance.now(); });
};
const observer = new MutationObserver(seen);
observer.observe(fig, {subtree: true, childList: true, attributes: true});
"""

_WATCHED = "const s = window.__snnWatch; return s && s.decoded !== null ? [s.key, s.inPage, s.decoded] : null;"

# Every resource the page loaded, by URL.
_RESOURCES = "return performance.getEntriesByType('resource').map(e => e.name);"


def _readout(control) -> str:
    return control.find_element(By.CSS_SELECTOR, ".widget-readout").text.strip()


@needs_lab
@needs_browser
@pytest.mark.parametrize("notebook", sorted(SLIDERS))
def test_chapter_runs_and_sliders_redraw_the_figure(lab, browser, notebook, tmp_path, request):
    """Run all cells of the chapter in JupyterLab, then move each slider of SLIDERS."""
    stem = notebook.removesuffix(".ipynb")
    browser.get(lab.url(f"/lab/workspaces/{stem}/tree/{notebook}"))
    ready = _wait(lambda: browser.execute_script(_PANEL_READY), timeout=60, step=0.5)
    assert ready, f"{notebook} did not open with an idle kernel in JupyterLab\n{lab.log_tail()}"
    path, kernel = ready
    assert path == notebook, f"JupyterLab shows {path}, not {notebook}"
    python = Path(lab.api("/api/kernelspecs")["kernelspecs"][kernel]["spec"]["argv"][0])
    assert python.parent.resolve() == Path(sys.executable).parent.resolve(), \
        f"{notebook} runs on {python}, not on the project's Python {sys.executable}"

    started = time.monotonic()
    result = browser.execute_async_script(_RUN_ALL)
    run_s = time.monotonic() - started
    assert result["ok"] and not result["errors"], f"{notebook}: running all cells failed: {result['errors']}"

    expected = LIVE_FIGURES[notebook]
    figures = _wait(lambda: [f for f in browser.find_elements(By.CSS_SELECTOR, f".jp-Notebook .{LIVE_FIGURE_CLASS}")
                             if shown_image(browser, f)] or None, timeout=30)
    assert figures and len(figures) == expected, \
        f"{notebook}: {len(figures or [])} live figures rendered with their image, expected {expected}"
    print(f"\n{notebook}: all cells ran in {run_s:.1f} s; {expected} live figure(s) rendered")

    for n, (index, label) in enumerate(SLIDERS[notebook]):
        figure = figures[index]
        control = next((c for c in controls_of(figure) if control_label(c) == label), None)
        assert control is not None, f"{notebook}: live figure {index} has no control {label!r}"
        assert "widget-hslider" in control.get_attribute("class").split(), f"{label!r} is not a slider"
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", figure)
        first = shown_image(browser, figure)
        time.sleep(0.5)
        assert shown_image(browser, figure) == first, f"{notebook}: the figure of {label!r} changed by itself"

        before = _readout(control)
        browser.execute_script(_WATCH, figure)
        pressed = time.monotonic()
        move(browser, control, forward=True)
        moved = _wait(lambda fig=figure, first=first: shown_image(browser, fig) not in (None, first), timeout=10,
                      step=0.02)
        seen_s = time.monotonic() - pressed
        assert moved, f"{notebook}: moving {label!r} did not change the figure (the image shows the same bytes)"
        times = _wait(lambda: browser.execute_script(_WATCHED), timeout=5, step=0.02)
        assert times and times[0] is not None, f"{notebook}: the key press on {label!r} was not seen in the figure"
        key, in_page, decoded = times
        latency_s = (decoded - key) / 1000
        after = _readout(control)
        print(f"{notebook}: {label} {before} -> {after}: new image in the page {in_page - key:.1f} ms and "
              f"decoded {decoded - key:.1f} ms after the key press (seen by the test after {1000 * seen_s:.0f} ms)")
        request.node.user_properties.append((f"{stem} figure {index} {label}: key press to new image (ms)",
                                             round(decoded - key, 1)))
        assert after != before, f"{notebook}: the slider {label!r} still reads {before}"
        assert latency_s < MAX_LATENCY_S, (
            f"{notebook}: moving {label!r} took {latency_s:.2f} s to show the new figure "
            f"(limit {MAX_LATENCY_S} s)")
        if n == 0:
            shot = tmp_path / f"{stem}.png"
            browser.save_screenshot(str(shot))
            print(f"{notebook}: screenshot after the move: {shot}")

        move(browser, control, forward=False)
        back = _wait(lambda fig=figure, first=first: shown_image(browser, fig) == first, timeout=10)
        assert back, f"{notebook}: moving {label!r} back did not restore the figure"

    elsewhere = [url for url in browser.execute_script(_RESOURCES)
                 if not url.startswith((lab.base, "data:", "blob:"))]
    assert not elsewhere, f"{notebook}: JupyterLab loaded resources from outside the server: {elsewhere[:5]}"
    # Stop this chapter's kernel now (its memory and CPU), before the next chapter starts one.
    for session in lab.api("/api/sessions"):
        lab.api(f"/api/sessions/{session['id']}", method="DELETE")


# The text and links of the open notebook's Markdown cells as jupyterlab-myst renders them (its class: myst).
_MARKDOWN = """
const panel = window.jupyterapp.shell.currentWidget;
return Array.from(panel.node.querySelectorAll('.jp-MarkdownCell .myst')).map(c => ({  // jupyterlab-myst's rendering
  text: c.innerText, links: Array.from(c.querySelectorAll('a')).map(a => [a.innerText.trim(), a.getAttribute('href')]),
}));
"""

_CURRENT_PATH = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
return w && w.context && w.context.isReady ? w.context.path : null;
"""


@needs_lab
@needs_browser
def test_lab_opens_the_landing_notebook_with_myst_rendered_and_chapters_in_order(lab, browser):
    """``make lab``'s lab opens on index.ipynb (jupyter-config: the file browser lists the chapters by name, the
    landing notebook lists them in reading order); its Markdown is MyST rendered by jupyterlab-myst (a {doc} role
    is a link, a {cite:p} role no raw text); its chapter links are _toc.yml's chapters in order, and one opens its
    chapter in the lab; nothing is loaded from outside the server."""
    from test_book import LANDING, toc_entries

    browser.get(lab.url("/"))
    assert _wait(lambda: browser.execute_script(_CURRENT_PATH) == "index.ipynb", timeout=60, step=0.5), \
        f"the lab did not open on index.ipynb but on {browser.execute_script(_CURRENT_PATH)}\n{lab.log_tail()}"
    def rendered() -> list[dict] | None:
        # jupyterlab-myst replaces a cell's first rendering a moment later, on a busy machine seconds later
        cells = browser.execute_script(_MARKDOWN)
        if not cells or not all(x["text"].strip() for x in cells):
            return None
        return cells if any(href and "glossary" in href for c in cells for _, href in c["links"]) else None

    cells = _wait(rendered, timeout=60, step=0.5) or browser.execute_script(_MARKDOWN)
    assert cells, "the landing notebook's Markdown cells did not render"
    raw = [c["text"][:80] for c in cells if re.search(r"\{(doc|cite:[pt]|ref)\}`", c["text"])]
    assert not raw, f"MyST roles shown as raw text (is jupyterlab-myst installed and enabled?): {raw}"
    doc_links = [text for c in cells for text, href in c["links"] if href and "glossary" in href]
    assert "glossary" in doc_links, "the {doc} role to the glossary is not rendered as a link"
    chapter_map = next(c for c in cells if "in reading order" in c["text"])
    linked = list(dict.fromkeys(href.split("?")[0].rsplit("/", 1)[-1] for _, href in chapter_map["links"]
                                if href and ".ipynb" in href))
    chapters = [f"{e.removeprefix('notebooks/')}.ipynb" for e in toc_entries()
                if e.startswith("notebooks/") and e != LANDING]
    assert linked == chapters, f"the chapter map's links {linked} are not the book's chapters in order {chapters}"
    first = browser.find_element(By.XPATH, "//div[contains(@class, 'jp-MarkdownCell')]//a[contains(@href, "
                                           f"'{chapters[0]}')]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", first)
    first.click()
    assert _wait(lambda: browser.execute_script(_CURRENT_PATH) == chapters[0], timeout=30, step=0.5), \
        f"the link to {chapters[0]} did not open it in the lab (open: {browser.execute_script(_CURRENT_PATH)})"
    elsewhere = [url for url in browser.execute_script(_RESOURCES)
                 if not url.startswith((lab.base, "data:", "blob:"))]
    assert not elsewhere, f"JupyterLab loaded resources from outside the server: {elsewhere[:5]}"
    for session in lab.api("/api/sessions"):
        lab.api(f"/api/sessions/{session['id']}", method="DELETE")


# ---------------------------------------------------------------- what the lab leaves behind

_NOTEBOOK = {"cells": [{"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {}, "outputs": [],
                        "source": "1 + 1"}],
             "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
             "nbformat": 4, "nbformat_minor": 5}


def test_lab_checkpoints_are_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("notebooks/.ipynb_checkpoints/dropout-checkpoint.ipynb", ".ipynb_checkpoints/x-checkpoint.ipynb"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"git does not ignore {path}"


def test_lab_checkpoints_are_not_collected_by_pytest(tmp_path):
    """``pytest --nbval`` with the project's configuration, on a copy holding a chapter and the
    checkpoint JupyterLab writes beside it, collects the chapter and not the checkpoint."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "tests").mkdir()
    checkpoints = tmp_path / "notebooks" / ".ipynb_checkpoints"
    checkpoints.mkdir(parents=True)
    for path in (tmp_path / "notebooks" / "chapter.ipynb", checkpoints / "chapter-checkpoint.ipynb"):
        path.write_text(json.dumps(_NOTEBOOK))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval", "-p", "no:cacheprovider"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert "notebooks/chapter.ipynb::Cell 0" in proc.stdout, proc.stdout + proc.stderr
    assert "checkpoint" not in proc.stdout, f"pytest collects JupyterLab's checkpoints:\n{proc.stdout}"
