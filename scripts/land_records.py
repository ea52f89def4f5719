"""Lands finished runs from a working results folder into the committed one: copies each finished run's
record (``metrics.json``) and its uncertainty evaluation (``uncertainty.json``), and every ensemble
evaluation (``ensemble_*.json``), from SOURCE into DEST under the same relative path. Weights, checkpoints
and executed notebooks stay behind (they are not committed).

A file that DEST already holds is left alone when it is byte-for-byte the same and refused (exit 1, one
line each, nothing overwritten) when it differs. A record that is not finished, or that ``load_records``
does not accept (not sealed, damaged, edited after it was written), is not copied: seal SOURCE first
(``python -m snnlib seal SOURCE``; ``make land FROM=SOURCE`` does both). Then run ``make results`` to
regenerate the README and the analysis chapters from DEST.

A run whose uncertainty evaluations are planned (``snnlib.study.preregistration.planned_evaluations``:
its own ``uncertainty.json``, the ensemble of its seed group) is held back until SOURCE holds them
(``python scripts/run_uncertainty.py SOURCE``): they need the run's weights, which are not committed and do not
outlive the machine that trained it.

Usage: python scripts/land_records.py SOURCE [--dest results] [--dry-run]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

from snnlib.study.preregistration import planned_evaluations
from snnlib.study.records import is_finished, load_records


def landing(source: Path, dest: Path) -> tuple[list[Path], list[str], list[str]]:
    """(files to copy, relative to ``source``; conflicts, one line each; runs held back, one line each)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finished = [r for r in load_records(source) if is_finished(r)]
    wanted, waiting = [], []
    for record in finished:
        folder = Path(record["path"])
        missing = [e for e in planned_evaluations(record["path"], record["config"])
                   if not (source / e).exists() and not (dest / e).exists()]
        if missing and not (dest / folder / "metrics.json").exists():
            waiting.append(f"{folder} waits for {', '.join(missing)} (python scripts/run_uncertainty.py {source})")
            continue
        wanted.append(folder / "metrics.json")
        if (source / folder / "uncertainty.json").exists():
            wanted.append(folder / "uncertainty.json")
    wanted += [p.relative_to(source) for p in sorted(source.glob("**/ensemble*.json"))]
    copies, conflicts = [], []
    for rel in wanted:
        target = dest / rel
        if target.exists():
            if target.read_bytes() != (source / rel).read_bytes():
                conflicts.append(f"{target} differs from {source / rel}; left as it is")
            continue
        copies.append(rel)
    return copies, conflicts, waiting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--dest", type=Path, default=Path("results"))
    parser.add_argument("--dry-run", action="store_true", help="list what would be copied, copy nothing")
    args = parser.parse_args()
    if not args.source.is_dir():
        print(f"error: no results folder {args.source}", file=sys.stderr)
        return 2
    copies, conflicts, waiting = landing(args.source, args.dest)
    for rel in copies:
        print(f"{'would land' if args.dry_run else 'landed'} {rel}")
        if not args.dry_run:
            (args.dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(args.source / rel, args.dest / rel)
    for line in waiting:
        print(f"held back: {line}")
    for line in conflicts:
        print(f"error: {line}", file=sys.stderr)
    print(f"{len(copies)} files {'to land' if args.dry_run else 'landed'}, {len(waiting)} runs held back, "
          f"{len(conflicts)} conflicts")
    return 1 if conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
