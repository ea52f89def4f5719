"""Uncertainty of a trained network: predictive distributions, their metrics, shift and OOD.

Does dropout, useless or harmful for accuracy, buy calibrated uncertainty, and at what cost?
This module turns a finished run (``metrics.json`` and ``weights.pt``) into predictive
distributions under several methods, scores them with the standard metrics on the test set
and on shifted and out-of-distribution sets (:mod:`snnlib.uncertainty.shift`), and records the result
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
* version 3 (``version=3``): also the near-OOD set, MC dropout and the ensemble temperature-scaled (``scaled.py``).

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
(Ovadia et al.'s grid, :data:`snnlib.uncertainty.shift.ROTATION_ANGLES`) would add half again to an MNIST run.

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

import copy
import fnmatch
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snnlib.experiment import data as D
from snnlib.experiment.config import RunConfig
from snnlib.experiment.run import SEAL_HINT, load_trained
from snnlib.experiment.system import (
    device_description,
    git_commit,
    json_digest,
    resolve_device,
)
from snnlib.experiment.training import EVAL_BATCH
from snnlib.uncertainty import shift as S
from snnlib.uncertainty.metrics import (
    COVERAGES,
    N_BINS,
    _auroc_block,
    _curve,
    _np,
    fit_temperature,
    mutual_information,
    rounded,
    scores_of,
    softmax,
    summarize,
    temperature_nll,
)
from snnlib.uncertainty.predict import DEFAULT_PASSES, TIME_READOUTS, Passes, deterministic_logits, sample_passes

UNCERTAINTY_VERSION = 2  # 2: the curve at CURVE_POINTS, numbers rounded to SIGNIFICANT_DIGITS (the default)
VERSIONS = (2, 3)  # 3: version 2 plus the near-OOD set and temperature-scaled MC dropout and ensembles (scaled.py)
OUTPUT_FILE = "uncertainty.json"
ENSEMBLE_PATTERN = "ensemble*.json"  # the names of ensemble files that the analysis reads
DIGEST_KEY = "evaluation_sha256"
DEFAULT_SHIFT_SUBSET = 2000
DEFAULT_ANGLES = (30, 60, 90, 120, 150, 180)


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
                    device: torch.device | str = "cpu", near_ood: bool = False
                    ) -> Iterator[tuple[S.ShiftSpec, D.EncodedDataset]]:
    """The test set of a run (its ``test_subset``, as in its record) and the shift and OOD sets of
    its dataset (the first ``shift_subset`` test images each, :mod:`snnlib.uncertainty.shift`; ``near_ood``:
    and the near-OOD set), encoded with the run's ``t_enc``, one after the other (one set in memory at a time)."""
    for spec in S.shift_specs(config.dataset, angles, near_ood=near_ood):
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

def check_version(version: int) -> None:
    if version not in VERSIONS:  # a one-line error
        raise ValueError(f"unknown evaluation version {version}; allowed: {', '.join(map(str, VERSIONS))}")


def settings_dict(dataset: str, passes: int, mask_seed: int, shift_subset: int | None, angles,
                  batch_size: int, version: int = UNCERTAINTY_VERSION) -> dict:
    """What an ``uncertainty.json`` was computed with; equal settings and weights: same numbers.
    The rotation angles count for MNIST only (CIFAR-10's shifts are noise and blur)."""
    settings = {**ensemble_settings(dataset, shift_subset, angles, batch_size, version), "passes": int(passes),
                "mask_seed": int(mask_seed)}
    if version >= 3:
        from snnlib.uncertainty.scaled import scaled_pass_counts
        settings["scaled_passes"] = scaled_pass_counts(passes)
    return settings


def ensemble_settings(dataset: str, shift_subset: int | None, angles, batch_size: int,
                      version: int = UNCERTAINTY_VERSION) -> dict:
    """The settings of an ensemble's file (no dropout passes, no masks)."""
    check_version(version)
    settings = {"uncertainty_version": int(version), "shift_subset": shift_subset,
                "rotation_angles": [int(a) for a in angles] if dataset == "mnist" else [],
                "batch_size": int(batch_size), "n_bins": N_BINS, "coverages": list(COVERAGES)}
    if version >= 3:
        settings.update(near_ood_grid=S.PATCH_GRID, near_ood_seed=S.PATCH_SEED)
    return settings


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
                 log: Callable[[str], None] | None = None, version: int = UNCERTAINTY_VERSION) -> dict:
    """Every method that applies to one finished run, on its test set and every shift/OOD set.

    Always ``deterministic``; ``temperature`` when the run has a validation split (fitted on it
    alone); ``mc_dropout`` (``passes`` passes, with the curve over n = 1..passes) and the two
    single-pass estimates when the run trains with dropout. Returns a JSON-able dict: the
    settings (N, mask seed, shift subset, angles, batch size, bins), the run's configuration
    and weights digest, per method its cost and per set every metric of :func:`summarize` plus
    ``auroc_vs_test`` (shift/OOD set against the test set, by 1 - max probability, entropy and,
    for sampling methods, mutual information), the sets' descriptions, the git commit, the
    device and the wall time. ``version`` 3 adds the near-OOD set and the temperature-scaled MC dropout
    methods (:func:`snnlib.uncertainty.scaled.mc_dropout_methods`).
    """
    began = time.perf_counter()
    check_version(version)
    say = log or (lambda _msg: None)
    dev = resolve_device(device)
    config, model, record = load_trained(run_dir, dev)
    dropout = has_dropout(config)
    n_bins = N_BINS

    sets: list[EvalSet] = []
    det_logits, det_events, det_time = {}, {}, 0.0
    mc: dict[str, Passes] = {}
    for spec, data in evaluation_sets(config, shift_subset, angles, dev, near_ood=version >= 3):
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
    if version >= 3:
        from snnlib.uncertainty.scaled import mc_dropout_methods
        scaled, why = mc_dropout_methods(model, val, sets, mc, passes, mask_seed, batch_size)
        methods, not_evaluated = {**methods, **scaled}, {**not_evaluated, **why}

    last = record["epochs"][-1]
    return {
        "kind": "run",
        "settings": settings_dict(config.dataset, passes, mask_seed, shift_subset, angles, batch_size, version),
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
                      relative_to: str | Path | None = None, version: int = UNCERTAINTY_VERSION) -> dict:
    """The deep ensemble of finished runs (e.g. the 5 base seeds): the mean of the members'
    deterministic softmax, scored like one method of :func:`evaluate_run` on the same sets, with
    the mutual information between the prediction and the member, and the cost of all members
    (forward passes = members, synaptic events summed). The members must share the dataset,
    the test subset, the input coding and T. ``relative_to``: the members are named by their
    path relative to this folder (the ensemble file's), never by an absolute path. ``version`` 3 adds
    the near-OOD set and the temperature-scaled ensemble (:func:`snnlib.uncertainty.scaled.ensemble_method`).
    """
    began = time.perf_counter()
    check_version(version)
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
    for spec, data in evaluation_sets(config, shift_subset, angles, dev, near_ood=version >= 3):
        sets.append(EvalSet(spec, _np(data.labels)))
        per_member[spec.name] = []
        for _, model, _ in members:
            logits, ev = deterministic_logits(model, data, batch_size)
            per_member[spec.name].append(_np(logits))
            if spec.kind == "test":
                events += float(ev.mean())
    member_logits = {k: np.stack(v) for k, v in per_member.items()}  # (members, N, C)
    stacked = {k: softmax(v) for k, v in member_logits.items()}
    probs = {k: v.mean(0) for k, v in stacked.items()}
    mi = {k: mutual_information(v) for k, v in stacked.items()}
    base = Path(relative_to) if relative_to is not None else Path.cwd()
    names = [os.path.relpath(Path(d).resolve(), base.resolve()) for d in run_dirs]
    wall = time.perf_counter() - began
    methods = {"ensemble": _method_entry(_score_method(sets, probs, mi, N_BINS), events, len(members), wall,
                                         members=len(members))}
    if version >= 3:
        from snnlib.uncertainty.scaled import ensemble_method
        methods.update(ensemble_method(members, sets, member_logits, events, wall, dev, batch_size))
    return {
        "kind": "ensemble",
        "settings": ensemble_settings(config.dataset, shift_subset, angles, batch_size, version),
        "member_sha256": sorted(rec["weights_sha256"] for _, _, rec in members),
        "members": [{"path": n, "seed": cfg.seed, "variant": cfg.variant, "p": cfg.p,
                     "weights_sha256": rec["weights_sha256"], "record_sha256": rec["record_sha256"]}
                    for n, (cfg, _, rec) in zip(names, members, strict=True)],
        "config": config.to_dict(),
        "sets": {es.name: {**es.spec.describe(), "samples": len(es.labels)} for es in sets},
        "methods": methods,
        **_provenance(dev),
        "wall_time_s": time.perf_counter() - began,
    }


# ---------------------------------------------------------------- sealed files

def evaluation_digest(evaluation: dict) -> str:
    """SHA-256 of an evaluation's canonical strict JSON, without its own ``evaluation_sha256`` (and the
    ``path`` that :func:`snnlib.study.evaluations.load_evaluations` adds)."""
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


