"""Statistics for the study: differences to base with confidence intervals, significance
tests suited to a handful of seeds, Holm's correction, and rank agreement of hidden-neuron
importance.

Pure functions of numbers (no torch, no files). The t-tests and intervals are scipy's: Welch's
(``scipy.stats.ttest_ind``, :func:`compare`), one-sample (:func:`one_sample`) and paired
(:func:`paired`), the tests the study decides by (:mod:`snnlib.study.preregistration`). Beside each, an
exact check that needs no normality: the permutation test over every split of the pooled values
(the numbers of ``scipy.stats.permutation_test``, computed faster) or, for one-sample and paired
tests, every sign flip (:func:`sign_flip_p`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Difference:
    """``mean(variant) - mean(base)`` with a 95% Welch interval and two p-values."""

    diff: float
    ci_low: float
    ci_high: float
    welch_p: float
    permutation_p: float
    n_base: int
    n_variant: int


def _abs_mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.abs(np.mean(x, axis=axis) - np.mean(y, axis=axis))


# Above this many splits the test samples MONTE_CARLO_RESAMPLES of them (seeded) instead of all.
MAX_EXACT_SPLITS = 2_000_000
MONTE_CARLO_RESAMPLES = 200_000


@functools.lru_cache(maxsize=16)
def _splits(n_total: int, n_a: int) -> np.ndarray:
    """Every choice of ``n_a`` of ``n_total`` indices, one per row (cached: the study reuses a few sizes)."""
    dtype = np.int8 if n_total < 128 else np.int32
    return np.array(list(itertools.combinations(range(n_total), n_a)), dtype=dtype).reshape(-1, n_a)


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided permutation test of equal means: the share of all splits of the pooled
    values into groups of ``len(a)`` and ``len(b)`` whose absolute difference of means is at
    least the observed one (252 splits for 5 vs 5, 184,756 for 10 vs 10).

    Makes no normality assumption. Its floor is ``2 / C(n_a + n_b, n_a)`` for equal groups:
    0.008 for 5 vs 5, which no correction for eight tests survives; 1.1e-5 for 10 vs 10.
    The number is that of ``scipy.stats.permutation_test`` with ``n_resamples=np.inf`` (tested; its
    relative tolerance for ties included); the splits are enumerated here with one array operation,
    about 100 times faster for 10 vs 10. Beyond :data:`MAX_EXACT_SPLITS` splits, scipy draws
    :data:`MONTE_CARLO_RESAMPLES` random ones (seeded, so the p is reproducible).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    n_total = len(a) + len(b)
    if math.comb(n_total, len(a)) > MAX_EXACT_SPLITS:
        result = stats.permutation_test((a, b), _abs_mean_difference, permutation_type="independent",
                                        n_resamples=MONTE_CARLO_RESAMPLES, alternative="greater", vectorized=True,
                                        rng=np.random.default_rng(0))
        return float(result.pvalue)
    # centred first: the difference of means does not change, and sums of small numbers keep the
    # rounding far below the tolerance (accuracies near 0.97 lose digits to cancellation otherwise)
    pooled = np.concatenate([a, b])
    pooled = pooled - pooled.mean()
    observed = abs(pooled[: len(a)].mean() - pooled[len(a):].mean())
    sums = pooled[_splits(n_total, len(a))].sum(axis=1)
    differences = np.abs(sums / len(a) - (pooled.sum() - sums) / len(b))
    tolerance = 100 * np.finfo(float).eps * observed  # as scipy: equal up to rounding counts as extreme
    return float(np.mean(differences >= observed - tolerance))


def permutation_floor(n_a: int, n_b: int) -> float:
    """The smallest p :func:`permutation_p` can give for groups of these sizes (all values distinct,
    the groups completely separated): 2 splits of ``C(n_a + n_b, n_a)`` when ``n_a == n_b``, else 1."""
    splits = math.comb(n_a + n_b, n_a)
    return (2 if n_a == n_b else 1) / splits


def compare(base: Sequence[float], variant: Sequence[float], level: float = 0.95,
            permutation: bool = True) -> Difference:
    """Difference of means with Welch's t interval, Welch's t-test and the permutation test (``permutation``
    False leaves its p NaN: it takes about a second for 10 runs against 25, too slow for an interactive page)."""
    a, b = np.asarray(base, float), np.asarray(variant, float)
    nan = float("nan")
    if len(a) < 2 or len(b) < 2:
        return Difference(float(b.mean() - a.mean()) if len(a) and len(b) else nan, nan, nan, nan, nan, len(a), len(b))
    diff = float(b.mean() - a.mean())
    permutation_value = permutation_p(a, b) if permutation else nan
    if a.var() == 0 and b.var() == 0:  # no spread: the t statistic is undefined
        return Difference(diff, diff, diff, 0.0 if diff else 1.0, permutation_value, len(a), len(b))
    with nearly_identical_values_allowed():
        welch = stats.ttest_ind(b, a, equal_var=False)
        interval = welch.confidence_interval(confidence_level=level)
    return Difference(diff, float(interval.low), float(interval.high), float(welch.pvalue), permutation_value,
                      len(a), len(b))


@contextlib.contextmanager
def nearly_identical_values_allowed() -> Iterator[None]:
    """Runs that all sit at chance agree to a few decimals, and scipy then warns of precision loss in its moments;
    the t statistic it returns is still the test's, so only the warning is dropped (it named a machine's paths in
    the chapters' stored outputs)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred in moment calculation",
                                category=RuntimeWarning)
        yield


def sign_flip_p(differences: Sequence[float]) -> float:
    """Exact two-sided sign-flip test of a zero mean (paired or one-sample): the share of the ``2^n``
    sign assignments whose absolute mean is at least the observed one. Floor ``2 / 2^n``."""
    d = np.asarray(differences, float)
    n = len(d)
    if n == 0:
        return math.nan
    signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    means = np.abs(signs @ d) / n
    observed = abs(d.mean())
    return float(np.mean(means >= observed - 100 * np.finfo(float).eps * max(observed, 1e-300)))


def one_sample(values: Sequence[float], value: float, level: float = 0.95) -> Difference:
    """``mean(values) - value`` with its 95% t interval, the one-sample t-test's two-sided p (as
    ``welch_p``) and the exact sign-flip p of ``values - value`` (as ``permutation_p``); ``n_base`` is 0."""
    x = np.asarray(values, float)
    nan = float("nan")
    if len(x) < 2:
        return Difference(float(x.mean() - value) if len(x) else nan, nan, nan, nan, nan, 0, len(x))
    diff = float(x.mean() - value)
    if x.var() == 0:
        return Difference(diff, diff, diff, 0.0 if diff else 1.0, sign_flip_p(x - value), 0, len(x))
    with nearly_identical_values_allowed():
        result = stats.ttest_1samp(x, value)
        interval = result.confidence_interval(confidence_level=level)
    return Difference(diff, float(interval.low) - value, float(interval.high) - value, float(result.pvalue),
                      sign_flip_p(x - value), 0, len(x))


def paired(base: Sequence[float], variant: Sequence[float], level: float = 0.95) -> Difference:
    """``mean(variant - base)`` over pairs with its 95% t interval, the paired t-test's two-sided p (as
    ``welch_p``) and the exact sign-flip p (as ``permutation_p``); ``n_base`` and ``n_variant`` are the
    number of pairs."""
    a, b = np.asarray(base, float), np.asarray(variant, float)
    if len(a) != len(b):
        raise ValueError(f"paired groups must have the same length, got {len(a)} and {len(b)}")
    d = one_sample(b - a, 0.0, level)
    return Difference(d.diff, d.ci_low, d.ci_high, d.welch_p, d.permutation_p, len(a), len(b))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given.

    The ``i``-th smallest of ``m`` p-values is multiplied by ``m - i + 1`` (i from 1), the results
    made non-decreasing in that order and capped at 1; a test is significant at level alpha
    after the correction when its adjusted p is below alpha. ``m`` is the number of tests given,
    fixed in advance: a test that could not be made (NaN) counts as p = 1, so a family does not
    shrink while runs are missing; its adjusted p stays NaN.
    """
    values = np.asarray(pvalues, float)
    m = len(values)
    filled = np.where(np.isnan(values), 1.0, values)
    adjusted = np.full(m, np.nan)
    running = 0.0
    for rank, i in enumerate(np.argsort(filled, kind="stable")):
        running = max(running, min(1.0, (m - rank) * filled[i]))
        if not np.isnan(values[i]):
            adjusted[i] = running
    return adjusted.tolist()


def top_k(importance: Sequence[float], k: int = 10) -> list[int]:
    """IDs of the ``k`` most important neurons, most important first (ties: lower ID first)."""
    values = np.asarray(importance, float)
    return [int(i) for i in np.lexsort((np.arange(len(values)), -values))[:k]]


def top_k_overlap(a: Sequence[float], b: Sequence[float], k: int = 10) -> int:
    """How many neuron IDs two importance vectors share in their top ``k``."""
    return len(set(top_k(a, k)) & set(top_k(b, k)))


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two importance vectors over all neurons (1 = same order)."""
    return float(stats.kendalltau(np.asarray(a, float), np.asarray(b, float)).statistic)


def chance_of_ranking(n: int, k: int = 10) -> float:
    """The probability that the top ``k`` of ``n`` neurons come out as one given ordered list of IDs
    when the ranking carries no information about IDs: ``1 / (n (n-1) ... (n-k+1))``, about 1.2e-21
    for the top 10 of 128."""
    return 1.0 / math.perm(n, k)


def chance_of_top_k_set(n: int, k: int = 10) -> float:
    """The probability that the top ``k`` of ``n`` neurons are one given set of IDs, in any order,
    when the ranking carries no information about IDs: ``1 / C(n, k)``, about 4.4e-15 for the top 10
    of 128. The paper's Table 2 lists, for the network without dropout, the IDs 9 8 3 2 0 1 4 5 6 7:
    the set {0, ..., 9}, not in order."""
    return 1.0 / math.comb(n, k)


def chance_top_k_overlap(n: int, k: int = 10) -> float:
    """Expected top-``k`` overlap of two unrelated rankings of ``n`` neurons: ``k^2 / n``."""
    return k * k / n


@dataclass(frozen=True)
class RankAgreement:
    """Agreement of hidden-neuron importance rankings (see :func:`rank_agreement`)."""

    seeds: tuple[int, ...]  # seeds with both a base and a variant vector
    same_seed_overlap: tuple[int, ...]  # top-k overlap, variant vs base of the same seed
    same_seed_tau: tuple[float, ...]  # Kendall tau, variant vs base of the same seed
    base_pairs: tuple[tuple[int, int], ...]  # all pairs of base seeds
    between_seed_overlap: tuple[int, ...]  # top-k overlap, base vs base of another seed
    between_seed_tau: tuple[float, ...]  # Kendall tau, base vs base of another seed
    chance_overlap: float  # k^2 / n (NaN without vectors)


def rank_agreement(base: dict[int, Sequence[float]], variant: dict[int, Sequence[float]],
                   k: int = 10) -> RankAgreement:
    """Top-``k`` overlap and Kendall tau of importance vectors keyed by seed: each ``variant`` vector
    against the ``base`` vector of the same seed, and every pair of ``base`` vectors of different seeds.

    A seed fixes the initial weights, so neuron IDs are comparable within a seed; between seeds they are
    unrelated and the between-seed numbers are the chance level of the measure.
    """
    seeds = tuple(sorted(set(base) & set(variant)))
    pairs = tuple(itertools.combinations(sorted(base), 2))
    vectors = [*base.values(), *variant.values()]
    return RankAgreement(
        seeds=seeds,
        same_seed_overlap=tuple(top_k_overlap(base[s], variant[s], k) for s in seeds),
        same_seed_tau=tuple(kendall_tau(base[s], variant[s]) for s in seeds),
        base_pairs=pairs,
        between_seed_overlap=tuple(top_k_overlap(base[a], base[b], k) for a, b in pairs),
        between_seed_tau=tuple(kendall_tau(base[a], base[b]) for a, b in pairs),
        chance_overlap=chance_top_k_overlap(len(vectors[0]), k) if vectors else math.nan)
