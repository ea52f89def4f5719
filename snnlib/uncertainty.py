"""Uncertainty of a trained network: predictive distributions, their metrics, shift and OOD.

Does dropout, useless or harmful for accuracy, buy calibrated uncertainty, and at what cost?
This module turns a finished run (``metrics.json`` and ``weights.pt``) into predictive
distributions under several methods, scores them with the standard metrics on the test set
and on shifted and out-of-distribution sets (:mod:`snnlib.shift`), and records the result
as ``RUN_DIR/uncertainty.json`` (``python -m snnlib uncertainty RUN_DIR ...``).

Methods (:func:`evaluate_run`, :func:`evaluate_ensemble`):

* ``deterministic``: dropout off, one pass: the study's test-time network.
* ``temperature``: the deterministic logits divided by one temperature fitted by minimising
  the NLL on the run's validation split (the last ``val_size`` training samples, never
  trained on; never the test set), Guo et al. 2017 (:func:`fit_temperature`).
* ``mc_dropout``: N passes with the run's own dropout (kind, rate, mask in time, site) on,
  the softmax averaged over passes, Gal and Ghahramani 2016 (:func:`mc_dropout`). The test-time
  masks come from torch's generator reseeded for every pass and batch from ``mask_seed``
  (:func:`pass_seed`), so the numbers are a function of the seed, and pass ``k`` is the same
  pass whatever N: the curve over N = 1..50 comes from one set of passes.
* ``single_pass_running_max`` and ``single_pass_potential``: the time steps of one stochastic
  pass as the samples, after Sun, Yin and Bohte 2023 ("average over time"); see
  :func:`time_average_probs` for what that can mean for this network's readout, and why the
  running maximum is the primary reading.
* ``ensemble``: the softmax of several runs averaged (e.g. the 5 base seeds), Lakshminarayanan
  et al. 2017.

Metrics (pure functions of probabilities ``(N, C)`` and labels ``(N,)``, numpy or torch):
:func:`accuracy`, :func:`nll`, :func:`brier_score`, :func:`expected_calibration_error`,
:func:`reliability_diagram`, :func:`accuracy_coverage`, :func:`predictive_entropy`,
:func:`mutual_information` and :func:`auroc` (Mann-Whitney, ties counted half).

Cost per prediction, for each method: forward passes and synaptic events, counted as the run
records count them (``test_synaptic_events``: input spikes x K x hidden + hidden spikes x K x
outputs, per pass, summed over the method's passes; input spikes counted before any
input-site dropout). MC dropout's passes share the first layer's current here when dropout acts
on the current or the hidden spikes (the current before dropout does not depend on the
mask), which saves time, not events: the events are counted as N whole passes, which is what
N runs of the network cost.

Defaults and what they cost (:data:`DEFAULT_PASSES` = 50 passes, :data:`DEFAULT_SHIFT_SUBSET` =
2,000 images per shift or OOD set, rotations every 30 degrees, :data:`DEFAULT_ANGLES`; the test set
is the run's whole one). Measured on the project's 2-core machine, one thread, with the study's
training grid running on both cores: a 20-epoch MNIST dropout run (10,000 test images, 6
rotations and the OOD set) took 50 s of CPU time (124 s of wall time on the shared cores), a
CIFAR-10 dropout run (10,000 test images, 10 noise and blur sets and the OOD set) 90 s of CPU
(210 s wall); the 51 passes per image (deterministic and MC) are nearly all of it, a base run
without dropout costs a few seconds. About 100 dropout runs, half of each dataset, are about 2
CPU-hours: an hour of wall time with two commands side by side. Rotations every 15 degrees
(Ovadia et al.'s grid, :data:`snnlib.shift.ROTATION_ANGLES`) would add half again to an MNIST run.

The record (``uncertainty.json``, strict JSON; NaN, e.g. an empty reliability bin, is null):

* ``kind`` (``run`` or ``ensemble``), ``settings`` (``passes``, ``mask_seed``, ``shift_subset``,
  ``rotation_angles``, ``batch_size``, ``n_bins``, ``coverages``, ``uncertainty_version``: a
  rerun with equal settings and weights is skipped), ``config`` (the run's), ``weights_sha256``
  (an ensemble: ``members`` and ``member_sha256``), ``record_test_acc`` and
  ``record_test_synaptic_events`` (the run record's last epoch: the deterministic method
  reproduces them), ``has_dropout``, ``not_evaluated`` (method: why it does not apply);
* ``sets``: per set name (``test``, ``rotate30`` ..., ``noise1`` ..., ``blur1`` ..., ``ood_cifar10``
  or ``ood_mnist``) its ``kind`` (test, shift, ood), ``family``, ``level``, ``parameter``,
  ``source`` and ``samples``;
* ``methods``: per method name its ``cost`` (``forward_passes``, ``synaptic_events_per_prediction``
  on the test set, ``wall_time_s`` of this method over all sets), method-specific fields
  (``temperature`` and the validation NLL before and after; ``passes`` and ``mask_seed``; the
  single-pass ``readout``) and ``results``: per set the dict of :func:`summarize` (``accuracy``,
  ``nll``, ``brier``, ``ece`` on labelled sets, ``reliability`` and ``coverage`` on the test set;
  ``mean_confidence``, ``mean_entropy``, ``mean_mutual_information`` for sampling methods) and, on every set but the
  test set, ``auroc_vs_test``: the AUROC of telling the set from the test set by ``max_prob``
  (score 1 - max probability), ``entropy`` and ``mutual_information``. MC dropout also has
  ``curve``: per set, lists over ``n`` (:func:`curve_points`: 1, 2, ..., 50) of the same numbers
  for the mean of the first ``n`` passes (and ``auroc_vs_test`` per score); numbers are rounded to
  :data:`SIGNIFICANT_DIGITS` significant digits;
* ``git_commit``, ``git_dirty``, ``torch_version``, ``python_version``, ``device``,
  ``device_name``, ``wall_time_s``;
* the seals: ``record_sha256``, the SHA-256 of the run record it was made from (an ensemble: in each
  member), and ``evaluation_sha256``, the SHA-256 of the file's own contents (:func:`evaluation_digest`).
  A reader takes a file only when both check out (:func:`evaluation_problem`): an edited file, a copy
  into a folder without its record, or a file left from before the folder's run was trained again is
  refused.

The command writes ``RUN_DIR/uncertainty.json`` and, with ``--ensemble``, a file named ``ensemble*.json``
(the names the analysis reads); a file there that is not such an evaluation is never replaced, not
even with ``--overwrite``. Each folder it writes in is locked while it works (a second command on the
same run is refused in one line).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fnmatch
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data as D
from . import functional as SF
from . import shift as S
from .network import SRMNetwork
from .system import (
    FolderLocked,
    StorageError,
    device_description,
    folder_lock,
    git_commit,
    json_digest,
    resolve_device,
    write_json_atomic,
)
from .training import EVAL_BATCH, SEAL_HINT, RunConfig, RunError, load_trained, stream_seed

UNCERTAINTY_VERSION = 2  # 2: the curve at CURVE_POINTS, numbers rounded to SIGNIFICANT_DIGITS
OUTPUT_FILE = "uncertainty.json"
ENSEMBLE_PATTERN = "ensemble*.json"  # the names of ensemble files that the analysis reads
DIGEST_KEY = "evaluation_sha256"
DEFAULT_PASSES = 50
DEFAULT_SHIFT_SUBSET = 2000
DEFAULT_ANGLES = (30, 60, 90, 120, 150, 180)
N_BINS = 15
# the curve over the number of passes n is recorded at these n (and at N itself)
CURVE_POINTS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)
SIGNIFICANT_DIGITS = 7  # the record's numbers are rounded to these (metrics, not weights: 7 digits is float32's)
COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 5%, 10%, ..., 100% kept
TEMPERATURE_BOUNDS = (1e-2, 1e2)
_TINY = np.finfo(np.float64).tiny  # clip of p before log: only an exact 0 is changed


# ---------------------------------------------------------------- metrics (pure functions)

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


# ---------------------------------------------------------------- temperature scaling

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


# ---------------------------------------------------------------- passes of a network

def pass_seed(mask_seed: int, pass_index: int, batch_start: int) -> int:
    """The seed of torch's generator for the test-time masks of pass ``pass_index`` on the
    batch that starts at sample ``batch_start`` (derived from ``mask_seed``, unrelated to the
    training seeds' streams)."""
    return stream_seed(mask_seed, f"uncertainty/{pass_index}/{batch_start}")


@contextlib.contextmanager
def dropout_on(model: SRMNetwork) -> Iterator[SRMNetwork]:
    """The model in training mode (dropout on, the only train/eval-dependent part of the
    network) for the block, restored afterwards; no gradients are taken."""
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _forked_rng(device: torch.device) -> Iterator[None]:
    """Masks are drawn from torch's global generator: fork it, so the caller's stream is untouched."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def _batches(dataset: D.EncodedDataset, batch_size: int):
    device = dataset.times.device
    for start in range(0, len(dataset), batch_size):
        index = torch.arange(start, min(start + batch_size, len(dataset)), device=device)
        yield start, *dataset.batch(index)


def _events(model: SRMNetwork, times: torch.Tensor, hidden_spikes: torch.Tensor) -> torch.Tensor:
    """Synaptic events per sample of one pass ``(B,)``: input spikes x K x hidden + hidden
    spikes x K x outputs (the records' ``test_synaptic_events``)."""
    c = model.config
    inputs = (times < c.T).sum(1) if times.dtype == torch.uint8 else (times != 0).sum((0, 2))
    hidden = hidden_spikes.sum((0, 2))
    return (inputs.double() * c.K * c.hidden + hidden.double() * c.K * c.out_features).cpu()


def output_potential_dense(model: SRMNetwork, spikes: torch.Tensor) -> torch.Tensor:
    """The readout's potentials ``(T, N, C)`` for hidden spikes ``(T, N, H)`` (after any dropout),
    eq 3 as one dense product, as the network computes it in training: about twice as fast on
    the CPU as the event lists of a raster that changes every pass, the same sums."""
    out = model.output
    current = SF.apply_delays(SF.dense_bags(spikes, out.weight_events), out.delays_list)
    return SF.psp(current, out.kernel(current.shape[0]))


def _stochastic_potentials(model: SRMNetwork, times: torch.Tensor, order: torch.Tensor,
                           seeds: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """For each seed: the output potentials ``(T, B, C)`` and the hidden spikes ``(T, B, H)`` of
    one pass with the model's dropout on, its masks drawn after ``torch.manual_seed(seed)``.

    The same computation as ``model.train(); model(times, order)`` after the same seeding (the
    same masks, the same spikes; tested), arranged for many passes: with dropout on the
    current or on the hidden spikes, the hidden layer's current before dropout (and for the
    hidden site its spikes) does not depend on the mask and is computed once for all seeds;
    the readout takes the dense form of eq 3 (:func:`output_potential_dense`).
    """
    c = model.config
    dropping = c.dropout != "none" and c.p > 0
    with dropout_on(model):
        if c.site == "input":
            for seed in seeds:
                torch.manual_seed(seed)
                spikes, _ = model.hidden_spikes(times, order)
                yield output_potential_dense(model, spikes), spikes
            return
        current, _ = model.hidden_current(times, order)  # no dropout at these sites, no random draw
        kernel = model.hidden.kernel(current.shape[0])
        fixed = model.hidden.fire(SF.psp(current, kernel)) if c.site == "hidden" else None
        for seed in seeds:
            torch.manual_seed(seed)
            if fixed is None:  # site "current": SRMNetwork.hidden_spikes in training
                spikes = model.hidden.fire(SF.psp(model.dropout(current) if dropping else current, kernel))
                to_output = spikes
            else:  # site "hidden": SRMNetwork.output_potential in training
                spikes = fixed
                to_output = model.dropout(spikes) if dropping else spikes
            yield output_potential_dense(model, to_output), spikes


@dataclass
class Passes:
    """The outcome of :func:`sample_passes` on one data set.

    ``logits`` ``(P, N, C)``: each stochastic pass's logits; ``events`` ``(P, N)``: synaptic
    events per sample and pass; ``time_probs`` and ``time_mutual_information``: the single-pass
    estimates of :func:`time_average_probs` from pass 0, per readout, the per-step probabilities
    averaged ``(N, C)`` and their mutual information over the steps ``(N,)``; ``wall_time_s``.
    """

    logits: torch.Tensor
    events: torch.Tensor
    time_probs: dict[str, np.ndarray]
    time_mutual_information: dict[str, np.ndarray]
    wall_time_s: float

    def probs(self) -> np.ndarray:
        """Per-pass probabilities ``(P, N, C)`` (float64)."""
        return softmax(self.logits)


TIME_READOUTS = ("running_max", "potential")


def time_average_probs(potential: torch.Tensor, readout_scale: float, readout: str = "running_max"
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The single-pass estimate from one pass's output potentials ``(T, N, C)``: the softmax of
    a per-step readout, averaged over the steps of each sample from its readout's onset.

    Sun, Yin and Bohte (2023) read an SNN's output at every time step as one prediction and,
    with a dropout mask drawn afresh at every step, the T steps of one pass as T samples of
    MC dropout ("average over time"). Their networks are trained on every step's output. This
    network is not: its logits are ``readout_scale * max_t u(t)``, the peak over the whole
    window of each output potential, so ``u(t)`` at one step is not a prediction of the
    network, and each hidden neuron fires once, so one pass draws one spike pattern, not T.
    Two readings:

    * ``running_max`` (the primary one): step ``t``'s prediction is the network's own readout
      on the window cut at ``t``, ``softmax(readout_scale * max_{s <= t} u(s))``, the answer the
      network would give if it had to answer at step ``t``. The last step is exactly the pass's
      logits, so the estimate ends at the pass's prediction, and the average weighs each
      answer by how long it has stood: an answer reached early and kept counts more than one
      that only wins at the last steps. The steps are nested (each sees more of the same
      pass), not exchangeable samples: their spread measures how late and how close the
      decision was, not the spread over masks.
    * ``potential``: step ``t``'s prediction is ``softmax(readout_scale * u(t))``, the literal
      per-step output of the paper; it peaks and decays with the kernel and was never trained
      to be a prediction.

    Steps before the first non-zero output potential of a sample (no hidden spike has reached
    the readout yet) are left out: every readout is 0 there and its softmax uniform, and the
    number of such steps depends on the input's latency, not on the network's uncertainty. A
    sample whose outputs stay at 0 uses the last step only (the uniform distribution, as the
    deterministic network gives it).

    Returns the averaged probabilities ``(N, C)`` and the mutual information over the used
    steps ``(N,)`` (:func:`mutual_information`). Cost: one forward pass (the single-pass estimate
    uses the potentials of a pass that runs anyway) and ``T`` softmaxes of ``C`` values.
    """
    if readout not in TIME_READOUTS:
        raise ValueError(f"unknown readout {readout!r}; allowed: {', '.join(TIME_READOUTS)}")
    u = potential.detach().double()
    T, N, _ = u.shape
    per_step = torch.cummax(u, dim=0).values.clamp(min=0.0) if readout == "running_max" else u
    # the running maximum starts from the zeros before the first input, as amax over the window does
    steps = torch.arange(T, device=u.device)[:, None]
    active = (u != 0).any(2)  # (T, N)
    onset = torch.where(active.any(0), active.float().argmax(0), torch.full((N,), T - 1, device=u.device))
    weights = (steps >= onset[None]).double()  # (T, N)
    probs = torch.softmax(readout_scale * per_step, dim=2)
    mean = (weights[..., None] * probs).sum(0) / weights.sum(0)[:, None]
    mi = mutual_information(probs.cpu().numpy(), weights.cpu().numpy())
    return mean.cpu().numpy(), mi


@torch.no_grad()
def deterministic_logits(model: SRMNetwork, dataset: D.EncodedDataset, batch_size: int = EVAL_BATCH
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, C)`` with dropout off (eval mode) and synaptic events per sample ``(N,)``."""
    was_training = model.training
    model.eval()
    logits, events = [], []
    try:
        for _, times, order, _ in _batches(dataset, batch_size):
            out = model(times, order)
            logits.append(out.logits.float().cpu())
            events.append(_events(model, times, out.hidden_spikes))
    finally:
        model.train(was_training)
    C = model.config.out_features
    return (torch.cat(logits) if logits else torch.zeros(0, C)), (torch.cat(events) if events else torch.zeros(0))


@torch.no_grad()
def sample_passes(model: SRMNetwork, dataset: D.EncodedDataset, passes: int, mask_seed: int = 0,
                  batch_size: int = EVAL_BATCH, time_average: bool = True) -> Passes:
    """``passes`` stochastic passes over ``dataset`` with the model's dropout on (MC dropout),
    and from pass 0 the single-pass estimates of :func:`time_average_probs` (both readouts).

    Pass ``k`` on the batch starting at sample ``s`` draws its masks after
    ``torch.manual_seed(pass_seed(mask_seed, k, s))`` (the caller's generator state is saved
    and restored), so the result depends on the seed and the batch size only: pass ``k`` is
    the same whatever ``passes`` is, and a model without dropout gives ``passes`` copies of
    the deterministic logits. The seeds do not depend on the data set: the test set and a
    shifted copy of it see the same masks batch for batch (common random numbers, which
    sharpen the comparison of the two).
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    start_time = time.perf_counter()
    device = dataset.times.device
    c = model.config
    logits, events = [], []
    time_parts: dict[str, list] = {r: [] for r in TIME_READOUTS}
    mi_parts: dict[str, list] = {r: [] for r in TIME_READOUTS}
    with _forked_rng(device):
        for start, times, order, _ in _batches(dataset, batch_size):
            seeds = [pass_seed(mask_seed, k, start) for k in range(passes)]
            batch_logits, batch_events = [], []
            for k, (potential, spikes) in enumerate(_stochastic_potentials(model, times, order, seeds)):
                batch_logits.append((c.readout_scale * potential.amax(0)).float().cpu())
                batch_events.append(_events(model, times, spikes))
                if k == 0 and time_average:
                    for readout in TIME_READOUTS:
                        p, mi = time_average_probs(potential, c.readout_scale, readout)
                        time_parts[readout].append(p)
                        mi_parts[readout].append(mi)
            logits.append(torch.stack(batch_logits))
            events.append(torch.stack(batch_events))
    C = c.out_features
    return Passes(
        logits=torch.cat(logits, dim=1) if logits else torch.zeros(passes, 0, C),
        events=torch.cat(events, dim=1) if events else torch.zeros(passes, 0),
        time_probs={r: np.concatenate(v) for r, v in time_parts.items() if v},
        time_mutual_information={r: np.concatenate(v) for r, v in mi_parts.items() if v},
        wall_time_s=time.perf_counter() - start_time,
    )


def mc_dropout(model: SRMNetwork, dataset: D.EncodedDataset, passes: int = DEFAULT_PASSES, mask_seed: int = 0,
               batch_size: int = EVAL_BATCH) -> np.ndarray:
    """MC dropout's per-pass probabilities ``(passes, N, C)``; their mean over the first ``n``
    passes is the prediction with ``n`` samples (see :func:`sample_passes`)."""
    return sample_passes(model, dataset, passes, mask_seed, batch_size, time_average=False).probs()


def single_pass(model: SRMNetwork, dataset: D.EncodedDataset, mask_seed: int = 0, readout: str = "running_max",
                batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """The single-pass ("average over time") estimate ``(N, C)`` and its mutual information over
    steps ``(N,)``, from the pass that is MC dropout's pass 0 (see :func:`time_average_probs`)."""
    if readout not in TIME_READOUTS:
        raise ValueError(f"unknown readout {readout!r}; allowed: {', '.join(TIME_READOUTS)}")
    result = sample_passes(model, dataset, 1, mask_seed, batch_size)
    return result.time_probs[readout], result.time_mutual_information[readout]


# ---------------------------------------------------------------- scoring a predictive distribution

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


# ---------------------------------------------------------------- evaluation sets

@dataclass
class EvalSet:
    """One evaluation set: its description and labels (the encoded data are dropped after use)."""

    spec: S.ShiftSpec
    labels: np.ndarray

    @property
    def name(self) -> str:
        return self.spec.name


def evaluation_sets(config: RunConfig, shift_subset: int | None = DEFAULT_SHIFT_SUBSET, angles=DEFAULT_ANGLES,
                    device: torch.device | str = "cpu") -> Iterator[tuple[S.ShiftSpec, D.EncodedDataset]]:
    """The test set of a run (its ``test_subset``, as in its record) and the shift and OOD sets of
    its dataset (the first ``shift_subset`` test images each; :mod:`snnlib.shift`), encoded with
    the run's ``t_enc``, one after the other (only one set is held in memory at a time)."""
    for spec in S.shift_specs(config.dataset, angles):
        subset = config.test_subset if spec.kind == "test" else shift_subset
        yield spec, S.shifted_dataset(spec, config.t_enc, subset, device)


def validation_set(config: RunConfig, device: torch.device | str = "cpu") -> D.EncodedDataset | None:
    """The run's validation split (the last ``val_size`` training samples), or None without one."""
    if not config.val_size:
        return None
    _, val = D.split_validation(*D.load(config.dataset, "train"), config.val_size)
    return D.encode(*val, config.t_enc, device)


def has_dropout(config: RunConfig) -> bool:
    return config.variant != "none" and config.p > 0


# ---------------------------------------------------------------- one run, an ensemble

def settings_dict(dataset: str, passes: int, mask_seed: int, shift_subset: int | None, angles,
                  batch_size: int) -> dict:
    """What an ``uncertainty.json`` was computed with; equal settings and weights: same numbers.
    The rotation angles count for MNIST only (CIFAR-10's shifts are noise and blur)."""
    return {**ensemble_settings(dataset, shift_subset, angles, batch_size), "passes": int(passes),
            "mask_seed": int(mask_seed)}


def ensemble_settings(dataset: str, shift_subset: int | None, angles, batch_size: int) -> dict:
    """The settings of an ensemble's file (no dropout passes, no masks)."""
    return {"uncertainty_version": UNCERTAINTY_VERSION, "shift_subset": shift_subset,
            "rotation_angles": [int(a) for a in angles] if dataset == "mnist" else [],
            "batch_size": int(batch_size), "n_bins": N_BINS, "coverages": list(COVERAGES)}


def _provenance(device: torch.device) -> dict:
    commit, dirty = git_commit()
    return {"git_commit": commit, "git_dirty": dirty, "torch_version": torch.__version__,
            "python_version": sys.version.split()[0], "device": str(device),
            "device_name": device_description(device)}


def _method_entry(results: dict, events_test: float, forward_passes: int, wall: float, **extra) -> dict:
    return {**extra, "cost": {"forward_passes": forward_passes, "synaptic_events_per_prediction": events_test,
                              "wall_time_s": wall}, "results": results}


def _score_method(sets: list[EvalSet], probs: dict[str, np.ndarray], mi: dict[str, np.ndarray] | None,
                  n_bins: int) -> dict:
    """summarize() on every set (the diagrams on the test set only, to keep the record small) plus
    the AUROC of every non-test set against the test set."""
    results, scores = {}, {}
    for es in sets:
        m = None if mi is None else mi[es.name]
        results[es.name] = summarize(probs[es.name], es.labels, m, es.spec.labelled, n_bins,
                                     diagrams=es.spec.kind == "test")
        scores[es.name] = scores_of(probs[es.name], m)
    for es in sets:
        if es.spec.kind != "test":
            results[es.name]["auroc_vs_test"] = _auroc_block(scores["test"], scores[es.name])
    return results


def evaluate_run(run_dir: str | Path, passes: int = DEFAULT_PASSES, mask_seed: int = 0,
                 shift_subset: int | None = DEFAULT_SHIFT_SUBSET, angles=DEFAULT_ANGLES,
                 device: str | None = "cpu", batch_size: int = EVAL_BATCH,
                 log: Callable[[str], None] | None = None) -> dict:
    """Every method that applies to one finished run, on its test set and every shift/OOD set.

    Always ``deterministic``; ``temperature`` when the run has a validation split (fitted on it
    alone); ``mc_dropout`` (``passes`` passes, with the curve over n = 1..passes) and the two
    single-pass estimates when the run trains with dropout. Returns a JSON-able dict: the
    settings (N, mask seed, shift subset, angles, batch size, bins), the run's configuration
    and weights digest, per method its cost and per set every metric of :func:`summarize` plus
    ``auroc_vs_test`` (shift/OOD set against the test set, by 1 - max probability, entropy and,
    for sampling methods, mutual information), the sets' descriptions, the git commit, the
    device and the wall time.
    """
    began = time.perf_counter()
    say = log or (lambda _msg: None)
    dev = resolve_device(device)
    config, model, record = load_trained(run_dir, dev)
    dropout = has_dropout(config)
    n_bins = N_BINS

    sets: list[EvalSet] = []
    det_logits, det_events, det_time = {}, {}, 0.0
    mc: dict[str, Passes] = {}
    for spec, data in evaluation_sets(config, shift_subset, angles, dev):
        sets.append(EvalSet(spec, _np(data.labels)))
        t0 = time.perf_counter()
        det_logits[spec.name], det_events[spec.name] = deterministic_logits(model, data, batch_size)
        det_time += time.perf_counter() - t0
        if dropout:
            mc[spec.name] = sample_passes(model, data, passes, mask_seed, batch_size)
        say(f"{spec.name}: {len(data)} samples")

    det_probs = {k: softmax(v) for k, v in det_logits.items()}
    methods = {"deterministic": _method_entry(_score_method(sets, det_probs, None, n_bins),
                                              float(det_events["test"].mean()), 1, det_time)}
    not_evaluated = {}
    if not dropout:
        for name in ("mc_dropout", *(f"single_pass_{r}" for r in TIME_READOUTS)):
            not_evaluated[name] = "the run has no dropout"
    val = validation_set(config, dev)
    if val is None:
        not_evaluated["temperature"] = "the run has no validation split (val_size 0); never fitted on the test set"
    else:
        t0 = time.perf_counter()
        val_logits, _ = deterministic_logits(model, val, batch_size)
        temperature = fit_temperature(val_logits, val.labels)
        fit_time = time.perf_counter() - t0
        scaled = {k: softmax(v, temperature) for k, v in det_logits.items()}
        methods["temperature"] = _method_entry(
            _score_method(sets, scaled, None, n_bins), float(det_events["test"].mean()), 1, det_time + fit_time,
            temperature=temperature, fitted_on="validation", validation_samples=len(val),
            validation_nll_before=temperature_nll(val_logits, val.labels, 1.0),
            validation_nll_after=temperature_nll(val_logits, val.labels, temperature))
    if dropout:
        mc_wall = sum(p.wall_time_s for p in mc.values())
        per_pass = {k: v.probs() for k, v in mc.items()}
        curves, curve_scores = {}, {}
        for es in sets:
            curves[es.name], curve_scores[es.name] = _curve(per_pass[es.name], es.labels, es.spec.labelled, n_bins)
        for es in sets:
            if es.spec.kind != "test":
                name = es.name
                blocks = [_auroc_block(a, b) for a, b in zip(curve_scores["test"], curve_scores[name], strict=True)]
                curves[name]["auroc_vs_test"] = {k: [b[k] for b in blocks] for k in blocks[0]}
        mean_probs = {k: v.mean(0) for k, v in per_pass.items()}
        mean_mi = {k: mutual_information(v) for k, v in per_pass.items()}
        events_per_pass = float(mc["test"].events.mean())
        methods["mc_dropout"] = _method_entry(
            _score_method(sets, mean_probs, mean_mi, n_bins), events_per_pass * passes, passes, mc_wall,
            passes=passes, mask_seed=mask_seed, curve=curves)
        for readout in TIME_READOUTS:
            methods[f"single_pass_{readout}"] = _method_entry(
                _score_method(sets, {k: v.time_probs[readout] for k, v in mc.items()},
                              {k: v.time_mutual_information[readout] for k, v in mc.items()}, n_bins),
                float(mc["test"].events[0].mean()), 1, mc_wall / passes,
                readout=readout, mask_seed=mask_seed, pass_index=0)

    last = record["epochs"][-1]
    return {
        "kind": "run",
        "settings": settings_dict(config.dataset, passes, mask_seed, shift_subset, angles, batch_size),
        "config": config.to_dict(),
        "weights_sha256": record["weights_sha256"],
        "record_sha256": record["record_sha256"],
        "record_test_acc": last["test_acc"],
        "record_test_synaptic_events": last["test_synaptic_events"],
        "has_dropout": dropout,
        "not_evaluated": not_evaluated,
        "sets": {es.name: {**es.spec.describe(), "samples": len(es.labels)} for es in sets},
        "methods": methods,
        **_provenance(dev),
        "wall_time_s": time.perf_counter() - began,
    }


def _ensemble_key(config: RunConfig) -> tuple:
    return config.dataset, config.test_subset, config.t_enc, config.network_config().T


def evaluate_ensemble(run_dirs: list[str | Path], shift_subset: int | None = DEFAULT_SHIFT_SUBSET,
                      angles=DEFAULT_ANGLES, device: str | None = "cpu", batch_size: int = EVAL_BATCH,
                      relative_to: str | Path | None = None) -> dict:
    """The deep ensemble of finished runs (e.g. the 5 base seeds): the mean of the members'
    deterministic softmax, scored like one method of :func:`evaluate_run` on the same sets, with
    the mutual information between the prediction and the member, and the cost of all members
    (forward passes = members, synaptic events summed). The members must share the dataset,
    the test subset, the input coding and T. ``relative_to``: the members are named by their
    path relative to this folder (the ensemble file's), never by an absolute path.
    """
    began = time.perf_counter()
    if len(run_dirs) < 2:
        raise ValueError("an ensemble needs at least 2 runs")
    dev = resolve_device(device)
    members = [load_trained(d, dev) for d in run_dirs]
    keys = {_ensemble_key(cfg) for cfg, _, _ in members}
    if len(keys) != 1:
        raise ValueError("ensemble members must share dataset, test subset, t_enc and T")
    config = members[0][0]
    sets: list[EvalSet] = []
    per_member: dict[str, list[np.ndarray]] = {}
    events = 0.0
    for spec, data in evaluation_sets(config, shift_subset, angles, dev):
        sets.append(EvalSet(spec, _np(data.labels)))
        per_member[spec.name] = []
        for _, model, _ in members:
            logits, ev = deterministic_logits(model, data, batch_size)
            per_member[spec.name].append(softmax(logits))
            if spec.kind == "test":
                events += float(ev.mean())
    stacked = {k: np.stack(v) for k, v in per_member.items()}
    probs = {k: v.mean(0) for k, v in stacked.items()}
    mi = {k: mutual_information(v) for k, v in stacked.items()}
    base = Path(relative_to) if relative_to is not None else Path.cwd()
    names = [os.path.relpath(Path(d).resolve(), base.resolve()) for d in run_dirs]
    wall = time.perf_counter() - began
    return {
        "kind": "ensemble",
        "settings": ensemble_settings(config.dataset, shift_subset, angles, batch_size),
        "member_sha256": sorted(rec["weights_sha256"] for _, _, rec in members),
        "members": [{"path": n, "seed": cfg.seed, "variant": cfg.variant, "p": cfg.p,
                     "weights_sha256": rec["weights_sha256"], "record_sha256": rec["record_sha256"]}
                    for n, (cfg, _, rec) in zip(names, members, strict=True)],
        "config": config.to_dict(),
        "sets": {es.name: {**es.spec.describe(), "samples": len(es.labels)} for es in sets},
        "methods": {"ensemble": _method_entry(_score_method(sets, probs, mi, N_BINS), events,
                                              len(members), wall, members=len(members))},
        **_provenance(dev),
        "wall_time_s": wall,
    }


# ---------------------------------------------------------------- sealed files

def evaluation_digest(evaluation: dict) -> str:
    """SHA-256 of an evaluation's canonical strict JSON, without its own ``evaluation_sha256`` (and the
    ``path`` that :func:`snnlib.evaluations.load_evaluations` adds)."""
    return json_digest(evaluation, (DIGEST_KEY, "path"))


def sealed_evaluation(evaluation: dict) -> dict:
    """``evaluation`` rounded (:func:`rounded`) and with its digest, as it is written."""
    out = rounded({k: v for k, v in evaluation.items() if k != DIGEST_KEY})
    out[DIGEST_KEY] = evaluation_digest(out)
    return out


def _same_config(a: object, b: object) -> bool:
    try:
        return RunConfig.from_dict(a).to_dict() == RunConfig.from_dict(b).to_dict()
    except (TypeError, ValueError, AttributeError):
        return False


_AGAIN = "run `python -m snnlib uncertainty` on it again with --overwrite"


def link_evaluation(evaluation: dict, path: Path,
                    record_at: Callable[[Path], dict | str]) -> tuple[dict | None, str | None]:
    """(``evaluation`` with the SHA-256 of each run record it was made from, or None; why it cannot be
    linked, or None). ``path`` is the evaluation's file and ``record_at(folder)`` the sealed record in a
    folder, or why there is none. A run's evaluation is its folder's ``uncertainty.json`` and was made
    from the record beside it: the same weights (``weights_sha256``), configuration and test accuracy.
    An ensemble's file is named ``ensemble*.json`` and each member (a folder relative to the file's)
    has the weights the file names."""
    path = Path(path)
    linked = copy.deepcopy(evaluation)
    kind = evaluation.get("kind")
    if kind == "run":
        if path.name != OUTPUT_FILE:
            return None, f"a run's evaluation must be its folder's {OUTPUT_FILE}"
        record = record_at(path.parent)
        if isinstance(record, str):
            return None, f"no sealed run record is beside it ({record})"
        if evaluation.get("weights_sha256") != record.get("weights_sha256"):
            return None, f"it was made from other weights than the record beside it names (a stale or copied file); {_AGAIN}"
        if not _same_config(evaluation.get("config"), record["config"]):
            return None, "its configuration is not the one of the record beside it"
        if "record_test_acc" in evaluation and evaluation["record_test_acc"] != record["epochs"][-1].get("test_acc"):
            return None, "its record_test_acc is not the last test accuracy of the record beside it"
        linked["record_sha256"] = record["record_sha256"]
        return linked, None
    if kind != "ensemble":
        return None, f"its kind {kind!r} is neither run nor ensemble"
    if not fnmatch.fnmatch(path.name, ENSEMBLE_PATTERN):
        return None, f"an ensemble's file must be named {ENSEMBLE_PATTERN}"
    members = linked.get("members")
    if not isinstance(members, list) or len(members) < 2 \
            or not all(isinstance(m, dict) and isinstance(m.get("path"), str) for m in members):
        return None, "its members are not a list of at least two run folders"
    records = []
    for member in members:
        record = record_at(path.parent / member["path"])
        if isinstance(record, str):
            return None, f"its member {member['path']} has no sealed run record ({record})"
        if member.get("weights_sha256") != record.get("weights_sha256"):
            return None, f"its member {member['path']} was evaluated with other weights than its record names; {_AGAIN}"
        member["record_sha256"] = record["record_sha256"]
        records.append(record)
    if linked.get("member_sha256") != sorted(m["weights_sha256"] for m in members):
        return None, "its member_sha256 is not the list of its members' weights"
    if not _same_config(evaluation.get("config"), records[0]["config"]):
        return None, "its configuration is not the one of its first member's record"
    return linked, None


def evaluation_problem(evaluation: object, path: Path, record_at: Callable[[Path], dict | str]) -> str | None:
    """Why the evaluation in file ``path`` cannot be read, in words; None if it can: it must carry the
    SHA-256 of its contents and of each run record it was made from, and both must check out
    (:func:`link_evaluation`)."""
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("methods"), dict) \
            or not isinstance(evaluation.get("config"), dict):
        return "it is not an uncertainty evaluation"
    digest = evaluation.get(DIGEST_KEY)
    if digest is None:
        return f"it is not sealed (no SHA-256); {SEAL_HINT}, or {_AGAIN}"
    if digest != evaluation_digest(evaluation):
        return "it was changed after it was written (its SHA-256 differs)"
    linked, why = link_evaluation(evaluation, path, record_at)
    if why:
        return why
    if evaluation.get("kind") == "run":
        made_from = [evaluation.get("record_sha256")] == [linked["record_sha256"]]
    else:
        made_from = [m.get("record_sha256") for m in evaluation["members"]] == [
            m["record_sha256"] for m in linked["members"]]
    if not made_from:
        return f"it was made from another run record than the one it names now (a stale or copied file); {_AGAIN}"
    return None


# ---------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``python -m snnlib uncertainty``."""
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished run folders (with weights.pt)")
    p.add_argument("--passes", type=int, default=DEFAULT_PASSES,
                   help=f"MC dropout passes N; the curve over n = 1..N comes from them (default {DEFAULT_PASSES})")
    p.add_argument("--mask-seed", type=int, default=0, help="seed of the test-time dropout masks (default 0)")
    p.add_argument("--shift-subset", type=int, default=DEFAULT_SHIFT_SUBSET,
                   help=f"test images per shift and OOD set (default {DEFAULT_SHIFT_SUBSET}; the test set "
                        "itself is the run's)")
    p.add_argument("--angles", type=int, nargs="+", default=list(DEFAULT_ANGLES),
                   help="rotations of the MNIST shift sets, degrees (default "
                        f"{' '.join(str(a) for a in DEFAULT_ANGLES)})")
    p.add_argument("--batch-size", type=int, default=EVAL_BATCH, help=f"evaluation batch (default {EVAL_BATCH})")
    p.add_argument("--device", default="auto", help="auto (CUDA if available; default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--ensemble", default=None, metavar="OUT.json",
                   help="also evaluate the RUN_DIRs as one deep ensemble and write it to OUT.json")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an uncertainty.json (or OUT.json) computed with other settings "
                        "(default: refuse; one with the same settings is skipped)")


def _existing(path: Path, wanted: dict, overwrite: bool, kind: str) -> bool:
    """True if ``path`` holds this evaluation, intact (skip it); False if it is to be computed. Raises a
    one-line ``ValueError`` if ``path`` holds anything but an evaluation of ``kind`` (such a file is
    never replaced, not even with ``overwrite``), or another or a damaged evaluation without
    ``overwrite``."""
    if not path.exists() and not path.is_symlink():
        return False
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = None
    if path.is_symlink() or not isinstance(saved, dict) or saved.get("kind") != kind \
            or not isinstance(saved.get("methods"), dict):
        raise ValueError(f"{path} exists and is not an uncertainty evaluation of kind {kind!r} (never replaced); "
                         f"move it away or choose another file")
    if saved.get(DIGEST_KEY) != evaluation_digest(saved):
        if overwrite:
            return False
        raise ValueError(f"{path} was changed after it was written (or is not sealed); pass --overwrite to "
                         f"compute it again")
    if all(saved.get(k) == v for k, v in wanted.items()):
        return True
    if not overwrite:
        raise ValueError(f"{path} holds an evaluation with other settings or weights; "
                         f"pass --overwrite to replace it")
    return False


def _check_args(args: argparse.Namespace) -> None:
    if args.passes < 1:
        raise ValueError(f"--passes must be a positive integer, got {args.passes}")
    if args.mask_seed < 0:
        raise ValueError(f"--mask-seed must be >= 0, got {args.mask_seed}")
    if args.shift_subset is not None and not 1 <= args.shift_subset <= 10000:
        raise ValueError(f"--shift-subset must be in [1, 10000], got {args.shift_subset}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {args.threads}")
    for a in args.angles:
        if not 0 < a <= 360:
            raise ValueError(f"--angles must be in (0, 360] degrees, got {a}")
    if args.ensemble is not None and len(args.run_dirs) < 2:
        raise ValueError("--ensemble needs at least 2 RUN_DIRs")
    if args.ensemble is not None and not fnmatch.fnmatch(Path(args.ensemble).name, ENSEMBLE_PATTERN):
        raise ValueError(f"--ensemble must name a file {ENSEMBLE_PATTERN} (the name the analysis reads), "
                         f"got {args.ensemble}")


def _plan(args: argparse.Namespace) -> tuple[list[str], dict, bool]:
    """(the runs to evaluate, {run: what its file must hold}, whether the ensemble is to be computed);
    raises a one-line ``ValueError``, :class:`RunError` or ``DataError`` for bad input."""
    todo, wanted, configs = [], {}, []
    for d in args.run_dirs:
        config, _, record = load_trained(d, "cpu")  # refuses damaged, unsealed, unfinished runs, foreign weights
        configs.append(config)
        wanted[d] = {"settings": settings_dict(config.dataset, args.passes, args.mask_seed, args.shift_subset,
                                               args.angles, args.batch_size),
                     "weights_sha256": record["weights_sha256"], "record_sha256": record["record_sha256"]}
        if not _existing(Path(d) / OUTPUT_FILE, wanted[d], args.overwrite, "run"):
            todo.append(d)
    ensemble_todo = False
    if args.ensemble is not None:
        out = Path(args.ensemble)
        if out.is_dir():
            raise ValueError(f"--ensemble {out} is a folder; give a file name")
        if len({_ensemble_key(c) for c in configs}) != 1:
            raise ValueError("--ensemble runs must share dataset, test subset, t_enc and T")
        wanted["ensemble"] = {"settings": ensemble_settings(configs[0].dataset, args.shift_subset, args.angles,
                                                            args.batch_size),
                              "member_sha256": sorted(w["weights_sha256"] for w in wanted.values())}
        ensemble_todo = not _existing(out, wanted["ensemble"], args.overwrite, "ensemble")
    return todo, wanted, ensemble_todo


def _lock_folders(stack: contextlib.ExitStack, folders: list[Path]) -> None:
    """Locks each folder (once) for the rest of the command: a second command on one of them is refused."""
    for folder in dict.fromkeys(f.resolve() for f in folders):
        try:
            stack.enter_context(folder_lock(folder))
        except FolderLocked as err:
            raise RunError(str(err)) from err


def main(args: argparse.Namespace) -> int:
    """``python -m snnlib uncertainty``: writes ``RUN_DIR/uncertainty.json`` for every run (and the
    ensemble's file with ``--ensemble``). Everything is checked, and every folder written is locked,
    before anything is computed or written; bad input gives one line ``error: ...`` on stderr and
    status 2. A run whose file holds the same settings, weights and record is skipped, so rerunning
    does nothing."""
    with contextlib.ExitStack() as stack:
        try:
            _check_args(args)
            resolve_device(args.device)
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            if len({Path(d).resolve() for d in args.run_dirs}) != len(args.run_dirs):
                raise ValueError("a RUN_DIR is given twice")
            todo, _, ensemble_todo = _plan(args)
            folders = [Path(d) for d in todo]
            if ensemble_todo:
                Path(args.ensemble).parent.mkdir(parents=True, exist_ok=True)
                folders.append(Path(args.ensemble).parent)
            _lock_folders(stack, folders)
            todo, wanted, ensemble_todo = _plan(args)  # again under the locks: another command may have ended
        except (ValueError, RunError, D.DataError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except StorageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return _compute(args, todo, ensemble_todo)


def _compute(args: argparse.Namespace, todo: list[str], ensemble_todo: bool) -> int:
    try:
        for d in args.run_dirs:
            if d not in todo:
                print(f"{d}: {OUTPUT_FILE} is up to date, nothing to do")
                continue
            result = evaluate_run(d, args.passes, args.mask_seed, args.shift_subset, args.angles, args.device,
                                  args.batch_size)
            write_json_atomic(Path(d) / OUTPUT_FILE, sealed_evaluation(result))
            m = result["methods"]
            line = ", ".join(f"{k} {v['results']['test'].get('accuracy', float('nan')):.4f}/"
                             f"{v['results']['test'].get('ece', float('nan')):.4f}" for k, v in m.items())
            print(f"{d}: test accuracy/ECE {line} ({result['wall_time_s']:.0f} s)")
        if args.ensemble is not None:
            if not ensemble_todo:
                print(f"{args.ensemble}: up to date, nothing to do")
            else:
                out = Path(args.ensemble)
                result = evaluate_ensemble(args.run_dirs, args.shift_subset, args.angles, args.device,
                                           args.batch_size, relative_to=out.parent)
                write_json_atomic(out, sealed_evaluation(result))
                test = result["methods"]["ensemble"]["results"]["test"]
                print(f"{out}: ensemble of {len(args.run_dirs)}, test accuracy {test['accuracy']:.4f}, "
                      f"ECE {test['ece']:.4f}")
    except (ValueError, RunError, D.DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StorageError as err:  # a full or read-only disk: what was written before is kept
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
