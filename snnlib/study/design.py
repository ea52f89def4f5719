"""The design: which runs the grid files plan, where, and what a results folder may hold.

Every reader of the study asks the design which records count (:func:`snnlib.study.design.scan_records` with
``design``), and landing asks it which runs may enter ``results/`` (``scripts/land_records.py``):

- a record counts when its folder is one a grid file plans (``grid/dataset/cell/seedN``) and it holds the
  very configuration and seed planned there;
- a record of a planned configuration in another folder (a copy, a run moved by hand) is an **error** that
  names both folders; it never counts, whatever the folders' names or their sort order;
- a record in a planned folder with another configuration (a smoke run, another learning rate) is an
  **error**;
- any other record (a subset run, a scratch folder) is outside the design: **ignored**, listed, and it can
  change no planned cell;
- the folders :data:`KEPT_APART` (``reproducibility/``: reruns of planned runs kept apart on purpose, read by
  their own design; ``bench/``, ``figures/``) are not looked into.

:func:`study_design` reads every grid file of the study (all of ``grids/`` but the smoke test).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from snnlib.experiment.config import RunConfig, config_difference
from snnlib.experiment.grid import GridError, expand_grid, load_grid
from snnlib.experiment.record import record_problem
from snnlib.experiment.system import PROJECT_ROOT, walk_files

DEFAULT_GRIDS = PROJECT_ROOT / "grids"
KEPT_APART = ("reproducibility", "bench", "figures")  # results/ folders that are not the design's records


def outside(rel: str, apart: tuple[str, ...]) -> bool:
    """Whether ``rel`` (a path relative to a results folder) lies outside its top-level folders ``apart``."""
    return rel.split("/", 1)[0] not in apart


class ExpectedRun(str):
    """A run folder that a grid file asks for (``NAME/dataset/cell/seedK``, relative to a results folder),
    with ``config``: the configuration the grid asks for there (None where it is invalid)."""

    config: dict | None

    def __new__(cls, rel: str, config: dict | None = None) -> ExpectedRun:
        run = super().__new__(cls, rel)
        run.config = config
        return run


def expected_runs(grid_files: list[str | Path] | tuple[str | Path, ...]) -> list[ExpectedRun]:
    """The run folders (``NAME/dataset/cell/seedK``, relative to a results folder) that grid files ask for,
    each with the configuration asked for (:class:`ExpectedRun`)."""
    runs = []
    for path in grid_files:
        grid = load_grid(path)
        runs += [ExpectedRun(f"{grid['name']}/{spec.rel}", spec.config) for spec in expand_grid(grid)]
    return list(dict.fromkeys(runs))


def study_grids(grids_dir: str | Path) -> list[Path]:
    """The grid files of the study in ``grids_dir``: every ``*.json`` but the smoke test, sorted."""
    return [g for g in sorted(Path(grids_dir).glob("*.json")) if g.stem != "smoke"]


def config_key(config: dict) -> str:
    """A run's identity: its whole configuration, seeds included, as canonical JSON (keys a record lacks
    take the defaults of its time), however it was spelled."""
    return json.dumps(RunConfig.from_dict(config).to_dict(), sort_keys=True)


@dataclass(frozen=True)
class Design:
    """The planned runs: ``folders`` maps each planned run folder to its configuration's key
    (:func:`config_key`), ``by_key`` each key back to its one folder, ``configs`` each folder to its
    configuration."""

    folders: dict[str, str]
    by_key: dict[str, str]
    configs: dict[str, dict]
    # top-level folders of a results folder kept apart from the design on purpose (reruns of planned runs,
    # benchmarks), each read by its own code: a reader with this design does not look into them
    apart: tuple[str, ...] = KEPT_APART

    def reads(self, rel: str) -> bool:
        """Whether a reader with this design looks at ``rel`` (a path relative to the results folder)."""
        return outside(rel, self.apart)

    @classmethod
    def of(cls, runs: list[ExpectedRun]) -> Design:
        """The design of these planned runs; :class:`GridError` if two folders plan one configuration or
        one folder two configurations."""
        folders: dict[str, str] = {}
        by_key: dict[str, str] = {}
        configs: dict[str, dict] = {}
        for run in runs:
            if run.config is None:
                continue
            key = config_key(run.config)
            if folders.get(run, key) != key:
                raise GridError(f"two grid files plan different configurations in {run}")
            if by_key.get(key, run) != run:
                raise GridError(f"{by_key[key]} and {run} plan the same configuration and seed")
            folders[str(run)], by_key[key], configs[str(run)] = key, str(run), run.config
        return cls(folders, by_key, configs)

    def place(self, rel: str, record: dict) -> tuple[str, str]:
        """(``counted``, ``error`` or ``ignored``, why) for a record found in folder ``rel`` (relative to
        the results folder)."""
        try:
            key = config_key(record["config"])
        except (TypeError, ValueError, KeyError) as err:
            return "error", f"its configuration is not valid ({err})"
        planned = self.folders.get(rel)
        if planned == key:
            return "counted", ""
        if planned is not None:
            differs = config_difference(self.configs[rel], RunConfig.from_dict(record["config"]))
            return "error", (f"the design plans another run in this folder (its configuration differs in: "
                             f"{', '.join(differs)}); move it away")
        if key in self.by_key:
            return "error", (f"it is a copy of the run the design plans in {self.by_key[key]}; only that "
                             f"folder's record counts; move the copy away")
        return "ignored", "outside the design (no grid file plans this configuration and seed)"


_CACHE: dict[tuple, Design] = {}


def study_design(grids_dir: str | Path = DEFAULT_GRIDS) -> Design:
    """The design of the study's grid files in ``grids_dir`` (:func:`study_grids`), read once per set of
    files and their modification times."""
    files = study_grids(grids_dir)
    if not files:
        raise GridError(f"no grid files in {grids_dir}; pass the folder of the study's grid files")
    stamp = tuple((str(f), f.stat().st_mtime_ns) for f in files)
    if stamp not in _CACHE:
        _CACHE[stamp] = Design.of(expected_runs(files))
    return _CACHE[stamp]


# ---------------------------------------------------------------- reading a results folder by the design

def is_finished(record: dict) -> bool:
    """Whether the run finished: status ``finished`` and exactly the epochs its configuration asks for."""
    epochs = record.get("epochs")
    if record.get("status") != "finished" or not isinstance(epochs, list) or not epochs:
        return False
    config = record.get("config")
    wanted = config.get("epochs") if isinstance(config, dict) else None
    return wanted is None or len(epochs) == wanted


def run_key(record: dict) -> str:
    """A run's identity: its whole configuration, seeds included, as canonical JSON (keys a record lacks
    take the defaults of its time), whatever folder holds it and however it was spelled."""
    return config_key(record["config"])


class Scan(NamedTuple):
    """What :func:`scan_records` found: the records that count, the errors (folder, why: a damaged or edited
    file, a copy of a run, a folder that holds another run than planned, something that is not a regular
    file) and the records ignored (folder, why: outside the design)."""

    records: list[dict]
    refused: list[tuple[str, str]]
    ignored: list[tuple[str, str]]


def scan_records(root: str | Path, design: Design | None = None, apart: tuple[str, ...] = ()) -> Scan:
    """The records under ``root`` that count, and every ``metrics.json`` that does not, with why.

    A record counts when it is sealed and intact (:func:`snnlib.experiment.record.record_problem`: its digest,
    its structure and every value within its meaning) and, with a ``design``, when it sits in the folder
    that the design plans for its configuration and seed (:meth:`snnlib.study.design.Design.place`; anything
    outside the design is ignored, a copy or a foreign run in a planned folder is an error). Without a
    design, two records of one configuration and seed in two folders are both named: byte-for-byte copies
    count once, a finished record counts before an unfinished one, and two different finished records of
    one run count neither. Nothing that is not a regular file is opened (:func:`walk_files`). The top-level
    folders of ``root`` named in ``apart`` (and a design's own ``apart``, :data:`KEPT_APART`) are not
    looked into: a reader of a whole results folder without a design passes ``apart=KEPT_APART``.
    """
    root = Path(root)
    if not root.is_dir():
        return Scan([], [], [])
    files, skipped = walk_files(root, lambda name: name == "metrics.json")
    apart = (*apart, *(design.apart if design is not None else ()))
    if apart:  # the folders kept apart from the design are read by their own code
        files = [f for f in files if outside(f.relative_to(root).as_posix(), apart)]
        skipped = [(rel, why) for rel, why in skipped if outside(rel, apart)]
    found, refused, ignored = [], list(skipped), []
    for path in files:
        rel = path.parent.relative_to(root).as_posix()
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            refused.append((rel, f"it is not readable JSON ({err})"))
            continue
        problem = record_problem(record, sealed=True)
        if problem is not None:
            refused.append((rel, problem))
            continue
        if design is not None:
            place, why = design.place(rel, record)
            if place != "counted":
                (ignored if place == "ignored" else refused).append((rel, why))
                continue
        record["path"] = rel
        found.append(record)
    records = _one_per_run(found, refused)
    return Scan(records, refused, ignored)


def _one_per_run(found: list[dict], refused: list[tuple[str, str]]) -> list[dict]:
    """``found`` with each run (configuration and seed) once; the others go to ``refused``, naming both
    folders. Byte-for-byte copies (the same digest) count once; a finished record before an unfinished one;
    two different finished records of one run count neither."""
    groups: dict[str, list[dict]] = {}
    for record in found:
        groups.setdefault(run_key(record), []).append(record)
    kept = []
    for group in groups.values():
        finished = [r for r in group if is_finished(r)] or group
        digests = {r["record_sha256"] for r in finished}
        if len(digests) == 1:
            kept.append(finished[0])
            others = [r for r in group if r is not finished[0]]
            for r in others:
                refused.append((r["path"], f"it is the same run (configuration and seed) as {finished[0]['path']}, "
                                           f"which is counted"))
        else:
            names = ", ".join(r["path"] for r in finished)
            for r in group:
                refused.append((r["path"], f"{names} hold different records of one run (configuration and seed); "
                                           f"none is counted until one is moved away"))
    return sorted(kept, key=lambda r: r["path"])


def warn_scan(root: str | Path, scan: Scan) -> None:
    """One warning per file of ``scan`` that does not count: ``skipping`` (an error), ``ignoring`` (outside
    the design)."""
    for rel, why in scan.refused:
        warnings.warn(f"skipping {Path(root) / rel}: {why}", stacklevel=3)
    for rel, why in scan.ignored:
        warnings.warn(f"ignoring {Path(root) / rel / 'metrics.json'}: {why}", stacklevel=3)


def scan_line(scan: Scan) -> str:
    """What a reading of a results folder found, in one line: the records counted, the ones outside the
    design ignored, and every error with its folder."""
    line = f"{len(scan.records)} run records counted, {len(scan.ignored)} outside the design ignored"
    if not scan.refused:
        return line + ", no errors."
    errors = "; ".join(f"`{rel}`: {why}" for rel, why in scan.refused)
    return line + f", **{len(scan.refused)} error{'s' if len(scan.refused) > 1 else ''}** (not counted): {errors}."
