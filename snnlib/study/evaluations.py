"""The uncertainty evaluations (``uncertainty.json`` and ensemble files of :mod:`snnlib.uncertainty.evaluate`) as
tables and tests: what the uncertainty chapter and the README state comes from here.

- :func:`load_evaluations` reads every evaluation under a folder; :func:`evaluations_table` makes the
  tidy table, one row per evaluation, method and data set, with the metrics and the cost.
- :func:`method_summary` gives mean, standard deviation and n per cell and method on one set (or the
  mean over a family of sets, e.g. every shift).
- :func:`method_values` gives the primary metrics of the pre-registered verdict per evaluation and
  method (MC dropout at the ensemble's cost and at 50 passes); :func:`verdict_tests` tests each dropout
  kind's rows against the base network's deterministic, temperature-scaled and ensembled predictions
  (the rules of :mod:`snnlib.study.preregistration`), :func:`verdict_matrix` turns them into the method x
  metric matrix with a verdict per row, :func:`sampling_tests` says what part of a gain comes from
  sampling, and :func:`spike_count_auroc` is the out-of-distribution detector that needs no network;
  :func:`mask_tests` compares the per-step and the per-sample mask as samplers.
- :func:`curve` gives a metric against the number of MC passes; :func:`shift_curve` against the
  severity of a shift; :func:`reliability` pools the reliability diagrams of a cell.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from snnlib.experiment.config import RunConfig
from snnlib.experiment.system import walk_files
from snnlib.study import records as R
from snnlib.study.claims import Test, apply_holm, welch_test
from snnlib.study.design import DEFAULT_GRIDS, Design, study_design
from snnlib.study.questions import two_sided_label

METRICS = ("accuracy", "nll", "brier", "ece", "mean_confidence", "mean_entropy", "mean_mutual_information")
AUROC_SCORES = ("max_prob", "entropy", "mutual_information")
# +1: higher is better, -1: lower is better
BETTER = {"accuracy": +1, "nll": -1, "brier": -1, "ece": -1, "auroc_max_prob": +1, "auroc_entropy": +1,
          "auroc_mutual_information": +1}
METRIC_NAMES = {"accuracy": "accuracy", "nll": "NLL", "brier": "Brier score", "ece": "ECE (15 bins)",
                "auroc_max_prob": "AUROC by max. probability", "auroc_entropy": "AUROC by entropy",
                "auroc_mutual_information": "AUROC by mutual information",
                "mean_mutual_information": "mean mutual information", "mean_confidence": "mean confidence",
                "mean_entropy": "mean entropy"}
METHOD_NAMES = {"deterministic": "deterministic (dropout off)", "temperature": "temperature scaling",
                "mc_dropout": "MC dropout", "single_pass_running_max": "single pass, running maximum",
                "single_pass_potential": "single pass, potential", "ensemble": "ensemble of 5 base runs"}


def load_evaluations(root: str | Path, design: Design | None = None) -> list[dict]:
    """Every evaluation under ``root``: ``**/uncertainty.json`` (one run) and ``**/ensemble*.json``
    (several), each with ``path``, its file relative to ``root``, each evaluation once.

    Only sealed files made from the sealed records beside them are read
    (:func:`snnlib.uncertainty.evaluate.evaluation_problem`): the file's own SHA-256 must check out, and so must
    the SHA-256 of each run record it names (a run's: the record in its folder; an ensemble's: each
    member's), which :func:`snnlib.study.design.scan_records` must count (under ``root``, each run once, and
    with ``design`` only the design's records). An edited file, a copy into a folder without its run, a file
    left from before its folder's run was trained again, or a second file of the same ensemble is skipped
    with a one-line warning; nothing that is not a regular file is opened."""
    root = Path(root)
    if not root.is_dir():
        return []
    record_at = _records_at(root, design)
    found, seen = [], {}
    paths, _ = walk_files(root, lambda name: name == "uncertainty.json" or
                          (name.startswith("ensemble") and name.endswith(".json")))
    if design is not None:  # the folders kept apart from the design are read by their own code
        paths = [p for p in paths if design.reads(p.relative_to(root).as_posix())]
    for path in paths:
        rel = path.relative_to(root).as_posix()
        try:
            evaluation = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            warnings.warn(f"skipping {path}: {err}", stacklevel=2)
            continue
        why = _evaluation_problem(evaluation, path, record_at)
        key = None if why else _evaluation_key(evaluation, path, record_at)
        if key in seen:
            why = f"it is the same evaluation as {seen[key]}, which is read"
        if why:
            warnings.warn(f"skipping {path}: {why}", stacklevel=2)
            continue
        seen[key] = rel
        evaluation["path"] = rel
        found.append(evaluation)
    return found


def load_study_evaluations(root: str | Path, grids_dir: str | Path | None = None) -> list[dict]:
    """The evaluations of the design's records (:func:`snnlib.study.records.load_study`) under ``root``."""
    return load_evaluations(root, study_design(DEFAULT_GRIDS if grids_dir is None else grids_dir))


def _records_at(root: Path, design: Design | None = None):
    """``record_at(folder)``: the record :func:`records.scan_records` counts in ``folder`` (under ``root``),
    or why there is none."""
    records, refused, ignored = R.scan_records(root, design)
    by_folder = {(root / r["path"]).resolve(): r for r in records}
    why_not = {(root / rel).resolve(): why for rel, why in (*refused, *ignored)}

    def record_at(folder: Path) -> dict | str:
        folder = folder.resolve()
        return by_folder.get(folder) or why_not.get(folder) or "there is no run record there under the folder read"

    return record_at


def _evaluation_problem(evaluation: object, path: Path, record_at) -> str | None:
    from snnlib.uncertainty.evaluate import evaluation_problem

    return evaluation_problem(evaluation, path, record_at)


def _evaluation_key(evaluation: dict, path: Path, record_at) -> tuple:
    """What makes two evaluations one: the kind, the settings and the run records evaluated."""
    if evaluation["kind"] == "run":
        made_from = (record_at(path.parent)["path"],)
    else:
        made_from = tuple(sorted(record_at(path.parent / m["path"])["path"] for m in evaluation["members"]))
    return evaluation["kind"], json.dumps(evaluation.get("settings"), sort_keys=True), made_from


def _none(value: object) -> float:
    return math.nan if value is None else float(value)


def evaluations_table(evaluations: Iterable[dict]) -> pd.DataFrame:
    """One row per evaluation, method and data set: the cell of the evaluated network (an ensemble has
    ``seed`` NaN and ``members`` its size), the method, the set (``set_kind`` test, shift or ood;
    ``family`` and ``level`` of a shift), every metric of :data:`METRICS` and :data:`AUROC_SCORES`
    (``auroc_*``, against the test set), the forward passes and synaptic events per prediction."""
    rows = []
    for ev in evaluations:
        config = RunConfig.from_dict(ev["config"]).to_dict()
        members = len(ev.get("members", [])) or 1
        keys = {"dataset": config["dataset"], "variant": config["variant"], "p": config["p"],
                "mask": "sample" if config["time_consistent"] else "step", "site": config["site"],
                "epochs": config["epochs"], "seed": math.nan if ev.get("kind") == "ensemble" else config["seed"],
                "members": members, "path": ev["path"]}
        for method, entry in ev["methods"].items():
            cost = entry.get("cost", {})
            for set_name, numbers in entry["results"].items():
                info = ev["sets"].get(set_name, {})
                row = {**keys, "method": method, "set": set_name, "set_kind": info.get("kind"),
                       "family": info.get("family"), "level": info.get("level"),
                       **{m: _none(numbers.get(m)) for m in METRICS},
                       **{f"auroc_{s}": _none(numbers.get("auroc_vs_test", {}).get(s)) for s in AUROC_SCORES},
                       "forward_passes": cost.get("forward_passes"),
                       "events": _none(cost.get("synaptic_events_per_prediction"))}
                rows.append(row)
    return pd.DataFrame(rows)


def of_sets(table: pd.DataFrame, sets: str | Sequence[str]) -> pd.DataFrame:
    """Rows of one set (a name), or the mean per evaluation and method over several sets (a list, or
    ``shift`` / ``ood`` for every set of that kind)."""
    if isinstance(sets, str) and sets not in ("shift", "ood"):
        return table[table["set"] == sets]
    chosen = table[table["set_kind"] == sets] if isinstance(sets, str) else table[table["set"].isin(list(sets))]
    keys = ["dataset", "variant", "p", "mask", "site", "epochs", "seed", "members", "path", "method"]
    numbers = [c for c in chosen.columns if c in METRICS or c.startswith("auroc_") or c in ("events", "forward_passes")]
    return chosen.groupby(keys, dropna=False, sort=False)[numbers].mean().reset_index()


def method_summary(table: pd.DataFrame, sets: str | Sequence[str] = "test",
                   metrics: Sequence[str] = ("accuracy", "nll", "ece")) -> pd.DataFrame:
    """Mean, standard deviation and n over seeds per cell and method, on one set (or the mean over
    several, see :func:`of_sets`); the cost (forward passes, synaptic events per prediction) is the
    mean over seeds."""
    rows = []
    chosen = of_sets(table, sets)
    for key, group in chosen.groupby(["dataset", "variant", "p", "mask", "site", "method"], sort=False):
        row = dict(zip(["dataset", "variant", "p", "mask", "site", "method"], key, strict=True))
        row["n"] = len(group)
        for m in metrics:
            x = group[m].astype(float).dropna()
            row[f"{m}_mean"] = float(x.mean()) if len(x) else math.nan
            row[f"{m}_std"] = float(x.std(ddof=1)) if len(x) > 1 else math.nan
        row["events"] = float(group["events"].mean())
        if "forward_passes" in group:
            row["forward_passes"] = group["forward_passes"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


# the dropout kinds evaluated (feature dropout is dropout2d on this layer) and the methods that sample
DROPOUT_KINDS = ("dropout", "dropout2d", "feature_alpha", "alpha")
SAMPLING_METHODS = ("mc_dropout", "single_pass_running_max")
# (network, method) rows of the uncertainty chapter's and the README's tables
METHOD_CELLS = [("none", "deterministic"), ("none", "temperature"), ("none", "ensemble")] + [
    (kind, method) for kind in DROPOUT_KINDS for method in ("deterministic", *SAMPLING_METHODS)]


def paper_cell(kind: str) -> dict[str, object]:
    """The selection of ``kind``'s runs at the paper's setting (p = 0.5, a new mask every step, on the
    current); nothing more for the base network (``none``), whose rate, mask and site do not matter."""
    return {} if kind == "none" else {"p": 0.5, "mask": "step", "site": "current"}


def method_table(table: pd.DataFrame, dataset: str, cells: Sequence[tuple[str, str]] = METHOD_CELLS) -> str:
    """A Markdown table of each (network, method) of ``cells`` on ``dataset`` (dropout kinds at p = 0.5,
    a new mask every step, on the current): runs, test accuracy (%), NLL, Brier score and ECE (mean ±
    std over seeds), the out-of-distribution AUROC by the maximum probability, forward passes and
    synaptic events per prediction. Rows without an evaluation are left out."""
    test, ood = of_sets(table, "test"), of_sets(table, "ood")
    rows = []
    for kind, method in cells:
        wanted = dict(dataset=dataset, variant=kind, method=method, **paper_cell(kind))
        t, o = R.select(test, **wanted), R.select(ood, **wanted)
        if not len(t):
            continue
        rows.append([R.KIND_NAMES[kind], METHOD_NAMES[method], len(t), R.mean_std(t["accuracy"], 100, 2),
                     *[R.mean_std(t[m], 1, 4) for m in ("nll", "brier", "ece")],
                     R.mean_std(o["auroc_max_prob"], 1, 3), int(t["forward_passes"].iloc[0]),
                     f"{t['events'].mean() / 1e3:,.0f}"])
    return R.markdown_table(["network", "method", "n", "accuracy (%)", "NLL", "Brier", "ECE", "OOD AUROC", "passes",
                             "synaptic events per prediction (thousands)"], rows)


def _values(table: pd.DataFrame, metric: str, **wanted: object) -> dict[int, float]:
    rows = R.select(table, **wanted)
    rows = rows[rows["seed"].notna()]
    return dict(zip(rows["seed"].astype(int), rows[metric].astype(float), strict=True))


def _label(tests: list[Test]) -> list[Test]:
    apply_holm(tests)
    for t in tests:
        if min(t.n_base, t.n_variant) < 2:
            t.label = "no data"
            continue
        label = two_sided_label(t.difference, t.p_holm)
        if label in ("higher", "lower"):
            label = "better" if (label == "higher") == (BETTER[t.metric] > 0) else "worse"
        t.label = label
    return tests


def mask_tests(table: pd.DataFrame, datasets: Iterable[str] = R.DATASETS, rates: Sequence[float] = (0.1, 0.2, 0.3),
               metrics: Sequence[tuple[str, str]] = (("test", "nll"), ("test", "ece"), ("ood", "auroc_max_prob"))
               ) -> list[Test]:
    """MC dropout with a new mask every step against one mask per sample, standard dropout on the
    current at each rate (per sample at p = 0.5 is dropout2d: on this layer the same operation), over
    seeds; the difference is per step minus per sample. Holm within the dataset and (set, metric)."""
    tests = []
    for dataset in datasets:
        for sets, metric in metrics:
            rows = of_sets(table[table["dataset"] == dataset], sets)
            for p in (*rates, 0.5):
                step = _values(rows, metric, variant="dropout", p=p, mask="step", method="mc_dropout")
                sample = (_values(rows, metric, variant="dropout2d", p=p, mask="step", method="mc_dropout") if p == 0.5
                          else _values(rows, metric, variant="dropout", p=p, mask="sample", method="mc_dropout"))
                tests.append(welch_test("uncertainty mask", f"{dataset}, {sets}:{metric}", dataset, "dropout",
                                       "current", metric, sample, step, p=p, sets=sets))
    return _label(tests)


def curve(evaluations: Iterable[dict], set_name: str, metric: str, **wanted: object) -> pd.DataFrame:
    """``metric`` of MC dropout against the number of passes n on ``set_name``, mean and standard
    deviation over the evaluations whose cell has every ``wanted`` value (``auroc_*`` for the AUROC
    by a score)."""
    per_n: dict[int, list[float]] = {}
    for ev in evaluations:
        entry = ev["methods"].get("mc_dropout")
        if entry is None or set_name not in entry.get("curve", {}):
            continue
        if not _matches(ev, wanted):
            continue
        c = entry["curve"][set_name]
        values = c["auroc_vs_test"][metric.removeprefix("auroc_")] if metric.startswith("auroc_") else c[metric]
        for n, v in zip(c["n"], values, strict=True):
            per_n.setdefault(int(n), []).append(_none(v))
    rows = [{"n": n, "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else math.nan,
             "runs": len(v)} for n, v in sorted(per_n.items())]
    return pd.DataFrame(rows, columns=["n", "mean", "std", "runs"])


def _cell(ev: dict) -> dict:
    config = RunConfig.from_dict(ev["config"])
    return {"dataset": config.dataset, "variant": config.variant, "p": config.p,
            "mask": "sample" if config.time_consistent else "step", "site": config.site}


def _matches(ev: dict, wanted: dict) -> bool:
    cell = _cell(ev)
    return all(R.same_value(cell.get(k), v) for k, v in wanted.items())


def reliability(evaluations: Iterable[dict], method: str, **wanted: object) -> pd.DataFrame:
    """The reliability diagram of ``method`` on the test set, pooled over the evaluations of one cell:
    per confidence bin the count-weighted mean confidence and accuracy, and the count."""
    counts = conf = acc = None
    for ev in evaluations:
        entry = ev["methods"].get(method)
        if entry is None or not _matches(ev, wanted):
            continue
        d = entry["results"]["test"]["reliability"]
        n = np.asarray(d["count"], float)
        c = np.nan_to_num(np.asarray([_none(v) for v in d["confidence"]], float)) * n
        a = np.nan_to_num(np.asarray([_none(v) for v in d["accuracy"]], float)) * n
        counts, conf, acc = (n, c, a) if counts is None else (counts + n, conf + c, acc + a)
    if counts is None:
        return pd.DataFrame(columns=["bin", "confidence", "accuracy", "count"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({"bin": np.arange(len(counts)), "confidence": conf / counts, "accuracy": acc / counts,
                             "count": counts})


def shift_curve(table: pd.DataFrame, dataset: str, family: str, metric: str, method: str,
                **wanted: object) -> pd.DataFrame:
    """``metric`` against the severity of a shift ``family`` (level 0: the test set), mean and standard
    deviation over the evaluations of one cell and method."""
    rows = R.select(table[table["dataset"] == dataset], method=method, **wanted)
    rows = rows[(rows["family"] == family) | (rows["set_kind"] == "test")].copy()
    rows["level"] = rows["level"].fillna(0)
    out = rows.groupby("level")[metric].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "runs"})


def coverage_curve(evaluations: Iterable[dict], method: str, set_name: str = "test",
                   **wanted: object) -> pd.DataFrame:
    """Accuracy against coverage (the share of predictions kept when the least confident are rejected)
    of ``method`` on ``set_name``: mean and standard deviation over the evaluations of one cell."""
    per_coverage: dict[float, list[float]] = {}
    for ev in evaluations:
        entry = ev["methods"].get(method)
        if entry is None or not _matches(ev, wanted) or set_name not in entry["results"]:
            continue
        c = entry["results"][set_name].get("coverage")
        if not c:
            continue
        for cov, acc in zip(c["coverage"], c["accuracy"], strict=True):
            per_coverage.setdefault(round(float(cov), 6), []).append(_none(acc))
    rows = [{"coverage": c, "mean": float(np.nanmean(v)),
             "std": float(np.nanstd(v, ddof=1)) if len(v) > 1 else math.nan, "runs": len(v)}
            for c, v in sorted(per_coverage.items())]
    return pd.DataFrame(rows, columns=["coverage", "mean", "std", "runs"])


# ---------------------------------------------------------------- the pre-registered verdict


