"""Statistics of the study: differences to base, permutation test, rank agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snnlib.study import stats as A


def test_compare_gives_welch_interval_around_the_difference_and_small_p_for_clear_effects():
    base = [0.970, 0.971, 0.969, 0.972, 0.970]
    worse = [0.950, 0.952, 0.949, 0.951, 0.953]
    d = A.compare(base, worse)
    assert d.diff == pytest.approx(np.mean(worse) - np.mean(base))
    assert d.ci_low < d.diff < d.ci_high < 0
    assert d.welch_p < 1e-4
    assert d.permutation_p == pytest.approx(2 / 252)  # the floor of an exact 5 vs 5 test


def test_compare_with_no_effect_is_not_significant_and_handles_too_few_seeds():
    d = A.compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert d.diff == 0 and d.permutation_p == 1.0 and d.welch_p > 0.9
    single = A.compare([1.0], [2.0])
    assert single.diff == 1.0 and math.isnan(single.ci_low) and math.isnan(single.permutation_p)


def test_permutation_p_counts_all_splits():
    # 3 vs 3, completely separated: 2 of the 20 splits are as extreme (either direction)
    assert A.permutation_p([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)


def test_top_k_and_overlap_and_kendall_tau():
    importance = [0.1, 0.9, 0.5, 0.9, 0.0]
    assert A.top_k(importance, 3) == [1, 3, 2]  # ties by lower ID
    assert A.top_k_overlap(importance, [0.9, 0.8, 0.7, 0.0, 0.0], 2) == 1
    assert A.kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert A.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert A.chance_top_k_overlap(128, 10) == pytest.approx(100 / 128)


def test_rank_agreement_pairs_same_seeds_and_all_base_pairs():
    rng = np.random.default_rng(0)
    base = {s: rng.random(20) for s in (0, 1, 2)}
    variant = {0: base[0].copy(), 1: rng.random(20)}
    r = A.rank_agreement(base, variant, k=5)
    assert r.seeds == (0, 1)
    assert r.same_seed_overlap[0] == 5 and r.same_seed_tau[0] == pytest.approx(1.0)
    assert r.base_pairs == ((0, 1), (0, 2), (1, 2))
    assert len(r.between_seed_tau) == 3
    assert r.chance_overlap == pytest.approx(25 / 20)
