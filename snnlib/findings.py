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

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from . import analysis
from . import preregistration as P
from . import records as R
from .claims import ALPHA, Claims, Test, agreement, apply_holm, kind_name, welch_test
from .dropout import KINDS

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

DROPOUT_KINDS = tuple(k for k in KINDS if k != "none")
SITE_WORDS = {"current": "the synaptic current", "hidden": "the hidden spikes", "input": "the input spikes"}
# seeds per cell of grids/rates.json and grids/budget.json (tests/test_findings.py reads the files)
QUESTION_SEEDS = 3
# the paper's Table 2, the network without dropout: its top-10 hidden neuron IDs as printed
PAPER_TABLE2_BASE = (9, 8, 3, 2, 0, 1, 4, 5, 6, 7)
CONTROL_LABEL = "control (no dropout, other sample order)"
OTHER_SEED_LABEL = "base run of another seed (chance)"
HIDDEN = int(R.STUDY_SETTINGS["network.hidden"])  # the hidden neurons a ranking orders


def join_words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}" if items else ""


def seed_text(seeds: Iterable[int]) -> str:
    """Seeds as ranges, sorted and each once: ``0-4``, ``0, 2, 5-7``, ``3, 4``."""
    ordered = sorted({int(s) for s in seeds})
    parts = []
    for _, run in itertools.groupby(enumerate(ordered), key=lambda pair: pair[1] - pair[0]):
        values = [v for _, v in run]
        parts.append(f"{values[0]}-{values[-1]}" if len(values) > 2 else ", ".join(map(str, values)))
    return ", ".join(parts)


def _scale(metric: str) -> tuple[float, int, str]:
    """(scale, decimals, unit of a difference) of a metric: accuracies in percentage points."""
    return (100.0, 2, " points") if metric in R.ACCURACY_METRICS else (1.0, 4, "")


def kind_label(site: str, kind: str) -> str:
    """A kind's name at ``site`` with the kinds that are the same operation there
    (``snnlib.preregistration.SAME_OPERATION``): ``dropout2d = feature dropout`` on the current."""
    if kind == "none":
        return R.KIND_NAMES["none"]
    same = [k for k in DROPOUT_KINDS if k != kind and P.operation(site, k) == P.operation(site, kind)]
    return " = ".join(R.KIND_NAMES[k] for k in (kind, *same))


def same_operation_sentence() -> str:
    """Which kinds are one operation at which site (``snnlib.preregistration.SAME_OPERATION``), in words."""
    phrases: dict[str, list[str]] = {}
    for site in P.SITES:
        groups: dict[str, list[str]] = {}
        for (where, kind), stands in P.SAME_OPERATION.items():
            if where == site:
                groups.setdefault(stands, []).append(kind)
        if groups:
            text = "; ".join(f"{join_words([R.KIND_NAMES[k] for k in kinds])} {'is' if len(kinds) == 1 else 'are'} "
                             f"the same operation as {R.KIND_NAMES[stands]}" for stands, kinds in groups.items())
            phrases.setdefault(text, []).append(SITE_WORDS[site])
    clauses = [f"on {join_words(sites)}, {text}" for text, sites in phrases.items()]
    sentence = "; ".join(clauses)
    return (sentence[:1].upper() + sentence[1:] + ". Their runs would be identical number for number, so the study "
            "runs each operation once and its runs stand for every kind it names.")


def missing_seeds(table: pd.DataFrame, dataset: str, kind: str, site: str = "current") -> tuple[int, ...]:
    """The planned seeds (``snnlib.preregistration.planned_seeds``) of a cell (p = 0.5, a new mask
    every step, 20 epochs) without a finished run; a kind that is another's operation reads that kind's runs."""
    done = set(R.cell_runs(table, dataset, P.operation(site, kind), site=site)["seed"].astype(int))
    return tuple(s for s in P.planned_seeds(dataset, kind, site) if s not in done)


def waiting_for_sites(table: pd.DataFrame, datasets: Sequence[str] = P.DATASETS,
                      sites: Sequence[str] = P.SITES) -> str:
    """One line naming the planned runs of the base network and of every distinct kind at ``sites`` that have
    no finished record yet (``waiting for: every kind on the hidden spikes ...; CIFAR-10 seeds 5-9 of the
    base network and of dropout ... on the synaptic current``), or ``""`` when none is missing."""
    empty_sites = []
    groups: dict[tuple[str, tuple[int, ...]], dict[str, list[str]]] = {}
    for dataset in datasets:
        seeds = missing_seeds(table, dataset, "none")
        if seeds:
            groups.setdefault((dataset, seeds), {})["base"] = []
    for site in sites:
        cells = [(d, k) for d in datasets for k in P.distinct(site, DROPOUT_KINDS)]
        missing = {cell: missing_seeds(table, cell[0], cell[1], site) for cell in cells}
        if all(missing[(d, k)] == P.planned_seeds(d, k, site) for d, k in cells):
            empty_sites.append(SITE_WORDS[site])
            continue
        for (dataset, kind), seeds in missing.items():
            if seeds:
                groups.setdefault((dataset, seeds), {}).setdefault(site, []).append(kind_label(site, kind))
    parts = [f"every kind on {join_words(empty_sites)} ({join_words([R.DATASET_NAMES[d] for d in datasets])})"
             ] if empty_sites else []
    for (dataset, seeds), by_site in groups.items():
        named = ["the base network" if site == "base" else f"{join_words(kinds)} on {SITE_WORDS[site]}"
                 for site, kinds in by_site.items()]
        parts.append(f"{R.DATASET_NAMES[dataset]} seed{'s' if len(seeds) > 1 else ''} {seed_text(seeds)} of "
                     f"{' and of '.join(named)}")
    return f"waiting for: {'; '.join(parts)}" if parts else ""


def sites_with_runs(table: pd.DataFrame, dataset: str, sites: Sequence[str] = P.SITES) -> list[str]:
    """The sites at which some dropout kind has a finished study run on ``dataset`` (p = 0.5, per step)."""
    return [s for s in sites if any(len(R.cell_runs(table, dataset, k, site=s)) for k in P.distinct(s, DROPOUT_KINDS))]


def _cell(values: pd.Series, metric: str, with_n: bool = True) -> str:
    scale, digits, _ = _scale(metric)
    values = values.astype(float).dropna()
    return f"{R.mean_std(values, scale, digits)}" + (f" ({len(values)})" if with_n else "") if len(values) else "waiting"


def site_matrix(table: pd.DataFrame, dataset: str, metric: str = "test_acc") -> str:
    """Markdown: the base network's last-epoch ``metric`` on ``dataset`` (mean ± std, seeds) in a line, then
    a table with a row per dropout kind and a column per site at which ``dataset`` has runs (at least the
    current); each cell mean ± std (seeds); a kind that is another's operation at a site says so
    (``= dropout2d``); a planned cell without runs says ``waiting``. The compact table of the results
    chapter."""
    sites = sites_with_runs(table, dataset) or ["current"]
    name = f"{R.METRIC_NAMES[metric]}{' (%)' if metric in R.ACCURACY_METRICS else ''}"
    head = [f"{name}: mean ± std (seeds)", *(f"on {SITE_WORDS[s]}" for s in sites)]
    rows = []
    for kind in DROPOUT_KINDS:
        cells = [f"= {R.KIND_NAMES[P.operation(s, kind)]}" if P.operation(s, kind) != kind
                 else _cell(R.cell_runs(table, dataset, kind, site=s)[metric], metric) for s in sites]
        rows.append([R.KIND_NAMES[kind], *cells])
    base = _cell(R.base_runs(table, dataset)[metric], metric)
    return f"The base network, {name}: {base}.\n\n" + R.markdown_table(head, rows)


def site_full_table(table: pd.DataFrame, dataset: str, metrics: Sequence[str] = R.SITE_TABLE_METRICS) -> str:
    """Markdown: the final numbers of every cell of ``dataset`` with runs (p = 0.5, a new mask every step,
    20 epochs; the base network first): kind, site, seeds and each of ``metrics`` as mean ± std."""
    study = R.study_runs(table)
    chosen = study[(study["dataset"] == dataset) & (study["mask"] == "step")
                   & ((study["p"] == 0.5) | (study["variant"] == "none"))]
    if chosen.empty:
        return f"_No finished run of {R.DATASET_NAMES[dataset]} yet._"
    rows = []
    for _, r in R.summary(chosen, metrics).iterrows():
        none = r["variant"] == "none"
        cells = []
        for m in metrics:
            scale, digits, _ = _scale(m)
            mean, std = r[f"{m}_mean"] * scale, r[f"{m}_std"] * scale
            cells.append(f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}")
        rows.append([R.KIND_NAMES[r["variant"]], "-" if none else r["site"], r["n"], *cells])
    head = ["kind", "site", "seeds", *(R.METRIC_NAMES[m] + (" (%)" if m in R.ACCURACY_METRICS else "")
                                       for m in metrics)]
    return R.markdown_table(head, rows)


def differences_sentence(table: pd.DataFrame, dataset: str, metric: str = "test_acc") -> str:
    """The last epoch's ``metric`` of the base network on ``dataset`` and, at each site with runs, each
    distinct kind's mean minus the base network's (seeds in brackets), in one sentence."""
    name, (scale, digits, unit) = R.DATASET_NAMES[dataset], _scale(metric)
    base = R.base_runs(table, dataset)[metric].astype(float).dropna()
    if base.empty:
        return f"{name}: no finished run of the base network yet."
    percent = "%" if metric in R.ACCURACY_METRICS else ""
    text = f"{name}: {R.METRIC_NAMES[metric]} of the base network {R.mean_std(base, scale, digits)}{percent} " \
           f"({len(base)} seeds)"
    parts = []
    for site in P.SITES:
        items = []
        for kind in P.distinct(site, DROPOUT_KINDS):
            values = R.cell_runs(table, dataset, kind, site=site)[metric].astype(float).dropna()
            if len(values):
                items.append(f"{kind_label(site, kind)} {(values.mean() - base.mean()) * scale:+.{digits}f}"
                             f"{'' if items or parts else unit} ({len(values)})")
        if items:
            parts.append(f"on {SITE_WORDS[site]}, {', '.join(items)}")
    if not parts:
        return f"{text}; no dropout run yet."
    return f"{text}; the kinds' means minus the base network's: {'; '.join(parts)}."


def above_base(table: pd.DataFrame, dataset: str, metric: str) -> tuple[int, int]:
    """(how many distinct kind-and-site cells with runs end with a mean ``metric`` above the base network's,
    how many cells have runs) on ``dataset``; (0, 0) without base runs."""
    base = R.base_runs(table, dataset)[metric].astype(float).dropna()
    above = total = 0
    if base.empty:
        return 0, 0
    for site in P.SITES:
        for kind in P.distinct(site, DROPOUT_KINDS):
            values = R.cell_runs(table, dataset, kind, site=site)[metric].astype(float).dropna()
            if len(values):
                total += 1
                above += bool(values.mean() > base.mean())
    return above, total


def loss_sentence(table: pd.DataFrame, dataset: str) -> str:
    """In how many cells of ``dataset`` the training loss with dropout on (the paper's), with dropout off and
    the test loss end above the base network's, in one sentence."""
    counts = {m: above_base(table, dataset, m) for m in ("train_loss", "train_eval_loss", "test_loss")}
    total = counts["train_loss"][1]
    if not total:
        return f"{R.DATASET_NAMES[dataset]}: no dropout run and base run to compare yet."
    return (f"{R.DATASET_NAMES[dataset]}: of the {total} kind-and-site cells with runs, the training loss ends above "
            f"the base network's in {counts['train_loss'][0]} when measured with dropout on (the paper's measure), "
            f"in {counts['train_eval_loss'][0]} when measured with dropout off, and the test loss in "
            f"{counts['test_loss'][0]}.")


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
    scale, digits, unit = _scale(metric)
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
    scale, digits, unit = _scale(test.metric)
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
                scale, digits, unit = _scale(t.metric)
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

def low_ids(importances: dict[int, Sequence[float]], k: int = P.TOP_K) -> dict[int, int]:
    """{seed: how many of the top ``k`` neurons have an ID below ``k``} (the paper's row for the network
    without dropout, :data:`PAPER_TABLE2_BASE`, has all ``k``; chance expects ``k^2 / n``)."""
    return {seed: sum(i < k for i in analysis.top_k(values, k)) for seed, values in sorted(importances.items())}


def table2_sentence(table: pd.DataFrame, k: int = P.TOP_K) -> str:
    """The paper's Table 2 row for the network without dropout against chance and the study's base runs."""
    ids = ", ".join(map(str, PAPER_TABLE2_BASE))
    text = (f"The paper lists {ids} as the top {k} of the network without dropout: the set of IDs 0 to {k - 1}, "
            f"in another order. If a ranking carried no information about the IDs, one given set of {k} of "
            f"{HIDDEN} neurons would be the top {k} with probability 1/C({HIDDEN}, {k}) = "
            f"{analysis.chance_of_top_k_set(HIDDEN, k):.1e}.")
    counts = {d: low_ids(R.per_neuron(R.base_runs(table, d), "hidden_importance"), k) for d in R.DATASETS}
    values = [c for d in R.DATASETS for c in counts[d].values()]
    if not values:
        return text + " The study's base runs have not finished yet."
    runs = join_words([f"{len(counts[d])} of {R.DATASET_NAMES[d]}" for d in R.DATASETS if counts[d]])
    return (text + f" In the study's {len(values)} base runs ({runs}), at most {max(values)} of the top {k} have an "
            f"ID below {k} (mean {np.mean(values):.1f}; chance expects {k * k / HIDDEN:.2f}).")


def table2_redone(table: pd.DataFrame, dataset: str, seed: int = 0, k: int = P.TOP_K) -> str:
    """Markdown: the top ``k`` hidden neuron IDs (most important first, the paper's measure) of the base run
    of ``seed``, of the C3 control that starts from its initial weights, and of each distinct dropout
    operation at the current of the same seed; an ID in the base run's top ``k`` is bold; the last row
    counts them."""
    columns = {R.KIND_NAMES["none"]: R.per_neuron(R.base_runs(table, dataset), "hidden_importance"),
               "control": R.per_neuron(R.control_runs(table, dataset), "hidden_importance")}
    for kind in P.C3_KINDS:
        columns[kind_label("current", kind)] = R.per_neuron(R.cell_runs(table, dataset, kind), "hidden_importance")
    ranked = {label: analysis.top_k(by_seed[seed], k) for label, by_seed in columns.items() if seed in by_seed}
    base_label = R.KIND_NAMES["none"]
    if base_label not in ranked:
        return f"_{R.DATASET_NAMES[dataset]}: no finished base run of seed {seed} yet._"
    base_top = set(ranked[base_label])
    rows = [[i + 1, *(f"**{ids[i]}**" if label != base_label and ids[i] in base_top else ids[i]
                      for label, ids in ranked.items())] for i in range(k)]
    rows.append(["shared with the base run", *("" if label == base_label else len(set(ids) & base_top)
                                                for label, ids in ranked.items())])
    return R.markdown_table(["rank", *ranked], rows)


def agreement_values(table: pd.DataFrame, dataset: str, measure: str = "hidden_importance",
                     statistic: str = "kendall_tau") -> dict[str, list[float]]:
    """How well rankings agree with a base run (:func:`snnlib.claims.agreement`), every finished seed: each
    distinct dropout operation at the current and the C3 control against the base run whose initial weights
    they share, and every pair of base runs of different seeds (unrelated IDs: the chance level). Keys: the
    kinds' labels, :data:`CONTROL_LABEL`, :data:`OTHER_SEED_LABEL`."""
    base = R.per_neuron(R.base_runs(table, dataset), measure)

    def against_base(runs: dict[int, list[float]]) -> list[float]:
        return [agreement(statistic, base[s], runs[s]) for s in sorted(set(base) & set(runs))]

    values = {kind_label("current", kind): against_base(R.per_neuron(R.cell_runs(table, dataset, kind), measure))
              for kind in P.C3_KINDS}
    values[CONTROL_LABEL] = against_base(R.per_neuron(R.control_runs(table, dataset), measure))
    values[OTHER_SEED_LABEL] = [agreement(statistic, base[a], base[b])
                                for a, b in itertools.combinations(sorted(base), 2)]
    return values


def c3_summary(claims: Claims, dataset: str, measure: str = "hidden_importance") -> pd.DataFrame:
    """Per kind, the C3 tests of ``dataset`` and ``measure`` that have their data: the pairs (base seeds),
    in how many the top ``k`` of the kind's run and of the control differ from the base run's, the mean
    top-``k`` overlap and Kendall tau of each with the base run, and each test's label."""
    rows: dict[str, dict] = {}
    for t in claims.tests:
        if t.claim != "C3" or t.dataset != dataset or t.measure != measure or t.missing:
            continue
        kind, control = np.asarray(t.detail["kind_values"], float), np.asarray(t.detail["control_values"], float)
        row = rows.setdefault(t.kind, {"kind": kind_name(t), "pairs": len(kind)})
        if t.metric == "top10_overlap":
            row.update(changed=int((kind < P.TOP_K).sum()), control_changed=int((control < P.TOP_K).sum()),
                       overlap=float(kind.mean()), control_overlap=float(control.mean()), overlap_label=t.label)
        else:
            row.update(tau=float(kind.mean()), control_tau=float(control.mean()), tau_label=t.label)
    return pd.DataFrame(list(rows.values()), columns=["kind", "pairs", "changed", "control_changed", "overlap",
                                                      "control_overlap", "overlap_label", "tau", "control_tau",
                                                      "tau_label"])


def _by_label(summary: pd.DataFrame, column: str, value: str, digits: int) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for r in summary.itertuples():
        groups.setdefault(getattr(r, f"{column}_label"), []).append(f"{r.kind} {getattr(r, value):.{digits}f}")
    return groups


def _label_clauses(groups: dict[str, list[str]]) -> str:
    words = {"not significant": "not significantly different from the control's",
             "yes": "lower than the control's (significant after Holm)",
             "contrary": "higher than the control's (significant after Holm)"}
    return "; ".join(f"{join_words(items)}: {words[label]}" for label, items in groups.items() if label in words)


def c3_sentences(claims: Claims, dataset: str = "mnist", measure: str = "hidden_importance") -> list[str]:
    """What the C3 tests of ``dataset`` say (the dataset is not named: the caller heads the sentences with
    it), in sentences computed from :func:`c3_summary`: whether "the top
    10 changed" tells dropout from training noise (the control's top 10 changes too), what the top-10
    overlap and Kendall's tau say against the control, which kinds only tau separates, and what the
    control says about the paper's premise."""
    summary = c3_summary(claims, dataset, measure)
    k = P.TOP_K
    if summary.empty or summary["overlap"].isna().all() or summary["tau"].isna().all():
        return ["The tests of C3 wait for their runs."]
    widest = summary.loc[summary["pairs"].idxmax()]
    control_n, control_changed = int(widest["pairs"]), int(widest["control_changed"])
    changed, pairs = int(summary["changed"].sum()), int(summary["pairs"].sum())
    lines = [f"The top {k} of a dropout run differs from its base run's in {changed} of {pairs} pairs "
             f"({join_words(list(summary['kind']))}); the control's top {k}, trained without dropout, differs from "
             f"its base run's in {control_changed} of {control_n}"
             + (f": that the top {k} changed cannot tell dropout from training noise." if control_changed == control_n
                else ".")]
    lines.append(f"The top-{k} overlap with the base run is {widest['control_overlap']:.1f} of {k} for the control "
                 f"(mean over seeds); " + _label_clauses(_by_label(summary, "overlap", "overlap", 1)) + ".")
    lines.append(f"Kendall's tau over all {HIDDEN} neurons is {widest['control_tau']:.2f} for the control; "
                 + _label_clauses(_by_label(summary, "tau", "tau", 2)) + ".")
    only_tau = [r.kind for r in summary.itertuples() if r.tau_label == "yes" and r.overlap_label != "yes"]
    if only_tau:
        lines.append(f"For {join_words(only_tau)}, only the rank agreement over all {HIDDEN} neurons tells the "
                     f"dropout runs from the control; the top {k} does not.")
    if control_changed:
        lines.append(f"Without dropout, the control shares {widest['control_overlap']:.1f} of its base run's top {k} "
                     f"and keeps its ranking only to tau = {widest['control_tau']:.2f}: the ranking changes without "
                     f"dropout too, which contradicts the paper's premise that a changed ranking shows what dropout "
                     f"does.")
    return lines


def c3_secondary_sentence(claims: Claims) -> str:
    """How many C3 tests of the secondary measure (the accuracy lost when a neuron is silenced) have data and
    how many of them are significant after Holm, in one sentence."""
    measure = list(P.C3_MEASURES)[1]
    tests = [t for t in claims.tests if t.claim == "C3" and t.measure == measure]
    done = [t for t in tests if not t.missing]
    significant = [t for t in done if t.label in ("yes", "contrary")]
    text = (f"By the {P.C3_MEASURES[measure]} (secondary), {len(significant)} of the {len(done)} tests with data "
            f"{'is' if len(done) == 1 else 'are'} significant after Holm")
    if significant:
        text += ": " + "; ".join(f"{R.DATASET_NAMES[t.dataset]} {kind_name(t)}, {P.C3_STATISTICS[t.metric]} "
                                 f"({t.label})" for t in significant)
    waiting = len(tests) - len(done)
    return text + (f"; {waiting} wait for runs" if waiting else "") + "."


def measure_agreement(table: pd.DataFrame, k: int = P.TOP_K) -> str:
    """Markdown: within each run, how well the two importance measures agree (Kendall tau over all neurons,
    top-``k`` overlap), mean ± std over seeds (runs), per kind at the current and dataset; rows of kinds
    without runs are left out."""
    head = ["kind"] + [f"{R.DATASET_NAMES[d]}: {what}" for d in R.DATASETS for what in ("tau", f"top-{k} overlap")]
    rows = []
    for kind in ("none", *P.C3_KINDS):
        cells = []
        for dataset in R.DATASETS:
            runs = R.cell_runs(table, dataset, kind)
            l1, silencing = R.per_neuron(runs, "hidden_importance"), R.per_neuron(runs, "hidden_silencing_drop")
            seeds = sorted(set(l1) & set(silencing))
            taus = [analysis.kendall_tau(l1[s], silencing[s]) for s in seeds]
            overlaps = [analysis.top_k_overlap(l1[s], silencing[s], k) for s in seeds]
            cells += [f"{R.mean_std(taus)} ({len(seeds)})" if seeds else "waiting",
                      R.mean_std(overlaps, 1, 1) if seeds else "waiting"]
        if any(cell != "waiting" for cell in cells):
            rows.append([kind_label("current", kind), *cells])
    return R.markdown_table(head, rows) if rows else "_No finished run yet._"


def spike_table(table: pd.DataFrame) -> str:
    """Markdown: hidden spikes per sample in training and at test, and synaptic events per test sample
    (thousands), mean ± std over seeds, for the base network and every distinct cell with runs."""
    rows = []
    for dataset in R.DATASETS:
        cells = [("none", "current")] + [(k, s) for s in P.SITES for k in P.distinct(s, DROPOUT_KINDS)]
        for kind, site in cells:
            runs = R.cell_runs(table, dataset, kind, site=site)
            if runs.empty:
                continue
            rows.append([R.DATASET_NAMES[dataset], kind_label(site, kind), "-" if kind == "none" else site, len(runs),
                         R.mean_std(runs["train_hidden_spikes"], 1, 1), R.mean_std(runs["test_hidden_spikes"], 1, 1),
                         R.mean_std(runs["test_synaptic_events"] / 1e3, 1, 1)])
    return R.markdown_table(["dataset", "kind", "site", "seeds", "hidden spikes (training)", "hidden spikes (test)",
                             "synaptic events (test, thousands)"], rows) if rows else "_No finished run yet._"


def secondary_table(tests: Sequence[Test]) -> str:
    """Markdown: the tests of the study's own questions that have data, one row each: dataset, question,
    metric, seeds, difference with its 95% interval (accuracies in percentage points), Holm's p, label."""
    rows = []
    for t in tests:
        if t.label == "no data":
            continue
        scale, digits, _ = _scale(t.metric)
        rows.append([R.DATASET_NAMES.get(t.dataset, t.dataset), _question(t), R.METRIC_NAMES.get(t.metric, t.metric),
                     f"{t.n_variant} vs {t.n_base}", R.signed_interval(t.difference, t.ci_low, t.ci_high, scale, digits),
                     R.p_text(t.p_holm), t.label])
    return R.markdown_table(["dataset", "comparison", "metric", "seeds", "difference [95% CI]", "p (Holm)", "label"],
                            rows) if rows else "_No test has its data yet._"


def c3_table(claims: Claims, measure: str = "hidden_importance") -> str:
    """Markdown: the C3 tests of ``measure`` that have data: dataset, kind, statistic, the kind's and the
    control's mean agreement with the base run, the difference with its 95% interval, Holm's p, label."""
    rows = []
    for t in claims.tests:
        if t.claim != "C3" or t.measure != measure or t.missing:
            continue
        digits = 1 if t.metric == "top10_overlap" else 2
        rows.append([R.DATASET_NAMES.get(t.dataset, t.dataset), kind_name(t), P.C3_STATISTICS[t.metric],
                     f"{t.variant_mean:.{digits}f} / {t.base_mean:.{digits}f}",
                     R.signed_interval(t.difference, t.ci_low, t.ci_high, 1.0, 2), R.p_text(t.p_holm), t.label])
    return R.markdown_table(["dataset", "kind", "statistic", "kind / control", "difference [95% CI]", "p (Holm)",
                             "label"], rows) if rows else "_No test of C3 has its data yet._"


def base_top_k_table(table: pd.DataFrame, k: int = P.TOP_K) -> str:
    """Markdown: the top ``k`` hidden neuron IDs of every base run by the paper's measure, and how many of
    them are below ``k`` (:func:`low_ids`)."""
    rows = []
    for dataset in R.DATASETS:
        importances = R.per_neuron(R.base_runs(table, dataset), "hidden_importance")
        counts = low_ids(importances, k)
        rows += [[R.DATASET_NAMES[dataset], seed, ", ".join(map(str, analysis.top_k(importances[seed], k))),
                  counts[seed]] for seed in sorted(importances)]
    return R.markdown_table(["dataset", "base seed", f"top {k}, most important first", f"IDs below {k}"],
                            rows) if rows else "_No finished base run yet._"


def same_operation_check(table: pd.DataFrame) -> str:
    """Where a kind that is another's operation (``snnlib.preregistration.SAME_OPERATION``) has runs of
    its own (the study's first editions ran feature dropout on the current), whether each of its seeds has
    the same numbers as the other kind's run of that seed (:func:`snnlib.records.same_numbers`), in one
    sentence; ``""`` when no such pair of runs exists."""
    parts = []
    for (site, kind), stands in P.SAME_OPERATION.items():
        counts = []
        for dataset in R.DATASETS:
            own = {int(r.seed): r.record for r in R.cell_runs(table, dataset, kind, site=site).itertuples()}
            other = {int(r.seed): r.record for r in R.cell_runs(table, dataset, stands, site=site).itertuples()}
            seeds = sorted(set(own) & set(other))
            if seeds:
                same = sum(R.same_numbers(own[s], other[s]) for s in seeds)
                counts.append(f"{same} of {len(seeds)} seeds on {R.DATASET_NAMES[dataset]}")
        if counts:
            parts.append(f"{R.KIND_NAMES[kind]} and {R.KIND_NAMES[stands]} on {SITE_WORDS[site]}: the same numbers in "
                         f"{join_words(counts)}")
    return f"Where both kinds of one operation have runs: {'; '.join(parts)}." if parts else ""
