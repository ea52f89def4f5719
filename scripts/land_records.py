"""Lands finished runs from a working results folder into the committed one, whole or not at all: only the
design's runs, only sealed, nothing overwritten, and (with ``--regenerate``) the README, figures and chapters
regenerated after, in this one process.

What lands (``snnlib.study.design``): a finished run record (``metrics.json``) whose folder, configuration and
seed are those a grid file plans, with its planned uncertainty evaluation (``uncertainty.json``) and every
planned ensemble evaluation (``ensemble_*.json``, ``snnlib.study.preregistration.planned_evaluations``). Weights,
checkpoints and executed notebooks stay behind. SOURCE is sealed first (``python -m snnlib seal SOURCE``).

Refused, one line each, exit status 1, and then **nothing** is copied: a record outside the design (a smoke or
subset run, a scratch folder), a copy of a planned run in another folder, a folder that holds another
configuration than planned, a damaged, edited or unsealed file, an evaluation the design does not plan, a file
that is not a regular file, and a planned run that DEST holds already with other numbers (a conflict, never a
second copy). A file DEST holds byte for byte is left alone, whatever it is (a working folder starts from a
copy of what has landed). A file in DEST that is damaged (left half-written
by an interrupted landing of an older library) is repaired from SOURCE when SOURCE's copy is intact.

Held back, not refused: unfinished runs, and a run whose planned evaluations SOURCE does not hold yet
(``python scripts/run_uncertainty.py SOURCE``): they need its weights, which do not outlive its machine.

Each file is copied into a staging folder inside DEST and then renamed into place, so a stop leaves every file
whole. ``--regenerate`` then runs ``scripts/regenerate.py`` in this process (staged, all or nothing), and a stop
at any point (Ctrl-C, ``kill``, or killing the ``make`` that started it) stops the chapters' kernels too.

Usage: python scripts/land_records.py SOURCE [--dest results] [--dry-run] [--regenerate]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

from snnlib.experiment.run import record_problem
from snnlib.experiment.system import walk_files
from snnlib.study.design import DEFAULT_GRIDS, Design, study_design
from snnlib.study.evaluations import _evaluation_problem, _records_at
from snnlib.study.preregistration import planned_evaluations
from snnlib.study.progress import evaluation_plan, expected_runs, study_grids
from snnlib.study.records import is_finished, scan_records


class Landing(NamedTuple):
    """What a landing would do: files to copy (relative to SOURCE; ``repairs`` among them replace a damaged
    file of DEST), errors (one line each: any one stops the whole landing) and runs held back (one line each)."""

    copies: list[Path]
    errors: list[str]
    waiting: list[str]
    repairs: list[Path]


def _evaluation_files(name: str) -> bool:
    return name == "uncertainty.json" or (name.startswith("ensemble") and name.endswith(".json"))


def _landed(source: Path, dest: Path, rel: str | Path) -> bool:
    """Whether DEST holds the file (or a run folder's record) ``rel`` of SOURCE byte for byte."""
    a, b = source / rel, dest / rel
    if a.is_dir():
        a, b = a / "metrics.json", b / "metrics.json"
    try:
        return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _intact(path: Path, evaluation: bool, record_at) -> bool:
    """Whether a landed file reads as what it claims to be (a sealed record, a sealed evaluation)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if evaluation:
        return _evaluation_problem(data, path, record_at) is None
    return record_problem(data, sealed=True) is None


def landing(source: Path, dest: Path, design: Design | None = None, grids: Path = DEFAULT_GRIDS) -> Landing:
    """Plans the landing of ``source`` into ``dest`` by ``design`` (default: the study's grid files)."""
    design = design or study_design(grids)
    plan = evaluation_plan(expected_runs(study_grids(grids)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scan = scan_records(source, design)
        source_record_at = _records_at(source, design)
        dest_record_at = _records_at(dest, design) if dest.is_dir() else (lambda folder: "no results folder")
    errors = [f"{source / rel}: {why}" for rel, why in scan.refused if not _landed(source, dest, rel)]
    errors += [f"{source / rel}: {why}; only the design's runs land" for rel, why in scan.ignored
               if not _landed(source, dest, rel)]
    wanted, waiting = [], []
    for record in scan.records:
        folder = Path(record["path"])
        if not is_finished(record):
            continue
        missing = [e for e in planned_evaluations(record["path"], record["config"])
                   if not (source / e).exists() and not (dest / e).exists()]
        if missing and not (dest / folder / "metrics.json").exists():
            waiting.append(f"{folder} waits for {', '.join(missing)} (python scripts/run_uncertainty.py {source})")
            continue
        wanted.append((folder / "metrics.json", False))
    evaluations, skipped = walk_files(source, _evaluation_files)
    errors += [f"{source / rel}: {why}" for rel, why in skipped if _evaluation_files(Path(rel).name)]
    landing_runs = {rel.parent.as_posix() for rel, _ in wanted}  # finished and not held back
    for path in evaluations:
        rel = path.relative_to(source)
        runs = plan.get(rel.as_posix())
        if _landed(source, dest, rel):
            continue  # DEST holds it byte for byte: nothing to do (a working folder starts from the landed files)
        if runs is None:
            errors.append(f"{path}: the design plans no such evaluation; only the design's evaluations land")
            continue
        if not all(run in landing_runs or (dest / run / "metrics.json").exists() for run in runs):
            continue  # its runs have not all finished or are held back: it lands with them
        try:
            why = _evaluation_problem(json.loads(path.read_text()), path, source_record_at)
        except (OSError, ValueError) as err:
            why = f"it is not readable JSON ({err})"
        if why:
            errors.append(f"{path}: {why}")
            continue
        wanted.append((rel, True))
    copies, repairs = [], []
    for rel, evaluation in wanted:
        target = dest / rel
        if target.exists():
            if target.read_bytes() == (source / rel).read_bytes():
                continue
            if _intact(target, evaluation, dest_record_at):
                errors.append(f"{target} differs from {source / rel}: the run has landed already with other "
                              f"numbers; left as it is")
                continue
            repairs.append(rel)  # half-written or damaged: SOURCE's intact copy replaces it
        copies.append(rel)
    return Landing(copies, errors, waiting, repairs)


def land(source: Path, dest: Path, copies: list[Path]) -> None:
    """Copies ``copies`` (relative paths) from ``source`` into ``dest``: each first into a staging folder inside
    ``dest`` (the same file system), then renamed into place, so that no file is ever seen half-written."""
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".landing", dir=dest))
    try:
        staged = []
        for i, rel in enumerate(copies):
            shutil.copy2(source / rel, staging / f"{i}.json")
            staged.append((staging / f"{i}.json", dest / rel))
        for tmp, target in staged:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--dest", type=Path, default=Path("results"))
    parser.add_argument("--dry-run", action="store_true", help="list what would be copied, copy nothing")
    parser.add_argument("--regenerate", action="store_true",
                        help="then regenerate the README, its figures and the analysis chapters (make land)")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"error: no results folder {args.source}", file=sys.stderr)
        return 2
    if args.source.resolve() == args.dest.resolve():
        print(f"error: {args.source} is the results folder itself; land from a working folder", file=sys.stderr)
        return 2
    if args.regenerate:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import regenerate

        regenerate.stop_on_signals(regenerate.staged_paths(args.dest, regenerate.ROOT / "README.md",
                                                           regenerate.ROOT / "notebooks", regenerate.CHAPTERS))
    if not args.dry_run:
        from snnlib.study.seal import seal_results

        _, refused = seal_results(args.source)
        if refused:
            for line in refused:
                print(f"error: cannot seal {line}", file=sys.stderr)
            print("nothing landed", file=sys.stderr)
            return 1
    plan = landing(args.source, args.dest)
    for line in plan.waiting:
        print(f"held back: {line}")
    for line in plan.errors:
        print(f"error: {line}", file=sys.stderr)
    if plan.errors:
        print(f"nothing landed: {len(plan.errors)} errors (landing is whole or not at all); "
              f"{len(plan.copies)} files would land", file=sys.stderr)
        return 1
    for rel in plan.copies:
        repaired = " (repairs a damaged copy)" if rel in plan.repairs else ""
        print(f"{'would land' if args.dry_run else 'landed'} {rel}{repaired}")
    if not args.dry_run:
        land(args.source, args.dest, plan.copies)
    print(f"{len(plan.copies)} files {'to land' if args.dry_run else 'landed'}, {len(plan.waiting)} runs held back")
    if args.regenerate and not args.dry_run:
        try:
            moved = regenerate.regenerate(args.dest, regenerate.ROOT / "README.md", regenerate.ROOT / "notebooks")
        except (RuntimeError, OSError, ValueError) as err:
            print(f"error: regenerating: {err}; the README, figures and chapters were left as they were "
                  f"(run make results)", file=sys.stderr)
            return 1
        print(f"regenerated {len(moved)} files (the README's report, its figures, the analysis chapters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
