"""The paper's three claims, tested on run records by the rules of :mod:`snnlib.study.preregistration`.

* **C1**: dropout and dropout2d give a higher training loss and a lower test accuracy than
  the base network, on MNIST and on CIFAR-10.
* **C2**: feature dropout and alpha dropout make the network lose its ability to train and
  predict.
* **C3**: dropout changes which hidden neurons are most important (the paper's Table 2).

:func:`evaluate_claims` makes every planned test of :func:`snnlib.study.preregistration.design` on the
records: the difference (kind minus reference; C2: the kind's mean minus the 20% cut-off), its 95%
interval, the t-test's two-sided p and the exact permutation (or sign-flip) p as a check, Holm's
correction within the test's family of fixed size, and a label: *yes* (significant, in the claimed
direction), *contrary* (significant, the other way), *not significant* (whatever the sign), *no data*
(a planned run is missing). :func:`combine` turns the labels of a claim's primary tests into its
verdict: reproduced, partly reproduced, mixed, contrary, not reproduced or not enough data. Secondary
tests get labels by the same rule and never enter a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study import stats
from snnlib.study.preregistration import ALPHA, C2_READINGS, C3_MEASURES, C3_STATISTICS, SITES, TOP_K, TestSpec

LABELS = ("yes", "contrary", "not significant", "no data")
VERDICTS = ("reproduced", "partly reproduced", "mixed", "contrary", "not reproduced", "not enough data")
TEST_NAMES = {"welch": "Welch's t-test", "one_sample": "one-sample t-test against 20%",
              "paired": "paired t-test over base seeds"}


@dataclass
class Test:
    """One planned test and its outcome (a row of ``claims --json``'s ``tests``)."""

    claim: str
    role: str  # primary or secondary
    family: str
    dataset: str
    kind: str
    site: str
    metric: str
    direction: int  # the claimed direction: +1 higher, -1 lower
    test: str  # welch, one_sample, paired
    n_base: int  # the reference's runs (paired: pairs; one-sample: 0)
    n_variant: int
    difference: float  # variant mean minus reference mean (one-sample: minus the cut-off)
    ci_low: float
    ci_high: float
    p: float  # the t-test's two-sided p
    p_check: float  # the exact permutation (sign-flip) p, reported, never deciding
    p_holm: float = math.nan
    label: str = "no data"
    base_mean: float = math.nan
    variant_mean: float = math.nan
    measure: str = ""
    mask: str = "step"
    also: tuple[str, ...] = ()  # kinds that are the same operation here (one test for all)
    missing: list[str] = field(default_factory=list)  # planned runs not finished
    detail: dict = field(default_factory=dict)


@dataclass
class Verdict:
    """A claim's verdict over a scope of its primary tests."""

    claim: str
    site: str
    reading: str  # C2: a reading of "feature dropout"; C3: the measure; C1: the paper's metrics
    dataset: str  # a dataset, or "both"
    verdict: str
    counts: dict  # label -> number of primary tests


@dataclass
class Claims:
    """Every test, every verdict and the (fixed) family sizes."""

    tests: list[Test]
    verdicts: list[Verdict]
    families: dict[str, int]

    def primary(self, claim: str | None = None) -> list[Test]:
        return [t for t in self.tests if t.role == "primary" and claim in (None, t.claim)]

    def verdict(self, claim: str, site: str = "current", dataset: str = "both", reading: str | None = None) -> str:
        """The verdict of ``claim`` at ``site`` over ``dataset`` (or both), for ``reading`` (C2: the
        reading of "feature dropout"; default the first)."""
        for v in self.verdicts:
            if (v.claim, v.site, v.dataset) == (claim, site, dataset) and reading in (None, v.reading):
                return v.verdict
        raise KeyError(f"no verdict for {claim} at {site} over {dataset}")

    def to_json(self) -> dict:
        return {"alpha": ALPHA, "rules": "snnlib.study.preregistration",
                "tests": [_json(asdict(t)) for t in self.tests],
                "verdicts": [asdict(v) for v in self.verdicts], "families": self.families,
                "power": [_json(row) for row in P.power_table()]}


def _json(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else list(v) if isinstance(v, tuple) else v)
            for k, v in d.items()}


@dataclass(frozen=True)
class Choice:
    """How the claims' tests read the records. The default is the pre-registered reading, which decides every
    headline verdict; :mod:`snnlib.study.robustness` varies one field at a time (the addendum of 2026-12-06)."""

    cutoff: float = P.FAIL_ACCURACY  # C2: "cannot predict" at or below this accuracy
    epochs: int = 20  # the training budget of every side
    lr: Callable[[str, str], float] | None = None  # (dataset, kind) -> its learning rate; None: the study's 1e-3
    seeds: tuple[int, ...] | None = None  # C1 and C2: every side's seeds; None: the planned ones
    base_seeds: tuple[int, ...] | None = None  # C1 and C2: the base network's seeds; None: as ``seeds``
    p_value: str = "t"  # "t" (the registered test) or "permutation" (its exact check) before Holm
    c2_metrics: tuple[str, ...] | None = None  # C2's primary metrics; None: the registered two
    holm_over_data: bool = False  # Holm within a family over the tests that have data (else: its planned size)

    def rate(self, dataset: str, kind: str) -> float:
        return R.STUDY_LR if self.lr is None else self.lr(dataset, kind)


PRE_REGISTERED = Choice()


# ---------------------------------------------------------------- the rules

def test_label(difference: float, direction: int, p_holm: float, complete: bool = True,
               alpha: float = ALPHA) -> str:
    """A test's label: *yes* when significant after Holm (``p_holm < alpha``) in the claimed
    ``direction``, *contrary* when significant the other way, *not significant* otherwise (whatever
    the sign), *no data* when a planned run is missing (``complete`` false)."""
    if not complete or math.isnan(difference) or math.isnan(p_holm):
        return "no data"
    if p_holm < alpha and difference != 0:
        return "yes" if difference * direction > 0 else "contrary"
    return "not significant"


def combine(labels: Sequence[str]) -> str:
    """A claim's verdict from the labels of its primary tests (the rule of the pre-registration)."""
    if not labels or "no data" in labels:
        return "not enough data"
    yes, contrary = "yes" in labels, "contrary" in labels
    if all(label == "yes" for label in labels):
        return "reproduced"
    if yes and contrary:
        return "mixed"
    if yes:
        return "partly reproduced"
    if contrary:
        return "contrary"
    return "not reproduced"


def apply_holm(tests: list[Test], over_data: bool = False) -> None:
    """Sets each test's ``p_holm``: Holm's correction within each family, a test without data
    counting as p = 1 (the family keeps its planned size), or, ``over_data``, left out of it."""
    families: dict[str, list[Test]] = {}
    for t in tests:
        if not (over_data and t.missing):
            families.setdefault(t.family, []).append(t)
    for members in families.values():
        pvalues = [t.p if not t.missing else math.nan for t in members]
        for t, adjusted in zip(members, stats.holm(pvalues), strict=True):
            t.p_holm = adjusted


# ---------------------------------------------------------------- reading the records

def _runs(table: pd.DataFrame, dataset: str, kind: str, site: str, choice: Choice = PRE_REGISTERED) -> pd.DataFrame:
    return R.cell_runs(table, dataset, kind, site=site, epochs=choice.epochs, lr=choice.rate(dataset, kind))


def _planned(values: dict[int, object], seeds: Sequence[int], who: str, missing: list[str]) -> dict[int, object]:
    chosen = {s: values[s] for s in seeds if s in values}
    lacking = [s for s in seeds if s not in values]
    if lacking:
        missing.append(f"{who}: seed{'s' if len(lacking) > 1 else ''} {', '.join(map(str, lacking))}")
    return chosen


def agreement(statistic: str, a: Sequence[float], b: Sequence[float]) -> float:
    """How well two importance vectors of one seed agree: ``top10_overlap`` (shared IDs in the
    top 10) or ``kendall_tau`` (over all neurons)."""
    if statistic == "top10_overlap":
        return float(stats.top_k_overlap(a, b, TOP_K))
    if statistic == "kendall_tau":
        return stats.kendall_tau(a, b)
    raise ValueError(f"unknown agreement statistic {statistic!r}; allowed: {', '.join(C3_STATISTICS)}")


def make_test(spec: TestSpec, table: pd.DataFrame, choice: Choice = PRE_REGISTERED) -> Test:
    """The test of ``spec`` on the runs of ``table`` read by ``choice`` (unlabelled; :func:`evaluate_claims`
    labels)."""
    missing: list[str] = []
    detail: dict = {}
    kind_name = spec.runs_of
    seeds = choice.seeds or spec.seeds
    base_seeds = choice.base_seeds or choice.seeds or spec.reference_seeds
    if spec.test == "paired":
        base = R.per_neuron(R.base_runs(table, spec.dataset), spec.measure)
        runs = R.per_neuron(_runs(table, spec.dataset, kind_name, spec.site), spec.measure)
        control = R.per_neuron(R.control_runs(table, spec.dataset), spec.measure)
        base = _planned(base, spec.seeds, "base", missing)
        runs = _planned(runs, spec.seeds, kind_name, missing)
        control = _planned(control, spec.reference_seeds, "control (init seed)", missing)
        seeds = [s for s in spec.seeds if s in base and s in runs and s in control]
        reference = [agreement(spec.metric, base[s], control[s]) for s in seeds]
        variant = [agreement(spec.metric, base[s], runs[s]) for s in seeds]
        d = stats.paired(reference, variant)
        detail = {"seeds": seeds, "kind_values": variant, "control_values": reference}
    else:
        runs = R.by_seed(_runs(table, spec.dataset, kind_name, spec.site, choice), spec.metric)
        variant = list(_planned(runs, seeds, kind_name, missing).values())
        if spec.test == "one_sample":
            d = stats.one_sample(variant, choice.cutoff)
            reference = []
        else:
            base = R.by_seed(_runs(table, spec.dataset, "none", spec.site, choice), spec.metric)
            reference = list(_planned(base, base_seeds, "base", missing).values())
            d = stats.compare(reference, variant)
    return Test(spec.claim, spec.role, spec.family, spec.dataset, spec.kind, spec.site, spec.metric, spec.direction,
                spec.test, d.n_base, d.n_variant, d.diff, d.ci_low, d.ci_high, d.welch_p, d.permutation_p,
                base_mean=float(np.mean(reference)) if len(reference) else
                (choice.cutoff if spec.test == "one_sample" else math.nan),
                variant_mean=float(np.mean(variant)) if len(variant) else math.nan,
                measure=spec.measure, also=spec.also, missing=missing, detail=detail)


def welch_test(claim: str, family: str, dataset: str, kind: str, site: str, metric: str,
               reference: dict[int, float], variant: dict[int, float], mask: str = "step", **detail: object) -> Test:
    """A secondary comparison outside the claims (the study's own questions, the uncertainty tables):
    ``variant``'s values against ``reference``'s (each keyed by seed) by Welch's test, unlabelled, no
    claimed direction."""
    d = stats.compare(list(reference.values()), list(variant.values()))
    return Test(claim, "secondary", family, dataset, kind, site, metric, 0, "welch", d.n_base, d.n_variant, d.diff,
                d.ci_low, d.ci_high, d.welch_p, d.permutation_p,
                base_mean=float(np.mean(list(reference.values()))) if reference else math.nan,
                variant_mean=float(np.mean(list(variant.values()))) if variant else math.nan, mask=mask,
                detail=dict(detail))


# ---------------------------------------------------------------- all of it

def _verdicts(tests: list[Test]) -> list[Verdict]:
    verdicts = []

    def add(claim: str, site: str, reading: str, chosen: list[Test]) -> None:
        for dataset in ("both", *P.DATASETS):
            scope = [t for t in chosen if dataset in ("both", t.dataset)]
            labels = [t.label for t in scope]
            verdicts.append(Verdict(claim, site, reading, dataset, combine(labels),
                                    {label: labels.count(label) for label in LABELS}))

    primary = [t for t in tests if t.role == "primary"]
    for site in SITES:
        add("C1", site, "the paper's metrics", [t for t in primary if t.claim == "C1" and t.site == site])
    for site in SITES:
        for reading, kinds in C2_READINGS.items():
            add("C2", site, reading, [t for t in primary if t.claim == "C2" and t.site == site and t.kind in kinds])
    measure = next(iter(C3_MEASURES))
    add("C3", "current", C3_MEASURES[measure], [t for t in primary if t.claim == "C3"])
    return verdicts


def evaluate_claims(records_or_table: Iterable[dict] | pd.DataFrame, choice: Choice = PRE_REGISTERED) -> Claims:
    """Every planned test, labelled, and every verdict, for the records (or a :func:`records.runs_table`), read
    the pre-registered way or by another ``choice``."""
    table = records_or_table if isinstance(records_or_table, pd.DataFrame) else R.runs_table(records_or_table)
    specs = [s for s in P.design() if not (choice.c2_metrics and s.claim == "C2" and s.role == "primary"
                                           and s.metric not in choice.c2_metrics)]
    tests = [make_test(spec, table, choice) for spec in specs]
    if choice.p_value == "permutation":
        for t in tests:
            t.p = t.p_check
    apply_holm(tests, over_data=choice.holm_over_data)
    for t in tests:
        t.label = test_label(t.difference, t.direction, t.p_holm, complete=not t.missing)
    return Claims(tests, _verdicts(tests), P.family_sizes())


def rank_taus(reference: dict[int, Sequence[float]], other: dict[int, Sequence[float]]) -> dict[int, float]:
    """{seed: Kendall tau between the two importance vectors of that seed} for the seeds both have."""
    return {s: stats.kendall_tau(reference[s], other[s]) for s in sorted(set(reference) & set(other))}


# ---------------------------------------------------------------- text and tables

def scope_name(v: Verdict) -> str:
    return "both datasets" if v.dataset == "both" else R.DATASET_NAMES.get(v.dataset, v.dataset)


def verdict_table(claims: Claims, datasets: bool = True) -> str:
    """The Markdown table of verdicts: claim, reading, site, then one column per scope (both datasets,
    MNIST, CIFAR-10). The README's verdict table is this table."""
    rows: dict[tuple, dict] = {}
    for v in claims.verdicts:
        row = rows.setdefault((v.claim, v.reading, v.site), {})
        row[v.dataset] = v.verdict
        if v.dataset == "both":
            row["tests"] = sum(v.counts.values())
    scopes = ("both", *P.DATASETS) if datasets else ("both",)
    head = ["claim", "reading", "dropout site", "primary tests", "verdict", *(
        f"{R.DATASET_NAMES[d]} alone" for d in scopes[1:])]
    body = [[claim, reading, site, row["tests"], *(row[s] for s in scopes)]
            for (claim, reading, site), row in rows.items()]
    return R.markdown_table(head, body)


SITE_NAMES = {"current": "the synaptic current (the paper's site)", "hidden": "the hidden spikes",
              "input": "the input spikes"}
SITE_SHORT = {"current": "current", "hidden": "hidden spikes", "input": "input spikes"}
CLAIM_TEXT = {"C1": "dropout and dropout2d give a higher training loss and a lower test accuracy than the base network",
              "C2": "feature dropout and alpha dropout make the network lose its ability to train and predict",
              "C3": "dropout changes which hidden neurons are most important"}


def _short(test: Test) -> str:
    where = f"{R.DATASET_NAMES.get(test.dataset, test.dataset)} {kind_name(test)}, {metric_name(test)}"
    if test.test == "one_sample":
        return f"{where} {100 * test.variant_mean:.1f}%"
    scale, digits, unit = _units(test)
    return f"{where} {test.difference * scale:+.{digits}f}{unit}"


def verdict_sentence(claims: Claims, claim: str, site: str = "current", reading: str | None = None) -> str:
    """The verdict of ``claim`` at ``site`` (and ``reading``) in one sentence, from the tests: over both
    datasets, per dataset, and which primary tests go significantly against the claim or wait for runs:
    ``on the synaptic current (the paper's site): mixed (MNIST: mixed, CIFAR-10: reproduced); significantly
    the other way: MNIST dropout, test accuracy +0.41 points``."""
    both = claims.verdict(claim, site, "both", reading)
    per = ", ".join(f"{R.DATASET_NAMES[d]}: {claims.verdict(claim, site, d, reading)}" for d in P.DATASETS)
    kinds = C2_READINGS[reading] if claim == "C2" and reading else None
    chosen = [t for t in claims.primary(claim) if t.site == site and (kinds is None or t.kind in kinds)]
    text = f"on {SITE_NAMES[site]}: **{both}** ({per})"
    # C2's two metrics say the same: its sentence names the test accuracy only
    contrary = [_short(t) for t in chosen if t.label == "contrary" and (claim != "C2" or t.metric == "test_acc")]
    waiting = sorted({f"{R.DATASET_NAMES.get(t.dataset, t.dataset)} {kind_name(t)}" for t in chosen if t.missing})
    if contrary:
        other_way = "significantly above the 20% cut-off" if claim == "C2" else "significantly the other way"
        text += f"; {other_way}: {'; '.join(contrary)}"
    if waiting:
        text += f"; waiting for the runs of: {', '.join(waiting)}"
    return text


# The second edition's summary of each claim ("In short", README at 8658f86, the commit before the rules were
# fixed in c99ffde): on the synaptic current only, no run had dropout on the spikes, CIFAR-10 had five seeds,
# and its rules were the ones the third edition replaced.
SECOND_EDITION = {"C1": "partly reproduced", "C2": "not reproduced", "C3": "partly reproduced"}
_SIDE = {"reproduced": +1, "partly reproduced": +1, "contrary": -1, "not reproduced": -1}


def edition_changes(claims: Claims) -> list[str]:
    """What the third edition's records say against the second edition's summary
    (:data:`SECOND_EDITION`), one sentence each: the verdict of every claim then and now at the paper's site
    (over both datasets; C2 under each reading), then every verdict on the hidden or the input spikes, per
    dataset, that falls on the other side of the second edition's (reproduced or partly reproduced against
    contrary or not reproduced; *mixed* is neither), with the primary tests that go the new way: where
    the spike-site runs reverse a headline verdict. None such: a sentence that says so."""
    now = []
    for claim, before in SECOND_EDITION.items():
        readings = tuple(C2_READINGS) if claim == "C2" else (None,)
        verdicts = [claims.verdict(claim, "current", "both", reading) for reading in readings]
        text = (f"*{verdicts[0]}*" if len(set(verdicts)) == 1 else
                "; ".join(f"{reading}: *{verdict}*" for reading, verdict in zip(readings, verdicts, strict=True)))
        now.append(f"{claim} *{before}* then, {text} now")
    lines = ["At the paper's site, against the second edition's summary (five CIFAR-10 seeds, its own rules): "
             + "; ".join(now) + "."]
    for v in claims.verdicts:
        before = SECOND_EDITION.get(v.claim)
        if before is None or v.site == "current" or v.dataset == "both" \
                or _SIDE.get(v.verdict, 0) * _SIDE[before] >= 0:
            continue
        label = "yes" if _SIDE[v.verdict] > 0 else "contrary"
        kinds = C2_READINGS[v.reading] if v.claim == "C2" else None
        tests = [_short(t) for t in claims.primary(v.claim) if (t.site, t.dataset, t.label) == (v.site, v.dataset, label)
                 and (kinds is None or t.kind in kinds) and (v.claim != "C2" or t.metric == "test_acc")]
        reading = f" ({v.reading})" if v.claim == "C2" else ""
        lines.append(f"**A headline verdict reversed:** {v.claim}{reading}, *{before}* in the second edition, is "
                     f"*{v.verdict}* on {SITE_NAMES[v.site]} of {R.DATASET_NAMES[v.dataset]}: {'; '.join(tests)}.")
    if len(lines) == 1:
        lines.append("No verdict on the hidden or the input spikes reverses a headline verdict of the second edition.")
    return lines


def _units(test: Test) -> tuple[float, int, str]:
    if test.metric in R.ACCURACY_METRICS:
        return 100.0, 2, " points"
    return 1.0, (2 if test.metric in C3_STATISTICS else 4), ""


C3_SHORT = {"top10_overlap": "top-10 overlap", "kendall_tau": "Kendall tau", "hidden_importance": "L1 weights",
            "hidden_silencing_drop": "silencing"}


def metric_name(test: Test) -> str:
    """The metric of a test by name (C3: the agreement statistic and, briefly, the importance measure)."""
    if test.claim == "C3":
        return f"{C3_SHORT[test.metric]} ({C3_SHORT[test.measure]})"
    return R.METRIC_NAMES.get(test.metric, test.metric)


def kind_name(test: Test) -> str:
    names = [R.KIND_NAMES.get(k, k) for k in (test.kind, *test.also)]
    return " = ".join(names)


def describe_test(test: Test) -> str:
    """One test in a sentence: ``C1, MNIST, dropout on the current, test accuracy: +0.41 points
    [+0.28, +0.53] (10 vs 10 seeds, Welch's t-test p = 1.1e-05, Holm 1.7e-04): contrary``."""
    scale, digits, unit = _units(test)
    interval = R.signed_interval(test.difference, test.ci_low, test.ci_high, scale, digits)
    if not math.isnan(test.difference):
        head, _, rest = interval.partition(" ")
        interval = f"{head}{unit} {rest}".rstrip()
    against = {"one_sample": "from the 20% cut-off", "paired": "against the control"}.get(test.test, "")
    sizes = (f"{test.n_variant} seeds" if test.test == "one_sample" else
             f"{test.n_variant} pairs" if test.test == "paired" else f"{test.n_variant} vs {test.n_base} seeds")
    where = f"{test.claim}, {R.DATASET_NAMES.get(test.dataset, test.dataset)}, {kind_name(test)} on the {test.site}"
    if test.missing:
        return f"{where}, {metric_name(test)}: no data (waiting for {'; '.join(test.missing)})"
    return (f"{where}, {metric_name(test)}{' ' + against if against else ''}: {interval} ({sizes}, "
            f"{TEST_NAMES[test.test].split(' against')[0]} p = {R.p_text(test.p)}, Holm {R.p_text(test.p_holm)}): "
            f"{test.label}")


def tests_table(tests: Iterable[Test], scale_accuracy: bool = True) -> pd.DataFrame:
    """The tests as a table (accuracy differences in percentage points when ``scale_accuracy``)."""
    rows = []
    for t in tests:
        scale, digits, _ = _units(t) if scale_accuracy else (1.0, 4, "")
        rows.append({"claim": t.claim, "role": t.role, "dataset": R.DATASET_NAMES.get(t.dataset, t.dataset),
                     "kind": kind_name(t), "site": t.site, "metric": metric_name(t),
                     "n": "-" if t.missing else (f"{t.n_variant}" if t.test != "welch"
                                                 else f"{t.n_variant} vs {t.n_base}"),
                     "difference [95% CI]": "waiting" if t.missing else
                     R.signed_interval(t.difference, t.ci_low, t.ci_high, scale, digits),
                     "p": R.p_text(t.p) if not t.missing else "-",
                     "p (Holm)": R.p_text(t.p_holm), "exact check p": R.p_text(t.p_check) if not t.missing else "-",
                     "label": t.label})
    return pd.DataFrame(rows)


COMPACT_COLUMNS = ("dataset", "kind", "site", "metric", "difference [95% CI]", "p (Holm)", "label")


def tests_markdown(tests: Sequence[Test], extra: dict[str, Sequence[object]] | None = None,
                   columns: Sequence[str] = COMPACT_COLUMNS) -> str:
    """A Markdown table of tests for the book, with ``extra`` columns (name -> one value per test)
    after the kind; ``columns`` chooses the columns of :func:`tests_table` (by default the few that fit
    a page's column)."""
    frame = tests_table(tests)
    names = list(columns)
    for position, (name, values) in enumerate((extra or {}).items()):
        frame[name] = list(values)
        names.insert(names.index("kind") + 1 + position if "kind" in names else position, name)
    return R.markdown_table(names, frame[names].values.tolist())


def family_name(family: str) -> str:
    """A family's name for a reader (the importance measures by name)."""
    for key, short in C3_SHORT.items():
        family = family.replace(key, short)
    return family


def power_markdown() -> str:
    """The pre-registration's power table (:func:`snnlib.study.preregistration.power_table`) in Markdown: per
    family and group sizes, the test, the seeds, Holm's strictest threshold, the absolute t a test needs there,
    and the floor of the exact check (t-tests themselves have no floor)."""
    rows = [[family_name(r["family"]), f"{r['tests']} of {r['family_size']}", TEST_NAMES[r["test"]],
             f"{r['seeds']}" + (f" vs {r['reference_seeds']}" if r["reference_seeds"] and r["test"] == "welch" else ""),
             f"{r['holm_first_threshold']:.4f}", f"{r['t_needed']:.1f}", R.p_text(r["permutation_floor"])]
            for r in P.power_table()]
    return R.markdown_table(["family", "tests", "test", "seeds", "Holm's strictest threshold", "t needed there (absolute)",
                             "floor of the exact check"], rows)
