"""The study report (the README's results section): its parts on synthetic records, the README block
round trip, the CLI, and that the committed README matches the committed records."""

from __future__ import annotations

import json
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


def test_study_report_holds_progress_sites_verdicts_tests_and_compute(tmp_path):
    results = tmp_path / "results"
    for seed, (base, drop) in enumerate([(0.970, 0.975), (0.971, 0.976), (0.972, 0.974)]):
        write(results, make_record(variant="none", seed=seed, test_acc=base,
                                   path=f"paper/mnist/none_p0_step_current/seed{seed}"))
        write(results, make_record(variant="dropout", seed=seed, test_acc=drop,
                                   path=f"paper/mnist/dropout_p0.5_step_current/seed{seed}"))
    grids = small_grid(tmp_path / "grids")
    text = report.study_report(results, grids)
    assert "| paper | 6 | 6 |" in text and "| all | 6 | 6 |" in text
    assert "| MNIST | dropout | 0.5 | per step | current | 20 | 3 | 97.50 ± 0.10 |" in text
    assert text.startswith("**Where the study stands:** 6 of the 6 runs of the design have finished; the design "
                           "is complete.")
    assert "- on the synaptic current (the paper's site): **not enough data** (MNIST: not enough data" in text
    assert "| C1 | the paper's metrics | current | 8 | not enough data |" in text
    assert "<details><summary>Every primary test (rules: `snnlib.study.preregistration`)</summary>" in text
    assert ("Waiting for runs: C1 CIFAR-10 dropout = dropout2d on the input spikes, C1 CIFAR-10 dropout on the "
            "current, ") in text
    assert "](results/figures/primary_tests.png)" in text
    assert "Uncertainty" not in text  # no evaluation under results
    assert "| paper | MNIST | 6 |" in text


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
    assert [p.name for p in written] == [report.FOREST_PNG]  # no uncertainty evaluation: no heatmap
    assert written[0].read_bytes().startswith(b"\x89PNG")
