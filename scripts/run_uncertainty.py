"""The uncertainty evaluations of the study (chapter "Uncertainty"): every evaluation that the grid files'
runs plan (``snnlib.study.progress.evaluation_plan``, from the rules of
``snnlib.study.preregistration.planned_evaluations``): a run's own ``uncertainty.json`` and the five
disjoint ensembles of each dataset's base network. Each is made by ``python -m snnlib uncertainty``, one
thread, in a process of its own, once all its runs have finished; an evaluation already made is skipped
(delete it to make it again) and one whose runs are not finished is named and left for the next call, so
the script can be run again until done. ``scripts/run_study.sh`` calls it every few minutes.

Usage: python scripts/run_uncertainty.py [RESULTS_DIR] [--grids GRIDS_DIR]   (defaults: results, grids)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from snnlib.study.progress import evaluation_plan, expected_runs, is_ensemble, study_grids
from snnlib.study.records import is_finished


def _finished(run: Path) -> bool:
    try:
        return is_finished(json.loads((run / "metrics.json").read_text()))
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default="results", help="results folder (default results)")
    parser.add_argument("--grids", default="grids", help="folder of the grid files (default grids)")
    args = parser.parse_args(argv)
    results = Path(args.results)
    grids = study_grids(args.grids)
    if not grids:
        print(f"run_uncertainty: no grid files in {args.grids}; give the folder of grids/*.json with --grids",
              file=sys.stderr)
        return 2
    status = 0
    for file, runs in evaluation_plan(expected_runs(grids)).items():
        if (results / file).exists():
            continue
        waiting = [run for run in runs if not _finished(results / run)]
        if waiting:
            print(f"{file} waits for {', '.join(waiting)}")
            continue
        command = [sys.executable, "-m", "snnlib", "uncertainty", *(str(results / run) for run in runs),
                   "--threads", "1"]
        if is_ensemble(file):
            command += ["--ensemble", str(results / file)]
        status = subprocess.run(command).returncode or status
    return status


if __name__ == "__main__":
    sys.exit(main())
