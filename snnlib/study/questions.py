"""The study's own questions beyond the paper's claims, as tested comparisons.

* the mask in time: a fresh dropout mask every step against one mask per sample, at each rate;
* the rate: standard dropout at p = 0.1, 0.2, 0.3 and 0.5 against the base network;
* the budget: CIFAR-10 for 60 epochs instead of 20;
* the tuning: would the validation split have chosen the same defaults as the test set did?
* overfitting: the gap between dropout-off training accuracy and test accuracy.

Each comparison is a :class:`snnlib.study.claims.Test` by Welch's test (the study's test, see
:mod:`snnlib.study.preregistration`), with Holm's correction within each family (one per question and
dataset, its size fixed by the planned comparisons: one without data counts as p = 1) and a two-sided
label (:func:`two_sided_label`). These are secondary questions: they decide no claim.

On this fully connected layer one mask per sample for standard dropout on the synaptic current
is dropout2d, number for number (tested in ``tests/test_dropout.py``), so the paper grid's
dropout2d runs are the per-sample cell at p = 0.5 (:data:`SAME_OPERATION`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study.claims import ALPHA, Test, apply_holm, welch_test
from snnlib.study.sites import QUESTION_SEEDS, difference_format, join_words

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


# ---------------------------------------------------------------- sentences and tables for the book's chapters
# Every number a chapter of the book states comes from here (or from claims, records, analysis): the
# chapters print these sentences and tables, they do not compute or type numbers themselves.


# ---------------------------------------------------------------- the study's own questions, in words

def detectable_difference(sd: float, n_a: int, n_b: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The true difference of means that a two-sided t-test at level ``alpha`` finds with probability
    ``power``, for ``n_a`` and ``n_b`` seeds scattering with standard deviation ``sd`` on both sides
    (Student's noncentral t with ``n_a + n_b - 2`` degrees of freedom, which Welch's test matches for
    equal variances); NaN with fewer than two seeds a side or no spread."""
    if n_a < 2 or n_b < 2 or not sd > 0 or math.isnan(sd):
        return math.nan
    dof = n_a + n_b - 2
    se = sd * math.sqrt(1 / n_a + 1 / n_b)
    t_crit = stats.t.ppf(1 - alpha / 2, dof)

    def shortfall(difference: float) -> float:
        shift = difference / se
        # the far tail is negligible for a positive shift (scipy's noncentral t returns NaN for some)
        far = float(np.nan_to_num(stats.nct.cdf(-t_crit, dof, shift)))
        return float(stats.nct.sf(t_crit, dof, shift)) + far - power

    upper = se
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-10 * sd))


def base_seed_sd(table: pd.DataFrame, dataset: str, metric: str = "test_acc", epochs: int = 20) -> tuple[float, int]:
    """(the sample standard deviation of ``metric`` over the base network's seeds, how many seeds)."""
    values = R.base_runs(table, dataset, epochs)[metric].astype(float).dropna()
    return (float(values.std(ddof=1)) if len(values) > 1 else math.nan), len(values)


def power_sentence(table: pd.DataFrame, dataset: str, metric: str = "test_acc", power: float = 0.8) -> str:
    """How large a true difference in ``metric`` the study's own questions find with probability ``power``,
    given the base network's seed standard deviation on ``dataset``: at Holm's strictest threshold of each
    question's family, with :data:`QUESTION_SEEDS` seeds per new cell (and the planned base seeds)."""
    sd, n = base_seed_sd(table, dataset, metric)
    scale, digits, unit = difference_format(metric)
    name = R.DATASET_NAMES[dataset]
    if math.isnan(sd):
        return f"{name}: the base network needs two finished seeds for a power estimate."
    empty = R.runs_table([])
    n_base = len(P.planned_seeds(dataset, "none"))
    questions = [("the mask in time", QUESTION_SEEDS, QUESTION_SEEDS, len(mask_tests(empty, [dataset]))),
                 ("a rate against the base network", QUESTION_SEEDS, n_base, len(rate_tests(empty, [dataset])))]
    if dataset == "cifar10":
        questions.append(("the 60-epoch budget", QUESTION_SEEDS, QUESTION_SEEDS, len(budget_tests(empty))))
    parts = [f"{detectable_difference(sd, a, b, ALPHA / size, power) * scale:.{digits}f}{unit} for {what} "
             f"({a} seeds against {b}, a family of {size} tests)" for what, a, b, size in questions]
    return (f"{name}: with the base network's seed standard deviation of {R.METRIC_NAMES[metric]}, "
            f"{sd * scale:.{digits}f}{unit} ({n} seeds), a true difference is found {power:.0%} of the time at "
            f"Holm's strictest threshold only from about {join_words(parts)}.")


def _question(test: Test) -> str:
    p = test.detail.get("p")
    if test.claim == "mask":
        return f"p = {p:g}, a new mask every step against one per sample"
    if test.claim == "rate":
        mask = "a new mask every step" if test.mask == "step" else "one mask per sample"
        return f"p = {p:g} with {mask} against the base network"
    return f"{R.KIND_NAMES.get(test.kind, test.kind)} against the base network, {test.detail.get('epochs')} epochs"


def describe_secondary(test: Test) -> str:
    """One test of the study's own questions (:func:`mask_tests`, :func:`rate_tests`, :func:`budget_tests`) in
    words: ``p = 0.5, a new mask every step against one per sample, test accuracy +0.78 points [+0.67, +0.89]
    (10 vs 10 seeds, Holm p = 3.2e-05): higher``."""
    scale, digits, unit = difference_format(test.metric)
    where = f"{_question(test)}, {R.METRIC_NAMES.get(test.metric, test.metric)}"
    if test.label == "no data":
        return f"{where}: waiting for runs"
    interval = R.signed_interval(test.difference, test.ci_low, test.ci_high, scale, digits)
    head, _, rest = interval.partition(" ")
    return (f"{where} {head}{unit} {rest} ({test.n_variant} vs {test.n_base} seeds, Holm p = {R.p_text(test.p_holm)})"
            f": {test.label}")


def waiting_tests(tests: Sequence[Test]) -> str:
    """The tests of the study's questions that wait for runs, in one line (``""`` when none does):
    ``MNIST at p = 0.1, 0.2 and 0.3; CIFAR-10, 60 epochs: the base network, dropout and dropout2d``."""
    parts: dict[str, list[str]] = {}
    for t in tests:
        if t.label != "no data":
            continue
        key = f"{R.DATASET_NAMES.get(t.dataset, t.dataset)}" + (
            f", {t.detail.get('epochs')} epochs" if t.claim == "budget" else "")
        items = parts.setdefault(key, [])
        if t.claim == "budget":
            named = (["the base network"] if t.n_base < 2 else []) + ([R.KIND_NAMES[t.kind]] if t.n_variant < 2 else [])
        else:
            named = [f"{t.detail['p']:g}"]
        items += [n for n in named if n not in items]
    return "; ".join(f"{key} at p = {join_words(items)}" if not key.endswith("epochs") else f"{key}: {join_words(items)}"
                     for key, items in parts.items())


def family_sentences(tests: Sequence[Test]) -> list[str]:
    """Per family (a question and a dataset) of the study's questions: how many of its tests with data are
    significant after Holm, which (per comparison: each metric, its side and the difference) and what the
    rest wait for; one sentence each (:func:`describe_secondary` gives a test in full)."""
    families: dict[str, list[Test]] = {}
    for t in tests:
        families.setdefault(t.family, []).append(t)
    lines = []
    for members in families.values():
        name = R.DATASET_NAMES.get(members[0].dataset, members[0].dataset)
        done = [t for t in members if t.label != "no data"]
        waiting = waiting_tests(members)
        if not done:
            lines.append(f"{name}: every test waits for its runs ({waiting}).")
            continue
        significant: dict[str, list[str]] = {}
        for t in done:
            if t.label in ("higher", "lower"):
                scale, digits, unit = difference_format(t.metric)
                significant.setdefault(_question(t), []).append(
                    f"{R.METRIC_NAMES.get(t.metric, t.metric)} {t.label} ({t.difference * scale:+.{digits}f}{unit})")
        count = sum(len(items) for items in significant.values())
        text = f"{name}: {count} of the {len(done)} tests with data {'is' if len(done) == 1 else 'are'} " \
               f"significant after Holm"
        if significant:
            text += ": " + "; ".join(f"{question}, {join_words(items)}" for question, items in significant.items())
        lines.append(text + (f" (waiting for {waiting})" if waiting else "") + ".")
    return lines


# ---------------------------------------------------------------- the tuning, honestly

def tuning_groups(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and budget of the tuning runs (:func:`tuning_check`, one seed per setting): how many
    settings, whether the study's defaults are among them, the setting that validation and that test
    accuracy choose, the defaults' validation accuracy below the best (NaN without them; 0 when they are the
    best), the best's margin over the next, the spread of validation accuracy (best minus worst), the
    base network's seed standard deviation of validation accuracy (20 epochs) and ``noise``, 1.96 √2 times
    it: how far two single runs of one setting differ by chance 95% of the time."""
    check = tuning_check(table)
    rows = []
    for (dataset, epochs), group in check.groupby(["dataset", "epochs"], sort=False):
        ordered = group.sort_values("val_acc", ascending=False)
        defaults = group[group["setting"] == "the study's defaults"]
        sd, _ = base_seed_sd(table, dataset, "val_acc")
        rows.append({"dataset": dataset, "epochs": int(epochs), "settings": len(group),
                     "has_defaults": not defaults.empty,
                     "defaults_rank": int((group["val_acc"] > defaults["val_acc"].iloc[0]).sum()) + 1
                     if not defaults.empty else 0,
                     "chosen_by_val": group.loc[group["best_by_val"], "setting"].iloc[0],
                     "chosen_by_test": group.loc[group["best_by_test"], "setting"].iloc[0],
                     "defaults_below_best": float(ordered["val_acc"].iloc[0] - defaults["val_acc"].iloc[0])
                     if not defaults.empty else math.nan,
                     "margin": float(ordered["val_acc"].iloc[0] - ordered["val_acc"].iloc[1])
                     if len(group) > 1 else math.nan,
                     "spread": float(ordered["val_acc"].iloc[0] - ordered["val_acc"].iloc[-1]),
                     "seed_sd": sd, "noise": 1.96 * math.sqrt(2) * sd})
    return pd.DataFrame(rows, columns=["dataset", "epochs", "settings", "has_defaults", "defaults_rank",
                                       "chosen_by_val", "chosen_by_test", "defaults_below_best", "margin", "spread",
                                       "seed_sd", "noise"])


def ordinal(n: int) -> str:
    """``first``, ``second``, ``third``, then ``4th``, ``11th``, ``22nd``."""
    words = {1: "first", 2: "second", 3: "third"}
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return words.get(n, f"{n}{suffix}")


def tuning_sentences(table: pd.DataFrame) -> list[str]:
    """What the tuning runs can and cannot say about the study's defaults, in sentences computed from
    :func:`tuning_groups`: whether validation and test choose alike, which groups hold the defaults at all,
    how far the defaults are from the best there, and whether that is more than two single runs differ by
    chance."""
    groups = tuning_groups(table)
    if groups.empty:
        return ["No tuning run has finished yet."]
    name = {(r.dataset, r.epochs): f"{R.DATASET_NAMES[r.dataset]} at {r.epochs} epochs" for r in groups.itertuples()}
    same = int((groups["chosen_by_val"] == groups["chosen_by_test"]).sum())
    lines = [f"Validation and test accuracy choose the same setting in {same} of the {len(groups)} tuning groups "
             f"(a dataset and a budget, one seed per setting)."]
    without = [name[(r.dataset, r.epochs)] for r in groups.itertuples() if not r.has_defaults]
    if without:
        many = len(without) > 1
        lines.append(f"The group{'s' if many else ''} {join_words(without)} {'do' if many else 'does'} not contain the "
                     f"study's defaults: {'they say' if many else 'it says'} nothing about them.")
    verdicts = []
    for r in groups[groups["has_defaults"]].itertuples():
        where = f"{name[(r.dataset, r.epochs)]} ({r.settings} settings)"
        if r.defaults_rank == 1:
            text = f"In {where}, validation ranks the study's defaults first, {100 * r.margin:.2f} points above the next"
            gap = r.margin
        else:
            text = (f"In {where}, validation ranks the study's defaults {ordinal(r.defaults_rank)} of {r.settings}, "
                    f"{100 * r.defaults_below_best:.2f} points below the best ({r.chosen_by_val})")
            gap = r.defaults_below_best
        text += f"; the whole group spans {100 * r.spread:.2f} points"
        if math.isnan(r.noise):
            lines.append(text + ".")
            continue
        beyond = gap > r.noise
        verdicts.append(beyond)
        lines.append(f"{text}. One seed per setting: the base network's validation accuracy on "
                     f"{R.DATASET_NAMES[r.dataset]} varies from seed to seed with a standard deviation of "
                     f"{100 * r.seed_sd:.2f} points (20 epochs; the tuning runs are shorter), so two single runs "
                     f"differ by up to {100 * r.noise:.2f} points by chance (1.96 √2 standard deviations): the "
                     f"defaults' place is {'beyond' if beyond else 'within'} that.")
    if verdicts and not any(verdicts):
        lines.append("The tuning neither favours nor disfavours the study's defaults: within seed noise, it cannot "
                     "tell them from the settings tried.")
    elif not verdicts:
        lines.append("No tuning group with the study's defaults can be weighed against seed noise yet.")
    return lines


# ---------------------------------------------------------------- C3: rankings of hidden neurons


def secondary_table(tests: Sequence[Test]) -> str:
    """Markdown: the tests of the study's own questions that have data, one row each: dataset, question,
    metric, seeds, difference with its 95% interval (accuracies in percentage points), Holm's p, label."""
    rows = []
    for t in tests:
        if t.label == "no data":
            continue
        scale, digits, _ = difference_format(t.metric)
        rows.append([R.DATASET_NAMES.get(t.dataset, t.dataset), _question(t), R.METRIC_NAMES.get(t.metric, t.metric),
                     f"{t.n_variant} vs {t.n_base}", R.signed_interval(t.difference, t.ci_low, t.ci_high, scale, digits),
                     R.p_text(t.p_holm), t.label])
    return R.markdown_table(["dataset", "comparison", "metric", "seeds", "difference [95% CI]", "p (Holm)", "label"],
                            rows) if rows else "_No test has its data yet._"


