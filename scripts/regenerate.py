"""Regenerates every output derived from the committed records, all or nothing: the README's report block,
its figures (``results/figures``) and the analysis chapters, executed again. ``make results`` runs it, and so
does ``make land`` after landing.

Everything is first written beside its place (``README.md.regenerating``, a staging folder next to
``results/figures``, ``notebooks/.regenerating-NAME.ipynb``); only when every part has succeeded are they moved
into place, one rename each, so the README, the figures and the chapters never disagree. Stopping it (Ctrl-C,
``kill``, or killing the ``make`` that started it: it watches its parent) stops the chapters' kernels too and
leaves nothing half-written and nothing moved.

Usage: python scripts/regenerate.py [--results results] [--readme README.md] [--notebooks notebooks] [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from snnlib.experiment.notebook_task import stop_descendants
from snnlib.study.report import study_report, with_report, write_figures

ROOT = Path(__file__).resolve().parent.parent
# the landing page and the analysis chapters, in the order they are executed
CHAPTERS = ("index", "results", "claims", "sensitivity", "neurons", "uncertainty", "explore", "discussion", "reproduce")
STAGED = ".regenerating"


def staged_paths(results: Path, readme: Path, notebooks: Path, chapters: tuple[str, ...]) -> list[Path]:
    """Where :func:`regenerate` writes before it moves: the README's copy, the figures' folder, each chapter's."""
    # a chapter's staged name has no inner dot: `jupyter execute --output` keeps only the part before it
    return [readme.with_name(readme.name + STAGED), results / f".figures{STAGED}",
            *(notebooks / f".regenerating-{name}.ipynb" for name in chapters)]


def clean(paths: list[Path]) -> None:
    """Removes staged files and folders (left by a stop or a failure)."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def regenerate(results: Path, readme: Path, notebooks: Path, chapters: tuple[str, ...] = CHAPTERS,
               grids: Path = ROOT / "grids", jupyter: str | None = None) -> list[Path]:
    """Writes the README's block, the figures and the executed ``chapters`` staged, then moves them into place
    (the files replaced, in order). Raises ``RuntimeError`` naming the part that failed; nothing is moved then."""
    staged_readme, staged_figures, *staged_chapters = staged = staged_paths(results, readme, notebooks, chapters)
    jupyter = jupyter or str(Path(sys.executable).with_name("jupyter"))
    clean(staged)
    try:
        staged_readme.write_text(with_report(readme.read_text(encoding="utf-8"), study_report(results, grids)),
                                 encoding="utf-8")
        write_figures(results, staged_figures, grids)
        for name, chapter in zip(chapters, staged_chapters, strict=True):
            done = subprocess.run([jupyter, "execute", f"{name}.ipynb", f"--output={chapter.stem}"],
                                  cwd=notebooks, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
                raise RuntimeError(f"chapter {name} failed: {last}")
        moved = []
        for name, chapter in zip(chapters, staged_chapters, strict=True):
            moved.append(chapter.replace(notebooks / f"{name}.ipynb"))
        (results / "figures").mkdir(exist_ok=True)
        for png in sorted(staged_figures.iterdir()):
            moved.append(png.replace(results / "figures" / png.name))
        moved.append(staged_readme.replace(readme))
        return moved
    finally:
        clean(staged)


def stop_on_signals(staged: list[Path]) -> None:
    """SIGTERM, SIGINT or the end of the parent (``make``) remove what is staged and stop every process below
    this one (the kernels run in sessions of their own, out of reach of a signal to the group), then this one."""
    def stop(code: int) -> None:
        clean(staged)
        stop_descendants(code)

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        stop(143)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop(128 + signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stop(128 + signum))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", default=list(CHAPTERS), help="the chapters to execute (default: all)")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    args = parser.parse_args(argv)
    unknown = [c for c in args.chapters if not (args.notebooks / f"{c}.ipynb").is_file()]
    if unknown:
        print(f"error: no chapter {unknown[0]}.ipynb in {args.notebooks}", file=sys.stderr)
        return 2
    stop_on_signals(staged_paths(args.results, args.readme, args.notebooks, tuple(args.chapters)))
    try:
        moved = regenerate(args.results, args.readme, args.notebooks, tuple(args.chapters))
    except (RuntimeError, OSError, ValueError) as err:
        print(f"error: {err}; nothing was replaced", file=sys.stderr)
        return 1
    print(f"regenerated {len(moved)} files: the README's report, {sum(p.suffix == '.png' for p in moved)} figures, "
          f"{sum(p.suffix == '.ipynb' for p in moved)} chapters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
