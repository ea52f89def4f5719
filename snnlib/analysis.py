"""Statistics for the study: differences to base with confidence intervals, significance
tests suited to a handful of seeds, and rank agreement of hidden-neuron importance.

Pure functions of numbers (no torch, no files): the results notebooks feed them the
``metrics.json`` records.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
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


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided permutation test of equal means (all splits; 252 for 5 vs 5).

    Makes no normality assumption. With 5 vs 5 the smallest possible p is 2/252 = 0.008.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    total = pooled.sum()
    count = n = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        s = pooled[list(chosen)].sum()
        mean_a, mean_b = s / len(a), (total - s) / len(b)
        count += abs(mean_a - mean_b) >= observed - 1e-12
        n += 1
    return float(count / n)


def compare(base: Sequence[float], variant: Sequence[float], level: float = 0.95) -> Difference:
    """Difference of means with Welch's t interval, Welch's t-test and the permutation test."""
    a, b = np.asarray(base, float), np.asarray(variant, float)
    if len(a) < 2 or len(b) < 2:
        nan = float("nan")
        return Difference(float(b.mean() - a.mean()) if len(a) and len(b) else nan, nan, nan, nan, nan, len(a), len(b))
    diff = float(b.mean() - a.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(diff, diff, diff, 0.0 if diff else 1.0, permutation_p(a, b), len(a), len(b))
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    welch = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    return Difference(diff, diff - half, diff + half, welch, permutation_p(a, b), len(a), len(b))


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
