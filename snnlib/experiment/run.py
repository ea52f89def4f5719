"""One run, resumable at any moment: its folder, its sealed record (``metrics.json``), checkpoint and kept weights."""

from __future__ import annotations

import hashlib
import json
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from snnlib.experiment.config import RunConfig, RunError, config_difference, stream_seed
from snnlib.experiment.record import (  # noqa: F401 - re-exported: the readers take them from here
    NEURON_FIELDS,
    RECORD_STATUSES,
    RECORD_VERSION,
    SEAL_HINT,
    SEALED_VERSION,
    record_digest,
    record_problem,
)
from snnlib.experiment.system import (
    LOCK_FILE,
    FolderLocked,
    StateError,
    device_description,
    folder_lock,
    git_commit,
    load_state,
    name_owner,
    resolve_device,
    save_state,
    save_torch_atomic,
    storage_error,
    write_json_atomic,
)
from snnlib.experiment.training import (
    EpochStats,
    RunData,
    _rng_state,
    _set_rng_state,
    evaluate,
    initial_network,
    load_run_data,
    masks_generator,
    silencing_accuracy_drop,
    train_epoch,
)
from snnlib.model.network import SRMNetwork

WEIGHTS_FILE = "weights.pt"


CHECKPOINT_FILE = "checkpoint.pt"


# Files a run folder may hold: the record, the states, the runner's executed notebook, the lock, the
# uncertainty evaluation (snnlib.uncertainty.evaluate) and files being written. A folder that holds anything
# else (say ``--out .`` or ``--out /``) is not a run folder and is refused.
RUN_FILES = ("metrics.json", CHECKPOINT_FILE, WEIGHTS_FILE, "experiment.ipynb", LOCK_FILE, "uncertainty.json")



def check_out_path(out: str | Path) -> Path:
    """``out`` as a run folder path, or a one-line :class:`RunError`: not empty, no blank or
    space-padded part (a folder named " " is a typo), not the file system's root, not a file."""
    text = str(out)
    if not text.strip():
        raise RunError(f"--out must name a folder, got {text!r}")
    parts = [part for part in text.split("/") if part]
    if any(part != part.strip() for part in parts):
        raise RunError(f"--out {text!r} has a part that is blank or starts or ends with a space; "
                       f"name the folder without them")
    path = Path(text)
    if path.resolve() == Path(path.resolve().anchor):
        raise RunError(f"--out {text!r} is the root of the file system; name a folder for the run")
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {text} exists and is not a folder")
    return path



def _check_run_folder(out: Path) -> None:
    """Raises :class:`RunError` if ``out`` holds no run record but files that are not a run's."""
    if not out.is_dir() or (out / "metrics.json").exists():
        return
    others = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES and not p.name.endswith(".tmp"))
    if others:
        raise RunError(f"--out {out} holds files that are not a run's ({', '.join(others[:3])}"
                       f"{', ...' if len(others) > 3 else ''}); choose a new or empty folder")



def write_record(path: Path, record: dict) -> None:
    """The record as strict JSON, with its digest, written atomically."""
    record["record_sha256"] = record_digest(record)
    write_json_atomic(path, record)



def check_out_dir(config: RunConfig, out: Path) -> dict | None:
    """The existing record in ``out`` (a path :func:`check_out_path` accepted) if it is the same run;
    raises :class:`RunError` if the folder holds another run, a damaged or edited record, or files
    that are not a run's."""
    metrics_path = out / "metrics.json"
    if not metrics_path.exists() and not metrics_path.is_symlink():
        _check_run_folder(out)
        return None
    try:
        record = json.loads(metrics_path.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{metrics_path} is not a readable run record; move the folder away or choose "
                       f"another --out") from err
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise RunError(f"{metrics_path} is not a run record; choose another --out")
    problem = record_problem(record, sealed=False)
    if problem is not None:
        how = "" if "seal" in problem else "; move the folder away and run again"
        raise RunError(f"{metrics_path} cannot be used: {problem}{how}")
    diff = config_difference(record["config"], config)
    if diff:
        raise RunError(f"--out {out} holds a run with a different configuration "
                       f"(differs in: {', '.join(diff)}); choose another --out")
    return record



def divergence(record: dict) -> str:
    """Why a ``diverged`` record stopped, in words (the runner's and the command line's line)."""
    return f"diverged at epoch {record.get('diverged_at_epoch')} (its training loss is not a finite number)"



def load_checkpoint(config: RunConfig, path: Path, device: torch.device) -> dict | None:
    """The training state saved in ``path`` if it exists and belongs to ``config``; raises a one-line
    :class:`RunError` if it is damaged or was written by another configuration."""
    if not path.exists():
        return None
    how = f"delete {path} to start the run over, or choose another --out"
    try:
        saved, state = load_state(path, map_location=device)
    except StateError as err:
        raise RunError(f"{err}; {how}") from err
    diff = config_difference(saved, config)
    if diff:
        raise RunError(f"{path} was saved by a run with another configuration (differs in: {', '.join(diff)}); "
                       f"{how}")
    return state



def _new_folders(out: Path) -> list[Path]:
    """The folders that creating ``out`` would create, deepest first."""
    new = []
    for folder in (out, *out.parents):
        if folder.exists():
            break
        new.append(folder)
    return new



def _remove_if_empty(folders: list[Path]) -> None:
    """Removes folders this run created (deepest first) if they hold nothing but its lock file."""
    for folder in folders:
        try:
            if {p.name for p in folder.iterdir()} <= {LOCK_FILE}:
                (folder / LOCK_FILE).unlink(missing_ok=True)
                folder.rmdir()
        except OSError:
            return



def _epoch_entry(epoch: int, train: EpochStats, train_eval: EpochStats, val: EpochStats | None,
                 test: EpochStats, model: SRMNetwork, train_samples_per_s: float, wall_time_s: float) -> dict:
    H, O, K = model.config.hidden, model.config.out_features, model.config.K
    entry = {
        "epoch": epoch,
        "train_loss": train.loss,  # training mode, dropout on, averaged over the epoch
        "train_acc": train.accuracy,
        "train_eval_loss": train_eval.loss,  # after the epoch, dropout off, on TRAIN_EVAL_SAMPLES
        "train_eval_acc": train_eval.accuracy,
        "test_loss": test.loss,
        "test_acc": test.accuracy,
    }
    if val is not None:
        entry.update(val_loss=val.loss, val_acc=val.accuracy)
    entry.update({
        "train_hidden_spikes": train.hidden_spikes,
        "test_hidden_spikes": test.hidden_spikes,
        "test_input_spikes": test.input_spikes,
        "test_synaptic_events": test.input_spikes * K * H + test.hidden_spikes * K * O,
        "train_samples_per_s": train_samples_per_s,
        "wall_time_s": wall_time_s,
    })
    return entry



def run(config: RunConfig, out: str | Path, device: str | None = "auto", progress: bool = True,
        log: Callable[[str], None] = print) -> dict:
    """Trains ``config`` into folder ``out`` (resuming it if interrupted); returns the record.

    The folder is locked for the whole run (:func:`snnlib.experiment.system.folder_lock`): a second process
    on it gets a :class:`RunError` at once. Every check (the configuration, the device, the
    folder, an existing record or checkpoint) comes before anything is written, and a folder this
    call created is removed again if the run cannot start. A run whose training loss becomes
    NaN or infinite stops there with status ``diverged`` (never ``finished``).
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    out = check_out_path(out)
    dev = resolve_device(device)
    _check_run_folder(out)  # before the lock file is made in it (checked again under the lock)
    created = _new_folders(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(str(storage_error(out, err))) from err
    try:
        with folder_lock(out):
            try:
                return _run_locked(config, out, dev, progress, log)
            except BaseException:
                _remove_if_empty(created)
                raise
    except FolderLocked as err:
        raise RunError(str(err)) from err



def _run_locked(config: RunConfig, out: Path, dev: torch.device, progress: bool,
                log: Callable[[str], None]) -> dict:
    state = start_run(config, out, dev, log)
    if isinstance(state, dict):
        return state
    data, model, record = state.data, state.model, state.record
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs * len(data.train), unit="sample", unit_scale=True,
                   initial=len(record["epochs"]) * len(data.train), file=sys.stderr,
                   desc=f"{config.dataset} {config.variant}", dynamic_ncols=True)
    for epoch in range(len(record["epochs"]) + 1, config.epochs + 1):
        start = time.perf_counter()
        train_stats = train_epoch(model, data.train, state.optimizer, config.batch_size, state.order,
                                  bar.update if bar else None)
        train_time = time.perf_counter() - start
        state.scheduler.step()
        train_eval_stats, _ = evaluate(model, data.train_eval)
        val_stats = None if data.val is None else evaluate(model, data.val)[0]
        test_stats, _ = evaluate(model, data.test)
        epoch_time = time.perf_counter() - start
        if not math.isfinite(train_stats.loss) and bar:
            bar.close()
        if not end_epoch(state, epoch, train_stats, train_eval_stats, val_stats, test_stats,
                         len(data.train) / train_time, epoch_time, log):
            return record
        if bar:
            bar.set_postfix(loss=f"{train_stats.loss:.3f}", test_acc=f"{test_stats.accuracy:.4f}")
    if bar:
        bar.close()
    return finish_run(state, log)


@dataclass
class RunState:
    """A run between its epochs: its configuration, folder, data, network, optimizer, schedule, random
    streams and record. ``masks`` is the run's own mask generator (the runs of a stack each have one,
    :mod:`snnlib.experiment.stack`), or None: a single run draws its masks from torch's global generator."""

    config: RunConfig
    out: Path
    device: torch.device
    data: RunData
    model: SRMNetwork
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    order: torch.Generator
    record: dict
    masks: torch.Generator | None = None

    @property
    def done(self) -> int:
        """The epochs trained so far."""
        return len(self.record["epochs"])


def start_run(config: RunConfig, out: Path, dev: torch.device, log: Callable[[str], None],
              data: RunData | None = None, own_masks: bool = False) -> RunState | dict:
    """Sets up a run in its locked folder ``out``: its record if it has already ended (finished or
    diverged), else its :class:`RunState`, resumed from the checkpoint if there is one, with the
    record written. ``data``: the run's splits if already loaded (a stack's runs share them).

    The random streams as in every run: the initial weights from ``config.weights_seed``, the sample
    order from a generator of its own, the masks from ``stream_seed(seed, "masks")``: torch's global
    generator, or with ``own_masks`` a generator of the run's own seeded the same way (the same draws).
    """
    existing = check_out_dir(config, out)
    if existing is not None and existing.get("status") in ("finished", "diverged"):
        log(f"{out}: already {existing['status']} ({len(existing['epochs'])} epochs), nothing to do")
        return existing
    name_owner(out, json.dumps(config.to_dict(), sort_keys=True))  # what a second runner checks (runner.py)
    ckpt = load_checkpoint(config, out / CHECKPOINT_FILE, dev)
    data = load_run_data(config, dev) if data is None else data
    model = initial_network(config, dev)
    order = torch.Generator().manual_seed(stream_seed(config.seed, "order"))
    masks = masks_generator(config, dev) if own_masks else None
    if masks is None:
        torch.manual_seed(stream_seed(config.seed, "masks"))
    model.dropout.generator = masks
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    commit, dirty = git_commit()
    record = {
        "record_version": RECORD_VERSION,
        "config": config.to_dict(),
        "status": "running",
        "epochs": [],
        "train_samples": len(data.train),
        "train_eval_samples": len(data.train_eval),
        "val_samples": 0 if data.val is None else len(data.val),
        "test_samples": len(data.test),
        "git_commit": commit,
        "git_dirty": dirty,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "device": str(dev),
        "device_name": device_description(dev),
        "wall_time_s": 0.0,
    }
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"], dev, order, masks)
        record["epochs"] = ckpt["epochs"]
        record["wall_time_s"] = ckpt["wall_time_s"]
        log(f"{out}: resuming after epoch {len(record['epochs'])} of {config.epochs}")
    write_record(out / "metrics.json", record)
    return RunState(config, out, dev, data, model, optimizer, scheduler, order, record, masks)


def end_epoch(state: RunState, epoch: int, train: EpochStats, train_eval: EpochStats, val: EpochStats | None,
              test: EpochStats, train_samples_per_s: float, epoch_time: float,
              log: Callable[[str], None]) -> bool:
    """Records a trained and evaluated epoch: the checkpoint, then the record. False when the run
    diverged (its training loss is not finite): then the record says so and the checkpoint is gone."""
    record, out = state.record, state.out
    record["epochs"].append(_epoch_entry(epoch, train, train_eval, val, test, state.model, train_samples_per_s,
                                         epoch_time))
    record["wall_time_s"] += epoch_time
    checkpoint_path = out / CHECKPOINT_FILE
    if not math.isfinite(train.loss):
        # A NaN or infinite loss never comes back: stop, and say so in the record.
        record.update(status="diverged", diverged_at_epoch=epoch)
        write_record(out / "metrics.json", record)
        checkpoint_path.unlink(missing_ok=True)
        log(f"{out}: diverged: the training loss of epoch {epoch} is {train.loss}; "
            f"recorded as diverged (try a smaller lr)")
        return False
    save_state(checkpoint_path, record["config"], {
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "rng": _rng_state(state.device, state.order, state.masks),
        "epochs": record["epochs"], "wall_time_s": record["wall_time_s"]})
    write_record(out / "metrics.json", record)
    return True


def finish_run(state: RunState, log: Callable[[str], None]) -> dict:
    """The end of a run that trained all its epochs: the per-neuron measures, the kept weights and the
    finished record; returns the record."""
    model, record, out, data = state.model, state.record, state.out, state.data
    _, per_neuron = evaluate(model, data.test, per_neuron=True)
    record.update(per_neuron)
    record["hidden_importance"] = model.hidden_importance().tolist()
    record["hidden_silencing_drop"] = silencing_accuracy_drop(model, data.test)
    record["weights_sha256"] = save_torch_atomic(out / WEIGHTS_FILE, {"config": record["config"],
                                                                      "model": model.state_dict()})
    record["weights_file"] = WEIGHTS_FILE
    # the process's peak resident memory (data, model, training); ru_maxrss is in kB on Linux
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record["status"] = "finished"
    write_record(out / "metrics.json", record)
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)  # the weights file and the record hold what is left of it
    last = record["epochs"][-1]
    log(f"{out}: finished; test accuracy {last['test_acc']:.4f}, training loss {last['train_loss']:.4f}")
    return record



def load_trained(run_dir: str | Path, device: str | None = "cpu") -> tuple[RunConfig, SRMNetwork, dict]:
    """A finished run's configuration, trained network (in eval mode) and record.

    The record must be sealed and intact (:func:`snnlib.experiment.record.record_problem`), and the weights file must be the
    one the record names (its SHA-256 is checked) holding the record's configuration, so an analysis
    can never pair a record with another run's weights, nor report an edited record's numbers.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    try:
        record = json.loads(metrics_path.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{run_dir} holds no readable run record (metrics.json): {err}") from err
    problem = record_problem(record, sealed=True)
    if problem is not None:
        raise RunError(f"{metrics_path} cannot be used: {problem}")
    fresh = "train the same configuration into a new folder (--out) and use that one"
    if record["status"] == "diverged":
        raise RunError(f"{run_dir}: the run {divergence(record)}; it has no trained network to use")
    if record["status"] != "finished":
        raise RunError(f"{run_dir}: the run is not finished ({len(record['epochs'])} of "
                       f"{record['config'].get('epochs')} epochs); run its train command again to finish it")
    if "weights_sha256" not in record:
        raise RunError(f"{metrics_path} names no weights file (records older than version 2 kept none); {fresh}")
    path = run_dir / record.get("weights_file", WEIGHTS_FILE)
    if not path.exists():
        raise RunError(f"{path} is missing (weights are not in git); {fresh}")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != record["weights_sha256"]:
        raise RunError(f"{path} does not belong to {metrics_path} (SHA-256 differs); {fresh}")
    config = RunConfig.from_dict(record["config"])
    dev = resolve_device(device)
    saved = torch.load(path, map_location=dev, weights_only=True)
    if config_difference(saved.get("config"), config):
        raise RunError(f"{path} holds the weights of another configuration than {metrics_path}; {fresh}")
    model = SRMNetwork(config.network_config()).to(dev)
    model.load_state_dict(saved["model"])
    return config, model.eval(), record



def timing_free(record: dict) -> dict:
    """The record without fields that measure time or provenance (for equality checks)."""
    drop = {"wall_time_s", "train_samples_per_s", "git_commit", "git_dirty", "device_name", "peak_rss_mb",
            "record_sha256"}
    clean = {k: v for k, v in record.items() if k not in drop}
    clean["epochs"] = [{k: v for k, v in e.items() if k not in drop} for e in record["epochs"]]
    return clean
