"""The study report (the README's results section): its parts on synthetic records, the README block
round trip, the CLI, and that the committed README matches the committed records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from recordmaker import make_record

from snnlib.cli import main
from snnlib.experiment.system import write_json_atomic
from snnlib.study import progress as PG
from snnlib.study import records as R
from snnlib.study import report

ROOT = Path(__file__).resolve().parents[1]


def write(root, record):
    folder = root / record.pop("path")
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "metrics.json", record)


def small_grid(folder: Path) -> Path:
    folder.mkdir()
    grid = {"name": "paper", "base": {"epochs": 20, "val_size": 5000},
            "axes": {"dataset": ["mnist"], "seed": [0, 1, 2]},
            "runs": [{"variant": "none", "p": 0.0}, {"variant": "dropout", "p": 0.5}]}
    (folder / "paper.json").write_text(json.dumps(grid))
    return folder


def test_grid_progress_counts_finished_runs_per_results_folder():
    expected = ["paper/mnist/a/seed0", "paper/mnist/a/seed1", "sites/mnist/b/seed0"]
    records = [{"path": "paper/mnist/a/seed0", "status": "finished", "epochs": [{"epoch": 1}]},
               {"path": "paper/mnist/a/seed1", "status": "running"}]
    table = PG.grid_progress(expected, records)
    assert table.to_dict("records") == [{"grid": "paper", "runs": 2, "finished": 1},
                                        {"grid": "sites", "runs": 1, "finished": 0}]


def test_hours_left_take_the_time_per_epoch_of_the_most_alike_finished_runs():
    """A missing run is priced at its epochs times the median seconds per epoch of the finished runs of its
    own cell, else of its kind at any site, else of its dataset; without any run of its dataset, NaN."""
    done = [make_record(variant="dropout", seed=s, epochs=2, path=f"paper/mnist/dropout/seed{s}") for s in (0, 1, 2)]
    for record, seconds in zip(done, (100.0, 120.0, 400.0), strict=True):
        record["wall_time_s"] = seconds  # 50, 60 and 200 s per epoch: the median is 60
    hidden = make_record(variant="alpha", site="hidden", epochs=2, path="sites/mnist/alpha_hidden/seed0")
    hidden["wall_time_s"] = 1000.0  # 500 s per epoch, another kind
    own = {"dataset": "mnist", "site": "current", "variant": "dropout", "p": 0.5, "time_consistent": False}
    expected = [PG.ExpectedRun(r["path"], r["config"]) for r in (*done, hidden)]
    expected += [PG.ExpectedRun("paper/mnist/dropout/seed3", {**own, "epochs": 30}),  # its cell: 30 x 60 s
                 PG.ExpectedRun("sites/mnist/dropout_input/seed0", {**own, "site": "input", "epochs": 60}),  # kind
                 PG.ExpectedRun("sites/mnist/alpha_hidden/seed1", {**hidden["config"], "epochs": 36}),  # cell: 500 s
                 PG.ExpectedRun("budget/cifar10/none/seed0", {**own, "dataset": "cifar10", "epochs": 60})]
    table = PG.hours_left(expected, [*done, hidden]).set_index("grid")
    assert table.loc["paper", "runs_left"] == 1 and table.loc["paper", "hours_left"] == pytest.approx(0.5)
    assert table.loc["sites", "runs_left"] == 2 and table.loc["sites", "hours_left"] == pytest.approx(1.0 + 5.0)
    assert table.loc["budget", "runs_left"] == 1 and math.isnan(table.loc["budget", "hours_left"])


def test_evaluation_hours_left_price_each_planned_evaluation_once():
    """Each planned evaluation not made yet (a run's own, an ensemble once for its five members) is priced
    at the median wall time of the made evaluations of its kind and dataset; NaN without one."""
    base = {"variant": "none", "p": 0.0, "site": "current", "time_consistent": False, "epochs": 20}
    expected = [PG.ExpectedRun(f"paper/mnist/none_p0_step_current/seed{s}", {**base, "dataset": "mnist", "seed": s})
                for s in range(10)]
    expected.append(PG.ExpectedRun("sites/mnist/alpha_p0.5_step_hidden/seed0",
                                   {**base, "dataset": "mnist", "variant": "alpha", "p": 0.5, "site": "hidden",
                                    "seed": 0}))
    expected.append(PG.ExpectedRun("ensembles/cifar10/none_p0_step_current/seed10",
                                   {**base, "dataset": "cifar10", "seed": 10}))
    made = [{"path": f"paper/mnist/none_p0_step_current/seed{s}/uncertainty.json", "kind": "run",
             "config": {"dataset": "mnist"}, "wall_time_s": 360.0 * (s + 1)} for s in range(3)]  # median 720 s
    made.append({"path": "paper/mnist/none_p0_step_current/ensemble_seeds01234.json", "kind": "ensemble",
                 "config": {"dataset": "mnist"}, "wall_time_s": 36.0})
    table = PG.evaluation_hours_left(expected, made).set_index("grid")
    # seeds 3-9 of their own (7 x 0.2 h) and the ensemble of seeds 5-9 (0.01 h); the hidden site plans none
    assert table.loc["paper", "evaluations_left"] == 8
    assert table.loc["paper", "evaluation_hours_left"] == pytest.approx(7 * 0.2 + 0.01)
    assert table.loc["sites", "evaluations_left"] == 0 and table.loc["sites", "evaluation_hours_left"] == 0
    assert table.loc["ensembles", "evaluations_left"] == 1
    assert math.isnan(table.loc["ensembles", "evaluation_hours_left"])  # no CIFAR-10 ensemble made yet


def test_study_report_holds_progress_sites_verdicts_tests_and_compute(tmp_path):
    results = tmp_path / "results"
    for seed, (base, drop) in enumerate([(0.970, 0.975), (0.971, 0.976), (0.972, 0.974)]):
        write(results, make_record(variant="none", seed=seed, test_acc=base,
                                   path=f"paper/mnist/none_p0_step_current/seed{seed}"))
        write(results, make_record(variant="dropout", seed=seed, test_acc=drop,
                                   path=f"paper/mnist/dropout_p0.5_step_current/seed{seed}"))
    grids = small_grid(tmp_path / "grids")
    text = report.study_report(results, grids)
    # every run finished, but the uncertainty evaluations planned for the paper grid (6 runs, the ensemble
    # of base seeds 0-4) are not made
    assert "| paper | 6 | 6 | 0.0 | 7 | - |" in text and "| all | 6 | 6 | 0.0 | 7 | - |" in text
    assert "| MNIST | dropout | 0.5 | per step | current | 20 | 3 | 97.50 ± 0.10 |" in text
    assert text.startswith("**The answer.**\n\n- Without dropout")  # snnlib.study.answer, then the findings
    assert ("\n\n**Where the study stands:** 6 of the 6 runs of the design have finished; 7 uncertainty "
            "evaluations left, one at a time") in text
    assert "- on the synaptic current (the paper's site): **not enough data** (MNIST: not enough data" in text
    assert "| C1 | the paper's metrics | current | 8 | not enough data |" in text
    assert "<details><summary>Every primary test (rules: `snnlib.study.preregistration`)</summary>" in text
    assert ("Waiting for runs: C1 CIFAR-10 dropout = dropout2d on the input spikes, C1 CIFAR-10 dropout on the "
            "current, ") in text
    assert "](results/figures/primary_tests.png)" in text
    assert "Uncertainty" not in text  # no evaluation under results
    assert "(the addendum's block 5: 70 networks trained again" in text  # and no reruns under results/reproducibility
    assert "| paper | MNIST | 6 |" in text and "| all |  | 6 | 0.00 |" in text


def test_report_block_round_trip_and_missing_markers():
    readme = f"intro\n\n{report.BEGIN}\nold\n{report.END}\n\nafter\n"
    updated = report.with_report(readme, "new table\n")
    assert report.report_block(updated) == "new table\n"
    assert updated.startswith("intro\n\n") and updated.endswith(f"{report.END}\n\nafter\n")
    with pytest.raises(ValueError, match="no report block"):
        report.report_block("no markers here")


def test_cli_report_prints_and_rewrites_only_the_block(tmp_path, capsys):
    results = tmp_path / "results"
    write(results, make_record(path="paper/mnist/none_p0_step_current/seed0"))
    grids = small_grid(tmp_path / "grids")
    assert main(["report", str(results), "--grids", str(grids)]) == 0
    printed = capsys.readouterr().out
    readme = tmp_path / "README.md"
    readme.write_text(f"top\n{report.BEGIN}\n{report.END}\nbottom\n")
    assert main(["report", str(results), "--grids", str(grids), "--readme", str(readme)]) == 0
    assert report.report_block(readme.read_text()) == printed
    assert readme.read_text().startswith("top\n") and readme.read_text().endswith("bottom\n")
    assert main(["report", str(results), "--grids", str(tmp_path / "nowhere")]) == 2
    assert "no grids folder" in capsys.readouterr().err


def test_the_committed_readme_matches_the_committed_records():
    """The README's results are the report of the records in the repository (regenerate with
    ``python -m snnlib report results --readme README.md`` after adding records)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert report.report_block(readme) == report.study_report(ROOT / "results", ROOT / "grids")


def test_tuning_table_names_what_each_criterion_picks():
    default = make_record(epochs=3, val_acc=0.97, test_acc=0.96, path="tuning/mnist/a/seed0")
    slower = make_record(epochs=3, val_acc=0.96, test_acc=0.965, path="tuning/mnist/b/seed0")
    slower["config"]["network"]["tau"] = 3.0
    table = R.runs_table([default, slower])
    text = report.tuning_table(table)
    assert ("| MNIST | 3 | 2 | the study's defaults (97.00%) | tau 3 (96.50%) | no |") in text


def test_write_figures_draws_the_forest_plot(tmp_path):
    results = tmp_path / "results"
    for seed in range(3):
        write(results, make_record(variant="none", seed=seed, path=f"paper/mnist/none_p0_step_current/seed{seed}"))
    written = report.write_figures(results, tmp_path / "figures")
    # the answer's figure beside it; no uncertainty evaluation: no heatmap
    assert [p.name for p in written] == [report.FOREST_PNG, "answer.png"]
    assert written[0].read_bytes().startswith(b"\x89PNG")
