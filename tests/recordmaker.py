"""Synthetic run records for the analysis tests: the study's configuration, chosen numbers."""

from __future__ import annotations

from snnlib.training import RECORD_VERSION, RunConfig


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
    return {
        "record_version": RECORD_VERSION, "config": config.to_dict(), "status": status, "epochs": epoch_list,
        "hidden_importance": importance if importance is not None else [1.0] * 8,
        "hidden_silencing_drop": silencing if silencing is not None else [0.0] * 8,
        "hidden_firing_rate": [0.5] * 8, "hidden_mean_spike_step": [10.0] * 8, "wall_time_s": 1.0,
        "path": path or f"x/{dataset}/{variant}_p{p}_{mask}_{site}/seed{seed}{control}",
    }
