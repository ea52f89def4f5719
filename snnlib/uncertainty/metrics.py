"""Uncertainty metrics: pure functions of predictive probabilities ``(N, C)`` and labels ``(N,)`` (numpy or torch),
the temperature fit, and the scores of one method on one set."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

N_BINS = 15


# the curve over the number of passes n is recorded at these n (and at N itself)
CURVE_POINTS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)


SIGNIFICANT_DIGITS = 7  # the record's numbers are rounded to these (metrics, not weights: 7 digits is float32's)


COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 5%, 10%, ..., 100% kept


TEMPERATURE_BOUNDS = (1e-2, 1e2)


_TINY = np.finfo(np.float64).tiny  # clip of p before log: only an exact 0 is changed



def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)



def _check(probs, labels=None) -> tuple[np.ndarray, np.ndarray | None]:
    p = np.asarray(_np(probs), dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probabilities must be (N, C) with N > 0, got shape {p.shape}")
    if labels is None:
        return p, None
    y = np.asarray(_np(labels)).astype(np.int64)
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels must be ({p.shape[0]},), got {y.shape}")
    return p, y



def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` along the last axis, in float64."""
    z = np.asarray(_np(logits), dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)



def accuracy(probs, labels) -> float:
    """Fraction of samples whose most probable class (first one on ties) is the label."""
    p, y = _check(probs, labels)
    return float((p.argmax(1) == y).mean())



def nll(probs, labels) -> float:
    """Negative log-likelihood ``mean(-log p[label])`` in nats (p clipped at the smallest
    positive float64, so a zero probability gives about 708 instead of infinity)."""
    p, y = _check(probs, labels)
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], _TINY)).mean())



def brier_score(probs, labels) -> float:
    """Multi-class Brier score ``mean_n sum_c (p_nc - [c = y_n])^2``, in [0, 2] (Brier 1950;
    the form of Ovadia et al. 2019)."""
    p, y = _check(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(((p - onehot) ** 2).sum(1).mean())



def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin ``b`` holds confidences in ``(b / n_bins, (b + 1) / n_bins]`` (0 goes to bin 0)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)



def reliability_diagram(probs, labels, n_bins: int = N_BINS) -> dict:
    """Per confidence bin (``n_bins`` equal-width bins of the top-label confidence on [0, 1],
    right-closed): mean confidence, accuracy and count. Empty bins have confidence and
    accuracy NaN (null in JSON) and count 0. Lists, ready for JSON and plotting."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p, y = _check(probs, labels)
    confidence, correct = p.max(1), (p.argmax(1) == y).astype(np.float64)
    index = _bin_index(confidence, n_bins)
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, minlength=n_bins) / count
        acc = np.bincount(index, correct, minlength=n_bins) / count
    return {"confidence": conf.tolist(),
            "accuracy": acc.tolist(), "count": count.astype(int).tolist()}



def expected_calibration_error(probs, labels, n_bins: int = N_BINS) -> float:
    """Top-label expected calibration error (Guo et al. 2017): the top-label confidences are
    put in ``n_bins`` equal-width bins on [0, 1] (``(b / n, (b + 1) / n]``), and the ECE is the
    mean over bins of ``|accuracy - mean confidence|`` weighted by the fraction of samples in
    the bin (empty bins weigh 0)."""
    d = reliability_diagram(probs, labels, n_bins)
    count = np.asarray(d["count"], dtype=np.float64)
    used = count > 0
    gap = np.abs(np.asarray(d["accuracy"])[used] - np.asarray(d["confidence"])[used])
    return float((gap * count[used]).sum() / count.sum())



def accuracy_coverage(probs, labels, coverages=COVERAGES) -> dict:
    """Accuracy on the most confident samples when the least confident are rejected: for each
    coverage ``c`` in (0, 1], the accuracy of the ``ceil(c N)`` samples of highest top-label
    confidence (ties kept in sample order). Also the mean of those accuracies (the area under
    the curve on the given grid)."""
    p, y = _check(probs, labels)
    order = np.argsort(-p.max(1), kind="stable")
    correct = (p.argmax(1) == y)[order].astype(np.float64)
    running = np.cumsum(correct)
    acc = []
    for c in coverages:
        if not 0 < c <= 1:
            raise ValueError(f"coverages must be in (0, 1], got {c}")
        k = max(1, math.ceil(c * len(y) - 1e-9))
        acc.append(float(running[k - 1] / k))
    return {"coverage": [float(c) for c in coverages], "accuracy": acc, "mean_accuracy": float(np.mean(acc))}



def predictive_entropy(probs) -> np.ndarray:
    """Entropy ``-sum_c p_c log p_c`` (nats, ``0 log 0 = 0``) of each row of ``probs``, ``(N,)``."""
    p = np.asarray(_np(probs), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(-1)



def mutual_information(samples, weights=None) -> np.ndarray:
    """Mutual information between the prediction and the sample (BALD, Houlsby et al. 2011)
    per input: entropy of the mean minus the mean entropy, ``(N,)``, in nats.

    ``samples``: ``(S, N, C)`` probabilities of S samples (passes, members, time steps).
    ``weights``: optional ``(S, N)`` non-negative weights of each sample per input (the
    time-step samples of the single-pass estimate use a per-input set of steps); the mean is
    the weighted one. Zero when every sample agrees; at most ``log C``.
    """
    s = np.asarray(_np(samples), dtype=np.float64)
    if s.ndim != 3:
        raise ValueError(f"samples must be (S, N, C), got shape {s.shape}")
    w = np.ones(s.shape[:2]) if weights is None else np.asarray(_np(weights), dtype=np.float64)
    w = w / w.sum(0, keepdims=True)
    mean = (w[..., None] * s).sum(0)
    mean_entropy = (w * predictive_entropy(s)).sum(0)
    return np.maximum(predictive_entropy(mean) - mean_entropy, 0.0)



def average_ranks(x) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank (as ``scipy.stats.rankdata``)."""
    x = np.asarray(_np(x), dtype=np.float64).ravel()
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.concatenate(([True], xs[1:] != xs[:-1])) if len(xs) else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(xs))
    group_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(xs))
    ranks[order] = group_rank[np.cumsum(new) - 1]
    return ranks



def auroc(scores_in, scores_out) -> float:
    """Area under the ROC curve for telling ``out`` samples from ``in`` samples by a score
    (higher: more likely out): ``P(s_out > s_in) + P(s_out = s_in) / 2`` over all pairs, from
    the rank sum of the out scores (Mann-Whitney U), ties at their average rank. 0.5 is chance;
    1 separates perfectly.

    For the uncertainty scores, pass ``1 - max probability``, the entropy or the mutual
    information (higher = less certain), so that "uncertain" is predicted "out".
    """
    a = np.asarray(_np(scores_in), dtype=np.float64).ravel()
    b = np.asarray(_np(scores_out), dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise ValueError("auroc needs at least one score on each side")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("auroc scores must be finite")
    ranks = average_ranks(np.concatenate([a, b]))
    u = ranks[len(a):].sum() - len(b) * (len(b) + 1) / 2.0
    return float(u / (len(a) * len(b)))



def temperature_nll(logits, labels, temperature: float) -> float:
    """The NLL of ``softmax(logits / temperature)``, computed stably (log-sum-exp)."""
    z = np.asarray(_np(logits), dtype=np.float64) / temperature
    y = np.asarray(_np(labels)).astype(np.int64)
    m = z.max(1)
    log_norm = m + np.log(np.exp(z - m[:, None]).sum(1))
    return float((log_norm - z[np.arange(len(y)), y]).mean())



def fit_temperature(logits, labels, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """Temperature scaling (Guo et al. 2017): the ``T`` in ``bounds`` that minimises the NLL of
    ``softmax(logits / T)`` on the samples given, which must be a validation split (never the
    test set: the test metrics of the scaled network are then honest).

    A 1-D bounded minimisation over ``log T`` (``scipy.optimize.minimize_scalar``, Brent's
    method, tolerance 1e-6); the NLL is convex in ``1 / T``, so its one minimum is found.
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(_np(logits), dtype=np.float64)
    y = np.asarray(_np(labels)).astype(np.int64)
    if z.ndim != 2 or len(z) == 0 or y.shape != (len(z),):
        raise ValueError(f"fit_temperature needs logits (N, C) and labels (N,), got {z.shape} and {y.shape}")
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    result = minimize_scalar(lambda log_t: temperature_nll(z, y, math.exp(log_t)), bounds=(lo, hi),
                             method="bounded", options={"xatol": 1e-6})
    return float(math.exp(result.x))


@dataclass
class Scores:
    """Per-sample uncertainty scores of one method on one set (higher: less certain)."""

    one_minus_max_prob: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray | None = None

    def items(self) -> dict[str, np.ndarray]:
        d = {"max_prob": self.one_minus_max_prob, "entropy": self.entropy}
        if self.mutual_information is not None:
            d["mutual_information"] = self.mutual_information
        return d



def scores_of(probs, mi=None) -> Scores:
    p = np.asarray(_np(probs), dtype=np.float64)
    return Scores(1.0 - p.max(1), predictive_entropy(p), None if mi is None else np.asarray(mi, dtype=np.float64))



def summarize(probs, labels, mi=None, labelled: bool = True, n_bins: int = N_BINS,
              coverages=COVERAGES, diagrams: bool = True) -> dict:
    """Every metric of one predictive distribution on one set, as a JSON-able dict.

    Labelled sets (test, shifts): accuracy, NLL, Brier, ECE, and with ``diagrams`` the
    reliability diagram and accuracy against coverage; every set: the mean confidence, entropy
    and (for sampling methods, ``mi`` given) mutual information. On an OOD set the labels
    belong to another dataset, so only the score means are given.
    """
    p, y = _check(probs, labels)
    s = scores_of(p, mi)
    out = {"samples": len(p), "mean_confidence": float((1.0 - s.one_minus_max_prob).mean()),
           "mean_entropy": float(s.entropy.mean())}
    if mi is not None:
        out["mean_mutual_information"] = float(s.mutual_information.mean())
    if labelled:
        out.update(accuracy=accuracy(p, y), nll=nll(p, y), brier=brier_score(p, y),
                   ece=expected_calibration_error(p, y, n_bins))
        if diagrams:
            out.update(reliability=reliability_diagram(p, y, n_bins), coverage=accuracy_coverage(p, y, coverages))
    return out



def _auroc_block(test: Scores, other: Scores) -> dict:
    a, b = test.items(), other.items()
    return {k: auroc(a[k], b[k]) for k in a if k in b}



def curve_points(passes: int) -> list[int]:
    """The numbers of passes n at which the curve over n is recorded: :data:`CURVE_POINTS` up to
    ``passes``, and ``passes`` itself."""
    return sorted({n for n in CURVE_POINTS if n <= passes} | {passes})



def _curve(per_pass_probs: np.ndarray, labels: np.ndarray, labelled: bool, n_bins: int) -> tuple[dict, list[Scores]]:
    """Metrics of the mean of the first n passes at each n of :func:`curve_points`, and the scores."""
    P = per_pass_probs.shape[0]
    cumulative = np.cumsum(per_pass_probs, axis=0)
    cumulative_entropy = np.cumsum(predictive_entropy(per_pass_probs), axis=0)  # (P, N)
    points = curve_points(P)
    curve: dict[str, list] = {"n": points}
    keys = ["accuracy", "nll", "brier", "ece"] if labelled else []
    keys += ["mean_confidence", "mean_entropy", "mean_mutual_information"]
    for k in keys:
        curve[k] = []
    scores = []
    for n in points:
        mean = cumulative[n - 1] / n
        mi = np.maximum(predictive_entropy(mean) - cumulative_entropy[n - 1] / n, 0.0)
        s = scores_of(mean, mi)
        scores.append(s)
        if labelled:
            curve["accuracy"].append(accuracy(mean, labels))
            curve["nll"].append(nll(mean, labels))
            curve["brier"].append(brier_score(mean, labels))
            curve["ece"].append(expected_calibration_error(mean, labels, n_bins))
        curve["mean_confidence"].append(float((1.0 - s.one_minus_max_prob).mean()))
        curve["mean_entropy"].append(float(s.entropy.mean()))
        curve["mean_mutual_information"].append(float(mi.mean()))
    return curve, scores



def rounded(obj: object, digits: int = SIGNIFICANT_DIGITS) -> object:
    """``obj`` with every float rounded to ``digits`` significant digits (the record stays small)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj
