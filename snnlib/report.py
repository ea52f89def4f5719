"""The study's results as one Markdown block: the README's "Results" section is this module's output
(``python -m snnlib report results``), and a test checks that the README still matches the committed
records. Everything here is assembled from :mod:`records`, :mod:`claims` and :mod:`evaluations`; this
module computes nothing of its own."""

from __future__ import annotations

import math
from pathlib import Path

from . import claims as C
from . import evaluations as E
from . import findings as F
from . import records as R


def progress_table(records: list[dict], grids_dir: str | Path) -> str:
    """Per results folder of the grid files (except the smoke test): runs asked for and runs finished."""
    grids = [g for g in sorted(Path(grids_dir).glob("*.json")) if g.stem != "smoke"]
    progress = R.grid_progress(R.expected_runs(grids), records)
    rows = [[r.grid, r.runs, r.finished] for r in progress.itertuples()]
    rows.append(["all", int(progress["runs"].sum()), int(progress["finished"].sum())])
    return R.markdown_table(["grid", "runs", "finished"], rows)


def compute_table(table) -> str:
    """What the finished runs cost: per grid and dataset, runs, hours of single-run wall time, mean
    seconds per epoch and the largest peak memory of a run (:func:`records.compute_summary`)."""
    rows = []
    for r in R.compute_summary(table).itertuples():
        epoch = "-" if math.isnan(r.epoch_s) else f"{r.epoch_s:.1f}"
        peak = "-" if math.isnan(r.peak_rss_mb) else f"{r.peak_rss_mb / 1024:.2f}"
        rows.append([r.grid, R.DATASET_NAMES.get(r.dataset, r.dataset), r.finished, f"{r.hours:.2f}", epoch, peak,
                     "; ".join(r.devices)])
    return R.markdown_table(["grid", "dataset", "finished runs", "hours (one run's clock, summed)",
                             "seconds per epoch", "largest peak memory of a run (GB)", "devices"], rows)


def tuning_table(table) -> str:
    """Per dataset and budget of the tuning runs, the setting the validation accuracy picks and the one
    the test accuracy picks (:func:`findings.tuning_check`); empty without tuning runs."""
    check = F.tuning_check(table)
    if check.empty:
        return ""
    rows = []
    for (dataset, epochs), group in check.groupby(["dataset", "epochs"], sort=False):
        by_val = group[group["best_by_val"]].iloc[0]
        by_test = group[group["best_by_test"]].iloc[0]
        rows.append([R.DATASET_NAMES.get(dataset, dataset), epochs, len(group),
                     f"{by_val['setting']} ({100 * by_val['val_acc']:.2f}%)",
                     f"{by_test['setting']} ({100 * by_test['test_acc']:.2f}%)",
                     "yes" if by_val["setting"] == by_test["setting"] else "no"])
    return R.markdown_table(["dataset", "epochs", "settings", "picked by validation accuracy",
                             "picked by test accuracy", "same"], rows)


def study_report(results: str | Path, grids_dir: str | Path = "grids") -> str:
    """The README's results: progress per grid, the final numbers of every kind at every site, the
    verdict table, the accuracy tests at the paper's site in sentences, the uncertainty tables and
    what the runs cost, for the records under ``results``."""
    records = R.load_records(results)
    table = R.runs_table(records)
    result = C.evaluate_claims(table)
    key_tests = [t for t in result.primary() if t.site == "current" and t.metric == "test_acc"]
    parts = [
        "Runs finished, per results folder (`paper_seeds.json` adds seeds to `paper/`, `sites_seeds.json` and "
        "`sites_dense.json` to `sites/`):", progress_table(records, grids_dir),
        "Final epoch, mean ± standard deviation over seeds, p = 0.5, a new mask every step, 20 epochs:",
        R.site_table(table),
        "Verdicts (`python -m snnlib claims results`):", C.verdict_table(result),
        "The test accuracy at the paper's site, the primary tests (rules: `snnlib.preregistration`):",
        "\n".join(f"- {C.describe_test(t)}" for t in key_tests),
    ]
    evaluations = E.load_evaluations(results)
    if evaluations:
        uncertainty = E.evaluations_table(evaluations)
        for dataset in R.DATASETS:
            if (uncertainty["dataset"] == dataset).any():
                parts += [f"Uncertainty, {R.DATASET_NAMES[dataset]} (`python -m snnlib uncertainty`; test set, "
                          "OOD AUROC against the other dataset):", E.method_table(uncertainty, dataset)]
        matrix = E.verdict_matrix(E.verdict_tests(E.method_values(evaluations)))
        for dataset in R.DATASETS:
            parts += [f"The uncertainty verdict, {R.DATASET_NAMES[dataset]} (MC dropout of each kind against the base "
                      "network; rules: `snnlib.preregistration`):", E.verdict_matrix_markdown(matrix, dataset)]
    if tuning := tuning_table(table):
        parts += ["Tuning, checked on the validation split (`grids/tuning.json`, base network, seed 0; "
                  "settings as changes from the study's defaults):", tuning]
    parts += ["What the finished runs cost:", compute_table(table)]
    return "\n\n".join(parts) + "\n"


BEGIN = "<!-- begin: python -m snnlib report results -->"
END = "<!-- end: python -m snnlib report results -->"


def _block_span(text: str) -> tuple[int, int]:
    """Where the report block of ``text`` starts (after :data:`BEGIN`) and ends (at :data:`END`)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no report block: add the lines {BEGIN!r} and {END!r}")
    return start + len(BEGIN), end


def report_block(text: str) -> str:
    """The part of ``text`` (a README) between :data:`BEGIN` and :data:`END`, without the markers."""
    start, end = _block_span(text)
    return text[start:end].strip("\n") + "\n"


def with_report(text: str, report: str) -> str:
    """``text`` with its report block replaced by ``report``."""
    start, end = _block_span(text)
    return text[:start] + "\n" + report.strip("\n") + "\n" + text[end:]
