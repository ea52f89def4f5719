"""The results explorer: every cell of the study in one page that needs no kernel and no network.

The study's "write the report" step for a reader who wants to look at any cell, not only the ones the
chapters show. :func:`explorer_data` reads the sealed records of a results folder
(:func:`snnlib.study.records.load_records`, then :func:`~snnlib.study.records.runs_table` and
:func:`~snnlib.study.records.epochs_table`), the uncertainty evaluations
(:func:`snnlib.study.evaluations.load_evaluations`) and the pre-registered tests
(:func:`snnlib.study.claims.evaluate_claims`) and returns everything the page shows, as plain JSON:

* one *cell* per configuration the design ran with the study's settings (dataset, dropout kind, site, mask,
  p, epochs and learning rate; seeds pooled): the per-epoch mean and sample standard deviation over seeds of
  every metric of :data:`CURVE_METRICS`, each seed's curve, the last epoch's values, and their difference to
  the base network of the same dataset, epochs and learning rate (:func:`welch`: the Welch interval of
  :func:`snnlib.study.stats.compare`, 95%, n of both sides); the test-set NLL, ECE and Brier score of the runs
  that were evaluated (:data:`UNCERTAINTY_METRICS`, dropout off and MC dropout); the pre-registered tests that
  read the cell's runs, with their label and the verdicts they feed; the commands that rerun the cell;
* the overview grid: per dataset, kind x site at the study's main setting, the change in test accuracy.

:func:`snnlib.study.explorer_page.explorer_html` turns the data into an HTML fragment that carries its own
JavaScript, so it works from ``file://`` with no network; :func:`write_explorer` writes it as a page of its
own, :class:`Explorer` shows it in a notebook. No number is computed in the browser.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from snnlib.study import claims as C
from snnlib.study import evaluations as E
from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study import stats
from snnlib.study.explorer_page import BASE_LABEL, CELL_LABEL, CONTROLS, chart_specs, explorer_html

# Numbers of every epoch the page draws as curves (a record's per-epoch numbers).
CURVE_METRICS = ("test_acc", "train_eval_acc", "test_loss", "train_loss", "train_eval_loss", "val_acc",
                 "test_hidden_spikes")
# Numbers of the uncertainty evaluation (test set, once after training) and the methods shown.
UNCERTAINTY_METRICS = ("nll", "ece", "brier")
UNCERTAINTY_METHODS = ("deterministic", "mc_dropout")
METHOD_SHORT = {"deterministic": "dropout off", "mc_dropout": "MC dropout"}
MASK_NAMES = {"step": "a new mask every step", "sample": "one mask per sample"}
SITE_LABELS = {"current": "synaptic current", "hidden": "hidden spikes", "input": "input spikes"}
# The study's main setting (the grid's): the defaults of records.cell_runs, the cell the tests read
# (p, mask and epochs), and the study's learning rate.
_CELL_DEFAULTS = inspect.signature(R.cell_runs).parameters
MAIN = {"p": _CELL_DEFAULTS["p"].default, "mask": _CELL_DEFAULTS["mask"].default,
        "epochs": _CELL_DEFAULTS["epochs"].default, "lr": R.STUDY_SETTINGS["lr"]}
SIGNIFICANT = 6  # digits kept of the numbers the page only draws (curves, single seeds)


# ---------------------------------------------------------------- the data

def explorer_data(root: str | Path) -> dict:
    """Everything the explorer shows, from the sealed records (and evaluations) under ``root``, as a
    JSON-ready dict: ``cells`` (each configuration with its curves, final numbers, difference to the base
    network, uncertainty, tests and rerun commands), ``grid``, ``tests``, ``options`` (the controls' values
    and names), ``metrics`` and ``specs`` (the Vega-Lite charts, made with Altair).

    Raises ``FileNotFoundError`` when ``root`` is not a folder and ``ValueError`` when it holds no finished
    run with the study's settings (one line each)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"explorer: no results folder at {root}")
    records = R.load_study(root)
    table = R.runs_table(records)
    runs = design_runs(table)
    if runs.empty:
        raise ValueError(f"explorer: no finished run with the study's settings under {root}")
    every = R.epochs_table(records)
    every = every[every["path"].isin(set(runs["path"]))]
    epochs = {path: frame for path, frame in every.groupby("path", sort=False)}
    claims = C.evaluate_claims(table)
    uncertainty = _uncertainty_values(E.load_study_evaluations(root))

    cells: dict[str, dict] = {}
    for key, group in runs.groupby(list(_GROUP_KEYS), sort=False, dropna=False):
        cell = _cell(dict(zip(_GROUP_KEYS, key, strict=True)), group, epochs, uncertainty)
        cells[cell["id"]] = cell
    for cell in cells.values():
        base = cells.get(cell["base"]) if cell["kind"] != "none" else None
        cell["base"] = base["id"] if base else None
        _compare_to_base(cell, base)
    tests = _tests(claims, cells)
    grid = _grid(cells)
    ordered = sorted(cells.values(), key=_order)
    return {
        "version": 1,
        "runs": int(len(runs)),
        "cells": ordered,
        "tests": tests,
        "grid": grid,
        "main": {"p": _text(MAIN["p"]), "mask": MAIN["mask"], "epochs": _text(MAIN["epochs"]),
                 "lr": _text(MAIN["lr"])},
        "options": _options(ordered),
        "same": {f"{site}|{kind}": {"kind": stands, "name": R.KIND_NAMES[stands]}
                 for (site, kind), stands in P.SAME_OPERATION.items()},
        "metrics": _metrics(),
        "labels": {"base": BASE_LABEL, "cell": CELL_LABEL, "methods": METHOD_SHORT},
        "specs": chart_specs(_largest_changes(grid)),
    }


# Every configuration column of a cell (seeds pooled); the base network's p, mask and site do nothing.
_GROUP_KEYS = ("dataset", "variant", "p", "mask", "site", "epochs", "lr")


def design_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The finished runs of ``table`` (:func:`snnlib.study.records.runs_table`) that have the study's
    settings (:data:`snnlib.study.records.STUDY_SETTINGS`) except, perhaps, the learning rate and the number of
    epochs, the two the design varies; one per configuration and seed. The C3 control (initial weights of
    another seed) and the tuning runs (other network settings) are not cells of the design."""
    if table.empty:
        return table
    ok = table["finished"].astype(bool)
    for key, wanted in R.STUDY_SETTINGS.items():
        if key == "lr":
            continue
        column = table[key] if key in table else pd.Series([None] * len(table), index=table.index, dtype=object)
        ok &= column.map(lambda value, wanted=wanted: _missing(value) if wanted is None
                         else not _missing(value) and R.same_value(value, wanted)).astype(bool)
    chosen = table[ok].copy()
    none = chosen["variant"] == "none"
    chosen.loc[none, "p"] = 0.0
    chosen.loc[none, "mask"] = "step"
    chosen.loc[none, "site"] = "current"
    return chosen.drop_duplicates(subset=[*_GROUP_KEYS, "seed"], keep="first")


def cell_id(dataset: str, kind: str, p: float, mask: str, site: str, epochs: int, lr: float) -> str:
    """A cell's identity in the explorer: ``mnist|dropout|0.5|step|current|20|0.001`` (the base network:
    ``mnist|none|-|-|-|20|0.001``)."""
    if kind == "none":
        return f"{dataset}|none|-|-|-|{int(epochs)}|{_text(lr)}"
    return f"{dataset}|{kind}|{_text(p)}|{mask}|{site}|{int(epochs)}|{_text(lr)}"


def _cell(key: dict, group: pd.DataFrame, epochs: dict[str, pd.DataFrame], uncertainty: dict) -> dict:
    kind = key["variant"]
    ident = cell_id(key["dataset"], kind, key["p"], key["mask"], key["site"], key["epochs"], key["lr"])
    group = group.sort_values("seed")
    seeds = [int(s) for s in group["seed"]]
    n_epochs = int(key["epochs"])
    series, final = {}, {}
    for metric in CURVE_METRICS:
        matrix = np.full((len(seeds), n_epochs), np.nan)
        for i, path in enumerate(group["path"]):
            run = epochs.get(path)
            if run is not None:
                numbers, at = run[metric].to_numpy(float), run["epoch"].to_numpy(int)
                inside = (at >= 1) & (at <= n_epochs)
                matrix[i, at[inside] - 1] = numbers[inside]
        if np.isnan(matrix).all():
            continue
        with warnings.catch_warnings():  # an epoch of one run has no standard deviation: None
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, sd = np.nanmean(matrix, axis=0), np.nanstd(matrix, axis=0, ddof=1)
        series[metric] = {"mean": [_round(v) for v in mean], "sd": [_round(v) for v in sd],
                          "seeds": [[_round(v) for v in row] for row in matrix]}
        last = [float(v) for v in group[metric] if not _missing(v)]
        final[metric] = _describe(last)
    cell = {
        "id": ident, "dataset": key["dataset"], "kind": kind, "p": float(key["p"]), "mask": key["mask"],
        "site": key["site"], "epochs": n_epochs, "lr": float(key["lr"]),
        "sel": {"dataset": key["dataset"], "kind": kind, "site": key["site"], "mask": key["mask"],
                "p": _text(key["p"]), "epochs": _text(n_epochs), "lr": _text(key["lr"])},
        "base": cell_id(key["dataset"], "none", 0.0, "step", "current", n_epochs, key["lr"]),
        "title": _title(key), "seeds": seeds, "seed_text": _seed_text(seeds), "n": len(seeds),
        "series": series, "final": final, "uncertainty": {}, "commands": _commands(key, group), "note": _note(key),
    }
    for metric in UNCERTAINTY_METRICS:
        methods = {}
        for method in UNCERTAINTY_METHODS:
            values = {s: uncertainty[(path, method)][metric] for s, path in zip(seeds, group["path"], strict=True)
                      if (path, method) in uncertainty and not _missing(uncertainty[(path, method)][metric])}
            if values:
                methods[method] = {**_describe(list(values.values())), "seeds": list(values)}
        if methods:
            cell["uncertainty"][metric] = methods
    return cell


def _compare_to_base(cell: dict, base: dict | None) -> None:
    """The last epoch's difference to the base network, per metric (Welch's 95% interval), and for the
    uncertainty metrics each method of the cell against the base network with dropout off."""
    cell["vs_base"], cell["uncertainty_vs_base"] = {}, {}
    if base is None or cell["kind"] == "none":
        return
    for metric, mine in cell["final"].items():
        theirs = base["final"].get(metric)
        if theirs:
            cell["vs_base"][metric] = _difference(theirs["values"], mine["values"])
    for metric, methods in cell["uncertainty"].items():
        reference = base["uncertainty"].get(metric, {}).get("deterministic")
        if reference:
            cell["uncertainty_vs_base"][metric] = {
                method: _difference(reference["values"], numbers["values"]) for method, numbers in methods.items()}


def welch(base: Sequence[float], variant: Sequence[float], level: float = 0.95) -> stats.Difference:
    """``mean(variant) - mean(base)`` with Welch's interval and p: :func:`snnlib.study.stats.compare` without its
    exact permutation check, which the page does not show."""
    return stats.compare(base, variant, level, permutation=False)


def _difference(base: Sequence[float], variant: Sequence[float]) -> dict:
    d = welch(base, variant)
    return {"diff": _finite(d.diff), "low": _finite(d.ci_low), "high": _finite(d.ci_high), "p": _finite(d.welch_p),
            "n_base": d.n_base, "n": d.n_variant}


def _describe(values: Sequence[float]) -> dict:
    x = np.asarray(values, float)
    return {"mean": _finite(float(x.mean())) if len(x) else None,
            "sd": _finite(float(x.std(ddof=1))) if len(x) > 1 else None,
            "n": int(len(x)), "values": [float(v) for v in x]}


def _uncertainty_values(evaluations: Sequence[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """{(run folder, method): {metric: value on the test set}} of the evaluations of single runs."""
    out = {}
    for ev in evaluations:
        if ev.get("kind") != "run":
            continue
        folder = str(ev["path"]).rsplit("/", 1)[0]
        for method in UNCERTAINTY_METHODS:
            test = ev.get("methods", {}).get(method, {}).get("results", {}).get("test")
            if test is not None:
                out[(folder, method)] = {m: (math.nan if test.get(m) is None else float(test[m]))
                                         for m in UNCERTAINTY_METRICS}
    return out


# ---------------------------------------------------------------- the tests and the verdicts they feed

def _tests(claims: C.Claims, cells: dict[str, dict]) -> list[dict]:
    """Each pre-registered test as the page shows it; each cell gets ``tests``, the indices of the tests
    that read its runs (a kind that is another's operation reads that kind's runs)."""
    out = []
    for cell in cells.values():
        cell["tests"] = []
    for test in claims.tests:
        runs_of = P.operation(test.site, test.kind)
        ident = cell_id(test.dataset, runs_of, MAIN["p"], test.mask, test.site, MAIN["epochs"], MAIN["lr"])
        entry = {"claim": test.claim, "role": test.role, "family": test.family, "dataset": test.dataset,
                 "kind": test.kind, "kind_name": C.kind_name(test), "site": test.site, "metric": test.metric,
                 "metric_name": C.metric_name(test), "label": test.label, "text": C.describe_test(test),
                 "verdicts": _verdicts_fed(claims, test), "cell": ident if ident in cells else None}
        if ident in cells:
            cells[ident]["tests"].append(len(out))
        out.append(entry)
    return out


def _verdicts_fed(claims: C.Claims, test: C.Test) -> list[str]:
    """The verdicts a primary test enters (its claim at its site, on its dataset and over both; C2 under
    each reading that takes its kind; C3 for the paper's importance measure), one sentence each."""
    if test.role != "primary":
        return []
    fed = []
    for v in claims.verdicts:
        if (v.claim, v.site) != (test.claim, test.site) or v.dataset not in (test.dataset, "both"):
            continue
        if test.claim == "C2" and test.kind not in P.C2_READINGS.get(v.reading, ()):
            continue
        if test.claim == "C3" and v.reading != P.C3_MEASURES.get(test.measure):
            continue
        reading = f" ({v.reading})" if test.claim == "C2" else ""
        fed.append(f"{v.claim}{reading} on {C.SITE_NAMES[v.site]}, {C.scope_name(v)}: {v.verdict}")
    return fed


# ---------------------------------------------------------------- the overview grid

def _grid(cells: dict[str, dict]) -> list[dict]:
    """Per dataset, every kind at every site at the main setting: the cell that holds its runs (a kind that
    is another's operation points at that kind's cell), and the change of the test accuracy against the
    base network in percentage points."""
    rows = []
    datasets = [d for d in R.DATASETS if any(c["dataset"] == d for c in cells.values())]
    kinds = [k for k in R.KIND_NAMES if k != "none"]
    for dataset in datasets:
        changes = []
        for kind in kinds:
            for site in P.SITES:
                ident = cell_id(dataset, kind, MAIN["p"], MAIN["mask"], site, MAIN["epochs"], MAIN["lr"])
                stands = kind if ident in cells else P.operation(site, kind)
                ident = cell_id(dataset, stands, MAIN["p"], MAIN["mask"], site, MAIN["epochs"], MAIN["lr"])
                cell = cells.get(ident)
                difference = (cell or {}).get("vs_base", {}).get("test_acc", {})
                diff = None if difference.get("diff") is None else 100 * difference["diff"]
                if cell is None:
                    label, state = "not run", "not run"
                elif stands != kind:
                    label, state = f"= {R.KIND_NAMES[stands]}", f"the same operation as {R.KIND_NAMES[stands]}"
                else:
                    label = "no base" if diff is None else f"{diff:+.2f}"
                    state = (f"{label} points (n = {cell['n']} vs {difference['n_base']})" if diff is not None
                             else "no base network runs")
                rows.append({"dataset": dataset, "dataset_name": R.DATASET_NAMES[dataset], "kind": kind,
                             "kind_name": R.KIND_NAMES[kind], "kind_short": R.KIND_NAMES[kind].removesuffix(" dropout"),
                             "site": site, "site_name": SITE_LABELS[site],
                             "target": f"{dataset}|{kind}|{site}", "cell": ident if cell else None,
                             "stands": stands, "diff": None if stands != kind else diff, "label": label,
                             "aria": f"{R.DATASET_NAMES[dataset]}, {R.KIND_NAMES[kind]}, {SITE_LABELS[site]}: {state}"})
                if stands == kind and diff is not None:
                    changes.append(abs(diff))
        largest = max(changes, default=0.0)
        for row in rows:
            if row["dataset"] == dataset:
                row["dark"] = bool(row["diff"] is not None and largest > 0 and abs(row["diff"]) > 0.6 * largest)
    return rows


def _largest_changes(grid: Sequence[dict]) -> dict[str, float]:
    """{dataset: the largest absolute change in its grid} (the colour scale runs from minus it to it)."""
    out: dict[str, float] = {}
    for row in grid:
        if row["diff"] is not None:
            out[row["dataset"]] = max(out.get(row["dataset"], 0.0), abs(row["diff"]))
    return out


# ---------------------------------------------------------------- names, options, commands

def _metrics() -> dict[str, dict]:
    out = {}
    for metric in CURVE_METRICS:
        accuracy = metric in R.ACCURACY_METRICS
        out[metric] = {"name": R.METRIC_NAMES[metric] + (" (%)" if accuracy else ""), "per_epoch": True,
                       "scale": R.metric_scale(metric), "digits": 2 if accuracy else 4 if "loss" in metric else 1,
                       "unit": " percentage points" if accuracy else ""}
    for metric in UNCERTAINTY_METRICS:
        out[metric] = {"name": f"test {E.METRIC_NAMES[metric]} (after training)", "per_epoch": False, "scale": 1.0,
                       "digits": 4, "unit": ""}
    return out


def _options(cells: Sequence[dict]) -> dict[str, list[dict]]:
    """Every value each control can take (over the dropout cells), in the library's order, with its name."""
    dropout = [c for c in cells if c["kind"] != "none"]
    order = {"dataset": list(R.DATASETS), "kind": list(R.KIND_NAMES), "site": list(P.SITES),
             "mask": list(MASK_NAMES)}
    names = {"dataset": R.DATASET_NAMES, "kind": R.KIND_NAMES, "site": SITE_LABELS, "mask": MASK_NAMES}
    out = {}
    for key in CONTROLS:
        values = sorted({c["sel"][key] for c in dropout},
                        key=lambda v, key=key: (order[key].index(v), v) if key in order else (float(v), v))
        out[key] = [{"value": v, "name": names.get(key, {}).get(v, v)} for v in values]
    out["metric"] = [{"value": m, "name": info["name"]} for m, info in _metrics().items()]
    return out


def _title(key: dict) -> str:
    parts = [R.DATASET_NAMES.get(key["dataset"], key["dataset"])]
    if key["variant"] == "none":
        parts.append(BASE_LABEL)
    else:
        parts += [R.KIND_NAMES.get(key["variant"], key["variant"]), f"on the {SITE_LABELS[key['site']]}",
                  MASK_NAMES[key["mask"]], f"p = {_text(key['p'])}"]
    parts += [f"{int(key['epochs'])} epochs", f"learning rate {_text(key['lr'])}"]
    return " · ".join(parts)


def _note(key: dict) -> str:
    """What a reader should know about a cell that no test reads although it was run."""
    stands = P.operation(key["site"], key["variant"])
    if stands != key["variant"]:
        return (f"On the {SITE_LABELS[key['site']]} {R.KIND_NAMES[key['variant']]} is the same operation as "
                f"{R.KIND_NAMES[stands]}: the pre-registered tests read {R.KIND_NAMES[stands]}'s runs.")
    return ""


def _commands(key: dict, group: pd.DataFrame) -> list[str]:
    """Shell commands that rerun the cell's runs into ``rerun/`` (a loop over the seeds of each folder)."""
    args = ["python -m snnlib train", f"--dataset {key['dataset']}", f"--variant {key['variant']}"]
    if key["variant"] != "none":
        args.append(f"--p {_text(key['p'])}")
    args += [f"--epochs {int(key['epochs'])}", f"--val-size {R.STUDY_SETTINGS['val_size']}"]
    if key["variant"] != "none":
        args.append(f"--site {key['site']}")
        if key["mask"] == "sample":
            args.append("--time-consistent")
    if not R.same_value(float(key["lr"]), R.STUDY_SETTINGS["lr"]):
        args.append(f"--lr {_text(key['lr'])}")
    head = " ".join(args)
    commands = []
    by_folder: dict[str, list[int]] = {}
    explicit = []
    for _, run in group.sort_values("seed").iterrows():
        folder, _, leaf = str(run["path"]).rpartition("/")
        if leaf == f"seed{int(run['seed'])}":
            by_folder.setdefault(folder, []).append(int(run["seed"]))
        else:
            explicit.append(f"{head} --seed {int(run['seed'])} --out rerun/{run['path']}")
    for folder, seeds in by_folder.items():
        if len(seeds) == 1:
            commands.append(f"{head} --seed {seeds[0]} --out rerun/{folder}/seed{seeds[0]}")
        else:
            commands.append(f"for S in {' '.join(map(str, seeds))}; do {head} --seed $S "
                            f"--out rerun/{folder}/seed$S; done")
    return commands + explicit


def _seed_text(seeds: Sequence[int]) -> str:
    """``0-9, 12`` for seeds 0 to 9 and 12."""
    runs: list[list[int]] = []
    for s in sorted(seeds):
        if runs and s == runs[-1][-1] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def _order(cell: dict) -> tuple:
    return (R.DATASETS.index(cell["dataset"]) if cell["dataset"] in R.DATASETS else len(R.DATASETS),
            list(R.KIND_NAMES).index(cell["kind"]), list(P.SITES).index(cell["site"]),
            list(MASK_NAMES).index(cell["mask"]), cell["p"], cell["epochs"], cell["lr"])


def _text(value: object) -> str:
    """A setting as the controls show it: ``0.5``, ``20``, ``0.001``, ``0.0003``."""
    if isinstance(value, float | int | np.integer | np.floating) and not isinstance(value, bool):
        return f"{float(value):g}"
    return str(value)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else float(f"{value:.{SIGNIFICANT}g}")



@dataclass(repr=False)
class Explorer:
    """The explorer of a results folder, for a notebook: shows itself as HTML (:func:`explorer_html`)."""

    data: dict

    def _repr_html_(self) -> str:
        return explorer_html(self.data)

    def __repr__(self) -> str:
        return f"<results explorer: {' '.join(self.summary().split())}>"

    def summary(self) -> str:
        """What the explorer holds, in two short lines."""
        dropout = [c for c in self.data["cells"] if c["kind"] != "none"]
        tested = sum(1 for c in dropout if c["tests"])
        evaluated = sum(1 for c in self.data["cells"] if c["uncertainty"])
        return (f"{len(dropout)} dropout cells and {len(self.data['cells']) - len(dropout)} base networks "
                f"from {self.data['runs']} runs;\n{tested} cells are read by pre-registered tests, "
                f"{evaluated} have uncertainty evaluations.")


def build_explorer(root: str | Path) -> Explorer:
    """The explorer of the records under ``root`` (:func:`explorer_data`)."""
    return Explorer(explorer_data(root))


def write_explorer(root: str | Path, out: str | Path) -> Explorer:
    """Writes the explorer of the records under ``root`` as one self-contained HTML page ``out`` (it opens
    from ``file://`` with no network) and returns it. The folder of ``out`` must exist."""
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"explorer: no folder {out.parent} to write {out.name} into")
    explorer = build_explorer(root)
    out.write_text(explorer_html(explorer.data, standalone=True), encoding="utf-8")
    return explorer
