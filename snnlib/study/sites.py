"""Every dropout kind at every site against the base network: the results chapter's sentences and tables, and
what still waits for runs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import pandas as pd

from snnlib.model.dropout import KINDS
from snnlib.study import preregistration as P
from snnlib.study import progress as PG
from snnlib.study import records as R

DROPOUT_KINDS = tuple(k for k in KINDS if k != "none")


SITE_WORDS = {"current": "the synaptic current", "hidden": "the hidden spikes", "input": "the input spikes"}


# seeds per cell of grids/rates.json and grids/budget.json (tests/test_findings.py reads the files)
QUESTION_SEEDS = 3



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


def difference_format(metric: str) -> tuple[float, int, str]:
    """(scale, decimals, unit) that a difference of ``metric`` is written with: accuracies in percentage
    points (:func:`snnlib.study.records.metric_scale`), losses with four decimals."""
    digits, unit = (2, " points") if metric in R.ACCURACY_METRICS else (4, "")
    return R.metric_scale(metric), digits, unit



def kind_label(site: str, kind: str) -> str:
    """A kind's name at ``site`` with the kinds that are the same operation there
    (``snnlib.study.preregistration.SAME_OPERATION``): ``dropout2d = feature dropout`` on the current."""
    if kind == "none":
        return R.KIND_NAMES["none"]
    same = [k for k in DROPOUT_KINDS if k != kind and P.operation(site, k) == P.operation(site, kind)]
    return " = ".join(R.KIND_NAMES[k] for k in (kind, *same))



def same_operation_sentence() -> str:
    """Which kinds are one operation at which site (``snnlib.study.preregistration.SAME_OPERATION``), in words."""
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
    """The planned seeds (``snnlib.study.preregistration.planned_seeds``) of a cell (p = 0.5, a new mask
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
    scale, digits, _ = difference_format(metric)
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
            scale, digits, _ = difference_format(m)
            mean, std = r[f"{m}_mean"] * scale, r[f"{m}_std"] * scale
            cells.append(f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}")
        rows.append([R.KIND_NAMES[r["variant"]], "-" if none else r["site"], r["n"], *cells])
    head = ["kind", "site", "seeds", *(R.METRIC_NAMES[m] + (" (%)" if m in R.ACCURACY_METRICS else "")
                                       for m in metrics)]
    return R.markdown_table(head, rows)



def differences_sentence(table: pd.DataFrame, dataset: str, metric: str = "test_acc") -> str:
    """The last epoch's ``metric`` of the base network on ``dataset`` and, at each site with runs, each
    distinct kind's mean minus the base network's (seeds in brackets), in one sentence."""
    name, (scale, digits, unit) = R.DATASET_NAMES[dataset], difference_format(metric)
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



def same_operation_check(table: pd.DataFrame) -> str:
    """Where a kind that is another's operation (``snnlib.study.preregistration.SAME_OPERATION``) has runs of
    its own (the study's first editions ran feature dropout on the current), whether each of its seeds has
    the same numbers as the other kind's run of that seed (:func:`snnlib.study.progress.same_numbers`), in one
    sentence; ``""`` when no such pair of runs exists."""
    parts = []
    for (site, kind), stands in P.SAME_OPERATION.items():
        counts = []
        for dataset in R.DATASETS:
            own = {int(r.seed): r.record for r in R.cell_runs(table, dataset, kind, site=site).itertuples()}
            other = {int(r.seed): r.record for r in R.cell_runs(table, dataset, stands, site=site).itertuples()}
            seeds = sorted(set(own) & set(other))
            if seeds:
                same = sum(PG.same_numbers(own[s], other[s]) for s in seeds)
                counts.append(f"{same} of {len(seeds)} seeds on {R.DATASET_NAMES[dataset]}")
        if counts:
            parts.append(f"{R.KIND_NAMES[kind]} and {R.KIND_NAMES[stands]} on {SITE_WORDS[site]}: the same numbers in "
                         f"{join_words(counts)}")
    return f"Where both kinds of one operation have runs: {'; '.join(parts)}." if parts else ""



UNIFORM_LOSS = math.log(10)  # the cross-entropy of a uniform guess over ten classes
UNIFORM_TOLERANCE = 1e-3


def uniform_guess_cells(table: pd.DataFrame) -> list[tuple[str, str, str, int]]:
    """The distinct kind-and-site cells (dataset, kind, site, seeds) in which every finished run ends with a
    test loss within :data:`UNIFORM_TOLERANCE` of ln 10, the loss of a uniform guess: the readout gives
    every class about the same probability for every test sample, whatever the input."""
    cells = []
    for dataset in R.DATASETS:
        for site in P.SITES:
            for kind in P.distinct(site, DROPOUT_KINDS):
                losses = R.cell_runs(table, dataset, kind, site=site)["test_loss"].astype(float).dropna()
                if len(losses) and bool(((losses - UNIFORM_LOSS).abs() <= UNIFORM_TOLERANCE).all()):
                    cells.append((dataset, kind, site, len(losses)))
    return cells


def uniform_guess_sentence(table: pd.DataFrame) -> str:
    """:func:`uniform_guess_cells` in one sentence."""
    cells = uniform_guess_cells(table)
    if not cells:
        return (f"No cell ends with the loss of a uniform guess (ln 10 = {UNIFORM_LOSS:.4f}, within "
                f"{UNIFORM_TOLERANCE:g}) in every seed.")
    names = [f"{R.DATASET_NAMES[d]} {kind_label(s, k)} on {SITE_WORDS[s]} ({n} of {n} seeds)" for d, k, s, n in cells]
    return (f"Ending with the test loss of a uniform guess (ln 10 = {UNIFORM_LOSS:.4f}, within {UNIFORM_TOLERANCE:g}) "
            f"in every seed: {join_words(names)}.")


def constant_neuron_share(firing_rates: Sequence[float]) -> float:
    """The share of hidden neurons that fire for every test image or for none (a record's
    ``hidden_firing_rate`` exactly 1 or 0). A hidden neuron fires at most once, so whether such a neuron
    fires says nothing about the image; only when it fires could."""
    if not len(firing_rates):
        raise ValueError("constant_neuron_share needs at least one neuron's firing rate")
    return sum(rate in (0.0, 1.0) for rate in firing_rates) / len(firing_rates)


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _mean_constant_share(runs: pd.DataFrame) -> tuple[float, int]:
    shares = [constant_neuron_share(rates) for rates in R.per_neuron(runs, "hidden_firing_rate").values()]
    return (sum(shares) / len(shares) if shares else math.nan), len(shares)


def constant_code_sentence(table: pd.DataFrame) -> str:
    """For the cells of :func:`uniform_guess_cells`, the mean :func:`constant_neuron_share` of their runs
    against the base network of the same dataset: what the hidden layer hands the readout there."""
    by_dataset: dict[str, list[str]] = {}
    for dataset, kind, site, _ in uniform_guess_cells(table):
        share, n = _mean_constant_share(R.cell_runs(table, dataset, kind, site=site))
        if n:
            by_dataset.setdefault(dataset, []).append(f"{share:.0%} with {kind_label(site, kind)} on "
                                                      f"{SITE_WORDS[site]} ({_seeds(n)})")
    parts = []
    for dataset, cells in by_dataset.items():
        base, n_base = _mean_constant_share(R.base_runs(table, dataset))
        against = f", against {base:.0%} in the base network ({_seeds(n_base)})" if n_base else ""
        parts.append(f"on {R.DATASET_NAMES[dataset]}, {join_words(cells)}{against}")
    if not parts:
        return "No cell ends with the loss of a uniform guess in every seed: no such hidden code to measure."
    return ("Share of the hidden neurons that fire for every test image or for none, so that whether they fire "
            f"says nothing about the image: {'; '.join(parts)}.")
