"""The second round (the addendum of 2026-12-06 in :mod:`snnlib.study.preregistration`): every headline verdict
under the defensible analysis choices, the budget artefact on CIFAR-10's hidden spikes, and a learning rate per
kind. Everything here is exploratory; the pre-registered verdict (:func:`snnlib.study.claims.evaluate_claims`
with its default :class:`~snnlib.study.claims.Choice`) stays the headline.

- :func:`at_best_epoch` reads every run at its best-validation epoch (block 3); :func:`with_mc_accuracy` puts
  MC dropout's test accuracy in place of the deterministic one;
- :func:`rate_table` and :func:`chosen_rates` choose each kind's learning rate on the validation split
  (block 2);
- :func:`budget_conditions` tests C2 on CIFAR-10's hidden spikes under each condition of block 1 and
  :func:`budget_reading` reads them by the addendum's rule;
- :func:`robustness` is the table of block 4: one row per verdict (claim, reading, site, dataset), one column
  per choice of :data:`snnlib.study.preregistration.ROBUSTNESS_CHOICES`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import pandas as pd

from snnlib.study import claims as C
from snnlib.study import evaluations as E
from snnlib.study import preregistration as P
from snnlib.study import records as R

# ---------------------------------------------------------------- reading the runs another way


def at_best_epoch(records: Iterable[dict]) -> pd.DataFrame:
    """The runs table of ``records`` with every per-epoch number taken at the run's best-validation epoch
    (:func:`snnlib.study.preregistration.best_epoch`), its 1-based index in ``best_epoch``. A run without a
    validation accuracy keeps its last epoch."""
    records = list(records)
    table = R.runs_table(records)
    best = []
    for i, record in enumerate(records):
        epochs = record.get("epochs") or []
        val = [e.get("val_acc") for e in epochs]
        k = P.best_epoch(val) if epochs and all(v is not None for v in val) else len(epochs) - 1
        best.append(k + 1)
        for metric in R.EPOCH_METRICS:
            value = epochs[k].get(metric) if epochs else None
            table.loc[table.index[i], metric] = math.nan if value is None else float(value)
    table["best_epoch"] = best
    return table


def with_mc_accuracy(table: pd.DataFrame, evaluations: Iterable[dict], passes: int = P.FULL_PASSES) -> pd.DataFrame:
    """``table`` with each evaluated run's test accuracy replaced by its MC-dropout accuracy (``passes`` passes,
    the test set) and every other run's by NaN (no data); the base network keeps its own (it has no dropout)."""
    ev = E.evaluations_table(evaluations)
    by_run = {}
    if len(ev):
        mc = ev[(ev["method"] == "mc_dropout") & (ev["set"] == "test") & (ev["forward_passes"] == passes)
                & ev["seed"].notna()]
        by_run = {(r.dataset, r.variant, float(r.p), r.mask, r.site, int(r.epochs), int(r.seed)): float(r.accuracy)
                  for r in mc.itertuples()}
    out = table.copy()
    for i, row in out.iterrows():
        if row["variant"] != "none":
            key = (row["dataset"], row["variant"], float(row["p"]), row["mask"], row["site"], int(row["epochs"]),
                   int(row["seed"]))
            out.loc[i, "test_acc"] = by_run.get(key, math.nan)
    return out


# ---------------------------------------------------------------- block 2: a learning rate per kind

def rate_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, kind (:data:`snnlib.study.preregistration.LR_KINDS`, at the paper's site) and learning rate
    (:data:`~snnlib.study.preregistration.LR_RATES`): the mean and sd of the last epoch's validation accuracy over
    seeds 0-4 (:data:`~snnlib.study.preregistration.LR_SEEDS`), n, and whether it is the chosen rate (only once
    all three rates have their five seeds)."""
    rows = []
    for dataset in P.DATASETS:
        for kind in P.LR_KINDS:
            means = {}
            for rate in P.LR_RATES:
                runs = R.cell_runs(table, dataset, kind, lr=rate)
                values = runs[runs["seed"].isin(P.LR_SEEDS)]["val_acc"].astype(float).dropna()
                rows.append({"dataset": dataset, "kind": kind, "lr": rate, "n": len(values),
                             "val_acc_mean": float(values.mean()) if len(values) else math.nan,
                             "val_acc_std": float(values.std(ddof=1)) if len(values) > 1 else math.nan})
                if len(values) == len(P.LR_SEEDS):
                    means[rate] = float(values.mean())
            chosen = P.chosen_rate(means) if len(means) == len(P.LR_RATES) else None
            for row in rows[-len(P.LR_RATES):]:
                row["chosen"] = chosen is not None and R.same_value(row["lr"], chosen)
    return pd.DataFrame(rows)


def chosen_rates(table: pd.DataFrame) -> dict[tuple[str, str], float]:
    """{(dataset, kind): its chosen learning rate} for the kinds whose three rates all have their seeds."""
    rates = rate_table(table)
    return {(r.dataset, r.kind): float(r.lr) for r in rates.itertuples() if r.chosen}


def rate_markdown(table: pd.DataFrame) -> str:
    """The validation accuracy of every kind at every rate (mean ± sd, n), the chosen rate in bold."""
    rates = rate_table(table)
    body = []
    for (dataset, kind), group in rates.groupby(["dataset", "kind"], sort=False):
        cells = []
        for r in group.itertuples():
            text = "-" if r.n == 0 else (f"{100 * r.val_acc_mean:.2f}" if r.n == 1
                                         else f"{100 * r.val_acc_mean:.2f} ± {100 * r.val_acc_std:.2f}") + f" ({r.n})"
            cells.append(f"**{text}**" if r.chosen else text)
        body.append([R.DATASET_NAMES[dataset], R.KIND_NAMES[kind], *cells])
    return R.markdown_table(["dataset", "kind", *(f"lr {rate:g}" for rate in P.LR_RATES)], body)


def _lr_choice(table: pd.DataFrame) -> C.Choice | None:
    rates = chosen_rates(table)
    kinds = {P.operation("current", k) for k in (*P.C1_KINDS, *P.C2_KINDS)} | {"none"}
    if not all((d, k) in rates for d in P.DATASETS for k in kinds):
        return None
    return C.Choice(lr=lambda dataset, kind: rates[(dataset, P.operation("current", kind))], seeds=P.LR_SEEDS,
                    holm_over_data=True)


# ---------------------------------------------------------------- block 1: the budget artefact

@dataclass
class BudgetCondition:
    """C2's feature-alpha reading on CIFAR-10's hidden spikes under one condition of block 1."""

    name: str
    epochs: int
    lr: float
    verdict: str
    tests: list[C.Test]
    seeds: int  # runs of the two kinds
    left_chance: int  # of them, runs whose test accuracy is above chance + 5 points
    test_acc: dict[str, float]  # kind -> mean test accuracy


def budget_conditions(table: pd.DataFrame) -> list[BudgetCondition]:
    """The headline condition (20 epochs, lr 1e-3, its planned seeds) and every condition of
    :data:`snnlib.study.preregistration.BUDGET_CONDITIONS` (seeds 0-2, Holm over the condition's four tests)."""
    reading = "feature dropout = feature alpha dropout"
    conditions = [("pre-registered (20 epochs, lr 1e-3)", 20, R.STUDY_LR, C.PRE_REGISTERED)]
    conditions += [(name, epochs, lr, C.Choice(epochs=epochs, lr=lambda d, k, lr=lr: lr, seeds=P.BUDGET_SEEDS,
                                               holm_over_data=True))
                   for name, epochs, lr in P.BUDGET_CONDITIONS]
    out = []
    for name, epochs, lr, choice in conditions:
        result = C.evaluate_claims(table, choice)
        tests = [t for t in result.primary("C2") if (t.dataset, t.site) == ("cifar10", "hidden")
                 and t.kind in P.C2_READINGS[reading]]
        accuracies = {k: R.cell_runs(table, "cifar10", k, site="hidden", epochs=epochs, lr=lr)
                      for k in P.BUDGET_KINDS}
        if choice.seeds:
            accuracies = {k: v[v["seed"].isin(choice.seeds)] for k, v in accuracies.items()}
        values = pd.concat([v["test_acc"].astype(float) for v in accuracies.values()])
        out.append(BudgetCondition(name, epochs, lr, C.combine([t.label for t in tests]), tests, len(values),
                                   int((values > P.LEAVES_CHANCE).sum()),
                                   {k: float(v["test_acc"].astype(float).mean()) for k, v in accuracies.items()}))
    return out


def budget_reading(conditions: list[BudgetCondition]) -> str:
    """The addendum's reading of block 1: ``survives`` when every condition's verdict is *reproduced*, ``a
    budget artefact`` when any has a *contrary* test, ``undecided`` otherwise, ``not enough data`` while a
    condition lacks runs."""
    alternatives = conditions[1:]
    if any(c.verdict == "not enough data" for c in alternatives):
        return "not enough data"
    if all(c.verdict == "reproduced" for c in alternatives):
        return "survives"
    if any(t.label == "contrary" for c in alternatives for t in c.tests):
        return "a budget artefact"
    return "undecided"


def budget_markdown(conditions: list[BudgetCondition]) -> str:
    """Block 1 as a table: per condition, each kind's mean test accuracy, the seeds that left chance, the verdict."""
    body = [[c.name, *(("-" if math.isnan(c.test_acc[k]) else f"{100 * c.test_acc[k]:.1f}%") for k in P.BUDGET_KINDS),
             f"{c.left_chance} of {c.seeds}", c.verdict] for c in conditions]
    return R.markdown_table(["condition", *(f"{R.KIND_NAMES[k]}, test accuracy" for k in P.BUDGET_KINDS),
                             "runs above chance + 5 points", "C2 verdict (CIFAR-10, hidden spikes)"], body)


# ---------------------------------------------------------------- block 4: the robustness table

# the claims each choice concerns (C3 reads the final weights of the control and the base runs, so only the
# test it uses can change; C2's cut-off and readout, and C1's base seeds, concern those claims alone)
APPLIES = dict(zip(P.ROBUSTNESS_CHOICES, (("C1", "C2", "C3"), ("C1", "C2"), ("C2",), ("C2",), ("C2",), ("C1",),
                                          ("C1", "C2", "C3"), ("C2",), ("C1", "C2"), ("C1", "C2")), strict=True))
# the sites a choice concerns where not all: block 2 chose each kind's rate at the paper's site, so elsewhere the
# base network would be read at its chosen rate against a kind's runs at 1e-3 wherever that rate happens to be chosen
ONLY_SITES = {"each kind at its own learning rate": ("current",)}
SHORT = {"reproduced": "R", "partly reproduced": "P", "mixed": "M", "contrary": "C", "not reproduced": "N",
         "not enough data": "-"}


def _choices(records: list[dict], evaluations: list[dict]) -> list[tuple[str, pd.DataFrame, C.Choice | None]]:
    """(name, runs table, choice) of each column of :data:`snnlib.study.preregistration.ROBUSTNESS_CHOICES`."""
    table = R.runs_table(records)
    exploratory = C.Choice(holm_over_data=True)
    cut = [replace(exploratory, cutoff=c) for c in P.C2_CUTOFFS]
    longer = C.Choice(epochs=60, seeds=P.BUDGET_SEEDS, holm_over_data=True)
    columns = [table, at_best_epoch(records), table, table, table, table, table,
               with_mc_accuracy(table, evaluations), table, table]
    choices = [C.PRE_REGISTERED, exploratory, *cut, replace(exploratory, base_seeds=tuple(range(25))),
               replace(exploratory, p_value="permutation"),
               replace(exploratory, c2_metrics=("test_acc",)), _lr_choice(table), longer]
    return list(zip(P.ROBUSTNESS_CHOICES, columns, choices, strict=True))


def _below(table: pd.DataFrame, choice: C.Choice, dataset: str, site: str, kinds: Iterable[str]) -> tuple[int, int]:
    """(runs at or below the cut-off, runs) of C2's kinds in a reading, by their test accuracy."""
    below = total = 0
    for kind in dict.fromkeys(P.operation(site, k) for k in kinds):
        runs = C._runs(table, dataset, kind, site, choice)
        runs = runs[runs["seed"].isin(choice.seeds or P.planned_seeds(dataset, kind, site))]
        values = runs["test_acc"].astype(float).dropna()
        below, total = below + int((values <= choice.cutoff).sum()), total + len(values)
    return below, total


def robustness(records: Iterable[dict], evaluations: Iterable[dict] = ()) -> pd.DataFrame:
    """One row per headline verdict (claim, reading, site, dataset), one column per choice of
    :data:`snnlib.study.preregistration.ROBUSTNESS_CHOICES`: its verdict under that choice (``not enough data``
    where the choice has no runs for it or does not concern its claim, :data:`APPLIES`). C2's rows also give, per
    choice, the runs of the reading's kinds at or below the cut-off (``below: choice`` columns, "k of n").
    Exploratory choices apply Holm within a family over the tests that have data."""
    records, evaluations = list(records), list(evaluations)
    rows: dict[tuple, dict] = {}
    for name, table, choice in _choices(records, evaluations):
        if choice is None:  # not all its runs have landed: every verdict waits
            continue
        for v in C.evaluate_claims(table, choice).verdicts:
            if v.dataset == "both" or v.claim not in APPLIES[name] or v.site not in ONLY_SITES.get(name, P.SITES):
                continue
            row = rows.setdefault((v.claim, v.reading, v.site, v.dataset),
                                  {"claim": v.claim, "reading": v.reading, "site": v.site, "dataset": v.dataset})
            row[name] = v.verdict
            if v.claim == "C2":
                below, total = _below(table, choice, v.dataset, v.site, P.C2_READINGS[v.reading])
                row[f"below: {name}"] = f"{below} of {total}"
    frame = pd.DataFrame(list(rows.values()))
    for name in P.ROBUSTNESS_CHOICES:
        frame[name] = frame[name].fillna("not enough data") if name in frame else "not enough data"
    return frame


def robustness_markdown(frame: pd.DataFrame) -> str:
    """The robustness table in short letters (R reproduced, P partly reproduced, M mixed, C contrary, N not
    reproduced, - no runs for this choice or not its claim); C2's cells at the cut-offs add the runs at or below
    the cut-off."""
    # claim and reading share a column, and site and dataset another: fourteen columns do not fit a book's column
    head = ["claim", "where", *(f"{i}" for i in range(1, len(P.ROBUSTNESS_CHOICES) + 1))]
    body = []
    cut_columns = {P.ROBUSTNESS_CHOICES[0], *P.ROBUSTNESS_CHOICES[2:5]}
    for r in frame.to_dict("records"):
        cells = []
        for name in P.ROBUSTNESS_CHOICES:
            cell = SHORT[r[name]]
            if r["claim"] == "C2" and name in cut_columns and isinstance(r.get(f"below: {name}"), str):
                cell += f" ({r[f'below: {name}'].replace(' of ', '/')})"
            cells.append(f"**{cell}**" if name == P.ROBUSTNESS_CHOICES[0] else cell)
        reading = {"the paper's metrics": "", "feature dropout = zeroing": " zeroing",
                   "feature dropout = feature alpha dropout": " feature alpha"}.get(r["reading"], " L1")
        body.append([r["claim"] + reading, f"{C.SITE_SHORT[r['site']]}, {R.DATASET_NAMES[r['dataset']]}", *cells])
    legend = "; ".join(f"{i}: {name}" for i, name in enumerate(P.ROBUSTNESS_CHOICES, 1))
    return (R.markdown_table(head, body) + "\n\nColumns: " + legend + ". Column 1 (bold) is the pre-registered "
            "headline; the rest are exploratory (Holm over the tests with data). R reproduced, P partly reproduced, "
            "M mixed, C contrary, N not reproduced, - no runs for this choice, or a choice that does not concern the "
            "claim; for C2 at the cut-offs, (k/n): runs "
            "of the reading's kinds at or below the cut-off.")


def held(frame: pd.DataFrame) -> dict[str, int]:
    """Per exploratory choice, how many of the headline verdicts it can read (not ``not enough data``) keep
    their verdict."""
    out = {}
    for name in P.ROBUSTNESS_CHOICES[1:]:
        readable = frame[frame[name] != "not enough data"]
        out[name] = int((readable[name] == readable[P.ROBUSTNESS_CHOICES[0]]).sum())
        out[f"{name} (readable)"] = len(readable)
    return out


def held_sentence(frame: pd.DataFrame) -> str:
    """In words: per exploratory choice, how many headline verdicts it keeps of those it can read."""
    counts = held(frame)
    parts = [f"{name}: {counts[name]} of {counts[f'{name} (readable)']}" for name in P.ROBUSTNESS_CHOICES[1:]
             if counts[f"{name} (readable)"]]
    return ("Headline verdicts (per claim, reading, site and dataset) that keep their verdict under each exploratory "
            "choice, of those it can read: " + "; ".join(parts) + ".")


def budget_sentence(conditions: list[BudgetCondition]) -> str:
    """Block 1 in one sentence: the headline, each condition's verdict and runs that left chance, the reading."""
    reading = budget_reading(conditions)
    parts = [f"{c.name}: *{c.verdict}*" + (f" ({c.left_chance} of {c.seeds} runs above chance + 5 points)"
                                           if c.seeds else "") for c in conditions[1:]]
    head = ("**Is C2's *reproduced* on CIFAR-10's hidden spikes a budget artefact?** (addendum, block 1: feature "
            "alpha and alpha dropout, three seeds per condition) ")
    if reading == "not enough data":
        return head + "Not all its runs have landed yet: " + "; ".join(parts) + "."
    verdict = {"survives": "No: *reproduced* survives every condition",
               "a budget artefact": "Yes: under at least one condition a kind trains above the cut-off",
               "undecided": "Undecided: no condition is contrary, but not every one reproduces"}[reading]
    return head + f"{verdict} ({'; '.join(parts)})."


def rate_sentence(table: pd.DataFrame) -> str:
    """Block 2 in one sentence: each kind's chosen rate, or how many kinds still wait for their runs."""
    rates = chosen_rates(table)
    total = len(P.DATASETS) * len(P.LR_KINDS)
    if len(rates) < total:
        return (f"**A learning rate per kind** (addendum, block 2): {len(rates)} of {total} kinds (per dataset) have "
                "all three rates' runs; the comparisons at each kind's own rate wait for the rest.")
    chosen = "; ".join(f"{R.DATASET_NAMES[d]}: " + ", ".join(f"{R.KIND_NAMES[k]} {rates[(d, k)]:g}" for k in P.LR_KINDS)
                       for d in P.DATASETS)
    return f"**A learning rate per kind** (addendum, block 2), chosen on the validation split: {chosen}."


# block 1's reading as the end of a sentence about CIFAR-10's collapse on the hidden spikes
READING_WORDS = {"survives": "and neither more epochs nor another learning rate changes it",
                 "a budget artefact": "but more epochs or another learning rate let them learn",
                 "undecided": "and more epochs or another learning rate leave it undecided",
                 "not enough data": "and the longer budget's runs have not all landed"}


def budget_at_best_epoch(records: Iterable[dict]) -> str:
    """The 60-epoch budget comparisons on CIFAR-10 (:func:`snnlib.study.questions.budget_tests`: dropout and
    dropout2d on the current against the base network, three seeds) at the last epoch and at each run's
    best-validation epoch (block 3), as a Markdown table."""
    from snnlib.study.questions import budget_tests

    records = list(records)
    last, best = budget_tests(R.runs_table(records)), budget_tests(at_best_epoch(records))
    body = []
    for a, b in zip(last, best, strict=True):
        scale = R.metric_scale(a.metric)
        body.append([R.KIND_NAMES[a.kind], R.METRIC_NAMES[a.metric],
                     R.signed_interval(a.difference, a.ci_low, a.ci_high, scale), a.label,
                     R.signed_interval(b.difference, b.ci_low, b.ci_high, scale), b.label])
    return R.markdown_table(["kind (60 epochs, CIFAR-10)", "metric", "last epoch: difference [95% CI]", "label",
                             "best-validation epoch: difference [95% CI]", "label"], body)


def _mean_test(table: pd.DataFrame, dataset: str, kind: str, lr: float) -> float:
    runs = R.cell_runs(table, dataset, kind, lr=lr)
    values = runs[runs["seed"].isin(P.LR_SEEDS)]["test_acc"].astype(float).dropna()
    return float(values.mean()) if len(values) else math.nan


def rate_test_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and kind whose rate is chosen (:func:`chosen_rates`): the mean test accuracy over seeds 0-4 at its
    chosen rate and at the study's rate (1e-3), and the change at the chosen rate against the base network at its
    own chosen rate (points; NaN for the base network itself)."""
    rates = chosen_rates(table)
    rows = []
    for (dataset, kind), rate in rates.items():
        base = _mean_test(table, dataset, "none", rates[(dataset, "none")]) if (dataset, "none") in rates else math.nan
        chosen = _mean_test(table, dataset, kind, rate)
        rows.append({"dataset": dataset, "kind": kind, "lr": rate, "test_acc": chosen,
                     "test_acc_study_lr": _mean_test(table, dataset, kind, R.STUDY_LR),
                     "vs_base_points": math.nan if kind == "none" else 100 * (chosen - base)})
    return pd.DataFrame(rows, columns=["dataset", "kind", "lr", "test_acc", "test_acc_study_lr", "vs_base_points"])


def rate_test_sentence(table: pd.DataFrame) -> str:
    """What each kind's own rate changes, in words: per dataset, the base network's test accuracy at its rate and
    each kind's against it, with the kind's test accuracy at 1e-3 where its rate is another."""
    frame = rate_test_table(table)
    if len(frame) < len(P.DATASETS) * len(P.LR_KINDS):
        return "The test accuracies at each kind's own rate wait for block 2's runs."
    parts = []
    for dataset, group in frame.groupby("dataset", sort=False):
        items = []
        for r in group.itertuples():
            text = f"{R.KIND_NAMES[r.kind]} {100 * r.test_acc:.2f}% at {r.lr:g}"
            if r.kind != "none":
                text += f" ({r.vs_base_points:+.2f})".replace("-", "\u2212")  # a minus sign, as the answer writes it
            if not R.same_value(r.lr, R.STUDY_LR):
                text += f", {100 * r.test_acc_study_lr:.2f}% at {R.STUDY_LR:g}"
            items.append(text)
        parts.append(f"{R.DATASET_NAMES[dataset]}: " + "; ".join(items))
    return ("Test accuracy at each kind's own rate (mean of seeds 0-4; in brackets, points against the base network "
            "at its own rate): " + ". ".join(parts) + ".")


def rate_answer_sentence(table: pd.DataFrame) -> str:
    """Block 2 for the answer, in one sentence (exploratory): each kind's change in test accuracy against the base
    network, every kind at its own chosen rate, per dataset; and the largest gain a kind's own rate gives over
    1e-3 where it exceeds 5 points. Empty while block 2 waits for runs."""
    frame = rate_test_table(table)
    if len(frame) < len(P.DATASETS) * len(P.LR_KINDS):
        return ""
    kinds = [k for k in P.LR_KINDS if k != "none"]
    parts = []
    for dataset in P.DATASETS:
        rows = frame[frame["dataset"] == dataset].set_index("kind")
        changes = [f"{rows.loc[k, 'vs_base_points']:+.2f}".replace("-", "\u2212") for k in kinds]
        parts.append(f"{', '.join(changes[:-1])} and {changes[-1]} points on {R.DATASET_NAMES[dataset]}")
    names = ", ".join(R.KIND_NAMES[k] for k in kinds[:-1]) + f" and {R.KIND_NAMES[kinds[-1]]}"
    text = ("Exploratory, with every kind on the synaptic current at the learning rate its validation accuracy chose "
            f"(seeds 0-4): against the base network at its own rate, {names} change the test accuracy by "
            f"{' and by '.join(parts)}")
    gains = frame[frame["kind"] != "none"].assign(gain=lambda f: f["test_acc"] - f["test_acc_study_lr"])
    best = gains.loc[gains["gain"].idxmax()]
    if best["gain"] > 0.05:
        text += (f"; {R.KIND_NAMES[best['kind']]} on {R.DATASET_NAMES[best['dataset']]} reaches "
                 f"{100 * best['test_acc']:.2f}% at lr {best['lr']:g} against {100 * best['test_acc_study_lr']:.2f}% "
                 f"at {R.STUDY_LR:g}")
    return text + "."
