"""The uncertainty verdict by the pre-registered rule (:mod:`snnlib.study.preregistration`): MC dropout of each
kind against the base network's baselines, as tests, a method x metric matrix and sentences."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from snnlib.experiment import data as D
from snnlib.experiment.config import RunConfig
from snnlib.model.kernels import NO_SPIKE
from snnlib.study import claims as C
from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study import stats
from snnlib.study.claims import Test, welch_test
from snnlib.study.evaluations import METHOD_NAMES, _cell, _none

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
    :data:`~snnlib.study.preregistration.MATCHED_PASSES` passes, from its curve, and at its full passes): the
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
    """Every test of the uncertainty verdict (:mod:`snnlib.study.preregistration`): per dataset and baseline of
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
                d = stats.paired([temp[s] for s in seeds], [mc[s] for s in seeds])
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
    :data:`~snnlib.study.preregistration.MAJORITY` are better and none is worse, *worse* the other way round,
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



def uncertainty_answer(matrix: pd.DataFrame, dataset: str, baseline: str, names: dict[str, str] | None = None) -> str:
    """One sentence: the verdict of each dropout kind's MC dropout against ``baseline`` on ``dataset``,
    grouped by verdict (``better: dropout; mixed: alpha dropout (50 passes)``: the passes are named only where a
    kind's verdict differs between the primary rows' 5 and 50 passes). ``names``: the baselines' names
    (default :data:`BASELINE_NAMES`)."""
    name = (names or BASELINE_NAMES)[baseline]
    chosen = matrix[(matrix["dataset"] == dataset) & (matrix["baseline"] == baseline)
                    & (matrix["role"] == "primary")] if len(matrix) else matrix
    if not len(chosen) or (chosen["verdict"] == "not enough data").any():
        return f"against {name}: not enough data yet"
    parts = []
    every_passes = sorted(str(passes) for _, passes in P.UNCERTAINTY_PRIMARY_ROWS)
    for verdict in ROW_VERDICTS:
        kinds: dict[str, list[str]] = {}
        for r in chosen.itertuples():
            if r.verdict == verdict:
                kinds.setdefault(R.KIND_NAMES[r.kind], []).append(r.method.split(", ")[-1].removesuffix(" passes"))
        if kinds:
            parts.append(f"{verdict}: " + ", ".join(k if sorted(v) == every_passes else f"{k} ({', '.join(v)} passes)"
                                                    for k, v in kinds.items()))
    return f"against {name}: " + "; ".join(parts)


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
    from snnlib.uncertainty import shift as S
    from snnlib.uncertainty.metrics import auroc

    test = D.encoded(dataset, "test", t_enc)
    ood = S.shifted_dataset(next(s for s in S.shift_specs(dataset, ()) if s.kind == "ood"), t_enc, subset)
    counts_in = (test.times != NO_SPIKE).sum(1).double()
    counts_out = (ood.times != NO_SPIKE).sum(1).double()
    median = counts_in.median()
    return float(auroc((counts_in - median).abs().numpy(), (counts_out - median).abs().numpy()))
