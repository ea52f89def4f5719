"""Plotting and tabulating run records (``metrics.json``) for the notebooks.

Matplotlib only; no notebook logic. Every function accepts an empty list or a partial grid.

- :func:`load_records` reads every ``metrics.json`` under a folder; :func:`records_table` flattens them.
- :func:`group_runs` groups records by configuration (seeds pooled); :func:`curve` gives mean and standard
  deviation per epoch over the seeds.
- :func:`plot_run` draws one run; :func:`plot_grid_curves` draws every configuration of a dataset on one
  axes; :func:`plot_comparison` draws the base network against each dropout kind, one panel per kind (the
  paper's Figures 2-5).
- :func:`final_table` and :func:`format_final_table` give the final test accuracy per configuration.
- :func:`compare_records` checks a rerun of a grid against the records it should reproduce.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from .data import DATASETS
from .dropout import KINDS
from .network import SITES

GROUP_KEYS = ("dataset", "variant", "p", "time_consistent", "site")
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
KIND_NAMES = {"none": "base (no dropout)", "dropout": "dropout", "dropout2d": "dropout2d",
              "feature": "feature dropout", "feature_alpha": "feature alpha dropout", "alpha": "alpha dropout"}
METRIC_NAMES = {"train_loss": "training loss", "test_loss": "test loss", "train_acc": "training accuracy",
                "test_acc": "test accuracy", "train_hidden_spikes": "hidden spikes per sample (training)",
                "test_hidden_spikes": "hidden spikes per sample (test)",
                "test_synaptic_events": "synaptic events per sample (test)"}
ACCURACY_METRICS = ("train_acc", "test_acc")  # stored as fractions, drawn in percent
_COLORS = plt.get_cmap("tab10").colors


# ---------------------------------------------------------------- records

def load_records(root: str | Path) -> list[dict]:
    """Every run record under ``root`` (``**/metrics.json``), sorted by folder.

    Each record gets ``path``: its folder relative to ``root`` (``mnist/none_p0_step_current/seed0``).
    A missing ``root`` gives an empty list; unreadable files are skipped with a warning.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    records = []
    for path in sorted(root.glob("**/metrics.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            warnings.warn(f"skipping {path}: {err}", stacklevel=2)
            continue
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict) or "epochs" not in record:
            warnings.warn(f"skipping {path}: not a run record", stacklevel=2)
            continue
        record["path"] = path.parent.relative_to(root).as_posix()
        records.append(record)
    return records


def is_finished(record: dict) -> bool:
    return record.get("status") == "finished"


# A hidden importance sums 40 float32 weights; library versions that add them in another order
# agree to float32 rounding (the claims chapter shows 1e-6), far below any real difference.
IMPORTANCE_ROUNDING = 1e-5
_EXACT_FIELDS = ("hidden_firing_rate", "hidden_mean_spike_step")


def compare_records(reference: Iterable[dict], rerun: Iterable[dict]) -> list[dict]:
    """Each rerun record against the reference record with the same ``path``.

    One row per rerun record, with ``path``, both wall times and ``verdict``: ``identical``
    (configuration, every per-epoch number and every per-neuron number equal), ``reproduced``
    (the same, except hidden importances equal only to float32 rounding, same ranking),
    ``differs``, ``unfinished`` or ``no reference``. Times and provenance are not compared; the
    rerun's commit and device are listed.
    """
    from .training import timing_free

    by_path = {r["path"]: r for r in reference}
    rows = []
    for new in rerun:
        old = by_path.get(new["path"])
        row = {"path": new["path"], "rerun_wall_time_s": new.get("wall_time_s"),
               "reference_wall_time_s": None if old is None else old.get("wall_time_s"),
               "rerun_git_commit": new.get("git_commit"), "rerun_device_name": new.get("device_name"),
               "importance_difference": None}
        if old is None:
            row["verdict"] = "no reference"
        elif not (is_finished(new) and is_finished(old)):
            row["verdict"] = "unfinished"
        else:
            imp_old, imp_new = np.asarray(old["hidden_importance"]), np.asarray(new["hidden_importance"])
            same_shape = imp_old.shape == imp_new.shape
            difference = float(np.abs(imp_old - imp_new).max()) if same_shape and imp_old.size else 0.0
            row["importance_difference"] = difference if same_shape else None
            same = (old["config"] == new["config"]
                    and timing_free(old)["epochs"] == timing_free(new)["epochs"]
                    and all(old.get(k) == new.get(k) for k in _EXACT_FIELDS))
            if same and same_shape and difference == 0.0:
                row["verdict"] = "identical"
            elif (same and same_shape and difference <= IMPORTANCE_ROUNDING
                  and np.array_equal(np.argsort(imp_old, kind="stable"), np.argsort(imp_new, kind="stable"))):
                row["verdict"] = "reproduced"
            else:
                row["verdict"] = "differs"
        rows.append(row)
    return rows


def records_table(records: Iterable[dict]) -> list[dict]:
    """One flat row per record: configuration, status, epochs done and the last epoch's numbers."""
    rows = []
    for r in records:
        c = r["config"]
        last = r["epochs"][-1] if r["epochs"] else {}
        rows.append({**{k: c.get(k) for k in (*GROUP_KEYS, "seed")}, "status": r.get("status"),
                     "epochs_done": len(r["epochs"]), "epochs": c.get("epochs"),
                     "train_loss": last.get("train_loss"), "test_loss": last.get("test_loss"),
                     "test_acc": last.get("test_acc"), "wall_time_s": r.get("wall_time_s"),
                     "path": r.get("path")})
    return rows


def value_order(key: str, value: object) -> tuple:
    """Sort key of a configuration value: datasets, kinds and sites in the library's order, numbers ascending."""
    orders = {"dataset": DATASETS, "variant": KINDS, "site": SITES}
    if key in orders and value in orders[key]:
        return (0, orders[key].index(value), "")
    if isinstance(value, bool | int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def run_key(record: dict, keys: Sequence[str] = GROUP_KEYS) -> tuple:
    return tuple(record["config"].get(k) for k in keys)


def group_runs(records: Iterable[dict], keys: Sequence[str] = GROUP_KEYS) -> dict[tuple, list[dict]]:
    """Records grouped by the values of ``keys`` (seeds pooled), groups in a natural order
    (datasets and dropout kinds in the library's order, numbers ascending), runs by seed."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(run_key(record, keys), []).append(record)
    ordered = sorted(groups, key=lambda k: tuple(value_order(name, v) for name, v in zip(keys, k, strict=True)))
    return {k: sorted(groups[k], key=lambda r: r["config"].get("seed", 0)) for k in ordered}


def curve(records: Sequence[dict], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, std, n) of ``metric`` over the records, per epoch.

    Runs of different lengths (a run still going) are pooled per epoch: ``n`` says how many runs each
    point averages. The standard deviation is the sample one (ddof = 1), 0 for a single run.
    """
    values: dict[int, list[float]] = {}
    for record in records:
        for e in record["epochs"]:
            if metric in e and e[metric] is not None:
                values.setdefault(int(e["epoch"]), []).append(float(e[metric]))
    epochs = np.array(sorted(values), dtype=int)
    mean = np.array([np.mean(values[e]) for e in epochs], dtype=float)
    std = np.array([np.std(values[e], ddof=1) if len(values[e]) > 1 else 0.0 for e in epochs], dtype=float)
    n = np.array([len(values[e]) for e in epochs], dtype=int)
    return epochs, mean, std, n


def group_label(config: dict, show: Sequence[str] = ("variant", "p", "time_consistent", "site")) -> str:
    """``dropout (p=0.5)``; the mask and site are named only when they differ from the paper's."""
    parts = []
    variant = config.get("variant")
    if "variant" in show:
        parts.append(KIND_NAMES.get(variant, str(variant)))
    extra = []
    if "p" in show and variant != "none":
        extra.append(f"p={config.get('p')}")
    if "time_consistent" in show and variant != "none" and config.get("time_consistent"):
        extra.append("mask per sample")
    if "site" in show and variant != "none" and config.get("site") not in (None, "current"):
        extra.append(f"on {config.get('site')}")
    label = " ".join(parts)
    return f"{label} ({', '.join(extra)})" if extra else label


def _style(config: dict) -> dict:
    variant = config.get("variant")
    color = _COLORS[KINDS.index(variant) % len(_COLORS)] if variant in KINDS else "0.3"
    return {"color": color, "linestyle": "--" if config.get("time_consistent") else "-"}


def _scale(metric: str) -> float:
    return 100.0 if metric in ACCURACY_METRICS else 1.0


def metric_label(metric: str) -> str:
    name = METRIC_NAMES.get(metric, metric)
    return f"{name} (%)" if metric in ACCURACY_METRICS else name


def _filter(records: Iterable[dict], **wanted: object) -> list[dict]:
    return [r for r in records if all(v is None or r["config"].get(k) == v for k, v in wanted.items())]


def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------- figures

def plot_band(ax: plt.Axes, records: Sequence[dict], metric: str, label: str | None = None,
              show_n: bool = True, **style) -> None:
    """Mean over the records with a ± 1 standard deviation band (the number of seeds in the label)."""
    epochs, mean, std, n = curve(records, metric)
    if len(epochs) == 0:
        return
    k = _scale(metric)
    if label and show_n:
        label += f" (n={n.max()})" if n.min() == n.max() else f" (n={n.min()}-{n.max()})"
    line, = ax.plot(epochs, mean * k, marker="o" if len(epochs) <= 25 else None, markersize=3, label=label, **style)
    if n.max() > 1:
        ax.fill_between(epochs, (mean - std) * k, (mean + std) * k, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_run(record: dict, fig: plt.Figure | None = None) -> plt.Figure:
    """Loss (training and test) and accuracy (training and test) against epoch for one run."""
    fig = fig or plt.figure(figsize=(10, 3.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    if not record.get("epochs"):
        _empty(ax_loss, "no epoch yet")
        _empty(ax_acc, "no epoch yet")
        return fig
    for metric, ax, style in (("train_loss", ax_loss, "-"), ("test_loss", ax_loss, "--"),
                              ("train_acc", ax_acc, "-"), ("test_acc", ax_acc, "--")):
        plot_band(ax, [record], metric, label=METRIC_NAMES[metric], show_n=False, linestyle=style)
    c = record["config"]
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{DATASET_NAMES.get(c.get('dataset'), c.get('dataset'))}, {group_label(c)}, seed {c.get('seed')}")
    fig.tight_layout()
    return fig


def plot_grid_curves(records: Iterable[dict], dataset: str, metric: str, ax: plt.Axes | None = None,
                     time_consistent: bool | None = None, site: str | None = None) -> plt.Axes:
    """Every configuration of ``dataset`` on one axes: ``metric`` against epoch, mean ± std over seeds.

    ``time_consistent`` and ``site`` select configurations (None: all).
    """
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    chosen = _filter(records, dataset=dataset, time_consistent=time_consistent, site=site)
    groups = group_runs(chosen)
    if not groups:
        _empty(ax, f"no {DATASET_NAMES.get(dataset, dataset)} runs yet")
    for runs in groups.values():
        plot_band(ax, runs, metric, label=group_label(runs[0]["config"]), **_style(runs[0]["config"]))
    ax.set(xlabel="epoch", ylabel=metric_label(metric), title=DATASET_NAMES.get(dataset, dataset))
    if groups:
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    return ax


def plot_comparison(records: Iterable[dict], dataset: str, metric: str, baseline: str = "none",
                    time_consistent: bool | None = False, site: str | None = "current",
                    kinds: Sequence[str] | None = None, panel_size: tuple[float, float] = (4.2, 3.2)) -> plt.Figure:
    """The base network against each dropout kind, one panel per kind: ``metric`` against epoch,
    mean ± std over seeds, for ``dataset`` (the layout of the paper's Figures 2-5).

    ``time_consistent`` and ``site`` select the dropout configurations (None: all; the defaults are the
    paper's per-step mask on the synaptic current); every p present gets its own curve. ``kinds``: the
    panels (default: every dropout kind of the library, drawn empty when it has no runs yet).
    """
    records = _filter(records, dataset=dataset)
    base = [r for r in records if r["config"].get("variant") == baseline]
    others = _filter([r for r in records if r["config"].get("variant") != baseline],
                     time_consistent=time_consistent, site=site)
    kinds = list(kinds) if kinds is not None else [k for k in KINDS if k != baseline]
    cols = min(len(kinds), 3) or 1
    rows = max(1, math.ceil(len(kinds) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows + 0.4),
                             squeeze=False, sharex=True, sharey=True)
    flat = axes.ravel()
    for ax, kind in zip(flat, kinds, strict=False):
        groups = group_runs([r for r in others if r["config"].get("variant") == kind])
        if base:
            plot_band(ax, base, metric, label=KIND_NAMES.get(baseline, baseline), color="0.25")
        for runs in groups.values():
            plot_band(ax, runs, metric, label=group_label(runs[0]["config"]), **_style(runs[0]["config"]))
        ax.set_title(KIND_NAMES.get(kind, kind), fontsize="medium")
        if not groups:
            ax.text(0.5, 0.5, f"no {KIND_NAMES.get(kind, kind)} runs yet", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
        if base or groups:
            ax.legend(fontsize="x-small")
        ax.grid(alpha=0.3)
    for ax in flat[len(kinds):]:
        ax.set_visible(False)
    for i, ax in enumerate(flat[:len(kinds)]):
        if i + cols >= len(kinds):  # nothing drawn below it
            ax.set_xlabel("epoch")
            ax.tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel(metric_label(metric))
    fig.suptitle(f"{DATASET_NAMES.get(dataset, dataset)}: {METRIC_NAMES.get(metric, metric)}, "
                 "mean ± std over seeds")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- tables

def final_table(records: Iterable[dict], keys: Sequence[str] = GROUP_KEYS) -> list[dict]:
    """Final-epoch numbers per configuration over the seeds of *finished* runs.

    One row per group of ``keys``: n (finished runs), unfinished (runs still going or interrupted),
    epochs, test_acc_mean/std, test_acc_min/max, train_loss_mean/std (sample std, ddof = 1; NaN for n < 2).
    """
    rows = []
    for key, runs in group_runs(records, keys).items():
        done = [r for r in runs if is_finished(r) and r["epochs"]]
        acc = np.array([r["epochs"][-1]["test_acc"] for r in done], dtype=float)
        loss = np.array([r["epochs"][-1]["train_loss"] for r in done], dtype=float)

        def stat(x: np.ndarray, f) -> float:
            return float(f(x)) if len(x) else math.nan

        rows.append({**dict(zip(keys, key, strict=True)), "n": len(done), "unfinished": len(runs) - len(done),
                     "epochs": sorted({len(r["epochs"]) for r in done}),
                     "seeds": [r["config"].get("seed") for r in done],
                     "test_acc_mean": stat(acc, np.mean),
                     "test_acc_std": float(np.std(acc, ddof=1)) if len(acc) > 1 else math.nan,
                     "test_acc_min": stat(acc, np.min), "test_acc_max": stat(acc, np.max),
                     "train_loss_mean": stat(loss, np.mean),
                     "train_loss_std": float(np.std(loss, ddof=1)) if len(loss) > 1 else math.nan})
    return rows


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 2) -> str:
    if math.isnan(mean):
        return "-"
    if math.isnan(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def format_final_table(rows: Sequence[dict]) -> str:
    """A Markdown table of :func:`final_table` rows (accuracy in percent)."""
    if not rows:
        return "_No runs yet._"
    head = ["dataset", "dropout", "p", "mask", "site", "n", "test accuracy (%)", "training loss"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        unfinished = f" (+{r['unfinished']} unfinished)" if r.get("unfinished") else ""
        cells = [DATASET_NAMES.get(r.get("dataset"), str(r.get("dataset"))), str(r.get("variant")), str(r.get("p")),
                 "per sample" if r.get("time_consistent") else "per step", str(r.get("site")),
                 f"{r['n']}{unfinished}", _pm(r["test_acc_mean"], r["test_acc_std"], 100.0, 2),
                 _pm(r["train_loss_mean"], r["train_loss_std"], 1.0, 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def epoch_table(record: dict, digits: int = 4) -> str:
    """The per-epoch numbers of one run as fixed-width text."""
    head = f"{'epoch':>5} {'train loss':>11} {'test loss':>10} {'test acc %':>10} {'hidden spikes':>13}"
    lines = [head]
    for e in record.get("epochs", []):
        lines.append(f"{e['epoch']:>5} {e['train_loss']:>11.{digits}f} {e['test_loss']:>10.{digits}f} "
                     f"{100 * e['test_acc']:>10.2f} {e['test_hidden_spikes']:>13.2f}")
    return "\n".join(lines)


def describe_missing(expected: Iterable[str], records: Iterable[dict]) -> list[str]:
    """Which of the ``expected`` run folders (``dataset/config/seedK``) have no finished record.

    One line per configuration folder: ``mnist/alpha_p0.5_step_current: seeds 3, 4 missing; seed 2 running``.
    """
    status = {r.get("path"): r.get("status") for r in records}
    missing: dict[str, list[str]] = {}
    running: dict[str, list[str]] = {}
    folders: dict[str, None] = {}  # in the order of ``expected``
    for rel in expected:
        folder, _, seed = rel.rpartition("/")
        seed = seed.removeprefix("seed")
        if status.get(rel) == "finished":
            continue
        folders[folder] = None
        (running if rel in status else missing).setdefault(folder, []).append(seed)
    lines = []
    for folder in folders:
        parts = []
        if folder in missing:
            s = missing[folder]
            parts.append(f"seed{'s' if len(s) > 1 else ''} {', '.join(s)} missing")
        if folder in running:
            s = running[folder]
            parts.append(f"seed{'s' if len(s) > 1 else ''} {', '.join(s)} unfinished")
        lines.append(f"{folder}: {'; '.join(parts)}")
    return lines
