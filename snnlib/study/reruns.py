"""The uncertainty reruns of the second round's block 5 (``snnlib.study.preregistration.ADDENDUM``): what is
trained again, how each rerun is compared with its committed record, and what lands where.

The version-3 evaluations (:mod:`snnlib.uncertainty.scaled`) need weights, which are not kept, so the paper
grid's cells at the paper's site are trained again by the grid file :data:`RERUN_GRID`
(``grids/reruns/uncertainty.json``: the base network, seeds 0-14, and the four kinds of
:data:`~snnlib.study.preregistration.UNCERTAINTY_KINDS`, seeds 0-4, both datasets; 70 runs). It lies in a
subfolder of ``grids/``, so it is not part of the study's design (:func:`snnlib.study.design.study_grids`
reads ``grids/*.json``): each of its runs is the configuration and seed of a run the design plans and has
committed (its **reference**, ``RerunPlan.references``), which the study's design would refuse as a copy.
Its records are read with a design of their own (:func:`rerun_design`), kept apart in
``results/reproducibility/uncertainty_reruns/`` (:data:`RERUN_DEST` plus the grid's name) and never pooled with
the design's.

- :func:`rerun_plan`: the runs, each one's reference folder, and the ensembles (each group of
  :data:`~snnlib.study.preregistration.ENSEMBLES` whose five base seeds the grid trains:
  ``<cell>/ensemble_seeds01234.json`` and so on, the names the study gives its own);
- :func:`block_state`: what a working folder holds of the plan (finished, evaluated with version 3, ensembles);
- :func:`compare_reruns`: every planned rerun against its reference
  (:func:`snnlib.study.progress.compare_records`: ``identical``, ``reproduced``, ``differs``, ``unfinished``,
  ``missing`` ...), each row naming both folders; :func:`compare_document` the JSON written beside the runs
  (:data:`COMPARE_FILE`);
- :func:`landing_plan`: the files that land (every record, its evaluation, the ensembles and the
  comparison), whole or not at all: nothing lands while a run, an evaluation or an ensemble is missing or
  any file is refused, and nothing in the destination is overwritten. ``scripts/run_uncertainty_reruns.py``
  runs all of it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from snnlib.experiment.grid import load_grid
from snnlib.experiment.system import PROJECT_ROOT, git_commit, walk_files
from snnlib.study.design import DEFAULT_GRIDS, Design, ExpectedRun, config_key, expected_runs, study_design
from snnlib.study.evaluations import _evaluation_problem, _records_at
from snnlib.study.preregistration import ENSEMBLES
from snnlib.study.progress import REPRODUCED, compare_records
from snnlib.study.records import is_finished, scan_records

RERUN_GRID = DEFAULT_GRIDS / "reruns" / "uncertainty.json"
RERUN_FOLDER = "reproducibility"  # the folder of a results folder the reruns land in (kept apart from the design)
RERUN_DEST = PROJECT_ROOT / "results" / RERUN_FOLDER  # the grid's folder lands in here
COMPARE_FILE = "compare.json"  # beside the grid's runs: <grid name>/compare.json
EVALUATION_VERSION = 3
RUN_EVALUATION = "uncertainty.json"


@dataclass(frozen=True)
class RerunPlan:
    """``name``: the grid's name (its runs' top folder); ``runs``: the planned run folders (relative to a
    results folder, with their configurations); ``references``: each run's folder in the study's design (the
    committed record of the same configuration and seed; None if the design plans none); ``ensembles``: each
    ensemble file -> its members' run folders; ``design``: the design of the rerun grid alone."""

    name: str
    runs: list[ExpectedRun]
    references: dict[str, str | None]
    ensembles: dict[str, tuple[str, ...]]
    design: Design

    @property
    def compare_file(self) -> str:
        return f"{self.name}/{COMPARE_FILE}"

    def evaluation_files(self) -> list[str]:
        """Every evaluation the block makes: each run's ``uncertainty.json``, then each ensemble's file."""
        return [f"{run}/{RUN_EVALUATION}" for run in self.runs] + list(self.ensembles)


def rerun_design(grid_file: str | Path = RERUN_GRID) -> Design:
    """The design of the rerun grid alone (:meth:`snnlib.study.design.Design.of`): what the readers of the
    block count, so that copies and strays there are refused like anywhere else."""
    return Design.of(expected_runs([grid_file]))


def ensemble_files(runs: list[ExpectedRun]) -> dict[str, tuple[str, ...]]:
    """Each ensemble of base runs (no dropout) that ``runs`` hold whole: for every cell folder and every
    seed group of :data:`~snnlib.study.preregistration.ENSEMBLES` all of whose seeds the cell has,
    ``<cell>/ensemble_seeds<seeds>.json`` -> the members' folders."""
    cells: dict[str, dict[int, str]] = {}
    for run in runs:
        if run.config is not None and run.config["variant"] == "none":
            cells.setdefault(str(PurePosixPath(run).parent), {})[int(run.config["seed"])] = str(run)
    out = {}
    for cell, seeds in cells.items():
        for group in ENSEMBLES:
            if all(s in seeds for s in group):
                out[f"{cell}/ensemble_seeds{''.join(map(str, group))}.json"] = tuple(seeds[s] for s in group)
    return out


def rerun_plan(grid_file: str | Path = RERUN_GRID, grids_dir: str | Path = DEFAULT_GRIDS) -> RerunPlan:
    """The plan of the rerun grid ``grid_file`` against the study's design of ``grids_dir``. A grid file that
    is one of the design's own (its runs would be the design's runs) is refused (``ValueError``)."""
    grid_file = Path(grid_file)
    design = study_design(grids_dir)
    runs = expected_runs([grid_file])
    if any(design.folders.get(str(run)) is not None for run in runs):
        raise ValueError(f"{grid_file} plans runs in the study's own folders; a rerun grid needs a name of its own")
    references = {str(run): design.by_key.get(config_key(run.config)) if run.config else None for run in runs}
    return RerunPlan(load_grid(grid_file)["name"], runs, references, ensemble_files(runs), Design.of(runs))


def _record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _version(path: Path) -> int | None:
    evaluation = _record(path)
    settings = evaluation.get("settings") if evaluation else None
    return settings.get("uncertainty_version") if isinstance(settings, dict) else None


@dataclass
class BlockState:
    """What a working folder holds of a :class:`RerunPlan` (folders and files relative to it)."""

    finished: list[str]
    unfinished: list[str]  # not started, under way or stopped
    evaluated: list[str]  # finished runs with a version-3 uncertainty.json
    to_evaluate: list[str]  # finished runs without one
    other_version: list[str]  # an uncertainty.json of another version (never replaced by the script)
    ensembles_made: list[str]
    ensembles_ready: list[str]  # every member finished, the file not made yet
    ensembles_waiting: list[str]

    def complete(self) -> bool:
        return not (self.unfinished or self.to_evaluate or self.other_version or self.ensembles_ready
                    or self.ensembles_waiting)

    def lines(self, plan: RerunPlan) -> list[str]:
        """The state in a few lines."""
        return [f"{plan.name}: {len(plan.runs)} runs planned, {len(self.finished)} finished, "
                f"{len(self.unfinished)} to train (or under way)",
                f"evaluations (version {EVALUATION_VERSION}): {len(self.evaluated)} made, {len(self.to_evaluate)} to "
                f"make" + (f", {len(self.other_version)} of another version in the way: "
                           f"{', '.join(self.other_version)}" if self.other_version else ""),
                f"ensembles: {len(self.ensembles_made)} of {len(plan.ensembles)} made, {len(self.ensembles_ready)} "
                f"ready to make, {len(self.ensembles_waiting)} waiting for their members"]


def block_state(plan: RerunPlan, work: str | Path) -> BlockState:
    """The state of ``plan`` in the working folder ``work`` (a run is finished when its record says so and
    holds its planned configuration; an evaluation is made when its file exists, of version 3)."""
    work = Path(work)
    state = BlockState([], [], [], [], [], [], [], [])
    for run in plan.runs:
        record = _record(work / run / "metrics.json")
        done = (record is not None and is_finished(record) and isinstance(record.get("config"), dict)
                and config_key(record["config"]) == plan.design.folders.get(str(run)))
        (state.finished if done else state.unfinished).append(str(run))
        if done:
            file = work / run / RUN_EVALUATION
            if not file.exists():
                state.to_evaluate.append(str(run))
            elif _version(file) == EVALUATION_VERSION:
                state.evaluated.append(str(run))
            else:
                state.other_version.append(f"{run}/{RUN_EVALUATION}")
    finished = set(state.finished)
    for file, members in plan.ensembles.items():
        if (work / file).exists():
            if _version(work / file) == EVALUATION_VERSION:
                state.ensembles_made.append(file)
            else:
                state.other_version.append(file)
        elif all(m in finished for m in members):
            state.ensembles_ready.append(file)
        else:
            state.ensembles_waiting.append(file)
    return state


def compare_reruns(plan: RerunPlan, work: str | Path, results: str | Path,
                   grids_dir: str | Path = DEFAULT_GRIDS) -> list[dict]:
    """Every planned rerun under ``work`` against its reference record under ``results`` (the committed
    results, read by the study's design), by :func:`snnlib.study.progress.compare_records`: one row per run,
    ``path`` the rerun's folder and ``reference`` the committed one. A rerun not there is ``missing``; a
    reference not there or refused is named so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rerun_scan = scan_records(work, plan.design)
        reference_scan = scan_records(results, study_design(grids_dir))
    committed = {r["path"]: r for r in reference_scan.records}
    refused_reference = dict(reference_scan.refused)
    reference, reference_refused = [], []
    for run, folder in plan.references.items():
        if folder in committed:
            reference.append({**committed[folder], "path": run})
        else:
            why = refused_reference.get(folder) if folder else None
            reference_refused.append((run, why or (f"no committed record in {folder}" if folder else
                                                   "the study's design plans no run of this configuration and seed")))
    refused = [(rel, why) for rel, why in rerun_scan.refused if rel.startswith(f"{plan.name}/")]
    rows = compare_records(reference, rerun_scan.records, refused, [str(r) for r in plan.runs], reference_refused)
    for row in rows:
        row["reference"] = plan.references.get(row["path"])
    return rows


def compare_document(plan: RerunPlan, rows: list[dict]) -> dict:
    """The comparison as ``python -m snnlib compare --json`` writes one (each row with its ``reference``)."""
    commit, dirty = git_commit()
    verdicts = [row["verdict"] for row in rows]
    return {"command": "compare", "reference": "the study's committed records (each row's reference folder)",
            "rerun": plan.name, "git_commit": commit, "git_dirty": dirty,
            "summary": {v: verdicts.count(v) for v in dict.fromkeys(verdicts)},
            "reproduced": sum(v in REPRODUCED for v in verdicts), "runs": len(rows), "rows": rows}


def same_comparison(path: Path, rows: list[dict]) -> bool:
    """Whether the comparison file ``path`` holds these rows already (then it is left as it is, so that
    landing it again finds it byte for byte)."""
    saved = _record(path)
    return saved is not None and saved.get("rows") == json.loads(json.dumps(rows))


@dataclass
class RerunLanding:
    """The files that land (relative to the working folder and to the destination), the errors (any one stops
    the landing) and what is still missing (the block lands whole: nothing while anything is missing)."""

    copies: list[str]
    errors: list[str]
    missing: list[str]


def landing_plan(plan: RerunPlan, work: str | Path, dest: str | Path = RERUN_DEST,
                 study_results: str | Path | None = None, grids_dir: str | Path = DEFAULT_GRIDS) -> RerunLanding:
    """What landing the block from ``work`` into ``dest`` copies: every planned record, its version-3
    evaluation, every ensemble file and the comparison (:data:`COMPARE_FILE`), each checked (sealed, intact,
    made from the record it names, read by :func:`rerun_design`). Errors: a refused record or evaluation in the
    grid's folder, an evaluation or a comparison file the plan does not make, a file ``dest`` holds already with
    other contents (never overwritten), and, when ``dest`` lies inside ``study_results`` (the study's results
    folder), a record that the study's design would then refuse as a copy of its own run (the study's reading
    of its results must stay whole). Missing: any planned file not made yet."""
    work, dest = Path(work), Path(dest)
    errors: list[str] = []
    state = block_state(plan, work)
    missing = [f"{run} (not finished)" for run in state.unfinished]
    missing += [f"{run}/{RUN_EVALUATION}" for run in state.to_evaluate]
    missing += [f"{file} (another version)" for file in state.other_version]
    missing += [f"{file} (members not finished)" for file in state.ensembles_waiting]
    missing += list(state.ensembles_ready)
    if not (work / plan.compare_file).is_file():
        missing.append(plan.compare_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scan = scan_records(work, plan.design)
        record_at = _records_at(work, plan.design)
    errors += [f"{work / rel}: {why}" for rel, why in scan.refused if rel.startswith(f"{plan.name}/")]
    wanted = [f"{run}/metrics.json" for run in plan.runs]
    planned = set(plan.evaluation_files())
    files, skipped = walk_files(work / plan.name, lambda name: name.endswith(".json")) \
        if (work / plan.name).is_dir() else ([], [])
    errors += [f"{work / plan.name / rel}: {why}" for rel, why in skipped]
    for path in files:
        rel = path.relative_to(work).as_posix()
        if path.name == "metrics.json" or rel == plan.compare_file:
            continue
        if rel not in planned:
            errors.append(f"{path}: the block makes no such file; only its records, evaluations and {COMPARE_FILE} land")
            continue
        why = _evaluation_problem(_record(path), path, record_at)
        if why:
            errors.append(f"{path}: {why}")
        elif _version(path) == EVALUATION_VERSION:
            wanted.append(rel)
    wanted.append(plan.compare_file)
    if study_results is not None:
        errors += _study_guard(plan, work, dest, Path(study_results), grids_dir)
    copies = []
    for rel in wanted:
        source, target = work / rel, dest / rel
        if not source.is_file():
            continue
        if target.exists() or target.is_symlink():
            if not target.is_file() or target.read_bytes() != source.read_bytes():
                errors.append(f"{target} exists with other contents; never overwritten")
            continue
        copies.append(rel)
    return RerunLanding(copies, errors, missing)


def _study_guard(plan: RerunPlan, work: Path, dest: Path, study_results: Path, grids_dir: str | Path) -> list[str]:
    """One error per record that, landed in ``dest`` inside ``study_results``, the study's design would refuse
    (as a copy of its own run): then the study's readers would report errors, and nothing may land. A folder
    the design keeps apart (:data:`snnlib.study.design.KEPT_APART`, such as ``reproducibility/``) is never
    read by it, so nothing landed there is refused."""
    try:
        inside = dest.resolve().relative_to(study_results.resolve())
    except ValueError:
        return []
    design = study_design(grids_dir)
    refused = []
    for run in plan.runs:
        rel = (inside / run).as_posix()
        record = _record(work / run / "metrics.json") if design.reads(rel) else None  # kept apart: not read
        if record is not None:
            place, why = design.place(rel, record)
            refused += [f"{dest / run} ({why})"] if place == "error" else []
    if not refused:
        return []
    return [f"the study's design would refuse {len(refused)} of the block's records in {dest}, e.g. {refused[0]}: "
            f"the study's reading of its results (snnlib.study.design) must leave {inside.as_posix()}/ out before "
            f"the block lands there"]
