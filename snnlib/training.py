"""Training, evaluation and the run record (``metrics.json``), resumable at any moment.

A run lives in one folder: ``metrics.json`` (configuration, per-epoch numbers, the
provenance: git commit, torch version, device, wall time) and ``checkpoint.pt`` (model,
optimizer, scheduler and RNG states after the last finished epoch). Both are written
atomically (temporary file, then rename), the checkpoint first, so a run killed at any
moment resumes from its last finished epoch and ends with exactly the numbers of an
uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from . import data as D
from .dropout import check_kind, check_p
from .network import SITES, NetworkConfig, SRMNetwork

RECORD_VERSION = 1


@dataclass
class RunConfig:
    """Everything that defines a run. Two runs with equal configs give equal numbers."""

    dataset: str = "mnist"
    variant: str = "none"
    p: float = 0.0
    time_consistent: bool = False
    site: str = "current"
    seed: int = 0
    epochs: int = 20
    train_subset: int | None = None
    test_subset: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    t_enc: int = 12
    network: dict = field(default_factory=dict)  # overrides of NetworkConfig defaults

    def __post_init__(self) -> None:
        if self.dataset not in D.DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; allowed: {', '.join(D.DATASETS)}")
        check_kind(self.variant)
        check_p(self.p)
        if self.site not in SITES:
            raise ValueError(f"unknown dropout site {self.site!r}; allowed: {', '.join(SITES)}")
        for name in ("epochs", "batch_size", "t_enc"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        net = self.network_config()  # validates tau, threshold, delays against T, ...
        if self.t_enc >= net.T:
            raise ValueError(f"t_enc ({self.t_enc}) must be shorter than the window T={net.T}")

    def network_config(self) -> NetworkConfig:
        in_features = 784 if self.dataset == "mnist" else 3072
        return NetworkConfig(**{**self.network, "in_features": in_features, "dropout": self.variant,
                                "p": self.p, "time_consistent": self.time_consistent, "site": self.site})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["network"] = self.network_config().to_dict()  # record every value, not just overrides
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class RunError(RuntimeError):
    """A run cannot start (bad input, or a folder that holds another run)."""


# ---------------------------------------------------------------- provenance

def git_commit() -> tuple[str, bool]:
    """(commit hash, snnlib differs from it) of the project, or ("unknown", False)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        # dirty = the library itself differs from the commit (edits to notebooks or docs don't count)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "snnlib"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
        return commit or "unknown", dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def resolve_device(name: str | None) -> torch.device:
    """``auto`` (or None) picks CUDA when available; otherwise the named device."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}; allowed: auto, cpu, cuda, cuda:N")
    return device


# ---------------------------------------------------------------- atomic files

def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def save_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------- one epoch

@dataclass
class EpochStats:
    loss: float
    accuracy: float
    hidden_spikes: float  # mean per sample
    input_spikes: float  # mean per sample


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train_epoch(model: SRMNetwork, dataset: D.EncodedDataset, optimizer: torch.optim.Optimizer,
                batch_size: int, progress: Callable[[int], None] | None = None) -> EpochStats:
    """One pass over ``dataset`` in a random order (global torch RNG, on the CPU)."""
    model.train()
    device = dataset.times.device
    perm = torch.randperm(len(dataset)).to(device)
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss, correct, hidden, input
    for start in range(0, len(dataset), batch_size):
        times, order, labels = dataset.batch(perm[start:start + batch_size])
        out = model(times, order)
        loss = F.cross_entropy(out.logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = labels.shape[0]
        with torch.no_grad():
            totals += torch.stack([loss.detach().double() * n,
                                   (out.logits.argmax(1) == labels).sum().double(),
                                   out.hidden_spikes.detach().sum().double(),
                                   torch.tensor(float(out.input_spikes), device=device, dtype=torch.float64)])
        if progress:
            progress(n)
    loss_sum, correct, hidden, inputs = (totals / len(dataset)).tolist()
    return EpochStats(loss_sum, correct, hidden, inputs)


@torch.no_grad()
def evaluate(model: SRMNetwork, dataset: D.EncodedDataset, batch_size: int = 1000,
             per_neuron: bool = False) -> tuple[EpochStats, dict]:
    """Loss, accuracy and spike counts on ``dataset`` in eval mode (dropout off).

    With ``per_neuron``, also each hidden neuron's firing rate and mean first-spike step.
    """
    model.eval()
    device = dataset.times.device
    H = model.config.hidden
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    fired = torch.zeros(H, dtype=torch.float64, device=device)
    spike_step = torch.zeros(H, dtype=torch.float64, device=device)
    steps = torch.arange(model.config.T, device=device, dtype=torch.float64)[:, None, None]
    for start in range(0, len(dataset), batch_size):
        index = torch.arange(start, min(start + batch_size, len(dataset)), device=device)
        times, order, labels = dataset.batch(index)
        out = model(times, order)
        totals += torch.stack([F.cross_entropy(out.logits, labels, reduction="sum").double(),
                               (out.logits.argmax(1) == labels).sum().double(),
                               out.hidden_spikes.sum().double(),
                               torch.tensor(float(out.input_spikes), device=device, dtype=torch.float64)])
        if per_neuron:
            spikes = out.hidden_spikes.double()
            fired += spikes.sum(dim=(0, 1))
            spike_step += (spikes * steps).sum(dim=(0, 1))
    loss_sum, correct, hidden, inputs = (totals / max(len(dataset), 1)).tolist()
    extra = {}
    if per_neuron:
        extra = {"hidden_firing_rate": (fired / max(len(dataset), 1)).tolist(),
                 "hidden_mean_spike_step": (spike_step / fired.clamp(min=1)).tolist()}
    return EpochStats(loss_sum, correct, hidden, inputs), extra


# ---------------------------------------------------------------- a whole run

def _load_data(config: RunConfig, device: torch.device) -> tuple[D.EncodedDataset, D.EncodedDataset]:
    train = D.subset(*D.load(config.dataset, "train"), config.train_subset)
    test = D.subset(*D.load(config.dataset, "test"), config.test_subset)
    return D.encode(*train, config.t_enc, device), D.encode(*test, config.t_enc, device)


def check_out_dir(config: RunConfig, out: Path) -> dict | None:
    """The existing record in ``out`` if it is the same run; raises if it is another."""
    metrics_path = out / "metrics.json"
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a folder")
    if not metrics_path.exists():
        return None
    try:
        record = json.loads(metrics_path.read_text())
        saved = record["config"]
    except (ValueError, KeyError) as err:
        raise RunError(f"{metrics_path} is not a run record; choose another --out") from err
    wanted = config.to_dict()
    if saved != wanted:
        diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        raise RunError(f"--out {out} holds a run with a different configuration "
                       f"(differs in: {', '.join(diff)}); choose another --out")
    return record


def run(config: RunConfig, out: str | Path, device: str | None = "auto", progress: bool = True,
        log: Callable[[str], None] = print) -> dict:
    """Trains ``config`` into folder ``out`` (resuming it if interrupted); returns the record."""
    out = Path(out)
    existing = check_out_dir(config, out)
    dev = resolve_device(device)
    if existing is not None and existing.get("status") == "finished":
        log(f"{out}: already finished ({len(existing['epochs'])} epochs), nothing to do")
        return existing
    torch.manual_seed(config.seed)
    train_set, test_set = _load_data(config, dev)
    out.mkdir(parents=True, exist_ok=True)
    model = SRMNetwork(config.network_config()).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    commit, dirty = git_commit()
    record = {
        "record_version": RECORD_VERSION,
        "config": config.to_dict(),
        "status": "running",
        "epochs": [],
        "git_commit": commit,
        "git_dirty": dirty,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "device": str(dev),
        "device_name": device_description(dev),
        "wall_time_s": 0.0,
    }
    checkpoint_path = out / "checkpoint.pt"
    if checkpoint_path.exists():
        ckpt = torch.load(checkpoint_path, map_location=dev, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"], dev)
        record["epochs"] = ckpt["epochs"]
        record["wall_time_s"] = ckpt["wall_time_s"]
        log(f"{out}: resuming after epoch {len(record['epochs'])} of {config.epochs}")
    write_json_atomic(out / "metrics.json", record)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs * len(train_set), unit="sample", unit_scale=True,
                   initial=len(record["epochs"]) * len(train_set), file=sys.stderr,
                   desc=f"{config.dataset} {config.variant}", dynamic_ncols=True)
    H, O, K = model.config.hidden, model.config.out_features, model.config.K
    for epoch in range(len(record["epochs"]) + 1, config.epochs + 1):
        start = time.perf_counter()
        train_stats = train_epoch(model, train_set, optimizer, config.batch_size,
                                  bar.update if bar else None)
        train_time = time.perf_counter() - start
        scheduler.step()
        test_stats, _ = evaluate(model, test_set)
        epoch_time = time.perf_counter() - start
        record["epochs"].append({
            "epoch": epoch,
            "train_loss": train_stats.loss,
            "train_acc": train_stats.accuracy,
            "test_loss": test_stats.loss,
            "test_acc": test_stats.accuracy,
            "train_hidden_spikes": train_stats.hidden_spikes,
            "test_hidden_spikes": test_stats.hidden_spikes,
            "test_input_spikes": test_stats.input_spikes,
            "test_synaptic_events": test_stats.input_spikes * K * H + test_stats.hidden_spikes * K * O,
            "train_samples_per_s": len(train_set) / train_time,
            "wall_time_s": epoch_time,
        })
        record["wall_time_s"] += epoch_time
        if not math.isfinite(train_stats.loss):
            log(f"{out}: epoch {epoch} training loss is {train_stats.loss}")
        save_atomic(checkpoint_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                      "scheduler": scheduler.state_dict(), "rng": _rng_state(dev),
                                      "epochs": record["epochs"], "wall_time_s": record["wall_time_s"]})
        write_json_atomic(out / "metrics.json", record)
        if bar:
            bar.set_postfix(loss=f"{train_stats.loss:.3f}", test_acc=f"{test_stats.accuracy:.4f}")
    if bar:
        bar.close()
    _, per_neuron = evaluate(model, test_set, per_neuron=True)
    record.update(per_neuron)
    record["hidden_importance"] = model.hidden_importance().tolist()
    # the process's peak resident memory (data, model, training); ru_maxrss is in kB on Linux
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record["status"] = "finished"
    write_json_atomic(out / "metrics.json", record)
    last = record["epochs"][-1]
    log(f"{out}: finished; test accuracy {last['test_acc']:.4f}, training loss {last['train_loss']:.4f}")
    return record


def timing_free(record: dict) -> dict:
    """The record without fields that measure time or provenance (for equality checks)."""
    drop = {"wall_time_s", "train_samples_per_s", "git_commit", "git_dirty", "device_name", "peak_rss_mb"}
    clean = {k: v for k, v in record.items() if k not in drop}
    clean["epochs"] = [{k: v for k, v in e.items() if k not in drop} for e in record["epochs"]]
    return clean
