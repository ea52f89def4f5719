"""The second round's block 5 (uncertainty, fairer): trains the uncertainty reruns of grids/reruns/uncertainty.json
into a working folder, compares each finished rerun with the committed record of its configuration and seed,
makes the version-3 uncertainty evaluations (each run's and the three ensembles per dataset of the base network's
seeds 0-4, 5-9 and 10-14) and, with --land, lands the block into results/reproducibility/uncertainty_reruns/.

One call does what is left, in this order, and can be run again after any stop (nothing finished is done twice):

1. training: JOBS runners side by side (``python -m snnlib.experiment.runner GRID --jobs 1 --threads 1 --results
   WORK``, STAGGER seconds apart, as scripts/run_study.sh does); the runner skips finished runs and resumes
   stopped ones from their checkpoints;
2. the comparison: every planned rerun against its committed record (snnlib.study.reruns.compare_reruns, the
   rows of ``python -m snnlib compare``), written to WORK/uncertainty_reruns/compare.json (left as it is when
   its rows have not changed);
3. the evaluations: ``python -m snnlib uncertainty RUN --threads 1 --evaluation-version 3`` for each finished run
   without its uncertainty.json, JOBS at a time, then each ensemble whose members are finished and whose file is
   not made (``--ensemble``; the ensembles of one cell one after the other: they write in one folder).

--land (nothing else is done then) seals WORK (``python -m snnlib seal``) and copies the whole block (every
record, its evaluation, the ensembles and compare.json) into DEST (default results/reproducibility), through a
staging folder (scripts/land_records.py's ``land``): all or nothing, nothing overwritten, and nothing while a run,
an evaluation or an ensemble is missing or a file is refused (snnlib.study.reruns.landing_plan).

Usage: python scripts/run_uncertainty_reruns.py WORK [--jobs 2] [--stagger 20] [--grid GRID] [--results results]
                                                [--grids grids] [--no-train] [--dry-run] [--land [--dest DEST]]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from snnlib.experiment.grid import GridError
from snnlib.experiment.system import write_json_atomic
from snnlib.study import reruns as RR

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent


def _runner_command(grid: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "snnlib.experiment.runner", str(grid), "--jobs", "1", "--threads", "1",
            "--results", str(work)]


def evaluation_commands(plan: RR.RerunPlan, work: Path) -> tuple[list[list[str]], list[list[list[str]]]]:
    """(one command per finished run without its evaluation; per cell folder, the commands of its ensembles
    that are ready, to run one after the other)."""
    state = RR.block_state(plan, work)
    common = ["--threads", "1", "--evaluation-version", str(RR.EVALUATION_VERSION)]
    runs = [[sys.executable, "-m", "snnlib", "uncertainty", str(work / run), *common] for run in state.to_evaluate]
    cells: dict[str, list[list[str]]] = {}
    for file in state.ensembles_ready:
        members = [str(work / m) for m in plan.ensembles[file]]
        cells.setdefault(str(PurePosixPath(file).parent), []).append(
            [sys.executable, "-m", "snnlib", "uncertainty", *members, *common, "--ensemble", str(work / file)])
    return runs, list(cells.values())


def _train(grid: Path, work: Path, jobs: int, stagger: float) -> int:
    """JOBS runners side by side; their worst exit status. Ctrl-C stops them (the runs resume later)."""
    processes = []
    try:
        for j in range(jobs):
            processes.append(subprocess.Popen(_runner_command(grid, work)))
            if j + 1 < jobs:
                time.sleep(stagger)  # the first runner takes its first configuration before the next one looks
        return max(p.wait() for p in processes)
    except KeyboardInterrupt:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait()
        raise


def _run_groups(groups: list[list[list[str]]], jobs: int) -> int:
    """Each group's commands one after the other, ``jobs`` groups at a time; the worst exit status."""
    def one(group: list[list[str]]) -> int:
        return max((subprocess.run(command).returncode for command in group), default=0)

    if not groups:
        return 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return max(pool.map(one, groups))


def _compare(plan: RR.RerunPlan, work: Path, results: Path, grids: Path) -> list[dict]:
    rows = RR.compare_reruns(plan, work, results, grids)
    path = work / plan.compare_file
    if not RR.same_comparison(path, rows):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, RR.compare_document(plan, rows))
    return rows


def _summary(rows: list[dict]) -> str:
    verdicts = [row["verdict"] for row in rows]
    return ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))


def _land(plan: RR.RerunPlan, work: Path, dest: Path, results: Path, grids: Path) -> int:
    from snnlib.study.seal import seal_results

    _, refused = seal_results(work, log=lambda line: None)
    for line in refused:
        print(f"error: cannot seal {line}", file=sys.stderr)
    landing = RR.landing_plan(plan, work, dest, results, grids)
    for line in landing.errors:
        print(f"error: {line}", file=sys.stderr)
    if landing.missing:
        print(f"not complete: {len(landing.missing)} files missing, e.g. {', '.join(landing.missing[:3])}",
              file=sys.stderr)
    if refused or landing.errors or landing.missing:
        print("nothing landed (the block lands whole or not at all)", file=sys.stderr)
        return 1
    sys.path.insert(0, str(SCRIPTS))
    from land_records import land

    land(work, dest, [Path(rel) for rel in landing.copies])
    print(f"{len(landing.copies)} files landed in {dest / plan.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="the working folder the reruns are trained in (not results/)")
    parser.add_argument("--jobs", type=int, default=2, help="runners and evaluations side by side (default 2)")
    parser.add_argument("--stagger", type=float, default=20.0, help="seconds between the runners' starts (default 20)")
    parser.add_argument("--grid", type=Path, default=RR.RERUN_GRID, help="the rerun grid (default grids/reruns/"
                                                                          "uncertainty.json)")
    parser.add_argument("--results", type=Path, default=ROOT / "results",
                        help="the committed results the reruns are compared with (default results)")
    parser.add_argument("--grids", type=Path, default=ROOT / "grids", help="the study's grid files (default grids)")
    parser.add_argument("--no-train", action="store_true", help="compare and evaluate what has finished, train nothing")
    parser.add_argument("--dry-run", action="store_true", help="say what is done and what is left, run nothing")
    parser.add_argument("--land", action="store_true", help="land the finished block into DEST (nothing else)")
    parser.add_argument("--dest", type=Path, default=RR.RERUN_DEST,
                        help="where the block lands (default results/reproducibility)")
    args = parser.parse_args(argv)
    try:
        if args.jobs < 1:
            raise ValueError(f"--jobs must be a positive integer, got {args.jobs}")
        if args.stagger < 0:
            raise ValueError(f"--stagger must be >= 0 seconds, got {args.stagger}")
        if not args.grid.is_file():
            raise ValueError(f"no grid file {args.grid}")
        if args.work.resolve() == args.results.resolve() or args.work.resolve() == args.dest.resolve():
            raise ValueError(f"{args.work} is a results folder itself; train in a working folder")
        plan = RR.rerun_plan(args.grid, args.grids)
    except (ValueError, GridError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    work = args.work
    if args.land:
        return _land(plan, work, args.dest, args.results, args.grids)
    state = RR.block_state(plan, work)
    if args.dry_run:
        for line in state.lines(plan):
            print(line)
        if state.unfinished and not args.no_train:
            print(f"would train with {args.jobs} runner(s): {' '.join(_runner_command(args.grid, work)[1:])}")
        runs, cells = evaluation_commands(plan, work)
        for command in [*runs, *(c for cell in cells for c in cell)]:
            print("would evaluate: " + " ".join(command[1:]))
        return 0
    status = 0
    if state.unfinished and not args.no_train:
        status = _train(args.grid, work, args.jobs, args.stagger)
    rows = _compare(plan, work, args.results, args.grids)
    print(f"compare ({work / plan.compare_file}): {_summary(rows)}")
    runs, _ = evaluation_commands(plan, work)
    status = max(status, _run_groups([[command] for command in runs], args.jobs))
    _, cells = evaluation_commands(plan, work)  # after the runs' own evaluations
    status = max(status, _run_groups(cells, args.jobs))
    for line in RR.block_state(plan, work).lines(plan):
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
