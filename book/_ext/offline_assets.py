"""Sphinx extension: the JavaScript the book needs offline is in place before the build.

The pages load MathJax, RequireJS and the ipywidgets embed manager from ``vendor/`` (copied
into ``_build/html/_static/`` through ``html_static_path``), never from a CDN. ``vendor/``
is not in git: ``scripts/fetch_vendor.sh`` fetches the pinned npm tarballs and verifies
their SHA-256. This extension runs ``fetch_vendor.sh --check vendor`` when the build starts
and, if ``vendor/`` is missing, incomplete or holds other versions, ``fetch_vendor.sh
vendor``, so that ``jupyter-book build book/`` works on a fresh clone. Without npm it stops
the build with one line that says what to install (and exit status 1).

The book's own script for the widget pages, ``book/_ext/static/widgets-offline.js`` (in git,
copied into ``_static/`` through ``html_static_path`` and loaded between RequireJS and the widget
manager through ``nb_ipywidgets_js``), mends what the vendored manager gets wrong offline with
MathJax 3: it points RequireJS at the manager's font files in ``_static/`` (the manager looks for
them beside the page) and gives MathJax 3 the ``MathJax.Hub.Queue`` the manager calls to typeset
its labels. Without it each widget page logs a ``TypeError`` per control and three missing fonts.
The book's own stylesheet, ``book/_ext/static/book.css``, is added to every page here too.

Configuration (``sphinx: config:`` in ``_config.yml``): ``offline_assets_dir`` (default
``../vendor``) and ``offline_assets_script`` (default ``../scripts/fetch_vendor.sh``), both
relative to the book root.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)


def fail(message: str) -> None:
    """Stops the build with one line on stderr and exit status 1.

    ``SystemExit`` passes through Sphinx's and Jupyter Book's handlers, which would wrap any
    other exception in a traceback.
    """
    raise SystemExit(f"offline_assets: {message}")


def ensure_vendor(app: Sphinx, config: Config) -> None:
    """Checks ``vendor/`` and fetches it when needed (``config-inited``)."""
    root = Path(app.srcdir)
    dest = (root / config.offline_assets_dir).resolve()
    script = (root / config.offline_assets_script).resolve()
    bash = shutil.which("bash")
    if bash is None or not script.exists():
        fail(f"cannot check the vendored JavaScript in {dest.name}/: needs bash and {script.name}")
    if subprocess.run([bash, str(script), "--check", str(dest)], check=False).returncode == 0:
        return
    if shutil.which("npm") is None:
        fail(f"{dest.name}/ (MathJax, RequireJS, the widget manager) is missing or incomplete and npm is not "
             f"installed to fetch it: install npm (e.g. apt-get install -y npm) and build again")
    logger.info(f"offline_assets: fetching the vendored JavaScript into {dest.name}/ (npm pack, SHA-256 checked)")
    fetched = subprocess.run([bash, str(script), str(dest)], check=False, capture_output=True, text=True)
    if fetched.returncode != 0:
        last = (fetched.stderr.strip().splitlines() or ["no message"])[-1]
        fail(f"fetching the vendored JavaScript failed: {last}")
    logger.info(f"offline_assets: {(fetched.stderr.strip().splitlines() or [''])[-1]}")


def setup(app: Sphinx) -> dict:
    app.add_config_value("offline_assets_dir", "../vendor", "env", [str])
    app.add_config_value("offline_assets_script", "../scripts/fetch_vendor.sh", "env", [str])
    # the book's own stylesheet, book/_ext/static/book.css (copied into _static/ through html_static_path)
    app.add_css_file("book.css")
    # before html_static_path is read (the builder checks it after this event)
    app.connect("config-inited", ensure_vendor, priority=100)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
