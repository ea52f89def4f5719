"""Evaluation version 3: temperature scaling for every method, and a near out-of-distribution set.

The second round's block 5 (``snnlib.study.preregistration.ADDENDUM``, "uncertainty, fairer"). Version 2
scales only the deterministic network (``temperature``); a method that averages several softmaxes (MC
dropout's passes, an ensemble's members) was compared unscaled with it. Version 3 (``python -m snnlib
uncertainty RUN --evaluation-version 3``; :func:`snnlib.uncertainty.evaluate.evaluate_run` and
:func:`~snnlib.uncertainty.evaluate.evaluate_ensemble` with ``version=3``) keeps every set and method of
version 2 and adds:

* the near-OOD set ``near_ood`` (:func:`snnlib.uncertainty.shift.patch_shuffle`): the first ``shift_subset``
  test images with their 4 x 4 patches shuffled per image by a fixed seed; every image keeps its pixel
  values, so its input spikes in number and timing, and a spike counter cannot tell the set from the test
  set (its AUROC is 0.5 by construction). Scored like the OOD set (no labels: the scores and
  ``auroc_vs_test``), by every method;
* ``mc_dropout_temperature_N`` for each N of :data:`SCALED_PASSES` up to the run's passes (5, MC dropout at
  an ensemble's cost, and 50: the verdict's primary rows; a run evaluated with fewer passes gets its
  number of passes alone): the mean over the first N passes of ``softmax(logits_k / T)``, with one ``T``
  per network and N fitted on the run's validation split (:func:`fit_mean_temperature`) by the NLL of that
  very mean. The validation passes are MC dropout's passes on the validation split with the same mask
  seeds as on the test set (:func:`snnlib.uncertainty.predict.pass_seed`: pass ``k`` on the batch that
  starts at sample ``s``), so the fit sees the same kind of masks the test does, never the test set;
* ``ensemble_temperature`` in an ensemble's file: the mean over members of ``softmax(logits_m / T)``, one
  ``T`` per ensemble, fitted on the members' common validation split by the NLL of that mean.

Each scaled method records, like ``temperature``, its ``temperature``, ``fitted_on`` (``validation``),
``validation_samples`` and ``validation_nll_before`` (T = 1: the unscaled method on the validation split)
and ``validation_nll_after``; its ``cost`` counts the passes (members) it averages, their synaptic events,
and its wall time with the validation passes and the fit. The mutual information of a scaled method is
that of its scaled samples.

Cost: the validation passes (5,000 images x 50 passes for a dropout run, 5 members x 5,000 for an ensemble)
and the near-OOD set (2,000 images x 51 passes) add a quarter to a third to a version-2 evaluation; the fits (a
1-D minimisation, one mean of softmaxes per step) take a second or two. Measured on the project's 2-core machine,
one thread, two training runs on both cores, for a dropout network trained 1 epoch (the full test set, the
5,000-image validation split, the default passes and sets): version 2 took 31 s of CPU time on MNIST and 49 s
on CIFAR-10, version 3 42 s and 62 s (x1.35 and x1.26; wall time x1.40 on the shared cores).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from snnlib.experiment.training import EVAL_BATCH
from snnlib.uncertainty.evaluate import EvalSet, _method_entry, _score_method, validation_set
from snnlib.uncertainty.metrics import N_BINS, TEMPERATURE_BOUNDS, _np, mutual_information, softmax
from snnlib.uncertainty.predict import Passes, deterministic_logits, sample_passes
from snnlib.uncertainty.shift import NEAR_OOD

SCALED_VERSION = 3
SCALED_PASSES = (5, 50)  # MC dropout's temperature-scaled pass counts: the verdict's primary rows
ENSEMBLE_SCALED = "ensemble_temperature"
NEAR_OOD_SET = NEAR_OOD  # the near-OOD set's name in the evaluation's ``sets``
GRID_POINTS = 41  # log T on this many points of the bounds before Brent's method refines the best one
NO_VALIDATION = "the run has no validation split (val_size 0); never fitted on the test set"


def scaled_mc_name(passes: int) -> str:
    """The method name of MC dropout temperature-scaled at ``passes`` passes."""
    return f"mc_dropout_temperature_{int(passes)}"


def scaled_pass_counts(passes: int) -> list[int]:
    """The pass counts at which a run evaluated with ``passes`` passes gets a temperature-scaled MC dropout:
    those of :data:`SCALED_PASSES` it has, or ``passes`` alone if it has none."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    return [n for n in SCALED_PASSES if n <= passes] or [int(passes)]


# ---------------------------------------------------------------- the fit (pure functions)

def _stack(logits) -> np.ndarray:
    z = np.asarray(_np(logits), dtype=np.float64)
    if z.ndim == 2:
        z = z[None]
    if z.ndim != 3 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"logits must be (S, N, C) (or (N, C)) with S, N > 0, got shape {z.shape}")
    return z


def mean_log_probs(logits, temperature: float) -> np.ndarray:
    """``log mean_s softmax(logits_s / temperature)``, ``(N, C)``, for logits ``(S, N, C)`` (or ``(N, C)``:
    one sample), computed stably (log-sum-exp over the classes, then over the samples)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = _stack(logits) / temperature
    zmax = z.max(axis=2, keepdims=True)
    log_p = z - (zmax + np.log(np.exp(z - zmax).sum(axis=2, keepdims=True)))  # (S, N, C) log softmax
    pmax = log_p.max(axis=0)
    return pmax + np.log(np.exp(log_p - pmax).mean(axis=0))


def mean_temperature_nll(logits, labels, temperature: float) -> float:
    """The NLL (nats) of ``mean_s softmax(logits_s / temperature)`` for logits ``(S, N, C)``: the NLL of a
    method that averages S softmaxes (passes or members), every one scaled by one temperature. With one
    sample it is :func:`snnlib.uncertainty.metrics.temperature_nll`."""
    log_mean = mean_log_probs(logits, temperature)
    y = np.asarray(_np(labels)).astype(np.int64)
    if y.shape != (log_mean.shape[0],):
        raise ValueError(f"labels must be ({log_mean.shape[0]},), got {y.shape}")
    return float(-log_mean[np.arange(len(y)), y].mean())


def fit_mean_temperature(logits, labels, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The ``T`` in ``bounds`` that minimises :func:`mean_temperature_nll` of the logits ``(S, N, C)`` on the
    samples given, which must be a validation split (never the test set).

    With several samples the NLL of the mean need not be convex in ``1 / T``, so ``log T`` is first tried
    on :data:`GRID_POINTS` evenly spaced points of the bounds and then refined between the neighbours of the
    best one (``scipy.optimize.minimize_scalar``, bounded Brent, tolerance 1e-6 in ``log T``). A bound is
    returned when the minimum lies there (the fit then says the method wants an extreme temperature).
    """
    from scipy.optimize import minimize_scalar

    z = _stack(logits)
    y = np.asarray(_np(labels)).astype(np.int64)
    if y.shape != (z.shape[1],):
        raise ValueError(f"fit_mean_temperature needs labels ({z.shape[1]},), got {y.shape}")
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    grid = np.linspace(lo, hi, GRID_POINTS)
    values = [mean_temperature_nll(z, y, math.exp(g)) for g in grid]
    best = int(np.argmin(values))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    result = minimize_scalar(lambda log_t: mean_temperature_nll(z, y, math.exp(log_t)), bounds=(a, b),
                             method="bounded", options={"xatol": 1e-6})
    x = result.x if result.fun <= values[best] else grid[best]
    return float(math.exp(x))


def scaled_samples(logits, temperature: float) -> np.ndarray:
    """``softmax(logits_s / temperature)`` of every sample, ``(S, N, C)`` float64."""
    return softmax(_stack(logits), temperature)


def _fit_fields(logits: np.ndarray, labels, temperature: float, samples: int) -> dict:
    return {"temperature": temperature, "fitted_on": "validation", "validation_samples": samples,
            "validation_nll_before": mean_temperature_nll(logits, labels, 1.0),
            "validation_nll_after": mean_temperature_nll(logits, labels, temperature)}


def _scored(sets: list[EvalSet], logits: dict[str, np.ndarray], temperature: float) -> dict:
    samples = {k: scaled_samples(v, temperature) for k, v in logits.items()}
    return _score_method(sets, {k: v.mean(0) for k, v in samples.items()},
                         {k: mutual_information(v) for k, v in samples.items()}, N_BINS)


# ---------------------------------------------------------------- the methods of an evaluation

def mc_dropout_methods(model, val, sets: list[EvalSet], mc: dict[str, Passes], passes: int, mask_seed: int,
                       batch_size: int) -> tuple[dict, dict]:
    """(methods, not evaluated) of a run's version-3 evaluation: ``mc_dropout_temperature_N`` for each N of
    :func:`scaled_pass_counts`, from MC dropout's passes ``mc`` on every set (their first N) and N passes on
    the validation split ``val`` (an :class:`~snnlib.experiment.data.EncodedDataset`, or None) with the same
    mask seeds; why not, for a run without dropout (``mc`` empty) or without a validation split."""
    counts = scaled_pass_counts(passes)
    if not mc:
        return {}, {scaled_mc_name(n): "the run has no dropout" for n in counts}
    if val is None:
        return {}, {scaled_mc_name(n): NO_VALIDATION for n in counts}
    began = time.perf_counter()
    val_logits = sample_passes(model, val, max(counts), mask_seed, batch_size, time_average=False).logits
    val_logits, val_labels = _np(val_logits).astype(np.float64), _np(val.labels)
    val_time = time.perf_counter() - began
    wall_per_pass = sum(p.wall_time_s for p in mc.values()) / passes
    events_per_pass = float(mc["test"].events.mean())
    methods = {}
    for n in counts:
        t0 = time.perf_counter()
        temperature = fit_mean_temperature(val_logits[:n], val_labels)
        results = _scored(sets, {k: _np(v.logits[:n]) for k, v in mc.items()}, temperature)
        wall = wall_per_pass * n + val_time * n / max(counts) + time.perf_counter() - t0
        methods[scaled_mc_name(n)] = _method_entry(
            results, events_per_pass * n, n, wall, passes=n, mask_seed=mask_seed, scaled_method="mc_dropout",
            **_fit_fields(val_logits[:n], val_labels, temperature, len(val)))
    return methods, {}


def ensemble_method(members: list[tuple], sets: list[EvalSet], member_logits: dict[str, np.ndarray],
                    events: float, wall: float, device: torch.device | str = "cpu",
                    batch_size: int = EVAL_BATCH) -> dict:
    """``{"ensemble_temperature": entry}`` of an ensemble's version-3 evaluation: the members' logits on
    every set ``(members, N, C)`` scaled by one temperature fitted on their validation split. ``members``:
    the ``(config, model, record)`` of each (:func:`snnlib.experiment.run.load_trained`); they must share a
    validation split (``val_size`` > 0), else a one-line ``ValueError``. ``events`` and ``wall``: the
    unscaled ensemble's cost, to which the validation passes and the fit are added."""
    sizes = {config.val_size for config, _, _ in members}
    if len(sizes) != 1 or not next(iter(sizes)):
        raise ValueError("a temperature-scaled ensemble needs members with one validation split "
                         f"(val_size > 0 and equal), got val_size {sorted(sizes)}")
    t0 = time.perf_counter()
    val = validation_set(members[0][0], device)
    val_logits = np.stack([_np(deterministic_logits(model, val, batch_size)[0]) for _, model, _ in members])
    val_labels = _np(val.labels)
    temperature = fit_mean_temperature(val_logits, val_labels)
    results = _scored(sets, member_logits, temperature)
    return {ENSEMBLE_SCALED: _method_entry(results, events, len(members), wall + time.perf_counter() - t0,
                                           members=len(members), scaled_method="ensemble",
                                           **_fit_fields(val_logits, val_labels, temperature, len(val)))}


def fitted_temperatures(evaluation: dict) -> dict[str, float]:
    """{method: fitted temperature} of an evaluation (every method that records one)."""
    return {name: float(entry["temperature"]) for name, entry in evaluation.get("methods", {}).items()
            if isinstance(entry, dict) and entry.get("temperature") is not None}

