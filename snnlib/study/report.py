"""The study's results as one Markdown block: the README's findings and tables are this module's output
(``python -m snnlib report results``), and a test checks that the README still matches the committed
records. Everything here is assembled from :mod:`records`, :mod:`claims`, :mod:`questions` and
:mod:`evaluations`; this module computes nothing of its own. The block opens with the findings (one
paragraph per claim and for uncertainty, each verdict from the tested functions, and the forest plot
of every primary test); the full tables follow in collapsed sections.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from snnlib.study import answer as A
from snnlib.study import claims as C
from snnlib.study import evaluations as E
from snnlib.study import preregistration as P
from snnlib.study import progress as PG
from snnlib.study import questions as F
from snnlib.study import records as R
from snnlib.study import robustness as RB
from snnlib.study import uncertainty_v3 as V3
from snnlib.study import uncertainty_verdict as UV
from snnlib.study import verdict_plots as VP
from snnlib.study.design import study_design
from snnlib.study.reruns import RERUN_FOLDER

FIGURES = "results/figures"  # where write_figures puts the README's figures, relative to the project
FOREST_PNG = "primary_tests.png"
HEATMAP_PNG = "uncertainty_verdict.png"


def progress_table(progress: pd.DataFrame) -> str:
    """The frame of :func:`study_progress` as Markdown, with a row for all grids together."""
    rows = [[r.grid, r.runs, r.finished, _hours(r.hours_left), r.evaluations_left, _hours(r.evaluation_hours_left)]
            for r in progress.itertuples()]
    rows.append(["all", int(progress["runs"].sum()), int(progress["finished"].sum()),
                 _hours(progress["hours_left"].sum(skipna=False)), int(progress["evaluations_left"].sum()),
                 _hours(progress["evaluation_hours_left"].sum(skipna=False))])
    return R.markdown_table(["grid", "runs", "finished", "hours left (runs)", "uncertainty evaluations left",
                             "hours left (evaluations)"], rows)


def _hours(hours: float) -> str:
    return "-" if math.isnan(hours) else f"{hours:.1f}"


def study_progress(records: list[dict], grids_dir: str | Path, evaluations: list[dict] = ()) -> pd.DataFrame:
    """Per results folder of the grid files (except the smoke test): runs asked for, runs finished
    (:func:`progress.grid_progress`), the estimated single-run hours of the rest (:func:`progress.hours_left`)
    and the uncertainty evaluations still to make with their hours (:func:`progress.evaluation_hours_left`)."""
    expected = PG.expected_runs(PG.study_grids(grids_dir))
    return (PG.grid_progress(expected, records).merge(PG.hours_left(expected, records), on="grid")
            .merge(PG.evaluation_hours_left(expected, evaluations), on="grid"))


def compute_table(table) -> str:
    """What the runs cost: per grid and dataset, runs, hours of single-run wall time, mean
    seconds per epoch and the largest peak memory of a run (:func:`records.compute_summary`), and the total."""
    rows = []
    summary = R.compute_summary(table)
    for r in summary.itertuples():
        epoch = "-" if math.isnan(r.epoch_s) else f"{r.epoch_s:.1f}"
        peak = "-" if math.isnan(r.peak_rss_mb) else f"{r.peak_rss_mb / 1024:.2f}"
        rows.append([r.grid, R.DATASET_NAMES.get(r.dataset, r.dataset), r.finished, f"{r.hours:.2f}", epoch, peak,
                     "; ".join(r.devices)])
    if len(summary):
        rows.append(["all", "", int(summary["finished"].sum()), f"{summary['hours'].sum():.2f}", "", "", ""])
    return R.markdown_table(["grid", "dataset", "finished runs", "hours (one run's clock, summed)",
                             "seconds per epoch", "largest peak memory of a run (GB)", "devices"], rows)


def tuning_table(table) -> str:
    """Per dataset and budget of the tuning runs, the setting the validation accuracy picks and the one
    the test accuracy picks (:func:`questions.tuning_check`); empty without tuning runs."""
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


def tests_with_data(tests: list[C.Test]) -> tuple[str, str]:
    """(a table of the tests that have their data, one line naming the cells still waiting)."""
    done = [t for t in tests if not t.missing]
    waiting = sorted({f"{t.claim} {R.DATASET_NAMES.get(t.dataset, t.dataset)} {C.kind_name(t)} on the "
                      f"{C.SITE_SHORT[t.site]}" for t in tests if t.missing})
    columns = ("claim", "dataset", "kind", "site", "metric", "n", "difference [95% CI]", "p", "p (Holm)",
               "exact check p", "label")
    table = C.tests_markdown(done, columns=columns) if done else "_No test has its data yet._"
    return table, (f"Waiting for runs: {', '.join(waiting)}." if waiting else "Every planned test has its data.")


def _details(summary: str, *parts: str) -> str:
    body = "\n\n".join(p for p in parts if p)
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def status_line(progress: pd.DataFrame) -> str:
    """Where the study stands, in one line, from the frame of :func:`study_progress`: runs finished of the
    design, the grids still running, and the hours of runs and the uncertainty evaluations left; the design
    is complete when both are done."""
    runs, done = int(progress["runs"].sum()), int(progress["finished"].sum())
    open_grids = [f"{r.grid} ({r.finished} of {r.runs})" for r in progress.itertuples() if r.finished < r.runs]
    evaluations_left = int(progress["evaluations_left"].sum())
    evaluation_hours = progress["evaluation_hours_left"].sum(skipna=False)
    left = [f"about {_hours(progress['hours_left'].sum(skipna=False))} hours of runs"] if open_grids else []
    if evaluations_left:
        left.append(f"{evaluations_left} uncertainty evaluations"
                    + ("" if math.isnan(evaluation_hours) else f" (about {_hours(evaluation_hours)} hours)"))
    status = f"**Where the study stands:** {done} of the {runs} runs of the design have finished"
    if left:
        status += ((f"; still running: {', '.join(open_grids)}" if open_grids else "")
                   + f"; {' and '.join(left)} left, one at a time (times estimated from the finished ones). "
                   "A verdict marked *not enough data* waits for them.")
    else:
        status += "; the design is complete."
    return status


def findings(result: C.Claims, matrix, progress: pd.DataFrame, figures: str = FIGURES, read: str = "") -> str:
    """The findings: where the study stands (:func:`status_line`), the verdict of each claim at each site (from
    :func:`claims.verdict_sentence`), the uncertainty verdict (from
    :func:`snnlib.study.uncertainty_verdict.uncertainty_answer`) and the forest plot of the primary tests. (What
    changed between editions, :func:`claims.edition_changes`, is told in the reproduce chapter.)"""
    lines = [status_line(progress) + (f" Read from the results folder: {read}" if read else ""), ""]
    for claim in ("C1", "C2", "C3"):
        lines.append(f"**{claim}** (the paper: {C.CLAIM_TEXT[claim]}):")
        lines.append("")
        if claim == "C2":
            for reading in P.C2_READINGS:
                for site in P.SITES:
                    lines.append(f"- {reading}, {C.verdict_sentence(result, claim, site, reading)}")
        else:
            for site in (P.SITES if claim == "C1" else ("current",)):
                lines.append(f"- {C.verdict_sentence(result, claim, site)}")
        lines.append("")
    if matrix is not None and len(matrix):
        lines.append("**Uncertainty** (does MC dropout give better uncertainty than the base network? a row is "
                     "better with at least three of five primary metrics significantly better and none worse; MC "
                     "dropout at 5 and at 50 passes, named where the two differ):")
        lines.append("")
        for dataset in R.DATASETS:
            for baseline in P.UNCERTAINTY_BASELINES:
                lines.append(f"- {R.DATASET_NAMES[dataset]}, {UV.uncertainty_answer(matrix, dataset, baseline)}")
        lines.append("")
    lines.append(f"![Every primary test: the difference with its 95% interval, green where significant as the paper "
                 f"claims, red where significant the other way, grey where not significant]({figures}/{FOREST_PNG})")
    return "\n".join(lines)


def study_report(results: str | Path, grids_dir: str | Path = "grids", figures: str = FIGURES) -> str:
    """The README's block: the findings, then in collapsed sections the progress per grid, the final
    numbers of every kind at every site, the verdict table, every primary test, the pre-registration's
    power table, the uncertainty tables and verdict, the tuning check and what the runs cost."""
    design = study_design(grids_dir)
    scan = R.scan_records(results, design)
    R.warn_scan(results, scan)
    records = scan.records
    table = R.runs_table(records)
    result = C.evaluate_claims(table)
    evaluations = E.load_evaluations(results, design)
    matrix = UV.verdict_matrix(UV.verdict_tests(UV.method_values(evaluations))) if evaluations else None
    primary_table, waiting = tests_with_data(result.primary())
    progress = study_progress(records, grids_dir, evaluations)
    parts = [
        A.answer_markdown(result, evaluations, f"{figures}/{A.ANSWER_PNG}", matrix, table,
                          Path(results) / RERUN_FOLDER),  # the answer first
        findings(result, matrix, progress, figures, R.scan_line(scan)),
        _details("Runs finished, per results folder", "(`paper_seeds.json` adds seeds to `paper/`, "
                 "`sites_seeds.json` and `sites_dense.json` to `sites/`)",
                 progress_table(progress)),
        _details("Final numbers of every kind at every site (mean ± standard deviation over seeds, n)",
                 "p = 0.5, a new mask every step, 20 epochs; on the input spikes dropout2d and feature dropout are "
                 "dropout, on the hidden spikes feature dropout is dropout2d (one operation, not run twice).",
                 R.site_table(table)),
        _details("The verdicts per claim, site and dataset (`python -m snnlib claims results`)", C.verdict_table(result)),
        _details("Every primary test (rules: `snnlib.study.preregistration`)", waiting, primary_table),
        _details("The pre-registration: families, seeds and what each test can reach", C.power_markdown()),
    ]
    if evaluations:
        uncertainty = E.evaluations_table(evaluations)
        tables = [f"**{R.DATASET_NAMES[d]}**\n\n" + E.method_table(uncertainty, d) for d in R.DATASETS
                  if (uncertainty["dataset"] == d).any()]
        parts.append(_details("Uncertainty: methods against metrics (test set; OOD AUROC against the other dataset)",
                              *tables))
        parts.append(_details("The uncertainty verdict, method x metric (after Holm)",
                              *(f"**{R.DATASET_NAMES[d]}**\n\n" + UV.verdict_matrix_markdown(matrix, d)
                                for d in R.DATASETS),
                              f"![The uncertainty verdict]({figures}/{HEATMAP_PNG})"))
    parts.append(second_round(records, evaluations, Path(results) / RERUN_FOLDER))
    if tuning := tuning_table(table):
        parts.append(_details("Tuning, checked on the validation split", "(`grids/tuning.json`, base network, "
                              "seed 0; settings as changes from the study's defaults)", tuning))
    parts.append(_details("What the finished runs cost", compute_table(table)))
    return "\n\n".join(parts) + "\n"


def second_round(records: list[dict], evaluations: list[dict], reruns: str | Path | None = None) -> str:
    """The second round (the addendum of 2026-12-06, exploratory), collapsed: how many headline verdicts keep
    their verdict under each analysis choice and the table of all of them, the budget artefact and the learning
    rate per kind (:mod:`snnlib.study.robustness`), and, with ``reruns`` (where the uncertainty reruns land),
    uncertainty with every method temperature-scaled and the near-OOD set (:mod:`snnlib.study.uncertainty_v3`)."""
    table = R.runs_table(records)
    conditions = RB.budget_conditions(table)
    frame = RB.robustness(records, evaluations)
    block5 = [] if reruns is None else [*V3.second_round_sentences(reruns), *V3.second_round_tables(reruns)]
    return _details("Second round (exploratory; the addendum of 2026-12-06): every verdict under the defensible "
                    "analysis choices, the budget artefact, a learning rate per kind and uncertainty with every "
                    "method temperature-scaled",
                    RB.held_sentence(frame), RB.robustness_markdown(frame), RB.budget_sentence(conditions),
                    RB.budget_markdown(conditions), "**The 60-epoch budget at each run's best-validation epoch** "
                    "(addendum, block 3; three seeds a side, Welch, Holm within the six):",
                    RB.budget_at_best_epoch(records), RB.rate_sentence(table), RB.rate_markdown(table),
                    RB.rate_test_sentence(table), *block5)


def write_figures(results: str | Path, folder: str | Path, grids_dir: str | Path | None = None) -> list[Path]:
    """The README's figures from the design's records under ``results`` (:func:`records.load_study`): the
    forest plot of every primary test and the uncertainty verdict's heatmap, as PNG files in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = R.load_study(results, grids_dir)
    written = []
    fig = VP.forest_figure(C.evaluate_claims(records).tests)
    fig.savefig(folder / FOREST_PNG, dpi=110)
    plt.close(fig)
    written.append(folder / FOREST_PNG)
    written.append(A.write_effects_png(records, folder / A.ANSWER_PNG))  # the answer's figure
    evaluations = E.load_study_evaluations(results, grids_dir)
    if evaluations:
        fig = VP.verdict_heatmap(UV.verdict_matrix(UV.verdict_tests(UV.method_values(evaluations))))
        fig.savefig(folder / HEATMAP_PNG, dpi=100)
        plt.close(fig)
        written.append(folder / HEATMAP_PNG)
    return written


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
