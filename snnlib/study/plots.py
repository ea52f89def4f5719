"""Figures of run records, for the notebooks. Matplotlib only: no analysis here (the numbers come
from :mod:`snnlib.study.records`, :mod:`snnlib.study.claims` and :mod:`snnlib.study.questions`).

- :func:`plot_band` draws the mean over seeds per epoch with a ± 1 standard deviation band;
  :func:`plot_cells` draws several cells on one axes.
- :func:`plot_comparison` draws the base network against each dropout kind, one panel per kind
  (the layout of the paper's Figures 2-5).
- :func:`plot_final` draws the last epoch's metric of every kind at every site.
- :func:`plot_run` and :func:`epoch_table` show one run.
- :func:`forest` draws tests as a forest plot (difference with its 95% interval, coloured by its
  label after Holm's correction); :func:`forest_figure` the primary tests of every claim;
  :func:`verdict_heatmap` the uncertainty verdict's method x metric matrix.
- :func:`plot_pass_curves`: MC dropout's uncertainty against its number of passes (the uncertainty chapter).
- For the analysis chapters: :func:`plot_site_curves` (Figures 2-5 of one site, every metric in one
  figure), :func:`plot_rate_mask` (rate and mask in time), :func:`plot_secondary_tests` (the study's own
  questions as forest plots), :func:`plot_c3_tests` (the C3 tests) and :func:`plot_agreement` (how well
  rankings of hidden neurons agree with a base run).

Every function accepts empty or partial data and says so on the axes.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from snnlib.model.dropout import KINDS
from snnlib.study import evaluations as E
from snnlib.study import neurons as NEURONS
from snnlib.study import preregistration as P
from snnlib.study import questions, stats
from snnlib.study import records as R
from snnlib.study import sites as SITES

_COLORS = plt.get_cmap("tab10").colors
SITE_MARKERS = {"current": "o", "hidden": "s", "input": "^"}


def kind_color(kind: str) -> tuple:
    """The colour of a dropout kind, the same in every figure (the base network is grey)."""
    return (0.25, 0.25, 0.25) if kind == "none" else _COLORS[KINDS.index(kind) % len(_COLORS)]


def metric_label(metric: str) -> str:
    name = R.METRIC_NAMES.get(metric, metric)
    return f"{name} (%)" if metric in R.ACCURACY_METRICS else name



def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def curve(epochs: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(epoch, mean, std, n) of ``metric`` over the runs of an :func:`records.epochs_table`, per epoch.

    Runs still going are pooled per epoch (``n`` says how many each point averages); the standard
    deviation is the sample one, 0 for a single run.
    """
    if epochs.empty or metric not in epochs:
        return (np.array([], int),) + (np.array([]),) * 2 + (np.array([], int),)
    grouped = epochs.dropna(subset=[metric]).groupby("epoch")[metric]
    n = grouped.count()
    std = grouped.std(ddof=1).where(n > 1, 0.0)
    return (n.index.to_numpy(int), grouped.mean().to_numpy(float), std.to_numpy(float), n.to_numpy(int))


def plot_band(ax: plt.Axes, runs: pd.DataFrame, metric: str, label: str | None = None, show_n: bool = True,
              **style) -> None:
    """Mean over the runs (rows of a :func:`records.runs_table`) per epoch, ± 1 standard deviation."""
    epoch, mean, std, n = curve(R.epochs_table(runs["record"]) if len(runs) else pd.DataFrame(), metric)
    if len(epoch) == 0:
        return
    k = R.metric_scale(metric)
    if label and show_n:
        label += f" (n={n.max()})" if n.min() == n.max() else f" (n={n.min()}-{n.max()})"
    line, = ax.plot(epoch, mean * k, marker="o" if len(epoch) <= 25 else None, markersize=3, label=label, **style)
    if n.max() > 1:
        ax.fill_between(epoch, (mean - std) * k, (mean + std) * k, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_cells(ax: plt.Axes, cells: Sequence[tuple[str, pd.DataFrame, dict]], metric: str,
               title: str | None = None) -> plt.Axes:
    """Several cells on one axes: ``(label, runs, style)`` each, e.g. the rates of a sweep."""
    drawn = False
    for label, runs, style in cells:
        if len(runs):
            plot_band(ax, runs, metric, label=label, **style)
            drawn = True
    ax.set(xlabel="epoch", ylabel=metric_label(metric), title=title)
    if drawn:
        ax.legend(fontsize="x-small")
        ax.grid(alpha=0.3)
    else:
        _empty(ax, "no finished runs")
    return ax


def plot_comparison(table: pd.DataFrame, dataset: str, metric: str, site: str = "current", mask: str = "step",
                    p: float = 0.5, kinds: Sequence[str] | None = None, epochs: int = 20,
                    panel_size: tuple[float, float] = (3.6, 2.7)) -> plt.Figure:
    """The base network against each dropout kind, one panel per kind: ``metric`` per epoch, mean ± std
    over seeds (the paper's Figures 2-5). ``table`` is a :func:`records.runs_table`; the study's runs of
    ``dataset`` at ``site`` with ``mask`` and ``p`` are drawn."""
    kinds = list(kinds) if kinds is not None else [k for k in KINDS if k != "none"]
    base = R.base_runs(table, dataset, epochs)
    cols = min(len(kinds), 3) or 1
    rows = max(1, math.ceil(len(kinds) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows + 0.5),
                             squeeze=False, sharex=True, sharey=True)
    for ax, kind in zip(axes.ravel(), kinds, strict=False):
        runs = R.cell_runs(table, dataset, kind, p=p, mask=mask, site=site, epochs=epochs)
        plot_band(ax, base, metric, label="base", color=kind_color("none"))
        plot_band(ax, runs, metric, label=R.KIND_NAMES[kind], color=kind_color(kind))
        ax.set_title(R.KIND_NAMES[kind], fontsize="medium")
        if len(runs) or len(base):
            ax.legend(fontsize="x-small")
        if not len(runs):
            _empty(ax, "no finished runs")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(kinds):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel(metric_label(metric))
    where = f"dropout on the {site}" + ("" if mask == "step" else ", one mask per sample")
    fig.suptitle(f"{R.DATASET_NAMES.get(dataset, dataset)}: {R.METRIC_NAMES.get(metric, metric)}, {where}, "
                 f"p = {p}; mean ± std over seeds", fontsize="medium")
    fig.tight_layout()
    return fig


def plot_final(table: pd.DataFrame, metric: str, datasets: Sequence[str] = R.DATASETS,
               sites: Sequence[str] = ("current", "hidden", "input"), p: float = 0.5,
               panel_size: tuple[float, float] = (5.2, 3.0)) -> plt.Figure:
    """The last epoch's ``metric`` of every dropout kind at every site (mean ± std over seeds, one marker
    per site), against the base network's mean (line) and ± std (band), one panel per dataset."""
    kinds = [k for k in KINDS if k != "none"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(panel_size[0] * len(datasets), panel_size[1]),
                             squeeze=False)
    k = R.metric_scale(metric)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        base = R.base_runs(table, dataset)[metric].astype(float) * k
        if len(base):
            ax.axhline(base.mean(), color=kind_color("none"), lw=1, label=f"base (n={len(base)})")
            if len(base) > 1:
                ax.axhspan(base.mean() - base.std(ddof=1), base.mean() + base.std(ddof=1), color="0.85", lw=0)
        drawn_sites = []
        for j, site in enumerate(sites):
            for i, kind in enumerate(kinds):
                values = R.cell_runs(table, dataset, kind, p=p, site=site)[metric].astype(float) * k
                if not len(values):
                    continue
                x = i + (j - (len(sites) - 1) / 2) * 0.22
                ax.errorbar(x, values.mean(), yerr=values.std(ddof=1) if len(values) > 1 else None,
                            marker=SITE_MARKERS.get(site, "o"), color=kind_color(kind), capsize=2, ms=5, ls="none")
                if site not in drawn_sites:
                    drawn_sites.append(site)
        for site in drawn_sites:  # legend entries for the markers, in a neutral colour
            ax.plot([], [], marker=SITE_MARKERS.get(site, "o"), color="0.3", ls="none", label=f"on the {site}")
        ax.set_xticks(range(len(kinds)), [R.KIND_NAMES[kind] for kind in kinds], rotation=20, fontsize="small")
        ax.set(ylabel=metric_label(metric), title=R.DATASET_NAMES.get(dataset, dataset))
        ax.grid(alpha=0.3, axis="y")
        if len(base) or drawn_sites:
            ax.legend(fontsize="x-small")
        else:
            _empty(ax, "no finished runs")
    fig.suptitle(f"{R.METRIC_NAMES.get(metric, metric)} after the last epoch, p = {p}, a new mask every step",
                 fontsize="medium")
    fig.tight_layout()
    return fig


def plot_run(record: dict, fig: plt.Figure | None = None) -> plt.Figure:
    """Losses and accuracies against epoch for one run: training (dropout on and off), validation, test."""
    fig = fig or plt.figure(figsize=(10, 3.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    runs = R.runs_table([record])
    dropout = record["config"].get("variant", "none") != "none"
    # without dropout the two training passes are the same network: one is drawn, named plainly
    styles = {"train": "-", "train_eval": "-.", "val": ":", "test": "--"} if dropout else {
        "train_eval": "-", "val": ":", "test": "--"}
    for part, style in styles.items():
        name = (lambda m: R.METRIC_NAMES[m]) if dropout else (
            lambda m: R.METRIC_NAMES[m].replace(" (dropout off)", ""))
        plot_band(ax_loss, runs, f"{part}_loss", label=name(f"{part}_loss"), show_n=False, linestyle=style)
        plot_band(ax_acc, runs, f"{part}_acc", label=name(f"{part}_acc"), show_n=False, linestyle=style)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        if record.get("epochs"):
            ax.legend(fontsize="x-small")
            ax.grid(alpha=0.3)
        else:
            _empty(ax, "no epoch yet")
    c = record["config"]
    kind = "base network" if c.get("variant") == "none" else (
        f"{R.KIND_NAMES.get(c.get('variant'), c.get('variant'))} p={c.get('p')} on the {c.get('site')}")
    fig.suptitle(f"{R.DATASET_NAMES.get(c.get('dataset'), c.get('dataset'))}, {kind}, seed {c.get('seed')}")
    fig.tight_layout()
    return fig


def epoch_table(record: dict, digits: int = 4) -> str:
    """The per-epoch numbers of one run as fixed-width text (losses; accuracies in percent)."""
    head = (f"{'epoch':>5} {'train loss':>11} {'train loss (off)':>16} {'test loss':>10} {'test acc %':>10} "
            f"{'hidden spikes':>13}")
    lines = [head]
    for e in record.get("epochs", []):
        off = e.get("train_eval_loss")
        off_text = f"{off:>16.{digits}f}" if off is not None else f"{'-':>16}"
        lines.append(f"{e['epoch']:>5} {e['train_loss']:>11.{digits}f} {off_text} {e['test_loss']:>10.{digits}f} "
                     f"{100 * e['test_acc']:>10.2f} {e['test_hidden_spikes']:>13.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- tests and verdicts


# ---------------------------------------------------------------- the book's analysis chapters

GROUP_COLORS = {NEURONS.CONTROL_LABEL: (0.1, 0.1, 0.1), NEURONS.OTHER_SEED_LABEL: (0.62, 0.62, 0.62)}


def _short_label(label: str, width: int = 13) -> str:
    """A group's name over a few lines, for tick labels: ``dropout2d = feature dropout`` in two."""
    short = {NEURONS.CONTROL_LABEL: "control (no dropout)", NEURONS.OTHER_SEED_LABEL: "another seed (chance)"}
    return textwrap.fill(short.get(label, label), width, break_long_words=False)


def plot_site_curves(table: pd.DataFrame, dataset: str, site: str = "current",
                     metrics: Sequence[str] = ("train_loss", "train_eval_loss", "test_acc"),
                     kinds: Sequence[str] | None = None, p: float = 0.5, mask: str = "step", epochs: int = 20,
                     panel_size: tuple[float, float] = (1.65, 1.65), log_loss: bool = True) -> plt.Figure:
    """The paper's Figures 2-5 for one dataset and one site in one figure: a row per metric, a column per
    distinct dropout operation at ``site`` (kinds that are one operation there are drawn once and named
    together, :func:`snnlib.study.sites.kind_label`), each panel the base network (grey) against the kind,
    mean ± std over seeds per epoch; the seeds of each kind in its
    column's title, the base network's in the legend. A kind without runs says so in its panels. A loss
    panel takes a log scale when ``log_loss`` and its curves span more than a factor of 20."""
    kinds = list(kinds) if kinds is not None else list(P.distinct(site, SITES.DROPOUT_KINDS))
    base = R.base_runs(table, dataset, epochs)
    fig, axes = plt.subplots(len(metrics), len(kinds), squeeze=False, sharex=True,
                             figsize=(panel_size[0] * len(kinds) + 0.9, panel_size[1] * len(metrics) + 1.0))
    for j, kind in enumerate(kinds):
        runs = R.cell_runs(table, dataset, P.operation(site, kind), p=p, mask=mask, site=site, epochs=epochs)
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            plot_band(ax, base, metric, color=kind_color("none"))
            plot_band(ax, runs, metric, color=kind_color(kind))
            drawn = np.concatenate([line.get_ydata() for line in ax.get_lines()] or [np.array([])])
            # a log scale where the losses span more than a factor of 20, a linear one where that would hide it
            if log_loss and metric not in R.ACCURACY_METRICS and drawn.size and drawn.min() > 0 \
                    and drawn.max() / drawn.min() > 20:
                ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            if runs.empty:
                _empty(ax, "waiting\nfor runs")
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize="small")
        axes[0, j].set_title(f"{textwrap.fill(SITES.kind_label(site, kind), 22)}\n(n={len(runs)})",
                             fontsize="small", color=kind_color(kind))
    for i, metric in enumerate(metrics):
        axes[i, 0].set_ylabel(textwrap.fill(metric_label(metric), 18), fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize="small")
    fig.legend(handles=[plt.Line2D([], [], color=kind_color("none"), marker="o", ms=3,
                                   label=f"base network, no dropout (n={len(base)})"),
                        Patch(color="0.5", alpha=0.3, label="± 1 standard deviation over seeds")],
               loc="lower center", ncol=2, fontsize="small", frameon=False)
    fig.suptitle(f"{R.DATASET_NAMES.get(dataset, dataset)}: dropout on {SITES.SITE_WORDS[site]}, p = {p:g}, "
                 f"{'a new mask every step' if mask == 'step' else 'one mask per sample'}", fontsize="medium")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def _base_reference(ax: plt.Axes, values: pd.Series) -> None:
    """The base network's mean as a horizontal line and its ± 1 standard deviation as a grey band
    across ``ax``, from its values over seeds (nothing without values)."""
    if values.empty:
        return
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    ax.axhspan(values.mean() - spread, values.mean() + spread, color="0.88", lw=0)
    ax.axhline(values.mean(), color=kind_color("none"), lw=1, label=f"base network (n={len(values)})")


def plot_rate_mask(table: pd.DataFrame, datasets: Sequence[str] = R.DATASETS, metric: str = "test_acc",
                   panel_size: tuple[float, float] = (3.8, 2.9)) -> plt.Figure:
    """Standard dropout on the current at each rate of :data:`snnlib.study.questions.RATES` with a new mask every
    step and with one mask per sample: the last epoch's ``metric``, mean ± std over seeds (the seeds
    written beside each point), against the base network's mean (line) and ± std (band); a panel per
    dataset."""
    fig, axes = plt.subplots(1, len(datasets), figsize=(panel_size[0] * len(datasets), panel_size[1]),
                             squeeze=False)
    k = R.metric_scale(metric)
    masks = {"step": ("o", -0.006, "a new mask every step"), "sample": ("s", 0.006, "one mask per sample")}
    for ax, dataset in zip(axes[0], datasets, strict=True):
        _base_reference(ax, R.base_runs(table, dataset)[metric].astype(float) * k)
        for (mask, (marker, shift, name)), color in zip(masks.items(), (kind_color("dropout"), kind_color("dropout2d")),
                                                         strict=True):
            points = [(p, questions.dropout_runs(table, dataset, p, mask)[metric].astype(float) * k)
                      for p in questions.RATES]
            points = [(p, v) for p, v in points if len(v)]
            if not points:
                continue
            x = [p + shift for p, _ in points]
            ax.errorbar(x, [v.mean() for _, v in points], yerr=[v.std(ddof=1) if len(v) > 1 else 0 for _, v in points],
                        marker=marker, color=color, capsize=3, label=name)
            for xi, (_, v) in zip(x, points, strict=True):
                ax.annotate(f"n={len(v)}", (xi, v.mean()), textcoords="offset points", xytext=(5, -3),
                            fontsize="small", color=color)
        ax.set_xticks(questions.RATES)
        ax.set_xlim(min(questions.RATES) - 0.05, max(questions.RATES) + 0.07)
        ax.set(xlabel="dropout rate p", ylabel=metric_label(metric), title=R.DATASET_NAMES.get(dataset, dataset))
        ax.grid(alpha=0.3)
        if not ax.get_legend_handles_labels()[0]:
            _empty(ax, "no finished runs")
    handles = [plt.Line2D([], [], color=kind_color("none"), lw=1, label="base network (mean, ± std band)")] + [
        plt.Line2D([], [], color=c, marker=marker, label=name)
        for (marker, _, name), c in zip(masks.values(), (kind_color("dropout"), kind_color("dropout2d")), strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_agreement(table: pd.DataFrame, measure: str = "hidden_importance", datasets: Sequence[str] = R.DATASETS,
                   statistics: Sequence[str] = tuple(P.C3_STATISTICS), width: float = 7.6,
                   row_height: float = 2.5) -> plt.Figure:
    """How well hidden-neuron rankings agree with a base run (:func:`snnlib.study.neurons.agreement_values`):
    a row of panels per statistic, a column per dataset; in each, a row per group with a point per pair of
    runs and a bar at the mean: each dropout operation at the current, the control (no dropout, another
    sample order) and base runs of different seeds (chance; dashed: ``k^2 / n`` for the overlap, 0 for tau)."""
    fig, axes = plt.subplots(len(statistics), len(datasets), squeeze=False, sharey=True,
                             figsize=(width, row_height * len(statistics) + 0.5))
    for i, statistic in enumerate(statistics):
        for j, dataset in enumerate(datasets):
            ax = axes[i, j]
            groups = NEURONS.agreement_values(table, dataset, measure, statistic)
            for y, (label, values) in enumerate(groups.items()):
                kind = next((k for k in SITES.DROPOUT_KINDS if SITES.kind_label("current", k) == label), None)
                color = kind_color(kind) if kind else GROUP_COLORS.get(label, "0.4")
                spread = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(len(values))
                ax.scatter(values, y + spread, s=11, color=color, zorder=3)
                if values:
                    ax.vlines(np.mean(values), y - 0.32, y + 0.32, color="k", lw=1.6, zorder=4)
            chance = stats.chance_top_k_overlap(NEURONS.HIDDEN, P.TOP_K) if statistic == "top10_overlap" else 0.0
            ax.axvline(chance, color="0.5", ls="--", lw=1)
            ax.set_yticks(range(len(groups)), [_short_label(g, 30) for g in groups], fontsize="small")
            ax.set_ylim(len(groups) - 0.5, -0.5)
            ax.set_xlabel(P.C3_STATISTICS[statistic], fontsize="small")
            ax.tick_params(axis="x", labelsize="small")
            ax.set_title(R.DATASET_NAMES.get(dataset, dataset), fontsize="medium")
            ax.grid(alpha=0.3, axis="x")
            if not any(groups.values()):
                _empty(ax, "no finished runs")
    fig.suptitle(f"Agreement with the base run of the same seed, by the {P.C3_MEASURES[measure]}",
                 fontsize="medium")
    fig.tight_layout()
    return fig


def plot_site_differences(table: pd.DataFrame, metric: str = "test_acc", datasets: Sequence[str] = R.DATASETS,
                          sites: Sequence[str] = P.SITES, width: float = 7.6) -> plt.Figure:
    """Each dropout kind's last-epoch ``metric`` minus the base network's, at each site with runs (one marker
    per site, mean ± std over the kind's seeds), a panel per dataset and a row per dropout operation; the
    grey band is the base network's ± 1 standard deviation around 0. A point far beyond the others (more
    than four times the next largest) would flatten them: it is drawn at the edge as an arrow head with
    its value written beside it. The axis spans the points and at least ± 2 base standard deviations."""
    # feature dropout is another kind's operation at every site (dropout2d's; on the input spikes dropout's)
    kinds = [k for k in SITES.DROPOUT_KINDS if k != "feature"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(width, 0.42 * len(kinds) + 1.7), squeeze=False, sharey=True)
    k = R.metric_scale(metric)
    offsets = dict(zip(sites, np.linspace(-0.22, 0.22, len(sites)), strict=True))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        base = R.base_runs(table, dataset)[metric].astype(float).dropna() * k
        points = []  # (row, site, kind, difference, std)
        for row, kind in enumerate(kinds):
            for site in sites:
                if P.operation(site, kind) != kind:
                    continue
                values = R.cell_runs(table, dataset, kind, site=site)[metric].astype(float).dropna() * k
                if len(values) and len(base):
                    points.append((row, site, kind, values.mean() - base.mean(),
                                   values.std(ddof=1) if len(values) > 1 else 0.0))
        extents = sorted(abs(d) + sd for *_, d, sd in points)
        while len(extents) > 1 and extents[-1] > 4 * extents[-2]:
            extents.pop()
        inside = [abs(d) + sd <= extents[-1] for *_, d, sd in points]
        spread = base.std(ddof=1) if len(base) > 1 else 0.0
        low = min([d - sd for (*_, d, sd), ok in zip(points, inside, strict=True) if ok] + [-2 * spread, 0.0])
        high = max([d + sd for (*_, d, sd), ok in zip(points, inside, strict=True) if ok] + [2 * spread, 0.0])
        pad = 0.1 * (high - low) or 1.0
        clipped = [d for (*_, d, _sd), ok in zip(points, inside, strict=True) if not ok]
        low -= pad * (1 + 2 * any(d < 0 for d in clipped))
        high += pad * (1 + 2 * any(d > 0 for d in clipped))
        if spread:
            ax.axvspan(-spread, spread, color="0.88", lw=0)
        ax.axvline(0, color=kind_color("none"), lw=1)
        for (row, site, kind, difference, sd), ok in zip(points, inside, strict=True):
            y = row + offsets[site]
            if ok:
                ax.errorbar(difference, y, xerr=sd, marker=SITE_MARKERS[site], color=kind_color(kind), ms=6,
                            capsize=2, ls="none")
                continue
            edge = high - 0.4 * pad if difference > 0 else low + 0.4 * pad
            ax.plot(edge, y, marker=">" if difference > 0 else "<", color=kind_color(kind), ms=8, ls="none")
            ax.annotate(f"{difference:+.1f}", (edge, y), textcoords="offset points", xytext=(-8 if difference > 0 else 8, 7),
                        ha="right" if difference > 0 else "left", fontsize="small", color=kind_color(kind))
        ax.set_xlim(low, high)
        ax.set_yticks(range(len(kinds)), [textwrap.fill(R.KIND_NAMES[kind], 14) for kind in kinds], fontsize="small")
        ax.set_ylim(len(kinds) - 0.5, -0.5)
        ax.set_xlabel(f"kind − base{' (percentage points)' if k != 1 else ''}, mean ± std", fontsize="small")
        ax.set_title(f"{R.DATASET_NAMES.get(dataset, dataset)}" + (f" (base: n={len(base)})" if len(base) else ""),
                     fontsize="medium")
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(axis="x", labelsize="small")
        if not points:
            _empty(ax, "no finished runs")
    drawn = [site for site in sites if any(line.get_marker() == SITE_MARKERS[site] for ax in axes[0]
                                           for line in ax.get_lines())]
    handles = [plt.Line2D([], [], marker=SITE_MARKERS[s], color="0.3", ls="none", label=f"on {SITES.SITE_WORDS[s]}")
               for s in drawn or sites[:1]]
    handles.append(Patch(color="0.88", label="base network ± 1 std"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small", frameon=False)
    fig.suptitle(textwrap.fill(f"{R.METRIC_NAMES.get(metric, metric)} after the last epoch: each kind minus the "
                               f"base network", 80), fontsize="medium")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


PASS_PANELS = (("test", "nll", "test NLL"), ("test", "ece", "test ECE (15 bins)"),
               ("ood", "auroc_max_prob", "OOD AUROC (max. prob.)"))


def plot_pass_curves(evaluations: Sequence[dict], table: pd.DataFrame, datasets: Sequence[str] = R.DATASETS,
                     kinds: Sequence[str] = P.UNCERTAINTY_KINDS, panels: Sequence[tuple[str, str, str]] = PASS_PANELS,
                     width: float = 7.6) -> plt.Figure:
    """MC dropout's uncertainty against its number of passes N: a row per dataset, a column per metric of
    ``panels`` ((sets, metric, name): the test set's NLL and ECE, the AUROC against the out-of-distribution set),
    each kind's mean ± std over its seeds (:func:`snnlib.study.evaluations.curve`, the paper's cell), the base
    network's deterministic prediction (dashed) and its ensembles of five (dotted) as lines (``table``:
    :func:`snnlib.study.evaluations.evaluations_table`), and a grey line at the ensemble's cost
    (:data:`~snnlib.study.preregistration.MATCHED_PASSES` passes). The dataset names the rows, the metric the
    columns, so that no title runs into its neighbour."""
    fig, axes = plt.subplots(len(datasets), len(panels), figsize=(width, 2.9 * len(datasets) + 0.9), squeeze=False)
    for i, dataset in enumerate(datasets):
        ood_set = next((s for s in table[(table["dataset"] == dataset) & (table["set_kind"] == "ood")]["set"]), None)
        for j, (sets, metric, name) in enumerate(panels):
            ax = axes[i, j]
            set_name = "test" if sets == "test" else ood_set
            for kind in kinds:
                c = E.curve(evaluations, set_name, metric, dataset=dataset, variant=kind, p=0.5, mask="step") \
                    if set_name else None
                if c is not None and len(c):
                    ax.plot(c["n"], c["mean"], marker="o", ms=2, color=kind_color(kind), label=R.KIND_NAMES[kind])
                    ax.fill_between(c["n"], c["mean"] - c["std"].fillna(0), c["mean"] + c["std"].fillna(0),
                                    color=kind_color(kind), alpha=0.15, lw=0)
            for method, style in (("deterministic", "--"), ("ensemble", ":")):
                base = R.select(E.of_sets(table, sets), dataset=dataset, variant="none", method=method)[metric]
                if len(base.dropna()):
                    ax.axhline(base.mean(), color=kind_color("none"), ls=style, lw=1.2,
                               label=f"base, {E.METHOD_NAMES[method]}")
            ax.axvline(P.MATCHED_PASSES, color="0.75", lw=1)
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(name, fontsize="medium")
            if i == len(datasets) - 1:
                ax.set_xlabel("passes N")
            if j == 0:
                ax.set_ylabel(R.DATASET_NAMES.get(dataset, dataset), fontsize="medium", fontweight="bold")
            if not ax.has_data():
                _empty(ax, "no evaluations")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig
