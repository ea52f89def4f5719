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
- For the analysis chapters: :func:`plot_site_curves` (Figures 2-5 of one site, every metric in one
  figure), :func:`plot_rate_mask` (rate and mask in time), :func:`plot_secondary_tests` (the study's own
  questions as forest plots), :func:`plot_c3_tests` (the C3 tests) and :func:`plot_agreement` (how well
  rankings of hidden neurons agree with a base run).

Every function accepts empty or partial data and says so on the axes.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from . import analysis, findings
from . import preregistration as P
from . import records as R
from .claims import kind_name
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


def forest_figure(tests: Sequence, panels: Sequence[tuple] = FOREST_PANELS, width: float = 13.0,
                  columns: int = 2) -> plt.Figure:
    """Every primary test of the claims as a forest plot, one panel per claim and metric in ``columns``
    columns (one for the book's text column, two for a wide page), one row per dataset, kind and site;
    the legend gives the labels' colours."""
    chosen = [[t for t in tests if t.role == "primary" and t.claim == claim and t.metric == metric]
              for claim, metric, *_ in panels]
    heights = [max(len(c), 1) * 0.28 + 0.9 for c in chosen]
    rows = math.ceil(len(panels) / columns)
    row_heights = [max(heights[columns * r:columns * r + columns]) for r in range(rows)]
    fig, axes = plt.subplots(rows, columns, figsize=(width, sum(row_heights) + 0.6 * (3 - columns)), squeeze=False,
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
    fig.legend(handles=handles, loc="lower center", ncol=3 if columns > 1 else 1, fontsize="medium", frameon=False)
    fig.tight_layout(rect=(0, 0.035 if columns > 1 else 0.05, 1, 1))
    return fig


HEATMAP_SYMBOLS = {"better": "+", "worse": "−", "not significant": "·", "no data": "…"}
SHORT_BASELINES = {"deterministic": "the deterministic base", "temperature": "temperature scaling",
                   "ensemble": "5-run ensembles"}


def verdict_heatmap(matrix: pd.DataFrame, datasets: Sequence[str] = R.DATASETS,
                    metrics: dict[str, str] | None = None, stacked: bool = False) -> plt.Figure:
    """The uncertainty verdict (a :func:`snnlib.evaluations.verdict_matrix`, primary rows) as coloured
    cells: one panel per dataset and baseline (side by side, or one under the other when ``stacked``, for
    the book's text column), a row per kind and number of passes, a column per primary metric, and the
    row's verdict on the right."""
    from .evaluations import BASELINE_NAMES, PRIMARY_NAMES

    metrics = metrics or PRIMARY_NAMES
    primary = matrix[matrix["role"] == "primary"] if len(matrix) else matrix
    baselines = list(BASELINE_NAMES)
    legend = "  ".join(f"{HEATMAP_SYMBOLS[k]} {k}" for k in ("better", "worse", "not significant", "no data"))
    colors = {"better": LABEL_COLORS["better"], "worse": LABEL_COLORS["worse"], "not significant": "0.88",
              "no data": "white"}
    n_rows = max((len(primary[(primary["dataset"] == d) & (primary["baseline"] == b)])
                  for d in datasets for b in baselines), default=0) if len(primary) else 0
    panel_height = 0.36 * max(n_rows, 3) + 1.5
    shape = (len(datasets) * len(baselines), 1) if stacked else (len(datasets), len(baselines))
    size = (7.6, panel_height * shape[0]) if stacked else (4.6 * len(baselines), panel_height * len(datasets))
    fig, axes = plt.subplots(*shape, figsize=size, squeeze=False)
    for i, dataset in enumerate(datasets):
        for j, baseline in enumerate(baselines):
            ax = axes[i * len(baselines) + j, 0] if stacked else axes[i, j]
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
    fig.suptitle(f"MC dropout against the base network (after Holm):\n{legend}" if stacked else
                 f"MC dropout of each kind against the base network (after Holm): {legend}", fontsize="medium")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the book's analysis chapters

SIGNIFICANT_COLOR = "#1f5fa8"  # a test of the study's own questions, significant after Holm (no claimed side)
GROUP_COLORS = {findings.CONTROL_LABEL: (0.1, 0.1, 0.1), findings.OTHER_SEED_LABEL: (0.62, 0.62, 0.62)}


def _short_label(label: str, width: int = 13) -> str:
    """A group's name over a few lines, for tick labels: ``dropout2d = feature dropout`` in two."""
    short = {findings.CONTROL_LABEL: "control (no dropout)", findings.OTHER_SEED_LABEL: "another seed (chance)"}
    return textwrap.fill(short.get(label, label), width, break_long_words=False)


def plot_site_curves(table: pd.DataFrame, dataset: str, site: str = "current",
                     metrics: Sequence[str] = ("train_loss", "train_eval_loss", "test_acc"),
                     kinds: Sequence[str] | None = None, p: float = 0.5, mask: str = "step", epochs: int = 20,
                     panel_size: tuple[float, float] = (1.65, 1.65), log_loss: bool = True) -> plt.Figure:
    """The paper's Figures 2-5 for one dataset and one site in one figure: a row per metric, a column per
    distinct dropout operation at ``site`` (kinds that are one operation there are drawn once and named
    together, :func:`snnlib.findings.kind_label`), each panel the base network (grey) against the kind,
    mean ± std over seeds per epoch; the seeds of each kind in its
    column's title, the base network's in the legend. A kind without runs says so in its panels. A loss
    panel takes a log scale when ``log_loss`` and its curves span more than a factor of 20."""
    kinds = list(kinds) if kinds is not None else list(P.distinct(site, findings.DROPOUT_KINDS))
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
        axes[0, j].set_title(f"{textwrap.fill(findings.kind_label(site, kind), 22)}\n(n={len(runs)})",
                             fontsize="small", color=kind_color(kind))
    for i, metric in enumerate(metrics):
        axes[i, 0].set_ylabel(textwrap.fill(metric_label(metric), 18), fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize="small")
    fig.legend(handles=[plt.Line2D([], [], color=kind_color("none"), marker="o", ms=3,
                                   label=f"base network, no dropout (n={len(base)})"),
                        Patch(color="0.5", alpha=0.3, label="± 1 standard deviation over seeds")],
               loc="lower center", ncol=2, fontsize="small", frameon=False)
    fig.suptitle(f"{R.DATASET_NAMES.get(dataset, dataset)}: dropout on {findings.SITE_WORDS[site]}, p = {p:g}, "
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
    """Standard dropout on the current at each rate of :data:`snnlib.findings.RATES` with a new mask every
    step and with one mask per sample: the last epoch's ``metric``, mean ± std over seeds (the seeds
    written beside each point), against the base network's mean (line) and ± std (band); a panel per
    dataset."""
    fig, axes = plt.subplots(1, len(datasets), figsize=(panel_size[0] * len(datasets), panel_size[1]),
                             squeeze=False)
    k = _scale(metric)
    masks = {"step": ("o", -0.006, "a new mask every step"), "sample": ("s", 0.006, "one mask per sample")}
    for ax, dataset in zip(axes[0], datasets, strict=True):
        _base_reference(ax, R.base_runs(table, dataset)[metric].astype(float) * k)
        for (mask, (marker, shift, name)), color in zip(masks.items(), (kind_color("dropout"), kind_color("dropout2d")),
                                                         strict=True):
            points = [(p, findings.dropout_runs(table, dataset, p, mask)[metric].astype(float) * k)
                      for p in findings.RATES]
            points = [(p, v) for p, v in points if len(v)]
            if not points:
                continue
            x = [p + shift for p, _ in points]
            ax.errorbar(x, [v.mean() for _, v in points], yerr=[v.std(ddof=1) if len(v) > 1 else 0 for _, v in points],
                        marker=marker, color=color, capsize=3, label=name)
            for xi, (_, v) in zip(x, points, strict=True):
                ax.annotate(f"n={len(v)}", (xi, v.mean()), textcoords="offset points", xytext=(5, -3),
                            fontsize="small", color=color)
        ax.set_xticks(findings.RATES)
        ax.set_xlim(min(findings.RATES) - 0.05, max(findings.RATES) + 0.07)
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


def plot_secondary_tests(tests: Sequence, names: Callable[[object], str], difference: str = "difference",
                         width: float = 7.6) -> plt.Figure:
    """Tests of the study's own questions (:func:`snnlib.findings.mask_tests`, ``rate_tests``,
    ``budget_tests``) as forest plots: a panel per metric, a row per test with data (``names(test)``), the
    difference (named ``difference`` in the titles, e.g. ``per step − per sample``) with its 95% interval,
    blue where significant after Holm, grey where not. Tests waiting for
    runs are left out (:func:`snnlib.findings.waiting_tests` names them); without any test with data the
    figure says so."""
    metrics = list(dict.fromkeys(t.metric for t in tests)) or ["test_acc"]
    done = {m: [t for t in tests if t.metric == m and t.label != "no data"] for m in metrics}
    shown = [m for m in metrics if done[m]] or metrics[:1]
    heights = [max(len(done[m]), 1) * 0.34 + 0.75 for m in shown]
    fig, axes = plt.subplots(len(shown), 1, figsize=(width, sum(heights) + 0.5), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, metric in zip(axes[:, 0], shown, strict=True):
        chosen, k = done[metric], _scale(metric)
        for row, t in enumerate(chosen):
            shade = SIGNIFICANT_COLOR if t.label in ("higher", "lower") else LABEL_COLORS["not significant"]
            ends = [t.ci_low * k, t.ci_high * k] if not math.isnan(t.ci_low) else [t.difference * k] * 2
            ax.plot(ends, [row, row], color=shade, lw=2.2, solid_capstyle="butt")
            ax.plot([t.difference * k], [row], "o", color=shade, ms=6, mec="white", mew=0.8)
        ax.axvline(0, color="0.3", lw=1)
        ax.set_yticks(range(len(chosen)), [names(t) for t in chosen], fontsize="small")
        ax.set_ylim(max(len(chosen), 1) - 0.5, -0.5)
        ax.grid(alpha=0.3, axis="x")
        ax.set_title(f"{R.METRIC_NAMES.get(metric, metric)}: {difference}" + (" (percentage points)" if k != 1 else ""),
                     fontsize="medium", loc="left")
        if not chosen:
            _empty(ax, "every test waits for its runs")
    fig.legend(handles=[plt.Line2D([], [], color=c, marker="o", lw=2, label=label) for label, c in (
        ("significant after Holm", SIGNIFICANT_COLOR), ("not significant", LABEL_COLORS["not significant"]))],
        loc="lower center", ncol=2, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


C3_SHORT = {"hidden_importance": "L1 norm (the paper's importance)", "hidden_silencing_drop": "silencing importance",
            "top10_overlap": "top-10 overlap", "kendall_tau": "Kendall tau"}


def plot_c3_tests(tests: Sequence, width: float = 7.6) -> plt.Figure:
    """The C3 tests that have their data (:func:`snnlib.claims.evaluate_claims`, claim C3) as forest plots:
    a row of panels per importance measure (the paper's first), a column per statistic (top-10 overlap,
    Kendall tau), a row per dataset and kind: the kind's agreement with its base run minus the control's
    (the claim: below 0), coloured by its label after Holm. Tests waiting for runs are left out."""
    measures, statistics = list(P.C3_MEASURES), list(P.C3_STATISTICS)
    chosen = {(m, s): [t for t in tests if t.claim == "C3" and t.measure == m and t.metric == s and not t.missing]
              for m in measures for s in statistics}
    heights = [max(max(len(chosen[(m, s)]) for s in statistics), 1) * 0.3 + 1.0 for m in measures]
    fig, axes = plt.subplots(len(measures), len(statistics), figsize=(width, sum(heights) + 0.5), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for i, measure in enumerate(measures):
        for j, statistic in enumerate(statistics):
            ax, selected = axes[i, j], chosen[(measure, statistic)]
            forest(ax, selected, 1.0, "neurons" if statistic == "top10_overlap" else "difference of tau",
                   [f"{R.DATASET_NAMES.get(t.dataset, t.dataset)} · {kind_name(t)}" for t in selected])
            ax.set_title(textwrap.fill(f"{C3_SHORT[measure]}: {C3_SHORT[statistic]}, kind − control", 36),
                         fontsize="small", loc="left")
            if not selected:
                _empty(ax, "waiting for runs")
            if j:
                ax.tick_params(labelleft=False)
    fig.legend(handles=[plt.Line2D([], [], color=c, marker="o", lw=2, label=label) for label, c in (
        ("lower than the control (as C3 claims)", LABEL_COLORS["yes"]),
        ("higher than the control", LABEL_COLORS["contrary"]),
        ("not significant after Holm", LABEL_COLORS["not significant"]))],
        loc="lower center", ncol=3, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_agreement(table: pd.DataFrame, measure: str = "hidden_importance", datasets: Sequence[str] = R.DATASETS,
                   statistics: Sequence[str] = tuple(P.C3_STATISTICS), width: float = 7.6,
                   row_height: float = 2.5) -> plt.Figure:
    """How well hidden-neuron rankings agree with a base run (:func:`snnlib.findings.agreement_values`):
    a row of panels per statistic, a column per dataset; in each, a row per group with a point per pair of
    runs and a bar at the mean: each dropout operation at the current, the control (no dropout, another
    sample order) and base runs of different seeds (chance; dashed: ``k^2 / n`` for the overlap, 0 for tau)."""
    fig, axes = plt.subplots(len(statistics), len(datasets), squeeze=False, sharey=True,
                             figsize=(width, row_height * len(statistics) + 0.5))
    for i, statistic in enumerate(statistics):
        for j, dataset in enumerate(datasets):
            ax = axes[i, j]
            groups = findings.agreement_values(table, dataset, measure, statistic)
            for y, (label, values) in enumerate(groups.items()):
                kind = next((k for k in findings.DROPOUT_KINDS if findings.kind_label("current", k) == label), None)
                color = kind_color(kind) if kind else GROUP_COLORS.get(label, "0.4")
                spread = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(len(values))
                ax.scatter(values, y + spread, s=11, color=color, zorder=3)
                if values:
                    ax.vlines(np.mean(values), y - 0.32, y + 0.32, color="k", lw=1.6, zorder=4)
            chance = analysis.chance_top_k_overlap(findings.HIDDEN, P.TOP_K) if statistic == "top10_overlap" else 0.0
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
    kinds = [k for k in findings.DROPOUT_KINDS if k != "feature"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(width, 0.42 * len(kinds) + 1.7), squeeze=False, sharey=True)
    k = _scale(metric)
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
    handles = [plt.Line2D([], [], marker=SITE_MARKERS[s], color="0.3", ls="none", label=f"on {findings.SITE_WORDS[s]}")
               for s in drawn or sites[:1]]
    handles.append(Patch(color="0.88", label="base network ± 1 std"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small", frameon=False)
    fig.suptitle(textwrap.fill(f"{R.METRIC_NAMES.get(metric, metric)} after the last epoch: each kind minus the "
                               f"base network", 80), fontsize="medium")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
