"""The uncertainty verdict with every method temperature-scaled, and the near out-of-distribution set: the
second round's block 5 (``snnlib.study.preregistration.ADDENDUM``), **exploratory**, beside the registered
verdict of :mod:`snnlib.study.uncertainty_verdict`, never replacing it.

It reads the version-3 evaluations (:mod:`snnlib.uncertainty.scaled`) of the uncertainty reruns
(:mod:`snnlib.study.reruns`) from ``results/reproducibility/`` by the rerun grid's own design
(:func:`load_rerun_evaluations`: :func:`snnlib.study.evaluations.load_evaluations` with
:func:`snnlib.study.reruns.rerun_design`, so copies and strays there are refused like anywhere else), and
applies the registered rows and row rule with every method temperature-scaled:

- the rows: each kind of :data:`~snnlib.study.preregistration.UNCERTAINTY_KINDS` at the paper's cell, MC dropout
  temperature-scaled at the passes of :data:`~snnlib.study.preregistration.UNCERTAINTY_PRIMARY_ROWS` (5 and 50;
  ``mc_dropout_temperature_5`` and ``_50``), seeds :data:`KIND_SEEDS`;
- the baselines (:data:`SCALED_BASELINES`): the base network's temperature-scaled prediction (``temperature``,
  the same seeds, :data:`BASE_SEEDS`, as the registered verdict pairs seeds 0-9 with seeds 0-9) and the
  temperature-scaled ensembles (``ensemble_temperature``) of seeds 0-4, 5-9 and 10-14 (:data:`RERUN_ENSEMBLES`);
- the primary metrics of :data:`~snnlib.study.uncertainty_verdict.PRIMARY_NAMES`, Welch's test over seeds (an
  ensemble is one value), Holm within a dataset and a baseline, the labels and the row rule of the registered
  verdict (:func:`~snnlib.study.uncertainty_verdict.better_label`,
  :func:`~snnlib.study.uncertainty_verdict.row_verdict`);
- beside them, never deciding: the near-OOD AUROC by the maximum probability (``near_ood``: the test images
  with their patches shuffled, which a spike counter cannot tell from the test set,
  :func:`near_ood_spike_count_auroc`), tested the same way in a family of its own (:func:`near_ood_tests`).

:func:`scaled_answer` says the outcome in one or two sentences per dataset, for the uncertainty chapter;
:func:`second_round_tables` gives its tables.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from snnlib.experiment.config import RunConfig
from snnlib.model.kernels import NO_SPIKE
from snnlib.study import claims as C
from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study import uncertainty_verdict as UV
from snnlib.study.claims import Test, welch_test
from snnlib.study.design import expected_runs
from snnlib.study.evaluations import _cell, _none, load_evaluations
from snnlib.study.reruns import EVALUATION_VERSION, RERUN_DEST, RERUN_GRID, rerun_design
from snnlib.uncertainty.scaled import ENSEMBLE_SCALED, NEAR_OOD_SET, SCALED_PASSES

KIND_SEEDS = P.FIVE  # the kinds' reruns
BASE_SEEDS = P.FIVE  # the base network's rows against them: the kinds' seeds (its seeds 5-14 make the ensembles)
RERUN_ENSEMBLES = P.ENSEMBLES[:3]  # seeds 0-4, 5-9, 10-14
SCALED_MC = "mc_dropout_temperature"  # MC dropout temperature-scaled: the method of every row
# baseline -> (network, method, passes) of the base network
SCALED_BASELINES = {"temperature": ("none", "temperature", 1), "ensemble": ("none", ENSEMBLE_SCALED, None)}
BASELINE_NAMES = {"temperature": "the base network's temperature scaling",
                  "ensemble": "temperature-scaled deep ensembles of five base runs"}
NEAR_OOD_COLUMN = "near_ood_auroc"
NEAR_OOD_NAME = "near-OOD AUROC"  # exploratory: beside the verdict, never in it


def load_rerun_evaluations(root: str | Path = RERUN_DEST, grid_file: str | Path = RERUN_GRID) -> list[dict]:
    """The version-3 evaluations of the uncertainty reruns under ``root`` (default
    ``results/reproducibility``), read by the rerun grid's design; an evaluation of another version is
    skipped with a one-line warning."""
    found = []
    for evaluation in load_evaluations(root, rerun_design(grid_file)):
        version = evaluation.get("settings", {}).get("uncertainty_version")
        if version != EVALUATION_VERSION:
            warnings.warn(f"skipping {evaluation['path']}: an evaluation of version {version}, not "
                          f"{EVALUATION_VERSION}", stacklevel=2)
            continue
        found.append(evaluation)
    return found


def _near_ood(ev: dict, numbers_of) -> float:
    name = next((n for n, info in ev["sets"].items() if info.get("kind") == NEAR_OOD_SET), None)
    return _none(numbers_of(name).get("auroc_vs_test", {}).get("max_prob")) if name else math.nan


def scaled_values(evaluations: Iterable[dict]) -> pd.DataFrame:
    """One row per evaluation and method, like :func:`snnlib.study.uncertainty_verdict.method_values`: the
    cell, ``seed`` (an ensemble: NaN, ``members`` its seeds), ``method`` (MC dropout temperature-scaled at N
    passes: :data:`SCALED_MC` with ``passes`` N), ``passes``, ``temperature`` (NaN for an unscaled method), the
    primary metrics, the test accuracy and :data:`NEAR_OOD_COLUMN`."""
    rows = []
    for ev in evaluations:
        ensemble = ev.get("kind") == "ensemble"
        keys = {**_cell(ev), "epochs": RunConfig.from_dict(ev["config"]).epochs,
                "seed": math.nan if ensemble else int(ev["config"]["seed"]),
                "members": tuple(sorted(int(m["seed"]) for m in ev.get("members", []))) if ensemble else None,
                "path": ev.get("path")}
        for method, entry in ev["methods"].items():
            results = entry["results"]
            passes = entry.get("passes") or entry.get("cost", {}).get("forward_passes") or 1
            name = SCALED_MC if entry.get("scaled_method") == "mc_dropout" else method
            numbers_of = lambda set_name, results=results: results.get(set_name) or {}  # noqa: E731
            rows.append({**keys, "method": name, "passes": int(passes), "temperature": _none(entry.get("temperature")),
                         **UV._primary_numbers(ev, numbers_of), NEAR_OOD_COLUMN: _near_ood(ev, numbers_of)})
    columns = ["dataset", "variant", "p", "mask", "site", "epochs", "seed", "members", "path", "method", "passes",
               "temperature", "test_accuracy", *UV.PRIMARY_NAMES, NEAR_OOD_COLUMN]
    return pd.DataFrame(rows, columns=columns)


def scaled_row_values(values: pd.DataFrame, dataset: str, variant: str, method: str, passes: int | None,
                      column: str) -> dict[object, float]:
    """{seed (an ensemble: its members): value} of ``column`` for one network and method of
    :func:`scaled_values`: the paper's cell at 20 epochs, the block's seeds (:data:`KIND_SEEDS`,
    :data:`BASE_SEEDS`) and ensembles (:data:`RERUN_ENSEMBLES`) only."""
    chosen = values[(values["dataset"] == dataset) & (values["variant"] == variant) & (values["method"] == method)
                    & (values["epochs"] == 20)]
    if variant != "none":
        chosen = chosen[(chosen["p"] == 0.5) & (chosen["mask"] == "step") & (chosen["site"] == "current")]
    if passes is not None:
        chosen = chosen[chosen["passes"] == passes]
    if method == ENSEMBLE_SCALED:
        return {m: float(v) for m, v in zip(chosen["members"], chosen[column], strict=True)
                if m in RERUN_ENSEMBLES and not math.isnan(v)}
    planned = BASE_SEEDS if variant == "none" else KIND_SEEDS
    return {int(s): float(v) for s, v in zip(chosen["seed"], chosen[column], strict=True)
            if not math.isnan(s) and int(s) in planned and not math.isnan(v)}


def _test(values: pd.DataFrame, dataset: str, kind: str, passes: int, baseline: str, column: str, family: str,
          role: str, direction: int) -> Test:
    ref_variant, ref_method, ref_passes = SCALED_BASELINES[baseline]
    ref_planned = RERUN_ENSEMBLES if baseline == "ensemble" else BASE_SEEDS
    reference = scaled_row_values(values, dataset, ref_variant, ref_method, ref_passes, column)
    variant = scaled_row_values(values, dataset, kind, SCALED_MC, passes, column)
    t = welch_test("uncertainty (temperature-scaled reruns)", family, dataset, kind, "current", column, reference,
                   variant, method="mc_dropout", passes=passes, baseline=baseline, scaled=True)
    t.role, t.direction = role, direction
    lacking = [s for s in KIND_SEEDS if s not in variant]
    t.missing = ([f"{kind} MC dropout (temperature-scaled, {passes} passes): seeds {', '.join(map(str, lacking))}"]
                 if lacking else [])
    ref_lacking = [s for s in ref_planned if s not in reference]
    t.missing += [f"base {baseline}: {len(ref_lacking)} of {len(ref_planned)}"] if ref_lacking else []
    return t


def _labelled(tests: list[Test]) -> list[Test]:
    C.apply_holm(tests)
    for t in tests:
        t.label = UV.better_label(t)
    return tests


def scaled_verdict_tests(values: pd.DataFrame, datasets: Iterable[str] = R.DATASETS) -> list[Test]:
    """Every test of the temperature-scaled verdict: per dataset and baseline (:data:`SCALED_BASELINES`), each
    kind's MC dropout temperature-scaled at each pass count of the registered primary rows, on each primary
    metric; Welch's test over seeds, Holm within the dataset and baseline (the family's size fixed by the plan),
    labelled *better*, *worse*, *not significant* or *no data*."""
    tests = []
    for dataset in datasets:
        for baseline in SCALED_BASELINES:
            family = f"uncertainty, temperature-scaled reruns, {dataset}, against the base's {baseline}"
            for kind in P.UNCERTAINTY_KINDS:
                for _, passes in P.UNCERTAINTY_PRIMARY_ROWS:
                    for column in UV.PRIMARY_NAMES:
                        tests.append(_test(values, dataset, kind, passes, baseline, column, family, "primary",
                                           UV.PRIMARY_BETTER[column]))
    return _labelled(tests)


def near_ood_tests(values: pd.DataFrame, datasets: Iterable[str] = R.DATASETS) -> list[Test]:
    """The near-OOD AUROC (by the maximum probability; higher is better) of each row against each baseline, as
    :func:`scaled_verdict_tests` tests the primary metrics but in a family of its own per dataset and baseline
    (exploratory: it decides no row)."""
    tests = []
    for dataset in datasets:
        for baseline in SCALED_BASELINES:
            family = f"near-OOD AUROC (exploratory), {dataset}, against the base's {baseline}"
            for kind in P.UNCERTAINTY_KINDS:
                for _, passes in P.UNCERTAINTY_PRIMARY_ROWS:
                    tests.append(_test(values, dataset, kind, passes, baseline, NEAR_OOD_COLUMN, family,
                                       "exploratory", +1))
    return _labelled(tests)


def scaled_verdict_matrix(tests: Sequence[Test], near: Sequence[Test] = ()) -> pd.DataFrame:
    """The matrix of :func:`snnlib.study.uncertainty_verdict.verdict_matrix` (a row per dataset, baseline, kind
    and pass count; a label per primary metric; the row's verdict by the registered rule), with the near-OOD
    AUROC's label and difference beside it (:data:`NEAR_OOD_COLUMN`, never in the verdict)."""
    matrix = UV.verdict_matrix(tests)
    if not len(matrix):
        return matrix
    beside = {(t.dataset, t.detail["baseline"], t.kind, UV.row_name(t)): t for t in near}
    keys = list(zip(matrix["dataset"], matrix["baseline"], matrix["kind"], matrix["method"], strict=True))
    matrix[NEAR_OOD_COLUMN] = [beside[k].label if k in beside else "no data" for k in keys]
    matrix[f"{NEAR_OOD_COLUMN}_difference"] = [beside[k].difference if k in beside else math.nan for k in keys]
    return matrix


def scaled_matrix_markdown(matrix: pd.DataFrame, dataset: str, baseline: str | None = None) -> str:
    """One dataset's matrix in Markdown: a row per baseline (or only ``baseline``, without its column), kind and
    pass count (every method temperature-scaled), a column per primary metric and the near-OOD AUROC
    (exploratory), and the row's verdict."""
    chosen = matrix[matrix["dataset"] == dataset] if len(matrix) else matrix
    if baseline is not None and len(chosen):
        chosen = chosen[chosen["baseline"] == baseline]
    rows = [([] if baseline else [BASELINE_NAMES[r["baseline"]]])
            + [R.KIND_NAMES[r["kind"]], r["method"],
               *(UV.SHORT_LABELS[r[c]] for c in UV.PRIMARY_NAMES), f"**{r['verdict']}**",
               UV.SHORT_LABELS[r[NEAR_OOD_COLUMN]]] for _, r in chosen.iterrows()]
    head = ([] if baseline else ["against"]) + ["kind", "method", *UV.PRIMARY_NAMES.values(), "verdict", NEAR_OOD_NAME]
    return R.markdown_table(head, rows)


# the rows of scaled_values_table: (network, method, passes) as scaled_row_values reads them
SCALED_TABLE_ROWS = [("none", "temperature", 1), ("none", ENSEMBLE_SCALED, None)] + [
    (kind, SCALED_MC, passes) for kind in P.UNCERTAINTY_KINDS for _, passes in P.UNCERTAINTY_PRIMARY_ROWS]


def scaled_values_table(values: pd.DataFrame, dataset: str) -> str:
    """A compact Markdown table of :func:`scaled_values` on ``dataset``, every method temperature-scaled: per
    network and method in one column (:data:`SCALED_TABLE_ROWS`; ``MC 50``: MC dropout, 50 passes), n (seeds, or
    ensembles), test accuracy, NLL, ECE, OOD AUROC and the near-OOD AUROC (mean ± std)."""
    lines = []
    for kind, method, passes in SCALED_TABLE_ROWS:
        found = scaled_row_values(values, dataset, kind, method, passes, "test_nll")
        if not found:
            continue
        cells = [R.mean_std(scaled_row_values(values, dataset, kind, method, passes, column).values(), scale, digits)
                 for column, scale, digits in (("test_accuracy", 100, 1), ("test_nll", 1, 3), ("test_ece", 1, 3),
                                               ("ood_auroc", 1, 3), (NEAR_OOD_COLUMN, 1, 3))]
        name = {"temperature": "1 pass", ENSEMBLE_SCALED: "ensemble of 5"}.get(method, f"MC {passes}")
        lines.append([f"{R.KIND_NAMES[kind].replace(' (no dropout)', '')}, {name}", len(found), *cells])
    return R.markdown_table(["network, method", "n", "accuracy %", "NLL", "ECE", "OOD AUROC", "near-OOD AUROC"], lines)


def _mean(values: pd.DataFrame, dataset: str, variant: str, method: str, passes: int | None) -> float:
    found = scaled_row_values(values, dataset, variant, method, passes, NEAR_OOD_COLUMN)
    return float(np.mean(list(found.values()))) if found else math.nan


def _near_means(values: pd.DataFrame, dataset: str, passes: int) -> tuple[float, float, list[float]]:
    """Mean near-OOD AUROC of the base network's and the ensembles' temperature-scaled predictions, and of each
    kind's MC dropout temperature-scaled at ``passes`` (the kinds with data)."""
    kinds = [v for v in (_mean(values, dataset, k, SCALED_MC, passes) for k in P.UNCERTAINTY_KINDS)
             if not math.isnan(v)]
    return _mean(values, dataset, "none", "temperature", 1), _mean(values, dataset, "none", ENSEMBLE_SCALED, None), kinds


def _span(numbers: list[float]) -> str:
    low, high = f"{min(numbers):.2f}", f"{max(numbers):.2f}"
    return low if low == high else f"{low}-{high}"


def scaled_answer(matrix: pd.DataFrame, values: pd.DataFrame, dataset: str) -> str:
    """One or two sentences on ``dataset``: the temperature-scaled verdict of each kind's MC dropout against
    each baseline (:func:`snnlib.study.uncertainty_verdict.uncertainty_answer`'s words), and how well the
    maximum probability tells the near-OOD set from the test set (mean AUROC of the base network's and the
    ensembles' temperature-scaled predictions and the range over the kinds' MC dropout at the most passes),
    which counting input spikes cannot do (:func:`near_ood_spike_count_auroc`)."""
    name = R.DATASET_NAMES.get(dataset, dataset)
    verdicts = "; ".join(UV.uncertainty_answer(matrix, dataset, b, BASELINE_NAMES) for b in SCALED_BASELINES)
    first = f"{name}, every method temperature-scaled (reruns, exploratory): MC dropout {verdicts}."
    passes = max(n for _, n in P.UNCERTAINTY_PRIMARY_ROWS)
    base, ensemble, kinds = _near_means(values, dataset, passes)
    if math.isnan(base) or math.isnan(ensemble) or not kinds:
        return first + " The near-OOD set (shuffled patches) has no evaluations yet."
    spread = _span(kinds)
    return (first + f" On the near-OOD set (each test image's patches shuffled: the same input spikes, so a count "
            f"of them cannot tell it from the test set), the maximum probability reaches AUROC {base:.2f} for the "
            f"base network, {ensemble:.2f} for the ensembles and {spread} for MC dropout ({passes} passes) of the "
            f"{len(kinds)} kinds, all temperature-scaled.")


def summary_sentence(matrix: pd.DataFrame, values: pd.DataFrame) -> str:
    """Block 5 for the answer, in one sentence (exploratory): over both datasets, for how many dropout networks MC
    dropout temperature-scaled (the most passes) is *better* or *worse* than each temperature-scaled baseline by the
    registered row rule, and the near-OOD AUROC of the maximum probability per dataset (the base network, the
    ensembles, the kinds' MC dropout)."""
    passes = max(n for _, n in P.UNCERTAINTY_PRIMARY_ROWS)
    method = f"{UV.METHOD_NAMES['mc_dropout']}, {passes} passes"
    against = []
    for baseline in SCALED_BASELINES:
        rows = matrix[(matrix["baseline"] == baseline) & (matrix["method"] == method)] if len(matrix) else matrix
        if not len(rows) or (rows["verdict"] == "not enough data").any():
            return ""
        better, worse = int((rows["verdict"] == "better").sum()), int((rows["verdict"] == "worse").sum())
        against.append(f"{'better' if better else 'never better'} than {BASELINE_NAMES[baseline]}"
                       + (f" for {better} of {len(rows)} dropout networks" if better else "")
                       + (f" (worse for {worse})" if worse else ""))
    near = []
    for dataset in R.DATASETS:
        base, ensemble, kinds = _near_means(values, dataset, passes)
        if kinds and not math.isnan(base) and not math.isnan(ensemble):
            near.append(f"{R.DATASET_NAMES[dataset]} {base:.2f}, {ensemble:.2f} and {_span(kinds)}")
    text = (f"Exploratory, with every method temperature-scaled (the second round's reruns at the paper's site): MC "
            f"dropout ({passes} passes) is {' and '.join(against)}")
    if near:
        text += ("; on a near out-of-distribution set that a count of input spikes cannot tell from the test set, "
                 "the maximum probability's AUROC (the base network, the ensembles, MC dropout) is "
                 + "; ".join(near))
    return text + "."


def near_ood_spike_count_auroc(dataset: str, t_enc: int = 12, subset: int = 2000) -> float:
    """The spike-count detector of :func:`snnlib.study.uncertainty_verdict.spike_count_auroc` (how far a sample's
    number of input spikes lies from the test set's median) on the near-OOD set against the test images it is
    made from (the first ``subset``): 0.5 exactly, because shuffling patches changes no pixel value."""
    from snnlib.uncertainty import shift as S
    from snnlib.uncertainty.metrics import auroc

    spec = next(s for s in S.shift_specs(dataset, (), near_ood=True) if s.kind == S.NEAR_OOD)
    test = S.shifted_dataset(S.shift_specs(dataset, ())[0], t_enc, subset)
    near = S.shifted_dataset(spec, t_enc, subset)
    counts_in = (test.times != NO_SPIKE).sum(1).double()
    counts_out = (near.times != NO_SPIKE).sum(1).double()
    median = counts_in.median()
    return float(auroc((counts_in - median).abs().numpy(), (counts_out - median).abs().numpy()))


def scaled_passes_match() -> bool:
    """Whether the evaluation's temperature-scaled pass counts are the verdict's primary rows."""
    return tuple(SCALED_PASSES) == tuple(n for _, n in P.UNCERTAINTY_PRIMARY_ROWS)


def second_round(root: str | Path = RERUN_DEST,
                 grid_file: str | Path = RERUN_GRID) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(:func:`scaled_values`, :func:`scaled_verdict_matrix` with the near-OOD tests) of the reruns' evaluations
    landed under ``root``; None while none has landed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluations = load_rerun_evaluations(root, grid_file) if Path(root).is_dir() else []
    if not evaluations:
        return None
    values = scaled_values(evaluations)
    return values, scaled_verdict_matrix(scaled_verdict_tests(values), near_ood_tests(values))


def second_round_sentences(root: str | Path = RERUN_DEST, grid_file: str | Path = RERUN_GRID) -> list[str]:
    """What the uncertainty chapter says of block 5: per dataset :func:`scaled_answer` once the reruns' evaluations
    have landed under ``root``, else that they have not (with how many the plan makes)."""
    found = second_round(root, grid_file)
    if found is None:
        runs = len(expected_runs([grid_file]))
        return [f"The second round's temperature-scaled comparison and its near-OOD set (the addendum's block 5: "
                f"{runs} networks trained again, because evaluations need weights, which are not kept) have not "
                f"landed yet; `scripts/run_uncertainty_reruns.py` makes them."]
    values, matrix = found
    return [scaled_answer(matrix, values, dataset) for dataset in R.DATASETS
            if (values["dataset"] == dataset).any()]


def second_round_tables(root: str | Path = RERUN_DEST, grid_file: str | Path = RERUN_GRID) -> list[str]:
    """The uncertainty chapter's tables of block 5, in Markdown, once its evaluations have landed under ``root``
    (none before): per dataset, :func:`scaled_values_table`, then :func:`scaled_matrix_markdown` per baseline."""
    found = second_round(root, grid_file)
    if found is None:
        return []
    values, matrix = found
    tables = []
    for dataset in R.DATASETS:
        if not (values["dataset"] == dataset).any():
            continue
        name = R.DATASET_NAMES[dataset]
        tables.append(f"**{name}**, every method temperature-scaled (mean ± sd)\n\n" + scaled_values_table(values, dataset))
        tables += [f"**{name}**, MC dropout temperature-scaled against {BASELINE_NAMES[baseline]}\n\n"
                   + scaled_matrix_markdown(matrix, dataset, baseline) for baseline in SCALED_BASELINES]
    return tables
