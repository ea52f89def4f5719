"""Run records: loading, the tidy tables, selection by configuration, summaries, completeness
against grid files, and the comparison of a rerun with its reference."""

from __future__ import annotations

import copy
import json
import math

import pytest
from recordmaker import make_record

from snnlib.experiment.system import write_json_atomic
from snnlib.study import progress as PG
from snnlib.study import records as R


def write(root, record):
    folder = root / record.pop("path")
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "metrics.json", record)


def test_load_records_relative_paths_and_skips_what_it_cannot_read(tmp_path):
    write(tmp_path, make_record(path="paper/mnist/none_p0.0_step_current/seed0"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    newer = make_record(path="later/x")
    newer["record_version"] = 99
    write(tmp_path, newer)
    with pytest.warns(UserWarning) as caught:
        records = R.load_records(tmp_path)
    assert [r["path"] for r in records] == ["paper/mnist/none_p0.0_step_current/seed0"]
    assert any("newer" in str(w.message) for w in caught) and any("broken" in str(w.message) for w in caught)
    assert R.load_records(tmp_path / "absent") == []


def test_runs_table_reads_old_records_with_the_defaults_of_their_time():
    old = make_record("mnist", "dropout", 1, val_size=0)
    del old["config"]["init_seed"], old["config"]["val_size"]
    for e in old["epochs"]:
        del e["train_eval_loss"], e["train_eval_acc"], e["val_loss"], e["val_acc"]
    table = R.runs_table([old, make_record("mnist", "dropout", 1)])
    assert list(table["val_size"]) == [0, 5000] and list(table["study"]) == [False, True]
    assert math.isnan(table["train_eval_loss"].iloc[0]) and table["train_eval_loss"].iloc[1] == 0.05
    assert list(table["mask"]) == ["step", "step"]
    assert R.runs_table([]).empty and "test_acc" in R.runs_table([]).columns


def test_selection_by_configuration_deduplicates_and_finds_the_control():
    records = [make_record("mnist", "none", s, path=f"a/{s}") for s in range(3)]
    records.append(make_record("mnist", "none", 0, path="rerun/0"))  # the same run again elsewhere
    records.append(make_record("mnist", "none", 100, init_seed=2, path="control/2"))
    records.append(make_record("mnist", "dropout", 0, site="hidden"))
    records.append(make_record("mnist", "dropout", 1, status="running"))
    records.append(make_record("cifar10", "none", 0))
    table = R.runs_table(records)
    assert sorted(R.base_runs(table, "mnist")["seed"]) == [0, 1, 2]
    control = R.control_runs(table, "mnist")
    assert list(control["seed"]) == [100] and R.by_seed(control, "test_acc") == {2: 0.97}
    assert R.per_neuron(control, "hidden_importance") == {2: [1.0] * 8}
    assert len(R.cell_runs(table, "mnist", "dropout", site="hidden")) == 1
    assert R.cell_runs(table, "mnist", "dropout").empty  # the current-site run is not finished
    assert len(R.select(table, dataset="mnist", init_seed=None)) == 6


def test_summary_means_stds_and_order():
    records = [make_record("cifar10", "none", s, test_acc=0.40 + 0.02 * s) for s in range(3)]
    records += [make_record("mnist", "alpha", 0, test_acc=0.9), make_record("mnist", "none", 0, test_acc=0.97)]
    rows = R.summary(R.runs_table(records))
    assert [(r.dataset, r.variant) for r in rows.itertuples()] == [("mnist", "none"), ("mnist", "alpha"),
                                                                    ("cifar10", "none")]
    cifar = rows.iloc[2]
    assert cifar["n"] == 3 and cifar["test_acc_mean"] == pytest.approx(0.42)
    assert cifar["test_acc_std"] == pytest.approx(0.02) and math.isnan(rows.iloc[0]["test_acc_std"])
    text = R.format_summary(rows)
    assert "| CIFAR-10 | none | - | - | - | 20 | 3 | 42.00 ± 2.00 |" in text
    assert R.format_summary(R.summary(R.runs_table([]))) == "_No finished runs._"


def test_expected_and_missing_runs_against_a_grid_file(tmp_path):
    grid = {"name": "g", "base": {"dataset": "mnist"}, "axes": {"seed": [0, 1, 2]},
            "runs": [{"variant": "none", "p": 0.0}]}
    (tmp_path / "g.json").write_text(json.dumps(grid))
    expected = PG.expected_runs([tmp_path / "g.json"])
    assert expected == [f"g/mnist/none_p0_step_current/seed{s}" for s in range(3)]
    records = [make_record(seed=0, val_size=0, path=expected[0]),
               make_record(seed=1, val_size=0, path=expected[1], status="running")]
    assert PG.missing_runs(expected, records) == ["g/mnist/none_p0_step_current: seed 2 missing; seed 1 unfinished"]
    assert expected[0].config == records[0]["config"]


def test_compare_records_verdicts():
    reference = [make_record(path="a", importance=[1.0, 2.0, 3.0]), make_record(path="b"), make_record(path="c"),
                 make_record(path="d", status="running")]
    rerun = copy.deepcopy(reference) + [make_record(path="e")]
    rerun[1]["hidden_importance"] = [1.0 + 1e-7] * 8  # float32 rounding, same ranking
    rerun[2]["epochs"][-1]["test_acc"] = 0.5
    verdicts = {row["path"]: row["verdict"] for row in PG.compare_records(reference, rerun)}
    assert verdicts == {"a": "identical", "b": "reproduced", "c": "differs", "d": "unfinished", "e": "no reference"}


def test_a_differing_rerun_says_where_it_first_differs():
    old = make_record(path="a")
    last = len(old["epochs"])
    new = copy.deepcopy(old)
    new["epochs"][-1]["test_acc"] = 0.5
    assert PG.first_difference(old, new) == f"epoch {last} test_acc {old['epochs'][-1]['test_acc']!r:.10} -> 0.5"
    new["epochs"][0]["train_loss"] += 1.0  # the first epoch that differs is named
    assert PG.first_difference(old, new).startswith("epoch 1 train_loss")
    row, = PG.compare_records([old], [new])
    assert row["verdict"] == "differs" and row["why"].startswith("epoch 1 train_loss")
    other = copy.deepcopy(old)
    other["config"]["lr"] = 0.5
    assert PG.first_difference(old, other) == "configuration differs in lr"
    assert PG.first_difference(old, copy.deepcopy(old)) is None


def test_a_saved_check_in_words_lists_each_rerun_that_does_not_reproduce():
    old = make_record(path="a")
    same, new = copy.deepcopy(old), copy.deepcopy(old)
    same["path"], new["path"] = "a", "b"
    new["epochs"][0]["train_loss"] += 1.0
    rows = PG.compare_records([old, {**copy.deepcopy(old), "path": "b"}],
                              [same, {**new, "git_commit": "abcdef0123456789", "device_name": "a GPU"}])
    check = {"reference": "results", "reproduced": 1, "runs": 2, "summary": {"identical": 1, "differs": 1},
             "rows": rows}
    head, differing = PG.check_lines("check.json", check)
    assert head.startswith("check.json: 1 of 2 rerun records reproduce results ({'identical': 1, 'differs': 1})")
    assert head.endswith("abcdef0123") and differing.startswith("    b on a GPU: epoch 1 train_loss")


def test_the_compute_total_adds_runs_and_evaluations():
    records = [make_record(path="g/x", seed=0), make_record(path="g/y", seed=1)]
    for record, wall in zip(records, (1800.0, 5400.0), strict=True):
        record["wall_time_s"] = wall
    cost = R.compute_summary(R.runs_table(records))
    assert R.compute_total(cost, [{"wall_time_s": 360.0}, {"wall_time_s": None}]) == (
        "training: 2.0 h of single-run time in 2 finished runs; uncertainty: 2 evaluations, 0.1 h")
    assert R.compute_total(R.compute_summary(R.runs_table([])), []).startswith("training: 0.0 h")


def test_formatting_helpers():
    assert R.mean_std([0.5, 0.7], 100, 1) == "60.0 ± 14.1" and R.mean_std([], 1) == "-"
    assert R.signed_interval(0.0042, 0.0024, 0.0059, 100) == "+0.42 [+0.24, +0.59]"
    assert R.signed_interval(0.1, math.nan, math.nan) == "+0.10" and R.signed_interval(math.nan, 0, 0) == "-"
    assert R.p_text(0.0079) == "0.008" and R.p_text(1.1e-5) == "1.1e-05" and R.p_text(math.nan) == "-"
    assert R.markdown_table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_same_numbers_across_configurations():
    a = make_record("mnist", "feature", 0, test_acc=0.96)
    b = make_record("mnist", "dropout2d", 0, test_acc=0.96)
    assert PG.same_numbers(a, b)
    b["epochs"][3]["train_loss"] += 1e-9
    assert not PG.same_numbers(a, b)
    c = make_record("mnist", "dropout2d", 0, test_acc=0.96)
    c["hidden_silencing_drop"] = [0.1] * 8
    assert not PG.same_numbers(a, c)
    assert not PG.same_numbers(a, make_record("mnist", "feature", 0, test_acc=0.96, status="running"))


def test_compute_summary_per_grid_and_dataset():
    records = [make_record("mnist", "none", s, path=f"paper/mnist/none/seed{s}") for s in range(3)]
    records.append(make_record("mnist", "none", 3, status="running", path="paper/mnist/none/seed3"))
    records.append(make_record("cifar10", "none", 0, path="control/cifar10/none/seed100"))
    for r in records:
        r["git_commit"], r["device_name"] = "abcdef1234567", "x86_64, 1 threads"
        r["wall_time_s"] = 3600.0
        for e in r["epochs"]:
            e["wall_time_s"] = 10.0
    for s, r in enumerate(records[:3]):
        r["peak_rss_mb"] = 700.0 + 100 * s
    rows = R.compute_summary(R.runs_table(records))
    assert [(r.grid, r.dataset, r.finished, r.unfinished) for r in rows.itertuples()] == [
        ("control", "cifar10", 1, 0), ("paper", "mnist", 3, 1)]
    paper = rows.iloc[1]
    assert paper["hours"] == pytest.approx(4.0) and paper["epoch_s"] == pytest.approx(10.0)
    assert paper["commits"] == ["abcdef1234"] and paper["devices"] == ["x86_64, 1 threads"]
    assert paper["peak_rss_mb"] == 900.0 and math.isnan(rows.iloc[0]["peak_rss_mb"])  # the largest; none recorded
    assert R.compute_summary(R.runs_table([])).empty


def test_site_table_keeps_the_studys_cells_at_the_papers_rate():
    records = [make_record("mnist", "none", s, test_acc=0.97) for s in range(2)]
    records += [make_record("mnist", "dropout", s, site="hidden", test_acc=0.96) for s in range(2)]
    records += [make_record("mnist", "dropout", s, p=0.1, test_acc=0.98) for s in range(2)]  # a rate: not here
    records += [make_record("mnist", "dropout", s, time_consistent=True, test_acc=0.95) for s in range(2)]
    text = R.site_table(R.runs_table(records))
    assert "| MNIST | none | - | - | - | 20 | 2 | 97.00 ± 0.00 |" in text
    assert "| MNIST | dropout | 0.5 | per step | hidden | 20 | 2 | 96.00 ± 0.00 |" in text
    assert text.count("\n") == 3  # head, rule and two rows
