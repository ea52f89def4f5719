"""Figures of run records, for the notebooks. Matplotlib only: no analysis here (the numbers come
from :mod:`snnlib.records`, :mod:`snnlib.claims` and :mod:`snnlib.findings`).

- :func:`plot_band` draws the mean over seeds per epoch with a ± 1 standard deviation band;
  :func:`plot_cells` draws several cells on one axes.
- :func:`plot_comparison` draws the base network against each dropout kind, one panel per kind
  (the layout of the paper's Figures 2-5).
- :func:`plot_final` draws the last epoch's metric of every kind at every site.
- :func:`plot_run` and :func:`epoch_table` show one run.
- :func:`forest` draws tests as a forest plot (difference with its 95% interval, coloured by its
  label after Holm's correction); :func:`forest_figure` the primary tests of every claim;
  :func:`verdict_heatmap` the uncertainty verdict's method x metric matrix.

Every function accepts empty or partial data and says so on the axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from . import records as R
from .dropout import KINDS

_COLORS = plt.get_cmap("tab10").colors
SITE_MARKERS = {"current": "o", "hidden": "s", "input": "^"}


def kind_color(kind: str) -> tuple:
    """The colour of a dropout kind, the same in every figure (the base network is grey)."""
    return (0.25, 0.25, 0.25) if kind == "none" else _COLORS[KINDS.index(kind) % len(_COLORS)]


def metric_label(metric: str) -> str:
    name = R.METRIC_NAMES.get(metric, metric)
    return f"{name} (%)" if metric in R.ACCURACY_METRICS else name


def _scale(metric: str) -> float:
    return 100.0 if metric in R.ACCURACY_METRICS else 1.0


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
    k = _scale(metric)
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
    k = _scale(metric)
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

LABEL_COLORS = {"yes": "#1a7f37", "better": "#1a7f37", "contrary": "#c62828", "worse": "#c62828",
                "not significant": "0.55", "no data": "0.8"}


def forest(ax: plt.Axes, tests: Sequence, scale: float = 1.0, unit: str = "", names: Sequence[str] | None = None,
           reference: float = 0.0) -> plt.Axes:
    """A forest plot of ``tests`` (objects with ``difference``, ``ci_low``, ``ci_high``, ``label``, e.g.
    :class:`snnlib.claims.Test`), one row each from the top: the difference times ``scale`` with its 95%
    interval, coloured by its label (green: significant in the claimed or better direction, red: the
    other way, grey: not significant); a test without data is written as *waiting*."""
    names = list(names) if names is not None else [str(i) for i in range(len(tests))]
    if len(names) != len(tests):
        raise ValueError(f"forest needs one name per test, got {len(names)} names for {len(tests)} tests")
    for y, t in enumerate(tests):
        color = LABEL_COLORS.get(t.label, "0.5")
        if t.label == "no data" or math.isnan(t.difference):
            ax.text(0.02, y, "waiting for runs", transform=ax.get_yaxis_transform(), va="center",
                    color="0.5", fontsize="small", style="italic")
            continue
        low, high = (t.ci_low, t.ci_high) if not math.isnan(t.ci_low) else (t.difference, t.difference)
        ax.plot([low * scale, high * scale], [y, y], color=color, lw=2.2, solid_capstyle="butt")
        ax.plot(t.difference * scale, y, "o", color=color, ms=6, mec="white", mew=0.8)
    ax.axvline(reference, color="0.3", lw=1)
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.grid(alpha=0.3, axis="x")
    if unit:
        ax.set_xlabel(unit)
    return ax


FOREST_PANELS = (  # (claim, metric, title, scale, unit)
    ("C1", "train_loss", "C1 · training loss, dropout on: kind − base (claim: > 0)", 1.0, "difference"),
    ("C1", "test_acc", "C1 · test accuracy: kind − base (claim: < 0)", 100.0, "percentage points"),
    ("C2", "test_acc", "C2 · test accuracy − 20% (claim: < 0)", 100.0, "percentage points"),
    ("C2", "train_eval_acc", "C2 · training accuracy, dropout off − 20% (claim: < 0)", 100.0, "percentage points"),
    ("C3", "top10_overlap", "C3 · top-10 overlap: kind − control (claim: < 0)", 1.0, "neurons"),
    ("C3", "kendall_tau", "C3 · Kendall tau: kind − control (claim: < 0)", 1.0, "difference of tau"),
)


def forest_figure(tests: Sequence, panels: Sequence[tuple] = FOREST_PANELS, width: float = 13.0) -> plt.Figure:
    """Every primary test of the claims as a forest plot, one panel per claim and metric, one row per
    dataset, kind and site; the legend gives the labels' colours."""
    chosen = [[t for t in tests if t.role == "primary" and t.claim == claim and t.metric == metric]
              for claim, metric, *_ in panels]
    heights = [max(len(c), 1) * 0.28 + 0.9 for c in chosen]
    rows = math.ceil(len(panels) / 2)
    row_heights = [max(heights[2 * r:2 * r + 2]) for r in range(rows)]
    fig, axes = plt.subplots(rows, 2, figsize=(width, sum(row_heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": row_heights})
    for ax, selected, (_, _, title, scale, unit) in zip(axes.ravel(), chosen, panels, strict=False):
        names = [f"{R.DATASET_NAMES.get(t.dataset, t.dataset)} · {R.KIND_NAMES.get(t.kind, t.kind)}"
                 + ("" if t.claim == "C3" else f" · {t.site}") for t in selected]
        forest(ax, selected, scale, unit, names)
        ax.set_title(title, fontsize="medium", loc="left")
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=c, marker="o", lw=2, label=label) for label, c in (
        ("significant, as the paper claims (yes)", LABEL_COLORS["yes"]),
        ("significant, the other way (contrary)", LABEL_COLORS["contrary"]),
        ("not significant after Holm", LABEL_COLORS["not significant"]))]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize="medium", frameon=False)
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    return fig


HEATMAP_SYMBOLS = {"better": "+", "worse": "−", "not significant": "·", "no data": "…"}
SHORT_BASELINES = {"deterministic": "the deterministic base", "temperature": "temperature scaling",
                   "ensemble": "5-run ensembles"}


def verdict_heatmap(matrix: pd.DataFrame, datasets: Sequence[str] = R.DATASETS,
                    metrics: dict[str, str] | None = None) -> plt.Figure:
    """The uncertainty verdict (a :func:`snnlib.evaluations.verdict_matrix`, primary rows) as coloured
    cells: one panel per dataset (rows of panels) and baseline (columns), a row per kind and number of
    passes, a column per primary metric, and the row's verdict on the right."""
    from .evaluations import BASELINE_NAMES, PRIMARY_NAMES

    metrics = metrics or PRIMARY_NAMES
    primary = matrix[matrix["role"] == "primary"] if len(matrix) else matrix
    baselines = list(BASELINE_NAMES)
    legend = "  ".join(f"{HEATMAP_SYMBOLS[k]} {k}" for k in ("better", "worse", "not significant", "no data"))
    colors = {"better": LABEL_COLORS["better"], "worse": LABEL_COLORS["worse"], "not significant": "0.88",
              "no data": "white"}
    n_rows = max((len(primary[(primary["dataset"] == d) & (primary["baseline"] == b)])
                  for d in datasets for b in baselines), default=0) if len(primary) else 0
    fig, axes = plt.subplots(len(datasets), len(baselines), figsize=(4.6 * len(baselines),
                                                                      (0.36 * max(n_rows, 3) + 1.5) * len(datasets)),
                             squeeze=False)
    for i, dataset in enumerate(datasets):
        for j, baseline in enumerate(baselines):
            ax = axes[i, j]
            rows = (primary[(primary["dataset"] == dataset) & (primary["baseline"] == baseline)]
                    if len(primary) else primary)
            ax.set_xlim(0, len(metrics) + 1.9)
            ax.set_ylim(max(len(rows), 1), 0)
            for y, (_, r) in enumerate(rows.iterrows()):
                for x, column in enumerate(metrics):
                    label = r[column]
                    ax.add_patch(plt.Rectangle((x, y), 0.95, 0.9, color=colors.get(label, "white"), ec="0.75",
                                               lw=0.5))
                    ax.text(x + 0.47, y + 0.45, HEATMAP_SYMBOLS.get(label, label), ha="center", va="center",
                            fontsize="medium", weight="bold", color="white" if label in ("better", "worse") else "0.4")
                verdict = "waiting" if r["verdict"] == "not enough data" else r["verdict"]
                ax.text(len(metrics) + 0.08, y + 0.45, verdict, va="center", fontsize="small", weight="bold")
            ax.set_xticks([x + 0.47 for x in range(len(metrics))], list(metrics.values()), rotation=35, ha="right",
                          fontsize="small")
            ax.set_yticks([y + 0.45 for y in range(len(rows))],
                          [f"{R.KIND_NAMES[r['kind']]}, {r['method'].replace('MC dropout, ', 'MC ')}"
                           for _, r in rows.iterrows()], fontsize="small")
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_title(f"{R.DATASET_NAMES.get(dataset, dataset)} vs {SHORT_BASELINES[baseline]}", loc="left",
                         fontsize="medium")
            if not len(rows):
                _empty(ax, "no evaluations")
    fig.suptitle(f"MC dropout of each kind against the base network (after Holm): {legend}", fontsize="medium")
    fig.tight_layout()
    return fig
