"""The paper's three claims, tested on run records by rules stated before the numbers.

* **C1**: dropout and dropout2d give a higher training loss and a lower test accuracy than
  the base network, on MNIST and on CIFAR-10.
* **C2**: feature dropout and alpha dropout make the network lose its ability to train and
  predict.
* **C3**: dropout changes which hidden neurons are most important (the paper's Table 2).

Every comparison is one *test*: a dropout cell (dataset, kind, site, per-step mask, p = 0.5,
the study's settings, 20 epochs) against its reference over seeds, with the difference of
the means, its 95% Welch interval and the exact permutation p (:mod:`snnlib.analysis`).
Tests come in *families*, one per claim and dropout site (C3: per importance measure), and
Holm's correction is applied within each family: a test is significant when its Holm-adjusted
p is below :data:`ALPHA`. Each test gets a label, each cell (the tests of one dataset, kind
and site) a label combined from its tests, and each claim a verdict combined from its cells:

=========== ============================================================================
label       meaning
=========== ============================================================================
yes         supports the claim (for a test: the claimed direction, significant)
partly      points the claim's way without settling it (not significant, or only in part)
no          does not support it (the other direction, not significant)
contrary    significantly the other way
n/a         fewer than two runs on a side
=========== ============================================================================

A claim is **reproduced** when every cell is *yes*; **partly reproduced** when some cells are
*yes* or *partly*; **contrary** when none is and at least one is *contrary*; **not reproduced**
when every cell is *no*; **not enough data** while a cell is *n/a* (the verdict on the cells
with data follows in brackets). The rules of each claim are in :func:`c1_tests`,
:func:`c2_tests` and :func:`c3_tests`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from . import analysis
from . import records as R

ALPHA = 0.05
CHANCE = 0.1  # ten balanced classes
FAIL_ACCURACY = CHANCE + 0.10  # C2: "cannot predict" at or below 20% test accuracy
IMPAIRED_SHARE = 0.5  # C2: "impaired" when a kind keeps less than half of the base's gain over chance
TOP_K = 10  # C3: the paper's Table 2 lists the top 10
SITES = ("current", "hidden", "input")
C1_KINDS = ("dropout", "dropout2d")
C2_KINDS = ("feature", "feature_alpha", "alpha")
C3_KINDS = ("dropout", "dropout2d", "feature", "feature_alpha", "alpha")
# C1: each metric and the direction the claim gives it (+1: dropout raises it, -1: lowers it).
C1_METRICS = {"train_loss": +1, "test_acc": -1, "train_eval_loss": +1, "test_loss": +1}
C1_READINGS = {
    "paper's metrics (training loss with dropout on, test accuracy)": ("train_loss", "test_acc"),
    "dropout-off training loss and test loss": ("train_eval_loss", "test_loss"),
}
C2_READINGS = {"feature dropout = zeroing (feature)": ("feature", "alpha"),
               "feature dropout = feature alpha dropout (feature_alpha)": ("feature_alpha", "alpha")}
C3_MEASURES = {"hidden_importance": "L1 norm of the outgoing weights (the paper's)",
               "hidden_silencing_drop": "accuracy lost when the neuron is silenced"}


@dataclass
class Test:
    """One tested comparison (a row of ``claims --json``'s ``cells``)."""

    claim: str
    dataset: str
    kind: str
    site: str
    mask: str
    metric: str
    n_base: int
    n_variant: int
    difference: float  # variant mean minus reference mean, in the record's units
    ci_low: float
    ci_high: float
    p: float  # exact permutation p
    p_holm: float = math.nan
    verdict: str = "n/a"
    family: str = ""
    base_mean: float = math.nan
    variant_mean: float = math.nan
    detail: dict = field(default_factory=dict)


@dataclass
class Claims:
    """All tests, the label of each cell, the verdict of each claim reading, and the family sizes."""

    tests: list[Test]
    cells: dict[tuple, str]  # (claim reading, dataset, kind, site) -> label
    verdicts: dict[str, str]  # claim reading -> verdict
    families: dict[str, int]  # family -> number of tests in it
    readings: dict[str, dict] = field(default_factory=dict)  # claim reading -> claim, reading, site, cells

    def to_json(self) -> dict:
        return {"alpha": ALPHA,
                "cells": [_json_test(t) for t in self.tests],
                "verdicts": self.verdicts,
                "readings": self.readings,
                "families": self.families}


def _json_test(test: Test) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(test).items()}


# ---------------------------------------------------------------- combining labels

def combine_cell(labels: Sequence[str]) -> str:
    """A cell's label from its tests' labels: *n/a* if any is; *yes* if all are; *contrary* if any
    is; *partly* if all are *yes* or *partly*; otherwise *no*."""
    if not labels or "n/a" in labels:
        return "n/a"
    if all(label == "yes" for label in labels):
        return "yes"
    if "contrary" in labels:
        return "contrary"
    if all(label in ("yes", "partly") for label in labels):
        return "partly"
    return "no"


def combine_claim(labels: Sequence[str]) -> str:
    """A claim's verdict from its cells' labels (the rule in the module docstring)."""
    if not labels:
        return "not enough data"
    if "n/a" in labels:
        known = [label for label in labels if label != "n/a"]
        return "not enough data" + (f" (on the cells with data: {combine_claim(known)})" if known else "")
    if all(label == "yes" for label in labels):
        return "reproduced"
    if any(label in ("yes", "partly") for label in labels):
        return "partly reproduced"
    if "contrary" in labels:
        return "contrary"
    return "not reproduced"


def directional_label(difference: float, direction: int, p_holm: float, alpha: float = ALPHA) -> str:
    """A test of a claimed direction: *yes* (that direction, significant), *partly* (that direction,
    not significant), *contrary* (the other, significant), *no* (the other, not significant)."""
    if math.isnan(difference) or math.isnan(p_holm):
        return "n/a"
    claimed = difference * direction > 0
    significant = p_holm < alpha
    if claimed:
        return "yes" if significant else "partly"
    return "contrary" if significant and difference != 0 else "no"


def apply_holm(tests: list[Test]) -> None:
    """Sets each test's ``p_holm``: Holm's correction within each family of tests."""
    families: dict[str, list[Test]] = {}
    for t in tests:
        families.setdefault(t.family, []).append(t)
    for members in families.values():
        for t, adjusted in zip(members, analysis.holm([t.p for t in members]), strict=True):
            t.p_holm = adjusted


def make_test(claim: str, family: str, dataset: str, kind: str, site: str, metric: str,
              reference: dict[int, float], variant: dict[int, float], mask: str = "step", **detail: object) -> Test:
    """One comparison of ``variant``'s values against ``reference``'s (each keyed by seed), unlabelled."""
    d = analysis.compare(list(reference.values()), list(variant.values()))
    return Test(claim, dataset, kind, site, mask, metric, d.n_base, d.n_variant, d.diff, d.ci_low, d.ci_high,
                d.permutation_p, family=family,
                base_mean=float(np.mean(list(reference.values()))) if reference else math.nan,
                variant_mean=float(np.mean(list(variant.values()))) if variant else math.nan, detail=dict(detail))


# ---------------------------------------------------------------- the three claims

def c1_tests(table: pd.DataFrame, datasets: Iterable[str] = R.DATASETS, sites: Iterable[str] = SITES) -> list[Test]:
    """C1's tests: for each site, dataset, kind in :data:`C1_KINDS` and metric in :data:`C1_METRICS`,
    the kind's final-epoch value against the base network's over seeds.

    Rule: a test is *yes* when the difference has the claimed direction (training losses and test loss
    higher, test accuracy lower) with a Holm-adjusted p below :data:`ALPHA` in the family of the site
    (2 kinds x 2 datasets x 4 metrics = 16 tests); *partly* in the claimed direction without that;
    *contrary* significantly the other way; *no* otherwise (:func:`directional_label`). A reading's cell
    combines its two metrics (:data:`C1_READINGS`; :func:`combine_cell`).
    """
    tests = []
    for site in sites:
        for dataset in datasets:
            base = R.base_runs(table, dataset)
            for kind in C1_KINDS:
                runs = R.cell_runs(table, dataset, kind, site=site)
                for metric in C1_METRICS:
                    tests.append(make_test("C1", f"C1, {site}", dataset, kind, site, metric,
                                       R.by_seed(base, metric), R.by_seed(runs, metric)))
    apply_holm(tests)
    for t in tests:
        t.verdict = "n/a" if min(t.n_base, t.n_variant) < 2 else directional_label(
            t.difference, C1_METRICS[t.metric], t.p_holm)
    return tests


def c2_tests(table: pd.DataFrame, datasets: Iterable[str] = R.DATASETS, sites: Iterable[str] = SITES) -> list[Test]:
    """C2's tests: for each site, dataset and kind in :data:`C2_KINDS`, the final test accuracy and the
    dropout-off training accuracy against the base network's.

    Rule, on the kind's mean: *yes* (fails) at or below :data:`FAIL_ACCURACY` (chance plus 10 points:
    it cannot predict, or cannot fit its training data); *partly* (impaired) when it keeps less than
    :data:`IMPAIRED_SHARE` of the base network's gain over chance; *contrary* when it is significantly
    better than the base (Holm, family: the site's 3 kinds x 2 datasets x 2 metrics); *no* otherwise.
    A cell combines the two metrics; each reading of "feature dropout" (:data:`C2_READINGS`) takes two kinds.
    """
    tests = []
    for site in sites:
        for dataset in datasets:
            base = R.base_runs(table, dataset)
            for kind in C2_KINDS:
                runs = R.cell_runs(table, dataset, kind, site=site)
                for metric in ("test_acc", "train_eval_acc"):
                    tests.append(make_test("C2", f"C2, {site}", dataset, kind, site, metric,
                                       R.by_seed(base, metric), R.by_seed(runs, metric)))
    apply_holm(tests)
    for t in tests:
        if min(t.n_base, t.n_variant) < 2:
            t.verdict = "n/a"
            continue
        share = (t.variant_mean - CHANCE) / (t.base_mean - CHANCE)
        t.detail["share_of_base_gain"] = share
        if t.variant_mean <= FAIL_ACCURACY:
            t.verdict = "yes"
        elif share < IMPAIRED_SHARE:
            t.verdict = "partly"
        elif t.difference > 0 and t.p_holm < ALPHA:
            t.verdict = "contrary"
        else:
            t.verdict = "no"
    return tests


def rank_taus(reference: dict[int, Sequence[float]], other: dict[int, Sequence[float]]) -> dict[int, float]:
    """{seed: Kendall tau between the two importance vectors of that seed} for the seeds both have."""
    return {s: analysis.kendall_tau(reference[s], other[s]) for s in sorted(set(reference) & set(other))}


def c3_tests(table: pd.DataFrame, datasets: Iterable[str] = R.DATASETS) -> list[Test]:
    """C3's tests, at the paper's site (the current): for each importance measure (:data:`C3_MEASURES`),
    dataset and kind in :data:`C3_KINDS`, the rank agreement (Kendall tau over all hidden neurons) of
    each dropout run with the base run of its seed (same initial weights, same sample order: they
    differ by dropout only), against that of each C3 control run with the base run whose initial
    weights it shares (another sample order, no dropout: what training noise alone changes).

    Rule: *yes* when the dropout runs' tau is lower than the control's with a Holm-adjusted p below
    :data:`ALPHA` (family: the measure's 5 kinds x 2 datasets) and the top 10 changes in every seed;
    *partly* when the tau is lower without that, or only some seeds' top 10 changes; *contrary* when
    the dropout runs keep the ranking significantly better than the control does; *no* otherwise
    (dropout changes the ranking no more than another sample order). The difference is the kind's
    mean tau minus the control's.
    """
    tests = []
    for measure in C3_MEASURES:
        for dataset in datasets:
            base = R.per_neuron(R.base_runs(table, dataset), measure)
            control = rank_taus(base, R.per_neuron(R.control_runs(table, dataset), measure))
            for kind in C3_KINDS:
                runs = R.per_neuron(R.cell_runs(table, dataset, kind), measure)
                taus = rank_taus(base, runs)
                changed = [analysis.top_k_overlap(base[s], runs[s], TOP_K) < TOP_K for s in taus]
                tests.append(make_test("C3", f"C3, {measure}", dataset, kind, "current", measure, control, taus,
                                   top_k_changed=int(sum(changed)), seeds=len(taus),
                                   top_k_overlap=[analysis.top_k_overlap(base[s], runs[s], TOP_K) for s in taus]))
    apply_holm(tests)
    for t in tests:
        if min(t.n_base, t.n_variant) < 2:
            t.verdict = "n/a"
            continue
        label = directional_label(t.difference, -1, t.p_holm)
        changed, seeds = t.detail["top_k_changed"], t.detail["seeds"]
        if label == "yes" and changed < seeds:
            label = "partly"
        t.verdict = label
    return tests


# ---------------------------------------------------------------- all of it

def evaluate_claims(records_or_table: Iterable[dict] | pd.DataFrame,
                    datasets: Iterable[str] = R.DATASETS) -> Claims:
    """Every test, cell label and verdict for the records (or a :func:`records.runs_table`)."""
    table = records_or_table if isinstance(records_or_table, pd.DataFrame) else R.runs_table(records_or_table)
    datasets = tuple(datasets)
    tests = c1_tests(table, datasets) + c2_tests(table, datasets) + c3_tests(table, datasets)
    cells: dict[tuple, str] = {}
    verdicts: dict[str, str] = {}
    readings: dict[str, dict] = {}

    def add(name: str, claim: str, reading: str, site: str, chosen: list[Test], cell_of) -> None:
        groups: dict[tuple, list[str]] = {}
        for t in chosen:
            groups.setdefault(cell_of(t), []).append(t.verdict)
        labels = {}
        for key, member_labels in groups.items():
            labels[key] = cells[(name, *key)] = combine_cell(member_labels)
        verdicts[name] = combine_claim(list(labels.values()))
        readings[name] = {"claim": claim, "reading": reading, "site": site, "cells": len(labels),
                          "tests": len(chosen), "family_tests": sum(1 for t in tests if t.family == chosen[0].family)
                          if chosen else 0}

    for site in SITES:
        for reading, metrics in C1_READINGS.items():
            chosen = [t for t in tests if t.claim == "C1" and t.site == site and t.metric in metrics]
            add(f"C1, {reading}, {site}", "C1", reading, site, chosen, lambda t: (t.dataset, t.kind, t.site))
    for site in SITES:
        for reading, kinds in C2_READINGS.items():
            chosen = [t for t in tests if t.claim == "C2" and t.site == site and t.kind in kinds]
            add(f"C2, {reading}, {site}", "C2", reading, site, chosen, lambda t: (t.dataset, t.kind, t.site))
    for measure, description in C3_MEASURES.items():
        chosen = [t for t in tests if t.claim == "C3" and t.metric == measure]
        add(f"C3, {description}, current", "C3", description, "current", chosen, lambda t: (t.dataset, t.kind, t.site))
    families: dict[str, int] = {}
    for t in tests:
        families[t.family] = families.get(t.family, 0) + 1
    return Claims(tests, cells, verdicts, families, readings)


def verdict_table(claims: Claims) -> str:
    """The Markdown table of verdicts: claim, reading, site, cells, tests (and the size of the family
    Holm's correction ran over), verdict. The README's verdict table is this table."""
    rows = []
    for name, verdict in claims.verdicts.items():
        info = claims.readings[name]
        rows.append([info["claim"], info["reading"], info["site"], info["cells"],
                     f"{info['tests']} of {info['family_tests']}", verdict])
    return R.markdown_table(["claim", "reading", "dropout site", "cells", "tests (of the Holm family)", "verdict"],
                            rows)


def describe_test(test: Test) -> str:
    """One test in a sentence: ``MNIST, dropout on the current, test accuracy: +0.39 points [+0.15, +0.63]
    (10 vs 10 seeds, p = 1.1e-05, Holm 2.2e-04): contrary``."""
    points = test.metric in R.ACCURACY_METRICS
    scale, digits, unit = (100.0, 2, " points") if points else (1.0, 4, "")
    interval = R.signed_interval(test.difference, test.ci_low, test.ci_high, scale, digits)
    if not math.isnan(test.difference):
        head, _, rest = interval.partition(" ")
        interval = f"{head}{unit} {rest}".rstrip()
    return (f"{R.DATASET_NAMES.get(test.dataset, test.dataset)}, {R.KIND_NAMES.get(test.kind, test.kind)} on the "
            f"{test.site}, {R.METRIC_NAMES.get(test.metric, test.metric)}: {interval} ({test.n_variant} vs "
            f"{test.n_base} seeds, p = {R.p_text(test.p)}, Holm {R.p_text(test.p_holm)}): {test.verdict}")


def tests_markdown(tests: Sequence[Test], extra: dict[str, Sequence[object]] | None = None,
                   drop: Sequence[str] = ("claim", "site")) -> str:
    """A Markdown table of tests for the book: datasets and metrics by name, accuracy differences in
    percentage points, ``extra`` columns (name -> one value per test) after the kind, and without the
    columns ``drop``."""
    frame = tests_table(tests)
    frame["metric"] = frame["metric"].map(lambda m: R.METRIC_NAMES.get(m, m))
    frame["dataset"] = frame["dataset"].map(lambda d: R.DATASET_NAMES.get(d, d))
    for position, (name, values) in enumerate((extra or {}).items()):
        frame.insert(3 + position, name, list(values))
    columns = [c for c in frame.columns if c not in drop]
    return R.markdown_table(columns, frame[columns].values.tolist())


def tests_table(tests: Iterable[Test], scale_accuracy: bool = True) -> pd.DataFrame:
    """The tests as a table (accuracy differences in percentage points when ``scale_accuracy``)."""
    rows = []
    for t in tests:
        scale = 100.0 if scale_accuracy and t.metric in R.ACCURACY_METRICS else 1.0
        rows.append({"claim": t.claim, "dataset": t.dataset, "kind": t.kind, "site": t.site, "metric": t.metric,
                     "n": f"{t.n_variant} vs {t.n_base}",
                     "difference [95% CI]": R.signed_interval(t.difference, t.ci_low, t.ci_high, scale,
                                                              2 if scale == 100.0 else 4),
                     "p": R.p_text(t.p), "p (Holm)": R.p_text(t.p_holm), "label": t.verdict})
    return pd.DataFrame(rows)
