"""The statistics (scipy's tests, Holm) and the rules of C1-C3 (snnlib.study.preregistration), on small
synthetic groups: every label, every verdict rule, fixed family sizes, identical operations counted once."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from recordmaker import make_record
from scipy import stats

from snnlib.study import claims as C
from snnlib.study import stats as A

# ---------------------------------------------------------------- statistics


def brute_force_permutation_p(a, b) -> float:
    """The first edition's enumeration: share of splits with |difference of means| >= observed."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    pooled, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
    count = n = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        rest = np.delete(pooled, chosen)
        count += abs(pooled[list(chosen)].mean() - rest.mean()) >= observed - 1e-12
        n += 1
    return count / n


@pytest.mark.parametrize("n_a, n_b", [(5, 5), (5, 3), (3, 5), (4, 6), (6, 6)])
@pytest.mark.parametrize("seed", [0, 1])
def test_permutation_p_is_scipys_exact_test_and_the_first_editions_enumeration(n_a, n_b, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n_a), rng.normal(0.8, 1.5, n_b)
    scipy_p = stats.permutation_test((a, b), A._abs_mean_difference, permutation_type="independent",
                                     n_resamples=np.inf, alternative="greater", vectorized=True).pvalue
    assert A.permutation_p(a, b) == pytest.approx(scipy_p, abs=1e-12)
    assert A.permutation_p(a, b) == pytest.approx(brute_force_permutation_p(a, b), abs=1e-12)


def test_permutation_p_of_separated_accuracies_near_one():
    """Values near 0.97 lose digits to cancellation: the split and its complement must both count."""
    base = [0.9716, 0.9718, 0.9752, 0.9753, 0.9715]
    dropout = [0.9776, 0.9768, 0.9773, 0.9764, 0.9768]
    scipy_p = stats.permutation_test((base, dropout), A._abs_mean_difference, permutation_type="independent",
                                     n_resamples=np.inf, alternative="greater", vectorized=True).pvalue
    assert A.permutation_p(base, dropout) == pytest.approx(scipy_p) == pytest.approx(2 / 252)
    rng = np.random.default_rng(7)
    for _ in range(20):
        a, b = 0.97 + rng.normal(0, 0.002, 5), 0.975 + rng.normal(0, 0.002, 5)
        expected = stats.permutation_test((a, b), A._abs_mean_difference, permutation_type="independent",
                                          n_resamples=np.inf, alternative="greater", vectorized=True).pvalue
        assert A.permutation_p(a, b) == pytest.approx(expected)


def test_permutation_p_counts_ties_as_extreme_like_scipy():
    a, b = [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]  # every split as extreme as the observed 0
    assert A.permutation_p(a, b) == 1.0
    a, b = [1.0, 1.0, 2.0], [1.0, 2.0, 2.0]
    scipy_p = stats.permutation_test((a, b), A._abs_mean_difference, permutation_type="independent",
                                     n_resamples=np.inf, alternative="greater", vectorized=True).pvalue
    assert A.permutation_p(a, b) == pytest.approx(scipy_p)


def test_permutation_p_samples_beyond_the_exact_limit_reproducibly():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 15), rng.normal(1, 1, 15)  # C(30, 15) = 155 million splits
    p = A.permutation_p(a, b)
    assert p == A.permutation_p(a, b) and 0 < p < 0.05


def test_welch_interval_is_the_textbook_formula():
    base, variant = np.array([0.970, 0.972, 0.969, 0.975, 0.971]), np.array([0.960, 0.968, 0.955, 0.962])
    va, vb = base.var(ddof=1) / len(base), variant.var(ddof=1) / len(variant)
    dof = (va + vb) ** 2 / (va**2 / (len(base) - 1) + vb**2 / (len(variant) - 1))
    half = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    d = A.compare(base, variant)
    diff = variant.mean() - base.mean()
    assert (d.diff, d.ci_low, d.ci_high) == pytest.approx((diff, diff - half, diff + half))
    assert d.n_base == 5 and d.n_variant == 4


def test_permutation_floor_is_reached_by_separated_groups():
    assert A.permutation_floor(5, 5) == pytest.approx(2 / 252)
    assert A.permutation_p(range(5), range(10, 15)) == pytest.approx(A.permutation_floor(5, 5))
    assert A.permutation_floor(10, 10) == pytest.approx(2 / 184756)
    assert A.permutation_p(range(10), range(10, 20)) == pytest.approx(2 / 184756)


def test_holm_adjusts_step_down_and_keeps_order():
    # sorted: 0.01 * 4, 0.02 * 3, 0.03 * 2 -> monotone, 0.04 * 1 -> max(0.06, 0.04)
    assert A.holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert A.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8 * 2 capped at 1; then monotone
    assert A.holm([]) == []


def test_a_test_without_data_keeps_its_familys_size():
    """A NaN (no data) counts as p = 1: the other tests are corrected for the whole family."""
    adjusted = A.holm([0.5, float("nan"), 0.01])
    assert math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.03) and adjusted[0] == pytest.approx(1.0)
    assert A.holm([0.01, float("nan"), float("nan"), float("nan")])[0] == pytest.approx(0.04)


def test_one_sample_and_paired_tests_are_scipys_with_an_exact_sign_flip_check():
    x = np.array([0.11, 0.13, 0.12, 0.10, 0.14])
    d = A.one_sample(x, 0.2)
    expected = stats.ttest_1samp(x, 0.2)
    ci = expected.confidence_interval()
    assert d.welch_p == pytest.approx(expected.pvalue) and d.diff == pytest.approx(x.mean() - 0.2)
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low - 0.2, ci.high - 0.2))
    assert d.permutation_p == pytest.approx(2 / 32)  # all five below the cut-off: the floor of sign flips
    a, b = np.array([0.5, 0.6, 0.4, 0.55, 0.45]), np.array([0.3, 0.45, 0.2, 0.41, 0.2])
    pd_ = A.paired(a, b)
    assert pd_.welch_p == pytest.approx(stats.ttest_rel(b, a).pvalue) and pd_.diff == pytest.approx((b - a).mean())
    assert pd_.n_base == pd_.n_variant == 5
    with pytest.raises(ValueError, match="same length"):
        A.paired([1, 2], [1, 2, 3])


def test_sign_flip_p_is_the_brute_force_enumeration():
    rng = np.random.default_rng(4)
    d = rng.normal(0.3, 1, 7)
    count = sum(abs(np.mean(d * np.array(signs))) >= abs(d.mean()) - 1e-12
                for signs in itertools.product((1, -1), repeat=7))
    assert A.sign_flip_p(d) == pytest.approx(count / 2 ** 7)


def test_five_against_five_could_not_pass_holm_by_permutation_but_can_by_welch():
    """The second edition's test had a floor; the third edition's t-test has none."""
    assert A.holm([A.permutation_floor(5, 5)] + [0.5] * 7)[0] > C.ALPHA
    separated = A.compare([0.970, 0.971, 0.972, 0.973, 0.974], [0.960, 0.961, 0.962, 0.963, 0.964])
    assert A.holm([separated.welch_p] + [0.5] * 7)[0] < C.ALPHA


def test_chance_of_the_papers_top_ten():
    assert A.chance_of_ranking(128, 10) == pytest.approx(1 / math.prod(range(119, 129)))
    assert A.chance_of_top_k_set(128, 10) == pytest.approx(1 / math.comb(128, 10))
    assert 4.3e-15 < A.chance_of_top_k_set(128, 10) < 4.5e-15


# ---------------------------------------------------------------- the rules


@pytest.mark.parametrize("difference, direction, p, complete, label", [
    (-0.01, -1, 0.001, True, "yes"),
    (-0.01, -1, 0.2, True, "not significant"),  # the claimed direction without significance is not "yes"
    (0.01, -1, 0.001, True, "contrary"),
    (0.01, -1, 0.2, True, "not significant"),
    (0.3, +1, 0.049, True, "yes"), (0.3, +1, 0.05, True, "not significant"),
    (0.0, +1, 0.001, True, "not significant"),
    (0.3, +1, 0.001, False, "no data"), (math.nan, +1, 0.01, True, "no data"),
])
def test_labels(difference, direction, p, complete, label):
    assert C.test_label(difference, direction, p, complete) == label


@pytest.mark.parametrize("labels, verdict", [
    (["yes", "yes"], "reproduced"),
    (["yes", "not significant"], "partly reproduced"),
    (["yes", "contrary"], "mixed"),  # a significant contrary test blocks "partly"
    (["yes", "not significant", "contrary"], "mixed"),
    (["not significant", "contrary"], "contrary"),
    (["not significant", "not significant"], "not reproduced"),
    (["yes", "no data"], "not enough data"),
    (["contrary", "no data"], "not enough data"),
    ([], "not enough data"),
])
def test_verdicts(labels, verdict):
    assert C.combine(labels) == verdict


# ---------------------------------------------------------------- the claims on synthetic records

SEEDS = range(10)
WORSE = {"test_acc": 0.95, "train_loss": 0.05, "train_eval_loss": 0.02, "test_loss": 0.2}


def base_and(kind_numbers, site="current", seeds=SEEDS, dataset="mnist", base=None, base_seeds=SEEDS, **more):
    """Base runs and runs of each kind with the given last-epoch numbers (plus a seed-dependent jitter)."""
    base = base or {}
    records = [make_record(dataset, "none", s, **{m: v + 1e-3 * s for m, v in
                                                 {"test_acc": 0.97, "train_loss": 0.01, "train_eval_loss": 0.01,
                                                  "test_loss": 0.10, "train_eval_acc": 0.99, **base}.items()})
               for s in base_seeds]
    for kind, numbers in kind_numbers.items():
        records += [make_record(dataset, kind, s, site=site, **{m: v + 1e-3 * s for m, v in numbers.items()}, **more)
                    for s in seeds]
    return records


def outcome(records, claim, site="current", dataset="mnist", role="primary"):
    result = C.evaluate_claims(records)
    return {(t.kind, t.metric): t for t in result.tests
            if t.claim == claim and t.site == site and t.dataset == dataset and t.role == role}, result


def test_c1_yes_when_dropout_lowers_accuracy_and_raises_loss_significantly():
    tests, result = outcome(base_and({"dropout": WORSE, "dropout2d": WORSE}), "C1")
    assert {t.label for t in tests.values()} == {"yes"}
    assert all(t.n_base == t.n_variant == 10 and t.test == "welch" for t in tests.values())
    assert result.verdict("C1", "current", "mnist") == "reproduced"
    # CIFAR-10 has no runs: the claim over both datasets waits for them
    assert result.verdict("C1", "current") == "not enough data"


def test_c1_mixed_when_one_test_is_significantly_contrary():
    better = {"test_acc": 0.98, "train_loss": 0.05}
    tests, result = outcome(base_and({"dropout": better, "dropout2d": WORSE}), "C1")
    assert tests["dropout", "test_acc"].label == "contrary" and tests["dropout", "train_loss"].label == "yes"
    assert result.verdict("C1", "current", "mnist") == "mixed"


def test_a_missing_seed_is_no_data_and_the_family_keeps_its_size():
    records = base_and({"dropout": WORSE}) + base_and({"dropout2d": WORSE}, seeds=range(9), base_seeds=())
    tests, result = outcome(records, "C1")
    assert tests["dropout2d", "test_acc"].label == "no data"
    assert tests["dropout2d", "test_acc"].missing == ["dropout2d: seed 9"]
    assert tests["dropout", "test_acc"].label == "yes"
    assert result.families["C1, current"] == 8
    assert result.verdict("C1", "current", "mnist") == "not enough data"
    # Holm over the planned 8 tests (4 of them without data count as p = 1), not over the 2 with data
    dropout = [t for t in tests.values() if t.kind == "dropout"]
    ranked = sorted(t.p for t in dropout)
    assert min(t.p_holm for t in dropout) == pytest.approx(min(1.0, 8 * ranked[0]))


def test_runs_beyond_the_planned_seeds_or_outside_the_study_settings_are_left_out():
    records = base_and({"dropout": WORSE})
    records += [make_record("mnist", "dropout", s, test_acc=0.99) for s in range(10, 20)]  # seeds not planned
    records += [make_record("mnist", "dropout", s, val_size=0, test_acc=0.99) for s in range(10)]  # other split
    records += [make_record("mnist", "dropout", s, epochs=3, test_acc=0.99) for s in range(10)]  # other budget
    tests, _ = outcome(records, "C1")
    assert tests["dropout", "test_acc"].n_variant == 10 and tests["dropout", "test_acc"].label == "yes"


def test_c1_on_the_input_spikes_counts_dropout_and_dropout2d_once():
    result = C.evaluate_claims(base_and({"dropout": WORSE}, site="input"))
    c1 = [t for t in result.primary("C1") if t.site == "input"]
    assert result.families["C1, input"] == 4 == len(c1)
    assert {t.kind for t in c1} == {"dropout"} and all(t.also == ("dropout2d",) for t in c1)
    mnist = [t for t in c1 if t.dataset == "mnist"]
    assert {t.label for t in mnist} == {"yes"}
    assert "dropout = dropout2d on the input" in C.describe_test(mnist[0])


def test_c2_below_the_cut_off_is_yes_far_above_is_contrary():
    records = base_and({"dropout2d": {"test_acc": 0.10, "train_eval_acc": 0.11},  # feature dropout's runs
                        "feature_alpha": {"test_acc": 0.40, "train_eval_acc": 0.45},
                        "alpha": {"test_acc": 0.1955, "train_eval_acc": 0.1955}})  # mean 20%
    tests, result = outcome(records, "C2")
    assert tests["feature", "test_acc"].label == "yes" and tests["feature", "test_acc"].test == "one_sample"
    assert tests["feature", "test_acc"].also == () and tests["feature", "test_acc"].n_variant == 10
    assert tests["feature_alpha", "test_acc"].label == "contrary"
    assert tests["alpha", "test_acc"].label == "not significant"  # 20% +- 0.3: at the cut-off
    assert result.verdict("C2", "current", "mnist", reading="feature dropout = zeroing") == "partly reproduced"
    assert result.verdict("C2", "current", "mnist", reading="feature dropout = feature alpha dropout") == "contrary"


def test_feature_dropout_takes_dropout2ds_runs_on_a_fully_connected_layer():
    records = base_and({"dropout2d": {"test_acc": 0.5}, "feature": {"test_acc": 0.1}})
    tests, _ = outcome(records, "C2")
    assert tests["feature", "test_acc"].variant_mean == pytest.approx(0.5 + 4.5e-3)


def importance_records(kind_noise: dict[str, float], control_noise: float, seeds=SEEDS):
    """Base runs with random importances; each kind's (and the control's) importances are the base's
    of the same seed plus noise of the given size (more noise: a more different ranking)."""
    rng = np.random.default_rng(1)
    records = []
    for s in seeds:
        base = rng.random(40)
        records.append(make_record("mnist", "none", s, importance=base.tolist(), silencing=base.tolist()))
        control = (base + rng.normal(0, control_noise, 40)).tolist()
        records.append(make_record("mnist", "none", 100 + s, init_seed=s, importance=control, silencing=control))
        for kind, noise in kind_noise.items():
            values = (base + rng.normal(0, noise, 40)).tolist()
            records.append(make_record("mnist", kind, s, importance=values, silencing=values))
    return records


def test_c3_paired_against_the_control():
    records = importance_records({"dropout": 1.0, "dropout2d": 0.1, "alpha": 0.001}, control_noise=0.1)
    tests, _ = outcome(records, "C3")
    assert tests["dropout", "kendall_tau"].label == "yes"  # far less agreement than the control's
    assert tests["dropout", "kendall_tau"].test == "paired" and tests["dropout", "kendall_tau"].n_variant == 10
    assert tests["dropout2d", "kendall_tau"].label == "not significant"  # the control's level
    assert tests["alpha", "kendall_tau"].label == "contrary"  # keeps the ranking better than the control
    assert tests["feature_alpha", "kendall_tau"].label == "no data"
    assert tests["dropout2d", "kendall_tau"].also == ("feature",)
    d = tests["dropout", "top10_overlap"]
    assert d.detail["seeds"] == list(SEEDS) and len(d.detail["kind_values"]) == 10
    assert d.difference == pytest.approx(np.mean(d.detail["kind_values"]) - np.mean(d.detail["control_values"]))


def test_claims_json_and_verdict_table():
    result = C.evaluate_claims(base_and({"dropout": WORSE, "dropout2d": WORSE}))
    payload = result.to_json()
    keys = {"claim", "role", "dataset", "kind", "site", "metric", "n_base", "n_variant", "difference", "ci_low",
            "ci_high", "p", "p_check", "p_holm", "label", "missing"}
    assert payload["tests"] and all(keys <= set(t) for t in payload["tests"])
    assert payload["families"]["C1, current"] == 8 and payload["power"]
    table = C.verdict_table(result)
    assert table.splitlines()[0] == ("| claim | reading | dropout site | primary tests | verdict | MNIST alone | "
                                     "CIFAR-10 alone |")
    assert "| C1 | the paper's metrics | current | 8 | not enough data | reproduced | not enough data |" in table


def test_describe_test_in_one_sentence():
    tests, _ = outcome(base_and({"dropout": WORSE, "dropout2d": WORSE}), "C1")
    text = C.describe_test(tests["dropout", "test_acc"])
    assert text.startswith("C1, MNIST, dropout on the current, test accuracy: -2.00 points [")
    assert "(10 vs 10 seeds, Welch's t-test p = " in text and text.endswith("): yes")
    assert "training loss (dropout on): +0.0400 [" in C.describe_test(tests["dropout", "train_loss"])
    waiting, _ = outcome(base_and({"dropout": WORSE}, seeds=range(3)), "C1")
    assert C.describe_test(waiting["dropout", "test_acc"]).endswith(
        "test accuracy: no data (waiting for dropout: seeds 3, 4, 5, 6, 7, 8, 9)")


def test_verdict_sentence_names_the_verdicts_the_contrary_tests_and_what_waits():
    better = {"test_acc": 0.98, "train_loss": 0.05}
    result = C.evaluate_claims(base_and({"dropout": better, "dropout2d": WORSE}))
    text = C.verdict_sentence(result, "C1", "current")
    assert text.startswith("on the synaptic current (the paper's site): **not enough data** (MNIST: mixed, "
                           "CIFAR-10: not enough data); significantly the other way: MNIST dropout, test accuracy +1.00 "
                           "points; waiting for the runs of: CIFAR-10 dropout, CIFAR-10 dropout2d")
    c2 = C.evaluate_claims(base_and({"dropout2d": {"test_acc": 0.5, "train_eval_acc": 0.5}}))
    assert "significantly above the 20% cut-off: MNIST feature dropout, test accuracy 50.4%" in C.verdict_sentence(
        c2, "C2", "current", "feature dropout = zeroing")


def test_edition_changes_say_where_the_spike_sites_reverse_a_headline_verdict():
    """Against the second edition's summary (C2 not reproduced), feature alpha and alpha dropout near chance on
    MNIST's hidden spikes reproduce C2 there: named as a reversed headline verdict with its tests; without
    spike-site runs the sentences say that nothing is reversed."""
    chance = {"test_acc": 0.10, "train_eval_acc": 0.10}
    hidden = base_and({"feature_alpha": chance, "alpha": chance}, site="hidden", base_seeds=())
    result = C.evaluate_claims(base_and({}) + hidden)
    lines = C.edition_changes(result)
    assert lines[0].startswith("At the paper's site, against the second edition's summary")
    assert "C2 *not reproduced* then, *not enough data* now" in lines[0]
    assert lines[1:] == ["**A headline verdict reversed:** C2 (feature dropout = feature alpha dropout), *not reproduced* "
                         "in the second edition, is *reproduced* on the hidden spikes of MNIST: MNIST feature alpha "
                         "dropout, test accuracy 10.2%; MNIST alpha dropout, test accuracy 10.2%."]
    untouched = C.edition_changes(C.evaluate_claims(base_and({})))
    assert untouched[1:] == ["No verdict on the hidden or the input spikes reverses a headline verdict of the "
                             "second edition."]
