"""Which hidden neurons matter (C3 and the paper's Table 2): rankings, their agreement against the control, and
the chapter's sentences and tables."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study import stats
from snnlib.study.claims import Claims, agreement, kind_name
from snnlib.study.sites import join_words, kind_label

# the paper's Table 2, the network without dropout: its top-10 hidden neuron IDs as printed
PAPER_TABLE2_BASE = (9, 8, 3, 2, 0, 1, 4, 5, 6, 7)


CONTROL_LABEL = "control (no dropout, other sample order)"


OTHER_SEED_LABEL = "base run of another seed (chance)"


HIDDEN = int(R.STUDY_SETTINGS["network.hidden"])  # the hidden neurons a ranking orders



def low_ids(importances: dict[int, Sequence[float]], k: int = P.TOP_K) -> dict[int, int]:
    """{seed: how many of the top ``k`` neurons have an ID below ``k``} (the paper's row for the network
    without dropout, :data:`PAPER_TABLE2_BASE`, has all ``k``; chance expects ``k^2 / n``)."""
    return {seed: sum(i < k for i in stats.top_k(values, k)) for seed, values in sorted(importances.items())}



def table2_sentence(table: pd.DataFrame, k: int = P.TOP_K) -> str:
    """The paper's Table 2 row for the network without dropout against chance and the study's base runs."""
    ids = ", ".join(map(str, PAPER_TABLE2_BASE))
    text = (f"The paper lists {ids} as the top {k} of the network without dropout: the set of IDs 0 to {k - 1}, "
            f"in another order. If a ranking carried no information about the IDs, one given set of {k} of "
            f"{HIDDEN} neurons would be the top {k} with probability 1/C({HIDDEN}, {k}) = "
            f"{stats.chance_of_top_k_set(HIDDEN, k):.1e}.")
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
    ranked = {label: stats.top_k(by_seed[seed], k) for label, by_seed in columns.items() if seed in by_seed}
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
    """How well rankings agree with a base run (:func:`snnlib.study.claims.agreement`), every finished seed: each
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
            taus = [stats.kendall_tau(l1[s], silencing[s]) for s in seeds]
            overlaps = [stats.top_k_overlap(l1[s], silencing[s], k) for s in seeds]
            cells += [f"{R.mean_std(taus)} ({len(seeds)})" if seeds else "waiting",
                      R.mean_std(overlaps, 1, 1) if seeds else "waiting"]
        if any(cell != "waiting" for cell in cells):
            rows.append([kind_label("current", kind), *cells])
    return R.markdown_table(head, rows) if rows else "_No finished run yet._"



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
        rows += [[R.DATASET_NAMES[dataset], seed, ", ".join(map(str, stats.top_k(importances[seed], k))),
                  counts[seed]] for seed in sorted(importances)]
    return R.markdown_table(["dataset", "base seed", f"top {k}, most important first", f"IDs below {k}"],
                            rows) if rows else "_No finished base run yet._"
