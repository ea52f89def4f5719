"""The study's own questions beyond the paper's claims, as tested comparisons.

* the mask in time: a fresh dropout mask every step against one mask per sample, at each rate;
* the rate: standard dropout at p = 0.1, 0.2, 0.3 and 0.5 against the base network;
* the budget: CIFAR-10 for 60 epochs instead of 20;
* the tuning: would the validation split have chosen the same defaults as the test set did?
* overfitting: the gap between dropout-off training accuracy and test accuracy.

Each comparison is a :class:`snnlib.claims.Test` by Welch's test (the study's test, see
:mod:`snnlib.preregistration`), with Holm's correction within each family (one per question and
dataset, its size fixed by the planned comparisons: one without data counts as p = 1) and a two-sided
label (:func:`two_sided_label`). These are secondary questions: they decide no claim.

On this fully connected layer one mask per sample for standard dropout on the synaptic current
is dropout2d, number for number (tested in ``tests/test_dropout.py``), so the paper grid's
dropout2d runs are the per-sample cell at p = 0.5 (:data:`SAME_OPERATION`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from . import records as R
from .claims import ALPHA, Test, apply_holm, welch_test

RATES = (0.1, 0.2, 0.3, 0.5)
# one mask per sample for dropout on the current is dropout2d (and for alpha, feature alpha dropout)
SAME_OPERATION = {"dropout": "dropout2d", "alpha": "feature_alpha"}


def two_sided_label(difference: float, p_holm: float, alpha: float = ALPHA) -> str:
    """*higher* or *lower* (significant after Holm), *not significant*, or *no data*."""
    if math.isnan(difference) or math.isnan(p_holm):
        return "no data"
    if p_holm < alpha and difference != 0:
        return "higher" if difference > 0 else "lower"
    return "not significant"


def _label(tests: list[Test]) -> list[Test]:
    apply_holm(tests)
    for t in tests:
        t.label = "no data" if min(t.n_base, t.n_variant) < 2 else two_sided_label(t.difference, t.p_holm)
    return tests


def dropout_runs(table: pd.DataFrame, dataset: str, p: float, mask: str, epochs: int = 20) -> pd.DataFrame:
    """Standard dropout on the current at rate ``p`` with a per-``step`` or per-``sample`` mask (the
    per-sample cell falls back on dropout2d's runs, the same operation, for seeds it lacks)."""
    runs = R.cell_runs(table, dataset, "dropout", p=p, mask=mask, epochs=epochs)
    if mask == "sample":
        twin = R.cell_runs(table, dataset, SAME_OPERATION["dropout"], p=p, epochs=epochs)
        runs = pd.concat([runs, twin[~twin["seed"].isin(runs["seed"])]])
    return runs


def mask_tests(table: pd.DataFrame, datasets: Iterable[str] = R.DATASETS, rates: Iterable[float] = RATES,
               metrics: Iterable[str] = ("test_acc", "test_loss", "train_eval_loss")) -> list[Test]:
    """Per-step minus per-sample mask, standard dropout on the current, at each rate (family: the dataset's
    rates x metrics). ``kind`` is ``dropout``, ``mask`` ``step`` (the variant) against ``sample``."""
    tests = []
    for dataset in datasets:
        for p in rates:
            step, sample = dropout_runs(table, dataset, p, "step"), dropout_runs(table, dataset, p, "sample")
            for metric in metrics:
                tests.append(welch_test("mask", f"mask, {dataset}", dataset, "dropout", "current", metric,
                                       R.by_seed(sample, metric), R.by_seed(step, metric), p=p))
    return _label(tests)


def rate_tests(table: pd.DataFrame, datasets: Iterable[str] = R.DATASETS, rates: Iterable[float] = RATES,
               metrics: Iterable[str] = ("test_acc",)) -> list[Test]:
    """Standard dropout on the current at each rate and mask against the base network (family: the
    dataset's rates x masks x metrics)."""
    tests = []
    for dataset in datasets:
        base = R.base_runs(table, dataset)
        for p in rates:
            for mask in ("step", "sample"):
                runs = dropout_runs(table, dataset, p, mask)
                for metric in metrics:
                    tests.append(welch_test("rate", f"rate, {dataset}", dataset, "dropout", "current", metric,
                                           R.by_seed(base, metric), R.by_seed(runs, metric), mask=mask, p=p))
    return _label(tests)


def budget_tests(table: pd.DataFrame, dataset: str = "cifar10", epochs: int = 60,
                 kinds: Iterable[str] = ("dropout", "dropout2d"),
                 metrics: Iterable[str] = ("test_acc", "test_loss", "train_eval_acc")) -> list[Test]:
    """Each kind against the base network after ``epochs`` epochs (family: kinds x metrics)."""
    base = R.base_runs(table, dataset, epochs)
    tests = [welch_test("budget", f"budget {epochs}, {dataset}", dataset, kind, "current", metric,
                       R.by_seed(base, metric), R.by_seed(R.cell_runs(table, dataset, kind, epochs=epochs), metric),
                       epochs=epochs)
             for kind in kinds for metric in metrics]
    return _label(tests)


def generalization_gap(table: pd.DataFrame, epochs: int = 20) -> pd.DataFrame:
    """Per study run: dropout-off training accuracy minus test accuracy (the overfitting the paper's
    training-mode curves hide), with the cell keys; summarise it with :func:`records.summary`."""
    runs = R.study_runs(table, epochs).copy()
    runs["gap"] = runs["train_eval_acc"] - runs["test_acc"]
    return runs


def tuning_check(table: pd.DataFrame) -> pd.DataFrame:
    """The tuning runs (base network, seed 0, the validation split held out, short budgets), one row each
    with the settings that differ from the study's, the validation and test accuracy, and which setting
    each of the two would choose within its dataset and budget (``best_by_val``, ``best_by_test``)."""
    runs = table[table["finished"] & (table["variant"] == "none") & (table["val_size"] == 5000)
                 & table["init_seed"].isna() & (table["seed"] == 0) & (table["epochs"] < 20)].copy()
    if runs.empty:
        return pd.DataFrame(columns=["dataset", "epochs", "setting", "val_acc", "test_acc", "best_by_val",
                                     "best_by_test", "path"])
    varied = [k for k in R.STUDY_SETTINGS if k not in ("init_seed", "val_size")]

    def setting(row: pd.Series) -> str:
        changed = [f"{k.removeprefix('network.')} {row[k]:g}" if isinstance(row[k], float) else
                   f"{k.removeprefix('network.')} {row[k]}"
                   for k in varied if not R.same_value(row[k], R.STUDY_SETTINGS[k])]
        return ", ".join(changed) or "the study's defaults"

    runs["setting"] = runs.apply(setting, axis=1)
    rows = []
    for (dataset, epochs), group in runs.groupby(["dataset", "epochs"], sort=False):
        best_val, best_test = group["val_acc"].idxmax(), group["test_acc"].idxmax()
        for index, row in group.iterrows():
            rows.append({"dataset": dataset, "epochs": epochs, "setting": row["setting"], "val_acc": row["val_acc"],
                         "test_acc": row["test_acc"], "best_by_val": index == best_val,
                         "best_by_test": index == best_test, "path": row["path"]})
    return pd.DataFrame(rows)
