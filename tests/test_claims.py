"""The statistics (scipy's tests, Holm) and the rules of C1-C3, on small synthetic groups:
every label of every claim, and every verdict of the combination rules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from recordmaker import make_record
from scipy import stats

from snnlib import analysis as A
from snnlib import claims as C
from snnlib import records as R

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


def test_holm_adjusts_step_down_and_keeps_order_and_nan():
    # sorted: 0.01 * 4, 0.02 * 3, 0.03 * 2 -> monotone, 0.04 * 1 -> max(0.06, 0.04)
    assert A.holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    adjusted = A.holm([0.5, float("nan"), 0.01])
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert A.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8 * 2 capped at 1; then monotone
    assert A.holm([]) == []


def test_five_against_five_cannot_survive_holm_over_eight_tests_but_ten_can():
    five = A.holm([A.permutation_floor(5, 5)] + [0.5] * 7)[0]
    ten = A.holm([A.permutation_floor(10, 10)] + [0.5] * 15)[0]
    assert five > C.ALPHA > ten


def test_chance_of_one_ordered_top_k():
    assert A.chance_of_ranking(128, 10) == pytest.approx(1 / math.prod(range(119, 129)))
    assert A.chance_of_ranking(128, 10) < 2e-21
    assert A.chance_of_ranking(3, 3) == pytest.approx(1 / 6)


# ---------------------------------------------------------------- combination rules


@pytest.mark.parametrize("labels, verdict", [
    (["yes", "yes"], "reproduced"),
    (["yes", "no"], "partly reproduced"),
    (["partly", "contrary"], "partly reproduced"),
    (["no", "contrary"], "contrary"),
    (["no", "no"], "not reproduced"),
    (["yes", "n/a"], "not enough data (on the cells with data: reproduced)"),
    (["n/a"], "not enough data"),
    ([], "not enough data"),
])
def test_claim_verdicts(labels, verdict):
    assert C.combine_claim(labels) == verdict


@pytest.mark.parametrize("labels, cell", [
    (["yes", "yes"], "yes"), (["yes", "partly"], "partly"), (["yes", "contrary"], "contrary"),
    (["yes", "no"], "no"), (["partly", "n/a"], "n/a"),
])
def test_cell_labels(labels, cell):
    assert C.combine_cell(labels) == cell


@pytest.mark.parametrize("difference, direction, p, label", [
    (-0.01, -1, 0.001, "yes"), (-0.01, -1, 0.2, "partly"), (0.01, -1, 0.001, "contrary"), (0.01, -1, 0.2, "no"),
    (0.3, +1, 0.01, "yes"), (0.0, +1, 0.001, "no"), (math.nan, +1, 0.01, "n/a"),
])
def test_directional_labels(difference, direction, p, label):
    assert C.directional_label(difference, direction, p) == label


# ---------------------------------------------------------------- the claims on synthetic records

SEEDS = range(10)


def base_and(kind_numbers, site="current", seeds=SEEDS, dataset="mnist", base=None, **more):
    """Base runs and runs of each kind with the given last-epoch numbers (plus a seed-dependent jitter)."""
    base = base or {}
    records = [make_record(dataset, "none", s, **{m: v + 1e-3 * s for m, v in
                                                 {"test_acc": 0.97, "train_loss": 0.01, "train_eval_loss": 0.01,
                                                  "test_loss": 0.10, "train_eval_acc": 0.99, **base}.items()})
               for s in seeds]
    for kind, numbers in kind_numbers.items():
        records += [make_record(dataset, kind, s, site=site, **{m: v + 1e-3 * s for m, v in numbers.items()}, **more)
                    for s in seeds]
    return records


def c1_labels(records, site="current"):
    tests = C.c1_tests(R.runs_table(records), datasets=["mnist"], sites=[site])
    return {(t.kind, t.metric): t.verdict for t in tests}


def test_c1_yes_when_dropout_lowers_accuracy_and_raises_loss_significantly():
    worse = {"test_acc": 0.95, "train_loss": 0.05, "train_eval_loss": 0.02, "test_loss": 0.2}
    labels = c1_labels(base_and({"dropout": worse, "dropout2d": worse}))
    assert set(labels.values()) == {"yes"}
    tests = C.c1_tests(R.runs_table(base_and({"dropout": worse, "dropout2d": worse})), ["mnist"], ["current"])
    assert all(t.p_holm < C.ALPHA and t.n_base == t.n_variant == 10 for t in tests)


def test_c1_contrary_when_dropout_helps_and_partly_when_not_significant():
    better = {"test_acc": 0.98, "train_loss": 0.05, "train_eval_loss": 0.01, "test_loss": 0.08}
    labels = c1_labels(base_and({"dropout": better}))
    assert labels["dropout", "test_acc"] == "contrary" and labels["dropout", "train_loss"] == "yes"
    assert labels["dropout2d", "test_acc"] == "n/a"
    # five seeds against five: the right direction, but the floor of the test cannot pass Holm
    worse = {"test_acc": 0.95, "train_loss": 0.05, "train_eval_loss": 0.02, "test_loss": 0.2}
    five = c1_labels(base_and({"dropout": worse, "dropout2d": worse}, seeds=range(5)))
    assert five["dropout", "test_acc"] == "partly"  # 2/252 * 8 tests > 0.05


def test_c1_no_when_the_difference_goes_the_other_way_without_significance():
    rng = np.random.default_rng(0)
    records = [make_record("mnist", "none", s, test_acc=0.97 + rng.normal(0, 0.01)) for s in range(5)]
    records += [make_record("mnist", "dropout", s, test_acc=0.971 + rng.normal(0, 0.01), train_loss=0.05)
                for s in range(5)]
    test = next(t for t in C.c1_tests(R.runs_table(records), ["mnist"], ["current"])
                if t.kind == "dropout" and t.metric == "test_acc")
    assert test.difference > 0 and test.p_holm >= C.ALPHA and test.verdict == "no"


def c2_labels(records, site="current"):
    return {(t.kind, t.metric): t.verdict for t in C.c2_tests(R.runs_table(records), ["mnist"], [site])}


def test_c2_labels_fails_impaired_trains_and_better():
    labels = c2_labels(base_and({"feature": {"test_acc": 0.12, "train_eval_acc": 0.11},
                                 "feature_alpha": {"test_acc": 0.40, "train_eval_acc": 0.45},
                                 "alpha": {"test_acc": 0.96, "train_eval_acc": 0.97}}))
    assert labels["feature", "test_acc"] == "yes" and labels["feature_alpha", "test_acc"] == "partly"
    assert labels["alpha", "test_acc"] == "no"
    better = c2_labels(base_and({"alpha": {"test_acc": 0.99, "train_eval_acc": 0.995}}))
    assert better["alpha", "test_acc"] == "contrary"


def importance_records(kind_tau_noise: dict[str, float], control_noise: float, seeds=SEEDS):
    """Base runs with random importances; each kind's (and the control's) importances are the base's
    of the same seed plus noise of the given size (more noise: a more different ranking)."""
    rng = np.random.default_rng(1)
    records = []
    for s in seeds:
        base = rng.random(40)
        records.append(make_record("mnist", "none", s, importance=base.tolist(), silencing=base.tolist()))
        control = (base + rng.normal(0, control_noise, 40)).tolist()
        records.append(make_record("mnist", "none", 100 + s, init_seed=s, importance=control, silencing=control))
        for kind, noise in kind_tau_noise.items():
            values = (base + rng.normal(0, noise, 40)).tolist()
            records.append(make_record("mnist", kind, s, importance=values, silencing=values))
    return records


def test_c3_yes_no_and_contrary_against_the_control():
    records = importance_records({"dropout": 1.0, "dropout2d": 0.1, "alpha": 0.001}, control_noise=0.1)
    tests = C.c3_tests(R.runs_table(records), ["mnist"])
    labels = {(t.kind, t.metric): t.verdict for t in tests}
    assert labels["dropout", "hidden_importance"] == "yes"  # far less agreement than the control's
    assert labels["dropout2d", "hidden_importance"] in ("no", "partly")  # the control's level
    assert labels["alpha", "hidden_importance"] == "contrary"  # keeps the ranking better than the control
    assert labels["feature", "hidden_importance"] == "n/a"
    dropout = next(t for t in tests if t.kind == "dropout" and t.metric == "hidden_importance")
    assert dropout.n_base == 10 and dropout.n_variant == 10 and dropout.difference < 0
    assert dropout.detail["top_k_changed"] == 10


def test_evaluate_claims_families_verdicts_and_json():
    records = base_and({"dropout": {"test_acc": 0.95, "train_loss": 0.05, "train_eval_loss": 0.02, "test_loss": 0.2},
                        "dropout2d": {"test_acc": 0.95, "train_loss": 0.05, "train_eval_loss": 0.02,
                                      "test_loss": 0.2}})
    result = C.evaluate_claims(records, datasets=["mnist"])
    assert result.verdicts["C1, paper's metrics (training loss with dropout on, test accuracy), current"] == "reproduced"
    assert result.verdicts["C1, paper's metrics (training loss with dropout on, test accuracy), hidden"] == \
        "not enough data"
    assert result.families["C1, current"] == 2 * 4  # one dataset here
    payload = result.to_json()
    keys = {"claim", "dataset", "kind", "site", "mask", "metric", "n_base", "n_variant", "difference", "ci_low",
            "ci_high", "p", "p_holm", "verdict"}
    assert payload["cells"] and all(keys <= set(cell) for cell in payload["cells"])
    table = C.verdict_table(result)
    assert table.splitlines()[0].startswith("| claim | reading | dropout site |")
    assert "| C1 | paper's metrics (training loss with dropout on, test accuracy) | current | 2 | 4 of 8 | " \
           "reproduced |" in table


def test_runs_outside_the_study_settings_are_left_out():
    worse = {"test_acc": 0.95, "train_loss": 0.05, "train_eval_loss": 0.02, "test_loss": 0.2}
    records = base_and({"dropout": worse})
    records += [make_record("mnist", "dropout", s, val_size=0, test_acc=0.99) for s in range(10, 20)]  # other split
    records += [make_record("mnist", "dropout", s, epochs=3, test_acc=0.99) for s in range(10, 20)]  # other budget
    test = next(t for t in C.c1_tests(R.runs_table(records), ["mnist"], ["current"])
                if t.kind == "dropout" and t.metric == "test_acc")
    assert test.n_variant == 10 and test.verdict == "yes"


def test_describe_test_in_one_sentence():
    worse = {"test_acc": 0.95, "train_loss": 0.05, "train_eval_loss": 0.02, "test_loss": 0.2}
    tests = C.c1_tests(R.runs_table(base_and({"dropout": worse, "dropout2d": worse})), ["mnist"], ["current"])
    acc = next(t for t in tests if t.kind == "dropout" and t.metric == "test_acc")
    text = C.describe_test(acc)
    assert text.startswith("MNIST, dropout on the current, test accuracy: -2.00 points [")
    assert text.endswith("(10 vs 10 seeds, p = 1.1e-05, Holm 8.7e-05): yes")  # 8 tests with the floor p
    loss = next(t for t in tests if t.kind == "dropout" and t.metric == "train_loss")
    assert "training loss (dropout on): +0.0400 [" in C.describe_test(loss)
