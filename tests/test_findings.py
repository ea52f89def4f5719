"""The study's own questions on synthetic records: mask in time, rate, budget, tuning, overfitting."""

from __future__ import annotations

import pytest
from recordmaker import make_record

from snnlib import findings as F
from snnlib import records as R


def test_two_sided_labels():
    assert F.two_sided_label(0.01, 0.001) == "higher" and F.two_sided_label(-0.01, 0.001) == "lower"
    assert F.two_sided_label(-0.01, 0.2) == "not significant"
    assert F.two_sided_label(float("nan"), 0.01) == "no data"


def test_mask_tests_take_dropout2d_as_the_per_sample_cell_at_the_paper_rate():
    records = []
    for s in range(5):
        records.append(make_record("mnist", "dropout", s, p=0.5, test_acc=0.978 + 0.001 * s))
        records.append(make_record("mnist", "dropout2d", s, p=0.5, test_acc=0.970 + 0.001 * s))
        records.append(make_record("mnist", "dropout", s, p=0.1, time_consistent=True, test_acc=0.975 + 0.001 * s))
    tests = F.mask_tests(R.runs_table(records), ["mnist"], rates=(0.1, 0.5), metrics=("test_acc",))
    at = {t.detail["p"]: t for t in tests}
    assert at[0.5].n_base == at[0.5].n_variant == 5 and at[0.5].difference == pytest.approx(0.008)
    assert at[0.5].label == "higher"  # Welch, Holm over the planned 2 tests
    assert at[0.1].label == "no data"  # no per-step runs at 0.1


def test_rate_and_budget_tests_compare_with_the_base_of_the_same_budget():
    records = [make_record("cifar10", "none", s, epochs=60, test_acc=0.45 + 0.001 * s) for s in range(10)]
    records += [make_record("cifar10", "dropout", s, epochs=60, test_acc=0.47 + 0.001 * s) for s in range(10)]
    records += [make_record("cifar10", "none", s, test_acc=0.10) for s in range(10)]  # 20 epochs: not the reference
    tests = F.budget_tests(R.runs_table(records), kinds=("dropout",), metrics=("test_acc",))
    assert len(tests) == 1 and tests[0].label == "higher" and tests[0].difference == pytest.approx(0.02)
    rates = F.rate_tests(R.runs_table(records), ["cifar10"])
    assert all(t.label == "no data" for t in rates) and len(rates) == 4 * 2


def test_tuning_check_finds_the_setting_each_split_would_choose():
    records = [make_record("mnist", "none", 0, epochs=3, val_acc=0.95, test_acc=0.96),
               make_record("mnist", "none", 0, epochs=3, val_acc=0.96, test_acc=0.95)]
    records[1]["config"]["network"]["tau"] = 3.0
    check = F.tuning_check(R.runs_table(records))
    assert list(check["setting"]) == ["the study's defaults", "network.tau 3"] or \
        list(check["setting"]) == ["the study's defaults", "tau 3"]
    assert list(check["best_by_val"]) == [False, True] and list(check["best_by_test"]) == [True, False]
    assert F.tuning_check(R.runs_table([])).empty


def test_generalization_gap():
    runs = F.generalization_gap(R.runs_table([make_record(train_eval_acc=0.99, test_acc=0.97)]))
    assert runs["gap"].iloc[0] == pytest.approx(0.02)
