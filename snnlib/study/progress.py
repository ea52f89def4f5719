"""Completeness and reruns: which runs the grid files ask for and which have landed, and whether a rerun
reproduces the records."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from snnlib.experiment.run import timing_free
from snnlib.study.design import ExpectedRun, expected_runs, study_grids  # noqa: F401 - the planned runs, re-exported
from snnlib.study.preregistration import ENSEMBLES, planned_evaluations
from snnlib.study.records import is_finished, run_key


def _run_state(rel: str, by_path: dict[str, dict]) -> str:
    """``finished``, ``unfinished``, ``foreign`` (its folder holds another configuration than the grid asks
    for) or ``missing``: the state of an expected run, as the runner's dry run sees it."""
    record = by_path.get(rel)
    if record is None:
        return "missing"
    wanted = getattr(rel, "config", None)
    if wanted is not None and isinstance(record.get("config"), dict):
        try:
            if run_key(record) != json.dumps(wanted, sort_keys=True):
                return "foreign"
        except (TypeError, ValueError):
            return "foreign"
    return "finished" if is_finished(record) else "unfinished"



def missing_runs(expected: Iterable[str], records: Iterable[dict]) -> list[str]:
    """Which ``expected`` run folders have no finished record of the configuration asked for, one line
    per configuration folder: ``paper/mnist/alpha_p0.5_step_current: seeds 3, 4 missing; seed 2 unfinished``
    (``foreign``: the folder holds a run of another configuration)."""
    by_path = {r.get("path"): r for r in records}
    found: dict[str, dict[str, list[str]]] = {"missing": {}, "unfinished": {}, "foreign": {}}
    for rel in expected:
        state = _run_state(rel, by_path)
        if state != "finished":
            folder, _, seed = rel.rpartition("/")
            found[state].setdefault(folder, []).append(seed.removeprefix("seed"))
    lines = []
    for folder in dict.fromkeys(f for states in found.values() for f in states):
        parts = []
        for label, states in found.items():
            if folder in states:
                s = states[folder]
                parts.append(f"seed{'s' if len(s) > 1 else ''} {', '.join(s)} {label}")
        lines.append(f"{folder}: {'; '.join(parts)}")
    return lines



def grid_progress(expected: Iterable[str], records: Iterable[dict]) -> pd.DataFrame:
    """Per grid (the first folder of an ``expected`` run): how many runs the grid files ask for and
    how many of them have a finished record of the configuration asked for (a record in a grid's folder
    counts by what it is, not by its folder's name), in the order the grids first appear."""
    by_path = {r.get("path"): r for r in records}
    rows: dict[str, dict] = {}
    for rel in expected:
        row = rows.setdefault(rel.split("/")[0], {"grid": rel.split("/")[0], "runs": 0, "finished": 0})
        row["runs"] += 1
        row["finished"] += _run_state(rel, by_path) == "finished"
    return pd.DataFrame(list(rows.values()), columns=["grid", "runs", "finished"])


# From the most alike finished runs to the least: the keys of a configuration that set a run's cost
# (the kind before the site: per-step alpha dropout on the input spikes costs 8-14x the other kinds there)
_COST_KEYS = (("dataset", "site", "variant", "p", "time_consistent"), ("dataset", "site", "variant"),
              ("dataset", "variant"), ("dataset",))


def hours_left(expected: Iterable[ExpectedRun], records: Iterable[dict]) -> pd.DataFrame:
    """Per grid (as :func:`grid_progress`): the runs not finished and an estimate of their single-run
    wall time in hours. A run's estimate is the epochs it asks for times the median seconds per epoch
    (a finished run's whole wall time over its epochs) of the finished runs most like it: the same
    dataset, site, kind, rate and mask; else the same dataset, site and kind; else dataset and kind (any
    site); else dataset. NaN where no finished run of its dataset exists. A rough guide to plan by, not a
    measurement: the machine's load changes a run's time by tens of percent."""
    records = list(records)
    by_path = {r.get("path"): r for r in records}
    per_epoch: dict[tuple, list[float]] = {}
    for r in records:
        if is_finished(r) and r.get("wall_time_s") and isinstance(r.get("config"), dict):
            for keys in _COST_KEYS:
                key = (keys, *(r["config"].get(k) for k in keys))
                per_epoch.setdefault(key, []).append(float(r["wall_time_s"]) / len(r["epochs"]))
    rows: dict[str, dict] = {}
    for rel in expected:
        row = rows.setdefault(rel.split("/")[0], {"grid": rel.split("/")[0], "runs_left": 0, "hours_left": 0.0})
        config = getattr(rel, "config", None)
        if _run_state(rel, by_path) == "finished" or config is None:
            continue
        row["runs_left"] += 1
        seconds = next((np.median(per_epoch[key]) for keys in _COST_KEYS
                        if (key := (keys, *(config.get(k) for k in keys))) in per_epoch), math.nan)
        row["hours_left"] += seconds * config["epochs"] / 3600
    return pd.DataFrame(list(rows.values()), columns=["grid", "runs_left", "hours_left"])


def is_ensemble(file: str) -> bool:
    """Whether a planned evaluation file (:func:`evaluation_plan`) is an ensemble's, not one run's."""
    return PurePosixPath(file).name.startswith("ensemble")


def evaluation_plan(expected: Iterable[ExpectedRun]) -> dict[str, tuple[str, ...]]:
    """Every uncertainty evaluation that the expected runs plan
    (:func:`snnlib.study.preregistration.planned_evaluations`), each once, in the order of the runs: its file
    -> the run folders it is made from (the run itself for its ``uncertainty.json``; for an ensemble, the
    runs of its seed group in the same cell, :data:`snnlib.study.preregistration.ENSEMBLES`). Paths are
    relative to the results folder. ``scripts/run_uncertainty.py`` makes them."""
    plan: dict[str, tuple[str, ...]] = {}
    for rel in expected:
        config = getattr(rel, "config", None)
        if config is None:
            continue
        for file in planned_evaluations(rel, config):
            if file in plan:
                continue
            if is_ensemble(file):
                group = next(g for g in ENSEMBLES if config["seed"] in g)
                plan[file] = tuple(str(PurePosixPath(rel).parent / f"seed{seed}") for seed in group)
            else:
                plan[file] = (str(rel),)
    return plan


def evaluation_hours_left(expected: Iterable[ExpectedRun], evaluations: Iterable[dict]) -> pd.DataFrame:
    """Per grid: the uncertainty evaluations of :func:`evaluation_plan` that are not made yet, and an
    estimate of their hours: the median wall time of the made evaluations of the same kind (one run, or an
    ensemble) and dataset; NaN where none is made yet."""
    expected, evaluations = list(expected), list(evaluations)
    made = {e["path"] for e in evaluations}
    seconds: dict[tuple, list[float]] = {}
    for e in evaluations:
        if e.get("wall_time_s") and isinstance(e.get("config"), dict):
            seconds.setdefault((e.get("kind"), e["config"].get("dataset")), []).append(float(e["wall_time_s"]))
    rows = {grid: {"grid": grid, "evaluations_left": 0, "evaluation_hours_left": 0.0}
            for grid in dict.fromkeys(rel.split("/")[0] for rel in expected)}
    for file in evaluation_plan(expected):
        if file in made:
            continue
        grid, dataset = file.split("/")[:2]
        kind = "ensemble" if is_ensemble(file) else "run"
        rows[grid]["evaluations_left"] += 1
        times = seconds.get((kind, dataset))
        rows[grid]["evaluation_hours_left"] += float(np.median(times)) / 3600 if times else math.nan
    return pd.DataFrame(list(rows.values()), columns=["grid", "evaluations_left", "evaluation_hours_left"])


# A hidden importance sums 40 float32 weights; library versions that add them in another order
# agree to float32 rounding, far below any real difference.
IMPORTANCE_ROUNDING = 1e-5


_EXACT_FIELDS = ("hidden_firing_rate", "hidden_mean_spike_step", "hidden_silencing_drop")



def same_numbers(a: dict, b: dict) -> bool:
    """Whether two finished runs (of any configurations) have the same numbers: every per-epoch
    number (times excluded) and every per-neuron list. Two configurations that are one operation
    (feature dropout and dropout2d on this layer) give True for the same seed."""
    epochs_a, epochs_b = timing_free(a)["epochs"], timing_free(b)["epochs"]
    return (is_finished(a) and is_finished(b) and epochs_a == epochs_b
            and all(a.get(k) == b.get(k) for k in ("hidden_importance", *_EXACT_FIELDS)))


REPRODUCED = ("identical", "reproduced")


def first_difference(old: dict, new: dict) -> str | None:
    """Where two finished records first differ, in words: the configuration's keys, else the first
    per-epoch number (``epoch 1 train_loss 0.3889 -> 0.3886``), else a per-neuron list; None when the
    configuration, the epochs and the per-neuron lists other than the importances are equal."""
    if old["config"] != new["config"]:
        keys = sorted(k for k in {*old["config"], *new["config"]} if old["config"].get(k) != new["config"].get(k))
        return f"configuration differs in {', '.join(keys)}"
    epochs_old, epochs_new = timing_free(old)["epochs"], timing_free(new)["epochs"]
    if len(epochs_old) != len(epochs_new):
        return f"{len(epochs_old)} epochs -> {len(epochs_new)}"
    for a, b in zip(epochs_old, epochs_new, strict=True):
        for key in sorted({*a, *b}):
            if a.get(key) != b.get(key):
                return f"epoch {a.get('epoch')} {key} {a.get(key)!r:.10} -> {b.get(key)!r:.10}"
    for key in _EXACT_FIELDS:
        if old.get(key) != new.get(key):
            return f"{key} differs"
    return None


def check_lines(name: str, check: dict) -> list[str]:
    """A saved check (``python -m snnlib compare --json``) in words, as the reproduce chapter lists it:
    how many rerun records reproduce the reference, the verdict counts and the rerun's commits, then
    one indented line per rerun that does not, with its device and where it first differs."""
    commits = sorted({str(row["rerun_git_commit"])[:10] for row in check["rows"] if row.get("rerun_git_commit")})
    lines = [f"{name}: {check['reproduced']} of {check['runs']} rerun records reproduce {check['reference']} "
             f"({check['summary']}); the rerun's library: {', '.join(commits) or 'none'}"]
    lines += [f"    {row['path']} on {row.get('rerun_device_name') or 'an unnamed device'}: {row['why']}"
              for row in check["rows"] if row["verdict"] not in REPRODUCED]
    return lines


def compare_records(reference: Iterable[dict], rerun: Iterable[dict], refused: Iterable[tuple[str, str]] = (),
                    expected: Iterable[str] | None = None,
                    reference_refused: Iterable[tuple[str, str]] = ()) -> list[dict]:
    """Each rerun record against the reference record with the same ``path``, and every rerun that
    should be there and is not.

    One row per run, sorted by ``path``, with both wall times, ``verdict`` and ``why``: ``identical``
    (configuration, every per-epoch number and every per-neuron number equal), ``reproduced`` (the
    same, except hidden importances equal only to float32 rounding, same ranking), ``differs``,
    ``unfinished``, ``no reference`` (a rerun record with no reference at its place), ``refused`` (a
    rerun file that is not read: damaged, edited, a second copy of a run; ``refused`` lists them as
    :func:`snnlib.study.design.scan_records` does), ``reference refused`` (the reference file is not read, named in
    ``reference_refused``) or ``missing`` (a run of ``expected``, by default every reference record's
    path, with no rerun record). Only ``identical`` and ``reproduced`` reproduce (:data:`REPRODUCED`).
    Times and provenance are not compared; the rerun's commit and device are listed.
    """
    reference = list(reference)
    by_path = {r["path"]: r for r in reference}
    bad_reference = dict(reference_refused)
    rows = []
    for rel, why in refused:
        rows.append({"path": rel, "rerun_wall_time_s": None, "reference_wall_time_s": None, "rerun_git_commit": None,
                     "rerun_device_name": None, "importance_difference": None, "verdict": "refused", "why": why})
    for new in rerun:
        old = by_path.get(new["path"])
        row = {"path": new["path"], "rerun_wall_time_s": new.get("wall_time_s"),
               "reference_wall_time_s": None if old is None else old.get("wall_time_s"),
               "rerun_git_commit": new.get("git_commit"), "rerun_device_name": new.get("device_name"),
               "importance_difference": None, "why": None}
        if old is None and new["path"] in bad_reference:
            row.update(verdict="reference refused", why=bad_reference[new["path"]])
        elif old is None:
            row["verdict"] = "no reference"
        elif not (is_finished(new) and is_finished(old)):
            row["verdict"] = "unfinished"
        else:
            imp_old, imp_new = np.asarray(old["hidden_importance"]), np.asarray(new["hidden_importance"])
            same_shape = imp_old.shape == imp_new.shape
            difference = float(np.abs(imp_old - imp_new).max()) if same_shape and imp_old.size else 0.0
            row["importance_difference"] = difference if same_shape else None
            why = first_difference(old, new)
            same = why is None
            if same and same_shape and difference == 0.0:
                row["verdict"] = "identical"
            elif (same and same_shape and difference <= IMPORTANCE_ROUNDING
                  and np.array_equal(np.argsort(imp_old, kind="stable"), np.argsort(imp_new, kind="stable"))):
                row["verdict"] = "reproduced"
            else:
                row.update(verdict="differs", why=why or "hidden_importance differs")
        rows.append(row)
    present = {row["path"] for row in rows}
    for rel, why in bad_reference.items():  # a reference that cannot be read is a difference, rerun or not
        if rel not in present:
            rows.append({"path": rel, "rerun_wall_time_s": None, "reference_wall_time_s": None,
                         "rerun_git_commit": None, "rerun_device_name": None, "importance_difference": None,
                         "verdict": "reference refused", "why": why})
            present.add(rel)
    for rel in (by_path if expected is None else expected):
        if rel not in present:
            old = by_path.get(rel)
            rows.append({"path": str(rel), "rerun_wall_time_s": None,
                         "reference_wall_time_s": None if old is None else old.get("wall_time_s"),
                         "rerun_git_commit": None, "rerun_device_name": None, "importance_difference": None,
                         "verdict": "missing", "why": "no rerun record"})
            present.add(rel)
    return sorted(rows, key=lambda row: row["path"])
