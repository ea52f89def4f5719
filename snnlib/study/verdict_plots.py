"""Figures of tests and verdicts: forest plots (a difference with its 95% interval, coloured by its label after
Holm) and the uncertainty verdict as a heatmap."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study.claims import kind_name
from snnlib.study.plots import _empty

LABEL_COLORS = {"yes": "#1a7f37", "better": "#1a7f37", "contrary": "#c62828", "worse": "#c62828",
                "not significant": "0.55", "no data": "0.8"}



def forest(ax: plt.Axes, tests: Sequence, scale: float = 1.0, unit: str = "", names: Sequence[str] | None = None,
           reference: float = 0.0) -> plt.Axes:
    """A forest plot of ``tests`` (objects with ``difference``, ``ci_low``, ``ci_high``, ``label``, e.g.
    :class:`snnlib.study.claims.Test`), one row each from the top: the difference times ``scale`` with its 95%
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
    ax.set_ylim(max(len(names), 1) - 0.5, -0.5)  # one empty row for a panel without tests
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
    """The uncertainty verdict (a :func:`snnlib.study.uncertainty_verdict.verdict_matrix`, primary rows) as coloured
    cells: one panel per dataset and baseline (side by side, or one under the other when ``stacked``, for
    the book's text column), a row per kind and number of passes, a column per primary metric, and the
    row's verdict on the right."""
    from snnlib.study.uncertainty_verdict import BASELINE_NAMES, PRIMARY_NAMES

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


SIGNIFICANT_COLOR = "#1f5fa8"  # a test of the study's own questions, significant after Holm (no claimed side)



def plot_secondary_tests(tests: Sequence, names: Callable[[object], str], difference: str = "difference",
                         width: float = 7.6) -> plt.Figure:
    """Tests of the study's own questions (:func:`snnlib.study.questions.mask_tests`, ``rate_tests``,
    ``budget_tests``) as forest plots: a panel per metric, a row per test with data (``names(test)``), the
    difference (named ``difference`` in the titles, e.g. ``per step − per sample``) with its 95% interval,
    blue where significant after Holm, grey where not. Tests waiting for
    runs are left out (:func:`snnlib.study.questions.waiting_tests` names them); without any test with data the
    figure says so."""
    metrics = list(dict.fromkeys(t.metric for t in tests)) or ["test_acc"]
    done = {m: [t for t in tests if t.metric == m and t.label != "no data"] for m in metrics}
    shown = [m for m in metrics if done[m]] or metrics[:1]
    heights = [max(len(done[m]), 1) * 0.34 + 0.75 for m in shown]
    fig, axes = plt.subplots(len(shown), 1, figsize=(width, sum(heights) + 0.5), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, metric in zip(axes[:, 0], shown, strict=True):
        chosen, k = done[metric], R.metric_scale(metric)
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
    """The C3 tests that have their data (:func:`snnlib.study.claims.evaluate_claims`, claim C3) as forest plots:
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
