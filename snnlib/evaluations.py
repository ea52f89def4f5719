"""The uncertainty evaluations (``uncertainty.json`` and ensemble files of :mod:`snnlib.uncertainty`) as
tables and tests: what the uncertainty chapter and the README state comes from here.

- :func:`load_evaluations` reads every evaluation under a folder; :func:`evaluations_table` makes the
  tidy table, one row per evaluation, method and data set, with the metrics and the cost.
- :func:`method_summary` gives mean, standard deviation and n per cell and method on one set (or the
  mean over a family of sets, e.g. every shift).
- :func:`method_values` gives the primary metrics of the pre-registered verdict per evaluation and
  method (MC dropout at the ensemble's cost and at 50 passes); :func:`verdict_tests` tests each dropout
  kind's rows against the base network's deterministic, temperature-scaled and ensembled predictions
  (the rules of :mod:`snnlib.preregistration`), :func:`verdict_matrix` turns them into the method x
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

from . import analysis
from . import claims as C
from . import data as D
from . import preregistration as P
from . import records as R
from .claims import Test, apply_holm, welch_test
from .findings import two_sided_label
from .kernels import NO_SPIKE
from .training import RunConfig

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


def load_evaluations(root: str | Path) -> list[dict]:
    """Every evaluation under ``root``: ``**/uncertainty.json`` (one run) and ``**/ensemble*.json``
    (several), each with ``path``, its file relative to ``root``, each evaluation once.

    Only sealed files made from the sealed records beside them are read
    (:func:`snnlib.uncertainty.evaluation_problem`): the file's own SHA-256 must check out, and so must
    the SHA-256 of each run record it names (a run's: the record in its folder; an ensemble's: each
    member's), which :func:`snnlib.records.load_records` must read (under ``root``, each run once). An
    edited file, a copy into a folder without its run, a file left from before its folder's run was
    trained again, or a second file of the same ensemble is skipped with a one-line warning."""
    root = Path(root)
    if not root.is_dir():
        return []
    record_at = _records_at(root)
    found, seen = [], {}
    for path in sorted([*root.glob("**/uncertainty.json"), *root.glob("**/ensemble*.json")]):
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


def _records_at(root: Path):
    """``record_at(folder)``: the record :func:`records.load_records` reads in ``folder`` (under ``root``),
    or why there is none."""
    records, refused = R.scan_records(root)
    by_folder = {(root / r["path"]).resolve(): r for r in records}
    why_not = {(root / rel).resolve(): why for rel, why in refused}

    def record_at(folder: Path) -> dict | str:
        folder = folder.resolve()
        return by_folder.get(folder) or why_not.get(folder) or "there is no run record there under the folder read"

    return record_at


def _evaluation_problem(evaluation: object, path: Path, record_at) -> str | None:
    from .uncertainty import evaluation_problem

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

PRIMARY_NAMES = {"test_nll": "test NLL", "test_ece": "test ECE", "ood_auroc": "OOD AUROC",
                 "mild_nll": "mild-shift NLL", "mild_ece": "mild-shift ECE"}
# the columns of method_values for preregistration.UNCERTAINTY_PRIMARY_METRICS, and their better side
PRIMARY_COLUMNS = {("test", "nll"): "test_nll", ("test", "ece"): "test_ece", ("ood", "auroc_max_prob"): "ood_auroc",
                   ("mild_shift", "nll"): "mild_nll", ("mild_shift", "ece"): "mild_ece"}
PRIMARY_BETTER = {"test_nll": -1, "test_ece": -1, "ood_auroc": +1, "mild_nll": -1, "mild_ece": -1}
ROW_VERDICTS = ("better", "worse", "mixed", "no clear difference", "not enough data")


def _primary_numbers(ev: dict, numbers_of) -> dict[str, float]:
    """The primary metrics of one method of an evaluation; ``numbers_of(set_name)`` gives that set's
    numbers (``nll``, ``ece``, ``auroc_vs_test``) for the method."""
    dataset = _cell(ev)["dataset"]
    ood = next((name for name, info in ev["sets"].items() if info.get("kind") == "ood"), None)
    mild = [name for name in P.MILD_SHIFT_SETS[dataset] if name in ev["sets"]]
    test = numbers_of("test")
    out = {"test_nll": _none(test.get("nll")), "test_ece": _none(test.get("ece")),
           "test_accuracy": _none(test.get("accuracy")),
           "ood_auroc": _none(numbers_of(ood).get("auroc_vs_test", {}).get("max_prob")) if ood else math.nan}
    for metric in ("nll", "ece"):
        values = [_none(numbers_of(name).get(metric)) for name in mild]
        out[f"mild_{metric}"] = float(np.mean(values)) if len(mild) == len(P.MILD_SHIFT_SETS[dataset]) else math.nan
    return out


def _at_passes(curve: dict, n: int) -> dict:
    """The numbers of a set's MC-dropout curve at ``n`` passes (the mean of the first n)."""
    if n not in curve.get("n", []):
        return {}
    i = curve["n"].index(n)
    out = {k: v[i] for k, v in curve.items() if isinstance(v, list) and k != "n"}
    out["auroc_vs_test"] = {k: v[i] for k, v in curve.get("auroc_vs_test", {}).items()}
    return out


def method_values(evaluations: Iterable[dict]) -> pd.DataFrame:
    """One row per evaluation and method (MC dropout twice: at the ensemble's cost,
    :data:`~snnlib.preregistration.MATCHED_PASSES` passes, from its curve, and at its full passes): the
    cell, ``seed`` (an ensemble: NaN, and ``members`` its seeds), ``method``, ``passes`` and the primary
    metrics of the verdict (:data:`PRIMARY_NAMES`: test NLL and ECE, OOD AUROC by the maximum
    probability, NLL and ECE averaged over the mild shifts) with the test accuracy."""
    rows = []
    for ev in evaluations:
        cell = _cell(ev)
        ensemble = ev.get("kind") == "ensemble"
        members = tuple(sorted(int(m["seed"]) for m in ev.get("members", []))) if ensemble else None
        keys = {**cell, "epochs": RunConfig.from_dict(ev["config"]).epochs,
                "seed": math.nan if ensemble else int(ev["config"]["seed"]), "members": members,
                "path": ev.get("path")}
        for method, entry in ev["methods"].items():
            results = entry["results"]
            passes = entry.get("passes") or entry.get("cost", {}).get("forward_passes") or 1
            rows.append({**keys, "method": method, "passes": int(passes),
                         **_primary_numbers(ev, lambda name, results=results: results.get(name) or {})})
            if method == "mc_dropout" and P.MATCHED_PASSES != passes:
                curves = entry.get("curve", {})
                numbers = _primary_numbers(ev, lambda name, curves=curves: _at_passes(curves.get(name) or {},
                                                                                      P.MATCHED_PASSES))
                rows.append({**keys, "method": method, "passes": P.MATCHED_PASSES, **numbers})
    columns = ["dataset", "variant", "p", "mask", "site", "epochs", "seed", "members", "path", "method", "passes",
               "test_accuracy", *PRIMARY_NAMES]
    return pd.DataFrame(rows, columns=columns)


def row_values(values: pd.DataFrame, dataset: str, variant: str, method: str, passes: int | None,
                column: str) -> dict[object, float]:
    """{seed (an ensemble: its members): value} of ``column`` for one network and method of
    :func:`method_values` (the paper's cell, 20 epochs; the planned seeds 0-9 and ensembles only)."""
    chosen = values[(values["dataset"] == dataset) & (values["variant"] == variant) & (values["method"] == method)
                    & (values["epochs"] == 20)]
    if variant != "none":
        chosen = chosen[(chosen["p"] == 0.5) & (chosen["mask"] == "step") & (chosen["site"] == "current")]
    if passes is not None:
        chosen = chosen[chosen["passes"] == passes]
    if method == "ensemble":
        return {m: float(v) for m, v in zip(chosen["members"], chosen[column], strict=True)
                if m in P.ENSEMBLES and not math.isnan(v)}
    return {int(s): float(v) for s, v in zip(chosen["seed"], chosen[column], strict=True)
            if int(s) in P.TEN and not math.isnan(v)}


def _baseline_row(baseline: str) -> tuple[str, str, int | None]:
    return ("none", "ensemble", None) if baseline == "ensemble" else ("none", baseline, 1)


def _planned(found: dict, planned: Sequence) -> tuple[dict, list]:
    return {k: found[k] for k in planned if k in found}, [k for k in planned if k not in found]


def _uncertainty_test(values: pd.DataFrame, dataset: str, kind: str, method: str, passes: int, baseline: str,
                      column: str, family: str, role: str) -> Test:
    ref_variant, ref_method, ref_passes = _baseline_row(baseline)
    reference, ref_missing = _planned(row_values(values, dataset, ref_variant, ref_method, ref_passes, column),
                                      P.ENSEMBLES if baseline == "ensemble" else P.TEN)
    variant, missing = _planned(row_values(values, dataset, kind, method, passes, column), P.TEN)
    t = welch_test("uncertainty", family, dataset, kind, "current", column, reference, variant,
                   method=method, passes=passes, baseline=baseline)
    t.role, t.direction = role, PRIMARY_BETTER[column]
    t.missing = ([f"{kind} {METHOD_NAMES.get(method, method)}: seeds {', '.join(map(str, missing))}"] if missing else []
                 ) + ([f"base {baseline}: {len(ref_missing)} of {len(P.ENSEMBLES) if baseline == 'ensemble' else 10}"]
                      if ref_missing else [])
    return t


def better_label(t: Test) -> str:
    """*better* / *worse* (significant after Holm, on the metric's better side or not), *not significant*,
    *no data* (a planned run or ensemble is missing)."""
    label = C.test_label(t.difference, t.direction, t.p_holm, complete=not t.missing)
    return {"yes": "better", "contrary": "worse"}.get(label, label)


def verdict_tests(values: pd.DataFrame, datasets: Iterable[str] = R.DATASETS) -> list[Test]:
    """Every test of the uncertainty verdict (:mod:`snnlib.preregistration`): per dataset and baseline of
    the base network (deterministic, temperature-scaled, ensembles), each dropout kind's MC dropout at the
    ensemble's cost and at 50 passes (primary) and its deterministic, temperature-scaled and single-pass
    predictions (secondary), on each primary metric; Welch's test over seeds, Holm within the dataset,
    baseline and role (the family's size fixed by the plan), labelled by :func:`better_label`."""
    tests = []
    for dataset in datasets:
        for baseline in P.UNCERTAINTY_BASELINES:
            for role, rows in (("primary", P.UNCERTAINTY_PRIMARY_ROWS), ("secondary", P.UNCERTAINTY_SECONDARY_ROWS)):
                family = f"uncertainty, {dataset}, against the base's {baseline}, {role}"
                for kind in P.UNCERTAINTY_KINDS:
                    for method, passes in rows:
                        for column in PRIMARY_NAMES:
                            tests.append(_uncertainty_test(values, dataset, kind, method, passes, baseline, column,
                                                           family, role))
    C.apply_holm(tests)
    for t in tests:
        t.label = better_label(t)
    return tests


def sampling_tests(values: pd.DataFrame, datasets: Iterable[str] = R.DATASETS) -> list[Test]:
    """Where MC dropout's gain comes from: per dataset, kind and primary metric, MC dropout (50 passes)
    against the temperature-scaled prediction of the same dropout network, paired by seed (the effect of
    sampling; the temperature-scaled dropout network against the base's is the effect of training with
    dropout, in :func:`verdict_tests`). Holm within the dataset."""
    tests = []
    for dataset in datasets:
        for kind in P.UNCERTAINTY_KINDS:
            for column in PRIMARY_NAMES:
                mc = row_values(values, dataset, kind, "mc_dropout", P.FULL_PASSES, column)
                temp = row_values(values, dataset, kind, "temperature", 1, column)
                seeds = [s for s in P.TEN if s in mc and s in temp]
                d = analysis.paired([temp[s] for s in seeds], [mc[s] for s in seeds])
                t = Test("uncertainty", "secondary", f"sampling, {dataset}", dataset, kind, "current", column,
                         PRIMARY_BETTER[column], "paired", d.n_base, d.n_variant, d.diff, d.ci_low, d.ci_high,
                         d.welch_p, d.permutation_p,
                         base_mean=float(np.mean([temp[s] for s in seeds])) if seeds else math.nan,
                         variant_mean=float(np.mean([mc[s] for s in seeds])) if seeds else math.nan,
                         missing=[f"seeds {', '.join(str(s) for s in P.TEN if s not in seeds)}"]
                         if len(seeds) < len(P.TEN) else [],
                         detail={"method": "mc_dropout", "passes": P.FULL_PASSES, "baseline": "temperature"})
                tests.append(t)
    C.apply_holm(tests)
    for t in tests:
        t.label = better_label(t)
    return tests


def row_verdict(labels: Sequence[str]) -> str:
    """A row's verdict from its primary metrics' labels: *better* when at least
    :data:`~snnlib.preregistration.MAJORITY` are better and none is worse, *worse* the other way round,
    *mixed* when some are better and some worse, *no clear difference* otherwise, *not enough data*
    while a test lacks data."""
    if not labels or "no data" in labels:
        return "not enough data"
    better, worse = labels.count("better"), labels.count("worse")
    if better >= P.MAJORITY and not worse:
        return "better"
    if worse >= P.MAJORITY and not better:
        return "worse"
    if better and worse:
        return "mixed"
    return "no clear difference"


def row_name(t: Test) -> str:
    method, passes = t.detail["method"], t.detail["passes"]
    return f"{METHOD_NAMES.get(method, method)}" + (f", {passes} passes" if method == "mc_dropout" else "")


def verdict_matrix(tests: Sequence[Test]) -> pd.DataFrame:
    """The verdict as a matrix: one row per dataset, baseline, role, kind and method; one column per
    primary metric holding its label, the differences, and the row's verdict (:func:`row_verdict`)."""
    rows: dict[tuple, dict] = {}
    for t in tests:
        key = (t.dataset, t.detail["baseline"], t.role, t.kind, row_name(t))
        row = rows.setdefault(key, dict(zip(("dataset", "baseline", "role", "kind", "method"), key, strict=True)))
        row[t.metric] = t.label
        row[f"{t.metric}_difference"] = t.difference
    frame = pd.DataFrame(list(rows.values()))
    if len(frame):
        frame["verdict"] = frame.apply(lambda r: row_verdict([r[c] for c in PRIMARY_NAMES]), axis=1)
    return frame


BASELINE_NAMES = {"deterministic": "the deterministic base network", "temperature": "temperature scaling",
                  "ensemble": "deep ensembles of five base runs"}
SHORT_LABELS = {"better": "better", "worse": "worse", "not significant": "n.s.", "no data": "waiting"}


def verdict_matrix_markdown(matrix: pd.DataFrame, dataset: str, role: str = "primary",
                            baseline: str | None = None) -> str:
    """One dataset's matrix in Markdown: a row per baseline (or only ``baseline``, without its column),
    kind and method, a column per primary metric (*better*, *worse*, *n.s.* after Holm, *waiting* without
    data) and the row's verdict."""
    chosen = matrix[(matrix["dataset"] == dataset) & (matrix["role"] == role)] if len(matrix) else matrix
    if baseline is not None and len(chosen):
        chosen = chosen[chosen["baseline"] == baseline]
    rows = [([] if baseline else [BASELINE_NAMES[r["baseline"]]]) + [R.KIND_NAMES[r["kind"]], r["method"],
            *(SHORT_LABELS[r[c]] for c in PRIMARY_NAMES), f"**{r['verdict']}**"] for _, r in chosen.iterrows()]
    head = ([] if baseline else ["against"]) + ["dropout kind", "method", *PRIMARY_NAMES.values(), "verdict"]
    return R.markdown_table(head, rows)


def uncertainty_answer(matrix: pd.DataFrame, dataset: str, baseline: str) -> str:
    """One sentence: the verdict of each dropout kind's MC dropout against ``baseline`` on ``dataset``,
    grouped by verdict (``better: dropout (5, 50 passes); mixed: alpha dropout (50 passes)``)."""
    chosen = matrix[(matrix["dataset"] == dataset) & (matrix["baseline"] == baseline)
                    & (matrix["role"] == "primary")] if len(matrix) else matrix
    if not len(chosen) or (chosen["verdict"] == "not enough data").any():
        return f"against {BASELINE_NAMES[baseline]}: not enough data yet"
    parts = []
    for verdict in ROW_VERDICTS:
        kinds: dict[str, list[str]] = {}
        for r in chosen.itertuples():
            if r.verdict == verdict:
                kinds.setdefault(R.KIND_NAMES[r.kind], []).append(r.method.split(", ")[-1].removesuffix(" passes"))
        if kinds:
            parts.append(f"{verdict}: " + ", ".join(f"{k} ({', '.join(v)} passes)" for k, v in kinds.items()))
    return f"against {BASELINE_NAMES[baseline]}: " + "; ".join(parts)


VALUES_ROWS = [("none", "deterministic", 1), ("none", "temperature", 1), ("none", "ensemble", None)] + [
    (kind, method, passes) for kind in P.UNCERTAINTY_KINDS
    for method, passes in (("deterministic", 1), ("temperature", 1), ("mc_dropout", P.MATCHED_PASSES),
                           ("mc_dropout", P.FULL_PASSES), ("single_pass_running_max", 1))]


# the rows the verdict is about: the base network's three baselines and each kind's MC dropout
VERDICT_ROWS = VALUES_ROWS[:3] + [(kind, method, passes) for kind in P.UNCERTAINTY_KINDS
                                  for method, passes in P.UNCERTAINTY_PRIMARY_ROWS]


def values_table(values: pd.DataFrame, dataset: str, rows: Sequence[tuple] = VALUES_ROWS) -> str:
    """A compact Markdown table of :func:`method_values` on ``dataset`` (the paper's cell; seeds 0-9, the
    planned ensembles): per network and method, n, test accuracy, NLL, ECE and OOD AUROC (mean ± std)."""
    lines = []
    for kind, method, passes in rows:
        found = row_values(values, dataset, kind, method, passes, "test_nll")
        if not found:
            continue
        cells = []
        for column, scale, digits in (("test_accuracy", 100, 1), ("test_nll", 1, 3), ("test_ece", 1, 3),
                                      ("ood_auroc", 1, 3)):
            cells.append(R.mean_std(row_values(values, dataset, kind, method, passes, column).values(), scale, digits))
        name = METHOD_NAMES.get(method, method).replace(" (dropout off)", "").replace("single pass, ", "1 pass, ")
        if method == "mc_dropout":
            name += f", {passes}"
        lines.append([R.KIND_NAMES[kind].replace(" (no dropout)", ""), name, len(found), *cells])
    return R.markdown_table(["network", "method", "n", "accuracy %", "NLL", "ECE", "OOD AUROC"], lines)


def spike_count_auroc(dataset: str, t_enc: int = 12, subset: int = 2000) -> float:
    """The out-of-distribution AUROC of a detector that needs no network: how far a sample's number of
    input spikes lies from its median on the test set (the OOD set of each dataset fires far more, or
    far fewer, inputs than its test set). The baseline beside the maximum probability's AUROC."""
    from . import shift as S
    from .uncertainty import auroc

    test = D.encoded(dataset, "test", t_enc)
    ood = S.shifted_dataset(next(s for s in S.shift_specs(dataset, ()) if s.kind == "ood"), t_enc, subset)
    counts_in = (test.times != NO_SPIKE).sum(1).double()
    counts_out = (ood.times != NO_SPIKE).sum(1).double()
    median = counts_in.median()
    return float(auroc((counts_in - median).abs().numpy(), (counts_out - median).abs().numpy()))
