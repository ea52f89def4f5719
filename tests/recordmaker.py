"""Synthetic run records for the analysis tests: the study's configuration, chosen numbers, sealed
(version 3 with the SHA-256 of their contents, as the readers require)."""

from __future__ import annotations

import hashlib
import json

from snnlib.experiment.config import RunConfig
from snnlib.experiment.run import RECORD_VERSION, record_digest


def make_record(dataset: str = "mnist", variant: str = "none", seed: int = 0, p: float | None = None,
                site: str = "current", time_consistent: bool = False, init_seed: int | None = None,
                epochs: int = 20, val_size: int = 5000, importance: list[float] | None = None,
                silencing: list[float] | None = None, status: str = "finished", path: str | None = None,
                **last: float) -> dict:
    """A record of the study's settings whose last epoch holds ``last`` (defaults for the rest)."""
    p = (0.0 if variant == "none" else 0.5) if p is None else p
    config = RunConfig(dataset=dataset, variant=variant, p=p, site=site, time_consistent=time_consistent, seed=seed,
                       init_seed=init_seed, epochs=epochs, val_size=val_size)
    numbers = {"train_loss": 0.1, "train_acc": 0.97, "train_eval_loss": 0.05, "train_eval_acc": 0.98,
               "val_loss": 0.1, "val_acc": 0.97, "test_loss": 0.1, "test_acc": 0.97, "train_hidden_spikes": 40.0,
               "test_hidden_spikes": 40.0, "test_input_spikes": 150.0, "test_synaptic_events": 1e5, **last}
    epoch_list = [{"epoch": e, **numbers} for e in range(1, epochs + 1)]
    mask = "consistent" if time_consistent else "step"
    control = "" if init_seed is None else f"_init{init_seed}"
    record = {
        "record_version": RECORD_VERSION, "config": config.to_dict(), "status": status, "epochs": epoch_list,
        "hidden_importance": importance if importance is not None else [1.0] * 8,
        "hidden_silencing_drop": silencing if silencing is not None else [0.0] * 8,
        "hidden_firing_rate": [0.5] * 8, "hidden_mean_spike_step": [10.0] * 8, "wall_time_s": 1.0,
        # stands for the digest of the run's weights file: one per configuration
        "weights_sha256": hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest(),
        "path": path or f"x/{dataset}/{variant}_p{p}_{mask}_{site}/seed{seed}{control}",
    }
    return reseal(record)


def reseal(record: dict) -> dict:
    """``record`` with the SHA-256 of its contents as they are now (after a test changed them)."""
    record["record_sha256"] = record_digest(record)
    return record


def make_evaluation(record: dict, nll: float = 0.1, ece: float = 0.01) -> dict:
    """A sealed ``uncertainty.json`` of ``record`` (which must be sealed): one method on the test set."""
    from snnlib.uncertainty.evaluate import sealed_evaluation

    return sealed_evaluation({
        "kind": "run", "settings": {"uncertainty_version": 2, "passes": 50, "mask_seed": 0},
        "config": record["config"], "weights_sha256": record["weights_sha256"],
        "record_sha256": record["record_sha256"], "record_test_acc": record["epochs"][-1]["test_acc"],
        "sets": {"test": {"kind": "test", "family": None, "level": None}},
        "methods": {"deterministic": {"cost": {"forward_passes": 1, "synaptic_events_per_prediction": 8e4},
                                      "results": {"test": {"accuracy": 0.97, "nll": nll, "ece": ece}}}}})


def make_ensemble(records: list[dict], names: list[str], nll: float = 0.07) -> dict:
    """A sealed ``ensemble*.json`` of sealed ``records``, named by ``names`` (their folders relative to
    the ensemble file's)."""
    from snnlib.uncertainty.evaluate import sealed_evaluation

    return sealed_evaluation({
        "kind": "ensemble", "settings": {"uncertainty_version": 2},
        "member_sha256": sorted(r["weights_sha256"] for r in records),
        "members": [{"path": n, "seed": r["config"]["seed"], "weights_sha256": r["weights_sha256"],
                     "record_sha256": r["record_sha256"]} for n, r in zip(names, records, strict=True)],
        "config": records[0]["config"], "sets": {"test": {"kind": "test", "family": None, "level": None}},
        "methods": {"ensemble": {"cost": {"forward_passes": len(records), "synaptic_events_per_prediction": 2e5},
                                 "results": {"test": {"accuracy": 0.98, "nll": nll, "ece": 0.01}}}}})
