"""The study's own questions on synthetic records: mask in time, rate, budget, tuning, overfitting."""

from __future__ import annotations

import pytest
from recordmaker import make_record

from snnlib.study import questions as F
from snnlib.study import records as R


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


# ---------------------------------------------------------------- sentences and tables for the book

import json  # noqa: E402
import math  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from snnlib.study import claims as C  # noqa: E402
from snnlib.study import neurons as NEURONS  # noqa: E402
from snnlib.study import preregistration as P  # noqa: E402
from snnlib.study import sites as SITES  # noqa: E402

GRIDS = Path(__file__).resolve().parent.parent / "grids"


def test_seed_ranges_and_word_lists():
    assert SITES.seed_text([5, 6, 7, 8, 9]) == "5-9" and SITES.seed_text([3, 4]) == "3, 4"
    assert SITES.seed_text([7, 0, 2, 5, 6, 2]) == "0, 2, 5-7" and SITES.seed_text([0, 1, 2, 9]) == "0-2, 9"
    assert SITES.join_words(["a"]) == "a" and SITES.join_words(["a", "b", "c"]) == "a, b and c"
    assert SITES.join_words([]) == ""


def test_kinds_that_are_one_operation_are_named_together():
    assert SITES.kind_label("current", "dropout2d") == "dropout2d = feature dropout"
    assert SITES.kind_label("input", "dropout") == "dropout = dropout2d = feature dropout"
    assert SITES.kind_label("hidden", "alpha") == "alpha dropout"
    assert SITES.kind_label("input", "none") == "base (no dropout)"
    sentence = SITES.same_operation_sentence()
    assert "on the input spikes, dropout2d and feature dropout are the same operation as dropout" in sentence
    assert sentence.startswith("On the synaptic current and the hidden spikes, feature dropout is the same "
                               "operation as dropout2d")


def planned_mnist(drop: set[tuple[str, str, int]] = frozenset(), **last: float) -> list[dict]:
    """Every planned run of MNIST (p = 0.5, per step, 20 epochs) except those in ``drop`` (kind, site, seed)."""
    records = [make_record("mnist", "none", s, **last) for s in P.planned_seeds("mnist", "none")]
    for site in P.SITES:
        for kind in P.distinct(site, SITES.DROPOUT_KINDS):
            records += [make_record("mnist", kind, s, site=site, **last) for s in P.planned_seeds("mnist", kind, site)
                        if (kind, site, s) not in drop]
    return records


def test_waiting_for_sites_names_what_is_missing_and_nothing_when_complete():
    assert SITES.waiting_for_sites(R.runs_table(planned_mnist()), ["mnist"]) == ""
    table = R.runs_table(planned_mnist({("dropout", "current", s) for s in range(5, 10)} | {("alpha", "input", 4)}))
    assert SITES.waiting_for_sites(table, ["mnist"]) == ("waiting for: MNIST seeds 5-9 of dropout on the synaptic current; "
                                                    "MNIST seed 4 of alpha dropout on the input spikes")
    only_base = R.runs_table([make_record("mnist", "none", s) for s in range(3)])
    line = SITES.waiting_for_sites(only_base, ["mnist"])
    assert line.startswith("waiting for: every kind on the synaptic current, the hidden spikes and the input spikes "
                           "(MNIST); MNIST seeds 3-9 of the base network")


def test_site_matrix_shows_sites_with_runs_and_names_one_operation_once():
    records = [make_record("mnist", "none", s, test_acc=0.97 + 0.01 * s) for s in range(2)]
    records += [make_record("mnist", "dropout", s, site="hidden", test_acc=0.96) for s in range(3)]
    text = SITES.site_matrix(R.runs_table(records), "mnist")
    lines = text.splitlines()
    assert lines[0] == "The base network, test accuracy (%): 97.50 ± 0.71 (2)."
    assert lines[2] == "| test accuracy (%): mean ± std (seeds) | on the hidden spikes |"
    assert "| dropout | 96.00 ± 0.00 (3) |" in lines and "| feature dropout | = dropout2d |" in lines
    assert "| dropout2d | waiting |" in lines
    full = SITES.site_full_table(R.runs_table(records), "mnist")
    assert full.splitlines()[0].startswith("| kind | site | seeds | test accuracy (%)") and full.count("\n") == 3
    assert SITES.site_full_table(R.runs_table([]), "cifar10") == "_No finished run of CIFAR-10 yet._"


def test_differences_and_losses_against_the_base_network():
    records = [make_record("mnist", "none", s, test_acc=0.97, train_loss=0.01, train_eval_loss=0.01, test_loss=0.1)
               for s in range(3)]
    records += [make_record("mnist", "dropout", s, test_acc=0.975, train_loss=0.05, train_eval_loss=0.005,
                            test_loss=0.2) for s in range(3)]
    records += [make_record("mnist", "feature", s, site="hidden", test_acc=0.96, train_loss=0.05,
                            train_eval_loss=0.02, test_loss=0.05) for s in range(2)]
    table = R.runs_table(records)
    sentence = SITES.differences_sentence(table, "mnist")
    # feature dropout on the hidden spikes is dropout2d there: the study reads dropout2d's runs for it
    assert sentence == ("MNIST: test accuracy of the base network 97.00 ± 0.00% (3 seeds); the kinds' means minus the "
                        "base network's: on the synaptic current, dropout +0.50 points (3).")
    assert SITES.above_base(table, "mnist", "train_loss") == (1, 1)
    records += [make_record("mnist", "dropout2d", s, site="hidden", test_acc=0.96, train_loss=0.05,
                            train_eval_loss=0.02, test_loss=0.05) for s in range(2)]
    table = R.runs_table(records)
    assert "on the hidden spikes, dropout2d = feature dropout -1.00 (2)" in SITES.differences_sentence(table, "mnist")
    assert [SITES.above_base(table, "mnist", m) for m in ("train_loss", "train_eval_loss", "test_loss")] == [
        (2, 2), (1, 2), (1, 2)]
    assert "in 2 when measured with dropout on" in SITES.loss_sentence(table, "mnist")
    assert SITES.differences_sentence(table, "cifar10") == "CIFAR-10: no finished run of the base network yet."


def test_detectable_difference_has_the_power_it_promises():
    d = F.detectable_difference(1.0, 3, 3, alpha=0.05, power=0.8)
    t_crit, shift = stats.t.ppf(0.975, 4), d / math.sqrt(2 / 3)
    assert stats.nct.sf(t_crit, 4, shift) + stats.nct.cdf(-t_crit, 4, shift) == pytest.approx(0.8, abs=1e-6)
    normal = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * math.sqrt(2 / 500)  # large groups: the z formula
    assert F.detectable_difference(1.0, 500, 500) == pytest.approx(normal, rel=0.01)
    assert F.detectable_difference(2.0, 3, 3) == pytest.approx(2 * d)  # in units of the spread
    assert F.detectable_difference(1.0, 3, 3, alpha=0.05 / 12) > d > F.detectable_difference(1.0, 10, 10)
    assert math.isnan(F.detectable_difference(1.0, 1, 5)) and math.isnan(F.detectable_difference(0.0, 3, 3))


def test_question_seeds_are_the_grids_and_the_power_sentence_uses_them():
    for name in ("rates", "budget"):
        grid = json.loads((GRIDS / f"{name}.json").read_text())
        assert len(grid["axes"]["seed"]) == SITES.QUESTION_SEEDS, name
    records = [make_record("cifar10", "none", s, test_acc=0.46 + 0.002 * s) for s in range(5)]
    sentence = F.power_sentence(R.runs_table(records), "cifar10")
    sd = float(np.std([0.46 + 0.002 * s for s in range(5)], ddof=1))
    mask = F.detectable_difference(sd, 3, 3, 0.05 / 12) * 100
    assert f"{mask:.2f} points for the mask in time (3 seeds against 3, a family of 12 tests)" in sentence
    assert "a family of 8 tests" in sentence and "the 60-epoch budget (3 seeds against 3, a family of 6 tests)" in sentence
    assert F.power_sentence(R.runs_table([]), "mnist") == "MNIST: the base network needs two finished seeds for a power " \
                                                          "estimate."


def test_question_sentences_list_significant_tests_and_what_waits():
    records = [make_record("mnist", "dropout", s, p=0.5, test_acc=0.978 + 0.001 * s) for s in range(5)]
    records += [make_record("mnist", "dropout2d", s, p=0.5, test_acc=0.970 + 0.001 * s) for s in range(5)]
    tests = F.mask_tests(R.runs_table(records), ["mnist"], metrics=("test_acc",))
    done = [t for t in tests if t.label != "no data"]
    assert F.describe_secondary(done[0]).startswith("p = 0.5, a new mask every step against one per sample, test "
                                                    "accuracy +0.80 points [")
    assert F.waiting_tests(tests) == "MNIST at p = 0.1, 0.2 and 0.3"
    (line,) = F.family_sentences(tests)
    assert line.startswith("MNIST: 1 of the 1 tests with data is significant after Holm: p = 0.5, a new mask every "
                           "step against one per sample, test accuracy higher (+0.80 points)")
    assert line.endswith("(waiting for MNIST at p = 0.1, 0.2 and 0.3).")
    budget = F.budget_tests(R.runs_table(records))
    assert F.family_sentences(budget) == ["CIFAR-10: every test waits for its runs (CIFAR-10, 60 epochs: the base "
                                          "network, dropout and dropout2d)."]


def tuning_record(dataset: str, epochs: int, val_acc: float, **network: float) -> dict:
    record = make_record(dataset, "none", 0, epochs=epochs, val_acc=val_acc, test_acc=val_acc)
    record["config"]["network"].update(network)
    return record


def test_tuning_sentences_weigh_the_defaults_against_seed_noise():
    records = [tuning_record("mnist", 10, 0.9770), tuning_record("mnist", 10, 0.9772, K=8),
               tuning_record("mnist", 10, 0.9744, delay_spread=1), tuning_record("cifar10", 3, 0.42, tau=3.0),
               tuning_record("cifar10", 3, 0.40, tau=4.0)]
    records += [make_record("mnist", "none", s, val_acc=0.976 + 0.001 * (s % 3)) for s in range(10)]
    table = R.runs_table(records)
    groups = F.tuning_groups(table).set_index("dataset")
    assert groups.loc["mnist", "has_defaults"] and not groups.loc["cifar10", "has_defaults"]
    assert groups.loc["mnist", "defaults_rank"] == 2 and groups.loc["mnist", "defaults_below_best"] == \
        pytest.approx(0.0002)
    sd = float(np.std([0.976 + 0.001 * (s % 3) for s in range(10)], ddof=1))
    assert groups.loc["mnist", "noise"] == pytest.approx(1.96 * math.sqrt(2) * sd)
    lines = F.tuning_sentences(table)
    assert lines[0].startswith("Validation and test accuracy choose the same setting in 2 of the 2 tuning groups")
    assert lines[1] == "The group CIFAR-10 at 3 epochs does not contain the study's defaults: it says nothing about them."
    assert lines[2].startswith("In MNIST at 10 epochs (3 settings), validation ranks the study's defaults second of 3, "
                               "0.02 points below the best (K 8)")
    assert [F.ordinal(n) for n in (1, 3, 4, 11, 22, 113)] == ["first", "third", "4th", "11th", "22nd", "113th"]
    assert lines[2].endswith("the defaults' place is within that.")
    assert lines[-1].startswith("The tuning neither favours nor disfavours the study's defaults")
    assert F.tuning_sentences(R.runs_table([])) == ["No tuning run has finished yet."]


def test_table2_against_chance_and_the_study_runs():
    assert sorted(NEURONS.PAPER_TABLE2_BASE) == list(range(10))
    ranking = list(range(20, 0, -1))  # neuron 0 most important, then 1, 2, ...
    assert NEURONS.low_ids({0: ranking, 1: ranking[::-1]}, 10) == {0: 10, 1: 0}
    records = [make_record("mnist", "none", 0, importance=ranking), make_record("mnist", "none", 1,
                                                                                importance=ranking[::-1])]
    sentence = NEURONS.table2_sentence(R.runs_table(records))
    assert "9, 8, 3, 2, 0, 1, 4, 5, 6, 7" in sentence and "1/C(128, 10) = 4.4e-15" in sentence
    assert sentence.endswith("In the study's 2 base runs (2 of MNIST), at most 10 of the top 10 have an ID below 10 "
                             "(mean 5.0; chance expects 0.78).")
    records += [make_record("mnist", "dropout", 0, importance=ranking[:10][::-1] + ranking[10:])]
    redone = NEURONS.table2_redone(R.runs_table(records), "mnist", seed=0).splitlines()
    assert redone[0] == "| rank | base (no dropout) | dropout |" and redone[2] == "| 1 | 0 | **9** |"
    assert redone[-1] == "| shared with the base run |  | 10 |"
    assert NEURONS.table2_redone(R.runs_table(records), "cifar10").startswith("_CIFAR-10: no finished base run")


def c3_test(kind: str, metric: str, values: list[float], control: list[float], label: str,
            measure: str = "hidden_importance") -> C.Test:
    return C.Test("C3", "primary", "f", "mnist", kind, "current", metric, -1, "paired", len(values), len(values),
                  float(np.mean(values) - np.mean(control)), math.nan, math.nan, 0.01, 0.01, label=label,
                  measure=measure, detail={"kind_values": values, "control_values": control})


def test_c3_sentences_say_what_the_top_10_and_tau_can_tell():
    control_overlap, control_tau = [5.0, 4.0, 6.0], [0.5, 0.6, 0.55]
    tests = [c3_test("dropout", "top10_overlap", [5.0, 5.0, 5.0], control_overlap, "not significant"),
             c3_test("dropout", "kendall_tau", [0.4, 0.4, 0.4], control_tau, "yes"),
             c3_test("alpha", "top10_overlap", [2.0, 1.0, 10.0], control_overlap, "yes"),
             c3_test("alpha", "kendall_tau", [0.2, 0.2, 0.2], control_tau, "yes")]
    result = C.Claims(tests, [], {})
    summary = NEURONS.c3_summary(result, "mnist")
    assert list(summary["changed"]) == [3, 2] and list(summary["control_changed"]) == [3, 3]
    lines = NEURONS.c3_sentences(result, "mnist")
    assert lines[0] == ("The top 10 of a dropout run differs from its base run's in 5 of 6 pairs (dropout "
                        "and alpha dropout); the control's top 10, trained without dropout, differs from its base "
                        "run's in 3 of 3: that the top 10 changed cannot tell dropout from training noise.")
    assert lines[1] == ("The top-10 overlap with the base run is 5.0 of 10 for the control (mean over seeds); dropout "
                        "5.0: not significantly different from the control's; alpha dropout 4.3: lower than the "
                        "control's (significant after Holm).")
    assert lines[2].startswith("Kendall's tau over all 128 neurons is 0.55 for the control; dropout 0.40 and alpha "
                               "dropout 0.20: lower")
    assert lines[3].startswith("For dropout, only the rank agreement over all 128 neurons")
    assert "the ranking changes without dropout too" in lines[4]
    assert NEURONS.c3_sentences(result, "cifar10") == ["The tests of C3 wait for their runs."]
    secondary = [c3_test("dropout", "kendall_tau", [0.1, 0.1], [0.1, 0.2], "not significant",
                         measure="hidden_silencing_drop")]
    assert NEURONS.c3_secondary_sentence(C.Claims(secondary, [], {})) == (
        "By the accuracy lost when the neuron is silenced (secondary), 0 of the 1 tests with data is significant "
        "after Holm.")


def test_agreement_values_measure_agreement_and_spike_table():
    rng = np.random.default_rng(0)
    records = []
    for s in range(3):
        base = rng.random(20).tolist()
        records.append(make_record("mnist", "none", s, importance=base, silencing=base))
        records.append(make_record("mnist", "none", 100 + s, init_seed=s, importance=base, silencing=base))
        records.append(make_record("mnist", "dropout", s, importance=[-v for v in base], silencing=base))
    table = R.runs_table(records)
    values = NEURONS.agreement_values(table, "mnist", statistic="kendall_tau")
    assert values[NEURONS.CONTROL_LABEL] == pytest.approx([1.0] * 3) and values["dropout"] == pytest.approx([-1.0] * 3)
    assert len(values[NEURONS.OTHER_SEED_LABEL]) == 3 and values["alpha dropout"] == []
    agreement = NEURONS.measure_agreement(table).splitlines()
    assert agreement[2].startswith("| base (no dropout) | 1.00 ± 0.00 (3) |") and len(agreement) == 4
    spikes = SITES.spike_table(table).splitlines()
    assert len(spikes) == 4 and spikes[3].startswith("| MNIST | dropout | current | 3 |")
    assert SITES.spike_table(R.runs_table([])) == "_No finished run yet._"


def test_tables_of_secondary_and_c3_tests_and_of_the_base_runs_top_10():
    records = [make_record("mnist", "dropout", s, p=0.5, test_acc=0.978 + 0.001 * s) for s in range(3)]
    records += [make_record("mnist", "dropout2d", s, p=0.5, test_acc=0.970 + 0.001 * s) for s in range(3)]
    lines = F.secondary_table(F.mask_tests(R.runs_table(records), ["mnist"], metrics=("test_acc",))).splitlines()
    assert len(lines) == 3 and lines[2].startswith("| MNIST | p = 0.5, a new mask every step against one per sample | "
                                                   "test accuracy | 3 vs 3 | +0.80 [")
    assert F.secondary_table([]) == "_No test has its data yet._"
    test = c3_test("dropout", "top10_overlap", [5.0, 5.0, 5.0], [5.0, 4.0, 6.0], "not significant")
    test.base_mean, test.variant_mean = 5.0, 5.0
    row = NEURONS.c3_table(C.Claims([test], [], {})).splitlines()[2]
    assert row.startswith("| MNIST | dropout | top-10 overlap with the base run | 5.0 / 5.0 | +0.00")
    assert NEURONS.c3_table(C.Claims([], [], {})) == "_No test of C3 has its data yet._"
    ranking = list(range(20, 0, -1))
    top = NEURONS.base_top_k_table(R.runs_table([make_record("mnist", "none", 3, importance=ranking)])).splitlines()
    assert top[2] == "| MNIST | 3 | 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 | 10 |"


def test_same_operation_check_compares_the_runs_of_one_operation_seed_by_seed():
    records = [make_record("mnist", kind, s, test_acc=0.96) for kind in ("feature", "dropout2d") for s in range(2)]
    records.append(make_record("mnist", "dropout2d", 2, test_acc=0.96))
    assert SITES.same_operation_check(R.runs_table(records)) == (
        "Where both kinds of one operation have runs: feature dropout and dropout2d on the synaptic current: the same "
        "numbers in 2 of 2 seeds on MNIST.")
    records[0]["epochs"][-1]["test_acc"] = 0.5
    assert "1 of 2 seeds on MNIST" in SITES.same_operation_check(R.runs_table(records))
    assert SITES.same_operation_check(R.runs_table(records[2:])) == ""


def test_uniform_guess_cells_need_every_seed_at_the_loss_of_a_uniform_guess():
    """A cell is listed when every run's test loss is within 0.001 of ln 10; one seed that learned keeps it
    out; the base network is never a dropout cell."""
    from snnlib.study import sites as SITES

    records = [make_record("cifar10", "alpha", s, site="hidden", test_loss=2.3026 + 0.0004 * (s - 1)) for s in range(3)]
    records += [make_record("cifar10", "feature_alpha", s, site="hidden", test_loss=2.3026) for s in range(2)]
    records.append(make_record("cifar10", "feature_alpha", 2, site="hidden", test_loss=2.1))
    records += [make_record("mnist", "none", s, test_loss=2.3026) for s in range(2)]
    table = R.runs_table(records)
    assert SITES.uniform_guess_cells(table) == [("cifar10", "alpha", "hidden", 3)]
    assert SITES.uniform_guess_sentence(table) == (
        "Ending with the test loss of a uniform guess (ln 10 = 2.3026, within 0.001) in every seed: CIFAR-10 "
        "alpha dropout on the hidden spikes (3 of 3 seeds).")
    assert SITES.uniform_guess_sentence(R.runs_table(records[3:])).startswith("No cell ends with")


def test_constant_code_counts_the_hidden_neurons_that_fire_for_every_image_or_none():
    """Rates of exactly 0 or 1 count, anything between does not; the sentence lists only uniform-guess cells
    and sets them against the base network of their dataset; with no such cell it says so."""
    from recordmaker import reseal

    assert SITES.constant_neuron_share([0.0, 1.0, 0.5, 0.9999]) == 0.5
    with pytest.raises(ValueError, match="at least one"):
        SITES.constant_neuron_share([])
    records = []
    for seed, rates in enumerate(([1.0] * 6 + [0.0, 0.3], [1.0] * 8)):
        record = make_record("cifar10", "alpha", seed, site="hidden", test_loss=2.3026)
        record["hidden_firing_rate"] = rates
        records.append(reseal(record))
    base = make_record("cifar10", "none", 0, test_loss=1.6)
    base["hidden_firing_rate"] = [0.0] + [0.4] * 7
    records += [reseal(base), make_record("cifar10", "dropout", 0, site="hidden", test_loss=1.5)]
    assert SITES.constant_code_sentence(R.runs_table(records)) == (
        "Share of the hidden neurons that fire for every test image or for none, so that whether they fire says "
        "nothing about the image: on CIFAR-10, 94% with alpha dropout on the hidden spikes (2 seeds), against 12% "
        "in the base network (1 seed).")
    assert SITES.constant_code_sentence(R.runs_table(records[2:])).startswith("No cell ends with")
