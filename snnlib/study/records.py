"""Run records (``metrics.json``): loading, tidy tables, selection, completeness and reruns.

Everything the study states is computed from the records through this module: the CLI's
``summary``, ``compare`` and ``claims``, and every analysis chapter.

- :func:`load_records` reads every record under a folder; :func:`runs_table` makes the tidy
  table of runs (one row per run: its configuration and its last epoch's numbers) and
  :func:`epochs_table` the table of every run and epoch.
- Runs are selected by configuration, not by folder (:func:`select`), so a reader's own runs
  of the same configuration join the study's. :data:`STUDY_SETTINGS` are the settings that
  every run of the study shares; :func:`study_runs` keeps the finished runs that have them.
- :func:`summary` gives mean, standard deviation and n per configuration (seeds pooled);
  :func:`markdown_table` formats any table.
- :func:`snnlib.study.design.expected_runs` and :func:`missing_runs` check a results folder against grid files (a run counts
  where its folder holds a finished record of the configuration the grid asks for there);
  :func:`compare_records` checks a rerun against the records it should reproduce (a damaged or
  missing rerun is a difference).

What is read. Every reader here (and :func:`snnlib.study.evaluations.load_evaluations`,
:func:`snnlib.experiment.run.load_trained`) takes only sealed, intact files: a record of version 3 whose
``record_sha256`` is the SHA-256 of its contents and that agrees with its own configuration (a finished
record holds exactly its epochs; :func:`snnlib.experiment.record.record_problem`), and each run once, whatever
its folder (:func:`snnlib.study.design.run_key`: the whole configuration, seeds included). Anything else is skipped with a
one-line warning that says why.

Sealing the records of the second edition (a one-time step)::

    python -m snnlib seal results --check   # what would be sealed or refused; writes nothing
    python -m snnlib seal results           # seals; run it again after landing records of an older library

Records written before version 3 carry no digest (or, from the library just before, a digest but the old
version), so the readers refuse them until they are sealed. :func:`seal_results` rewrites each as version
3 with its digest, after checking it: a record that git tracks must equal its last committed version, and
every version committed since the file was added must hold the same numbers (``git show COMMIT:PATH`` of
each commit that touched it; a record edited in the working tree or committed with edited numbers is
refused); a record git does not track must carry a SHA-256 that checks out; and a finished record must
hold its configuration's epochs. Evaluations (``uncertainty.json``, ``ensemble*.json``) without a digest are
checked against their commits the same way (only their times may differ between committed versions) and
against the sealed records they were made from (the same weights, configuration and test accuracy), then
get the SHA-256 of those records and of their own contents. Sealed files are left alone, so the step can
be run again at any time; a folder another process is writing is left for a later run; nothing refused is
changed (the command lists each with its reason and exits with status 2). The numbers do not change:
``claims``, ``summary`` and ``report`` print the same before sealing (with the library before version 3)
and after.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from snnlib.experiment.config import RunConfig
from snnlib.model.dropout import KINDS
from snnlib.model.network import SITES, NetworkConfig
from snnlib.study.design import DEFAULT_GRIDS, Design, study_design
from snnlib.study.design import Scan as Scan  # re-exported: the study's readers take these from here
from snnlib.study.design import is_finished as is_finished
from snnlib.study.design import run_key as run_key
from snnlib.study.design import scan_line as scan_line
from snnlib.study.design import scan_records as scan_records
from snnlib.study.design import warn_scan as warn_scan

DATASETS = ("mnist", "cifar10")
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
KIND_NAMES = {"none": "base (no dropout)", "dropout": "dropout", "dropout2d": "dropout2d",
              "feature": "feature dropout", "feature_alpha": "feature alpha dropout", "alpha": "alpha dropout"}
# A configuration as the study varies it; runs of one cell differ only in their seed.
CELL_KEYS = ("dataset", "variant", "p", "mask", "site", "epochs")
# Everything else of a run's configuration, as the study's runs have it (the last 5,000 training
# samples held out for validation; the network's defaults).
_NET_FIXED = ("in_features", "dropout", "p", "time_consistent", "site")
STUDY_SETTINGS = {
    "init_seed": None, "train_subset": None, "test_subset": None, "val_size": 5000,
    "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0, "t_enc": 12,
    **{f"network.{k}": v for k, v in NetworkConfig().to_dict().items() if k not in _NET_FIXED},
}
# Numbers of the last epoch that the tables carry (those a record has).
EPOCH_METRICS = ("train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "val_loss", "val_acc",
                 "test_loss", "test_acc", "train_hidden_spikes", "test_hidden_spikes", "test_input_spikes",
                 "test_synaptic_events")
# fractions, shown in percent (``gap``: dropout-off training accuracy minus test accuracy, findings.generalization_gap)
ACCURACY_METRICS = ("train_acc", "train_eval_acc", "val_acc", "test_acc", "gap")
METRIC_NAMES = {"train_loss": "training loss (dropout on)", "train_acc": "training accuracy (dropout on)",
                "train_eval_loss": "training loss (dropout off)", "train_eval_acc": "training accuracy (dropout off)",
                "val_loss": "validation loss", "val_acc": "validation accuracy",
                "test_loss": "test loss", "test_acc": "test accuracy",
                "train_hidden_spikes": "hidden spikes per sample (training)",
                "test_hidden_spikes": "hidden spikes per sample (test)",
                "test_input_spikes": "input spikes per sample (test)",
                "test_synaptic_events": "synaptic events per sample (test)",
                "gap": "training minus test accuracy (dropout off)"}


def metric_scale(metric: str) -> float:
    """The factor that shows a metric as the tables do: accuracies in percent (points), losses as they are."""
    return 100.0 if metric in ACCURACY_METRICS else 1.0


# ---------------------------------------------------------------- reading

def load_records(root: str | Path, design: Design | None = None, apart: tuple[str, ...] = ()) -> list[dict]:
    """Every run record under ``root`` that counts (:func:`snnlib.study.design.scan_records`), sorted by folder,
    each run once.

    Each record gets ``path``, its folder relative to ``root`` (``paper/mnist/none_p0_step_current/seed0``
    when ``root`` is the results folder). A missing ``root`` gives an empty list. Every file that does not
    count is named in a one-line warning: ``skipping`` (an error) or ``ignoring`` (outside the ``design``).
    The study's readers pass the design (:func:`load_study`); ``apart``: top-level folders not looked into
    (:func:`snnlib.study.design.scan_records`).
    """
    scan = scan_records(root, design, apart)
    warn_scan(root, scan)
    return scan.records


def load_study(root: str | Path, grids_dir: str | Path | None = None) -> list[dict]:
    """The records of the study's design (:func:`snnlib.study.design.study_design` of ``grids_dir``, by
    default the project's ``grids/``) under ``root``: what the README, the claims and every chapter read."""
    return load_records(root, study_design(DEFAULT_GRIDS if grids_dir is None else grids_dir))


def _flat_config_keys() -> list[str]:
    return list(_flat_config({"config": RunConfig().to_dict()}))


def _flat_config(record: dict) -> dict:
    """A record's configuration with every key present (older records: the defaults) and the
    network's values as ``network.NAME``."""
    try:
        config = RunConfig.from_dict(record["config"]).to_dict()
    except (TypeError, ValueError):
        config = dict(record["config"])
    flat = {k: v for k, v in config.items() if k != "network"}
    flat.update({f"network.{k}": v for k, v in config.get("network", {}).items() if k not in _NET_FIXED})
    return flat


# Every column of a run's configuration in the tables (``mask`` stands for ``time_consistent``); runs
# that agree in all of them but the seeds are one configuration, and only they are pooled.
SEED_KEYS = ("seed", "init_seed")
CONFIG_COLUMNS = (*CELL_KEYS, *(k for k in _flat_config_keys() if k not in (*CELL_KEYS, *SEED_KEYS, "time_consistent")),
                  "init_shared")


def configuration(row: pd.Series | dict) -> tuple:
    """A run's configuration without its seeds, as a tuple of :data:`CONFIG_COLUMNS` (the base
    network's p, mask and site do nothing, so they are left out for it)."""
    none = row.get("variant") == "none"
    return tuple("-" if none and key in ("p", "mask", "site") else _hashable(row.get(key)) for key in CONFIG_COLUMNS)


def pooled_configurations(runs: pd.DataFrame) -> int:
    """How many distinct configurations (seeds aside) the rows of ``runs`` hold: a group of runs
    that is summarised or tested together must hold exactly one."""
    return len({configuration(row) for _, row in runs.iterrows()})


def _hashable(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def runs_table(records: Iterable[dict]) -> pd.DataFrame:
    """The tidy table of runs: one row per record, with its configuration (``mask`` is ``step``
    or ``sample``), ``status``, ``epochs_done``, the last epoch's numbers (:data:`EPOCH_METRICS`,
    NaN where a record lacks one), ``study`` (whether the run has :data:`STUDY_SETTINGS`, its learning rate and
    initial weights aside: :func:`study_runs` and :func:`control_runs` choose them),
    ``path``, ``wall_time_s`` and ``record`` (the record itself, for per-neuron numbers)."""
    rows = []
    for record in records:
        config = _flat_config(record)
        last = record["epochs"][-1] if record.get("epochs") else {}
        row = {**config, "mask": "sample" if config.get("time_consistent") else "step",
               "init_shared": config.get("init_seed") is not None,
               "status": record.get("status"), "finished": is_finished(record),
               "epochs_done": len(record.get("epochs", [])),
               **{m: _number(last.get(m)) for m in EPOCH_METRICS},
               "study": all(same_value(config.get(k), v) for k, v in STUDY_SETTINGS.items()
                            if k not in ("lr", "init_seed")),
               "path": record.get("path"), "wall_time_s": record.get("wall_time_s"), "record": record}
        rows.append(row)
    columns = ["dataset", "variant", "p", "mask", "site", "epochs", "seed", "init_seed", "init_shared", "status",
               "finished",
               "epochs_done", *EPOCH_METRICS, "study", "path", "wall_time_s", "record"]
    if not rows:
        empty = {"config": RunConfig().to_dict()}
        return pd.DataFrame(columns=columns + [c for c in _flat_config(empty) if c not in columns])
    table = pd.DataFrame(rows)
    return table[columns + [c for c in table.columns if c not in columns]]


def epochs_table(records: Iterable[dict]) -> pd.DataFrame:
    """One row per run and epoch: the run's cell keys, seed, init_seed and path, and that epoch's numbers."""
    rows = []
    for record in records:
        config = _flat_config(record)
        keys = {"dataset": config["dataset"], "variant": config["variant"], "p": config["p"],
                "mask": "sample" if config.get("time_consistent") else "step", "site": config["site"],
                "epochs": config["epochs"], "seed": config["seed"], "init_seed": config.get("init_seed"),
                "path": record.get("path")}
        for entry in record.get("epochs", []):
            rows.append({**keys, "epoch": entry["epoch"], **{m: _number(entry.get(m)) for m in EPOCH_METRICS}})
    return pd.DataFrame(rows)


def _number(value: object) -> float:
    return float("nan") if value is None else float(value)


def same_value(a: object, b: object) -> bool:
    """Equal, with numbers compared to rounding (0.1 + 0.2 is 0.3)."""
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b)
    return a == b


# ---------------------------------------------------------------- selecting

def select(table: pd.DataFrame, **wanted: object) -> pd.DataFrame:
    """The rows whose columns equal every ``wanted`` value (None as a value matches a missing one)."""
    mask = pd.Series(True, index=table.index)
    for key, value in wanted.items():
        column = table[key]
        mask &= column.isna() if value is None else column.map(lambda v, value=value: same_value(v, value)).astype(
            bool)
    return table[mask]


STUDY_LR = STUDY_SETTINGS["lr"]


def study_runs(table: pd.DataFrame, epochs: int = 20, lr: float = STUDY_LR) -> pd.DataFrame:
    """The finished runs with the study's settings, budget (``epochs``) and learning rate (``lr``), one per
    configuration and seed: if a folder tree holds the same run twice (a rerun elsewhere under the same root),
    the first is kept."""
    chosen = table[table["finished"] & table["study"] & (table["epochs"] == epochs) & table["init_seed"].isna()]
    chosen = chosen[chosen["lr"].map(lambda v: same_value(v, lr)).astype(bool)] if len(chosen) else chosen
    return chosen.drop_duplicates(subset=[*CELL_KEYS, "seed"], keep="first")


def base_runs(table: pd.DataFrame, dataset: str, epochs: int = 20, lr: float = STUDY_LR) -> pd.DataFrame:
    """The base network's study runs on ``dataset`` (no dropout, the site does not matter)."""
    runs = select(study_runs(table, epochs, lr), dataset=dataset, variant="none")
    return runs.drop_duplicates(subset=["seed"], keep="first")


def cell_runs(table: pd.DataFrame, dataset: str, variant: str, p: float = 0.5, mask: str = "step",
              site: str = "current", epochs: int = 20, lr: float = STUDY_LR) -> pd.DataFrame:
    """The study runs of one dropout cell (the base network for ``variant`` ``none``)."""
    if variant == "none":
        return base_runs(table, dataset, epochs, lr)
    return select(study_runs(table, epochs, lr), dataset=dataset, variant=variant, p=p, mask=mask, site=site)


def control_runs(table: pd.DataFrame, dataset: str, epochs: int = 20) -> pd.DataFrame:
    """The C3 control: finished base runs that take the initial weights of another seed (``init_seed``
    set) and otherwise the study's settings."""
    ok = table["finished"] & table["study"] & (table["epochs"] == epochs) & table["init_seed"].notna()
    if len(table):
        ok &= table["lr"].map(lambda v: same_value(v, STUDY_LR)).astype(bool)
    return select(table[ok], dataset=dataset, variant="none")


def by_seed(runs: pd.DataFrame, metric: str) -> dict[int, float]:
    """{seed: the last epoch's ``metric``} of runs (the C3 control is keyed by its init_seed)."""
    keys = runs["init_seed"].where(runs["init_seed"].notna(), runs["seed"]).astype(int)
    return dict(zip(keys, runs[metric].astype(float), strict=True))


def per_neuron(runs: pd.DataFrame, key: str) -> dict[int, list[float]]:
    """{seed: the record's per-neuron list ``key``} (e.g. ``hidden_importance``); the C3 control is
    keyed by its init_seed, the seed whose initial weights it shares."""
    out = {}
    for _, row in runs.iterrows():
        seed = int(row["init_seed"]) if pd.notna(row["init_seed"]) else int(row["seed"])
        if key in row["record"]:
            out[seed] = row["record"][key]
    return out


# ---------------------------------------------------------------- summaries

def summary(table: pd.DataFrame, metrics: Sequence[str] = ("test_acc", "train_loss"),
            keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof 1; NaN for one run) and ``n`` of each metric per
    configuration (seeds pooled, nothing else), over finished runs; groups in the library's order
    (datasets, kinds, sites).

    ``keys`` (default: every column of :data:`CONFIG_COLUMNS` the table has) are the columns that
    make a group; runs that differ in any other configuration column would be pooled, so pass
    fewer only for a table whose runs agree in the rest.
    """
    if keys is None:
        keys = [k for k in CONFIG_COLUMNS if k in table.columns]
    keys = list(keys)
    done = table[table["finished"]] if "finished" in table else table
    if done.empty:
        return pd.DataFrame(columns=[*keys, "n", "seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")])
    rows = []
    grouping = done[keys].map(_hashable).astype(object)
    for values, group in done.groupby([grouping[k] for k in keys], dropna=False, sort=False):
        row = dict(zip(keys, values, strict=True))
        row["n"] = len(group)
        row["seeds"] = sorted(int(s) for s in group["seed"])
        for m in metrics:
            x = group[m].astype(float).dropna()
            row[f"{m}_mean"] = float(x.mean()) if len(x) else math.nan
            row[f"{m}_std"] = float(x.std(ddof=1)) if len(x) > 1 else math.nan
        rows.append(row)
    result = pd.DataFrame(rows)
    order = {"dataset": DATASETS, "variant": KINDS, "site": SITES, "mask": ("step", "sample")}
    sort_keys = [k for k in keys if k in result and k in CELL_KEYS]
    return result.sort_values(sort_keys, key=lambda c: c.map(
        lambda v, name=c.name: order[name].index(v) if name in order and v in order[name] else v
    ), kind="stable").reset_index(drop=True)


def mean_std(values: Iterable[float], scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± std`` (sample std), the mean alone for one value, ``-`` for none."""
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], float) * scale
    if len(v) == 0:
        return "-"
    return f"{v.mean():.{digits}f}" if len(v) == 1 else f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def signed_interval(diff: float, low: float, high: float, scale: float = 1.0, digits: int = 2) -> str:
    """``+0.42 [+0.24, +0.59]``; the difference alone without an interval, ``-`` without either."""
    if math.isnan(diff):
        return "-"
    if math.isnan(low):
        return f"{diff * scale:+.{digits}f}"
    return f"{diff * scale:+.{digits}f} [{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]"


def p_text(p: float) -> str:
    """A p-value in three decimals, or in scientific notation below 0.001 (``-`` for NaN)."""
    return "-" if math.isnan(p) else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def format_summary(rows: pd.DataFrame, metrics: Sequence[str] = ("test_acc", "train_loss")) -> str:
    """A Markdown table of :func:`summary` rows: accuracies in percent (2 decimals), losses to 4.

    Besides the cell's keys, every configuration column whose value differs between rows gets a
    column of its own, so two rows never look like the same configuration."""
    if rows.empty:
        return "_No finished runs._"
    extra = [k for k in rows.columns if k in CONFIG_COLUMNS and k not in CELL_KEYS
             and rows[k].map(_hashable).astype(str).nunique() > 1]
    head = ["dataset", "dropout", "p", "mask", "site", "epochs", *(COLUMN_NAMES.get(k, k) for k in extra), "n"] + [
        METRIC_NAMES.get(m, m) + (" (%)" if m in ACCURACY_METRICS else "") for m in metrics]
    body = []
    for _, r in rows.iterrows():
        none = r["variant"] == "none"
        cells = [DATASET_NAMES.get(r["dataset"], r["dataset"]), r["variant"], "-" if none else r["p"],
                 "-" if none else ("per step" if r["mask"] == "step" else "per sample"),
                 "-" if none else r["site"], r["epochs"], *(_cell_text(k, r[k]) for k in extra),
                 r["n"]]
        for m in metrics:
            scale, digits = (100.0, 2) if m in ACCURACY_METRICS else (1.0, 4)
            mean, std = r[f"{m}_mean"] * scale, r[f"{m}_std"] * scale
            cells.append("-" if math.isnan(mean) else f"{mean:.{digits}f}" if math.isnan(std)
                         else f"{mean:.{digits}f} ± {std:.{digits}f}")
        body.append(cells)
    return markdown_table(head, body)


COLUMN_NAMES = {"init_shared": "initial weights"}


def _cell_text(key: str, value: object) -> object:
    if key == "init_shared":
        return "another seed's" if value else "its seed's"
    return "-" if _hashable(value) is None else value


def compute_summary(table: pd.DataFrame) -> pd.DataFrame:
    """What the runs cost, per grid (the first folder of a record's path) and dataset: finished and
    unfinished runs, hours of single-run wall time (a run's own clock; runs ran side by side), the
    mean seconds per epoch, the largest peak resident memory of a run's process, the devices and the
    commits that made them."""
    if table.empty:
        return pd.DataFrame(columns=["grid", "dataset", "finished", "unfinished", "hours", "epoch_s", "peak_rss_mb",
                                     "devices", "commits"])
    rows = []
    grids = table["path"].map(lambda p: str(p).split("/")[0])
    for (grid, dataset), group in table.groupby([grids, "dataset"], sort=True):
        records = list(group["record"])
        epochs = [e["wall_time_s"] for r in records if is_finished(r) for e in r["epochs"] if e.get("wall_time_s")]
        rows.append({"grid": grid, "dataset": dataset, "finished": int(group["finished"].sum()),
                     "unfinished": int((~group["finished"]).sum()),
                     "hours": float(sum(r.get("wall_time_s") or 0.0 for r in records)) / 3600,
                     "epoch_s": float(np.mean(epochs)) if epochs else math.nan,
                     "peak_rss_mb": max((float(r["peak_rss_mb"]) for r in records if r.get("peak_rss_mb")),
                                        default=math.nan),
                     "devices": sorted({str(r.get("device_name")) for r in records}),
                     "commits": sorted({str(r.get("git_commit"))[:10] for r in records})})
    return pd.DataFrame(rows)


def compute_total(cost: pd.DataFrame, evaluations: Sequence[dict]) -> str:
    """The study's compute in one line: the hours of single-run time of the finished and unfinished
    runs in ``cost`` (:func:`compute_summary`) and of the uncertainty evaluations (their ``wall_time_s``)."""
    hours = sum(float(ev.get("wall_time_s") or 0.0) for ev in evaluations) / 3600
    return (f"training: {float(cost['hours'].sum()):.1f} h of single-run time in "
            f"{int(cost['finished'].sum())} finished runs; "
            f"uncertainty: {len(evaluations)} evaluations, {hours:.1f} h")


SITE_TABLE_METRICS = ("test_acc", "train_eval_acc", "test_loss", "train_loss")


def site_table(table: pd.DataFrame, metrics: Sequence[str] = SITE_TABLE_METRICS) -> str:
    """The study's final numbers of every dropout kind at every site (p = 0.5, a new mask every step,
    20 epochs) and of the base network, both datasets, as a Markdown table: the results chapter's
    and the README's table."""
    study = study_runs(table)
    chosen = study[(study["mask"] == "step") & ((study["p"] == 0.5) | (study["variant"] == "none"))]
    return format_summary(summary(chosen, metrics), metrics)


# ---------------------------------------------------------------- completeness and reruns


# ---------------------------------------------------------------- sealing (the one-time step)


