"""Training, evaluation and the run record (``metrics.json``), resumable at any moment.

A run lives in one folder: ``metrics.json`` (configuration, per-epoch numbers, the
provenance: git commit, torch version, device, wall time), ``checkpoint.pt`` (model,
optimizer, scheduler and random-generator states after the last finished epoch) while it
runs, and ``weights.pt`` (the trained network) once it has finished. Files are written
atomically (temporary file, then rename), the checkpoint before the record, so a run
killed at any moment resumes from its last finished epoch and ends with exactly the
numbers of an uninterrupted run.

Randomness comes in three streams, each seeded on its own so that changing one part of a
configuration does not reshuffle the others:

* the initial weights: ``init_seed`` (``seed`` when it is not set);
* the order of the training samples: a generator of its own, seeded from ``seed``;
* the dropout masks: torch's global generator (on the run's device), seeded from ``seed``.

So a base run and a dropout run with the same seed start from the same weights and see the
same batches in the same order; they differ only by dropout. A run with ``init_seed`` set
shares its initial weights with the runs of that seed but trains on another sample order.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
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
from .system import device_description, git_commit, resolve_device, save_torch_atomic, write_json_atomic

# Dropout-off metrics on the training data use this many of its first samples.
TRAIN_EVAL_SAMPLES = 10_000
EVAL_BATCH = 500  # evaluation batch size: larger batches run slower on the CPU (cache)
WEIGHTS_FILE = "weights.pt"


@dataclass
class RunConfig:
    """Everything that defines a run. Two runs with equal configs give equal numbers.

    ``init_seed``: seed of the initial weights (None: ``seed``). ``val_size``: the last
    ``val_size`` samples of the training split are held out as a validation set, never
    trained on (0: train on the whole split, as the paper does); ``train_subset`` then
    takes the first samples of what is left.
    """

    dataset: str = "mnist"
    variant: str = "none"
    p: float = 0.0
    time_consistent: bool = False
    site: str = "current"
    seed: int = 0
    init_seed: int | None = None
    epochs: int = 20
    train_subset: int | None = None
    test_subset: int | None = None
    val_size: int = 0
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
        train_size = D.SIZES[self.dataset, "train"]
        if not 0 <= self.val_size < train_size:
            raise ValueError(f"val_size must be in [0, {train_size - 1}] for {self.dataset}, got {self.val_size}")
        if self.train_subset is not None and self.train_subset > train_size - self.val_size:
            raise ValueError(f"train_subset ({self.train_subset}) must be at most the {train_size - self.val_size} "
                             f"training samples left after the validation split")
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

    @property
    def weights_seed(self) -> int:
        """The seed of the initial weights."""
        return self.seed if self.init_seed is None else self.init_seed

    def to_dict(self) -> dict:
        d = asdict(self)
        d["network"] = self.network_config().to_dict()  # record every value, not just overrides
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The config of a record; keys a record lacks (written before they existed) take
        their defaults, which are the behaviour of the code that wrote it."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def config_difference(saved: dict, config: RunConfig) -> list[str]:
    """The keys in which a record's configuration ``saved`` differs from ``config`` ([] if the
    same run). Keys the record lacks count as their defaults (see :meth:`RunConfig.from_dict`);
    a record that is not a valid configuration differs in every key."""
    wanted = config.to_dict()
    try:
        saved = RunConfig.from_dict(saved).to_dict() if isinstance(saved, dict) else {}
    except (TypeError, ValueError):
        return sorted(wanted)
    return sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))


def stream_seed(seed: int, stream: str) -> int:
    """A seed for one random stream of a run (``order``, ``masks``), derived from ``seed``:
    distinct streams of one seed are unrelated, and the same stream of a seed is always the same."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:8], "little") >> 1


class RunError(RuntimeError):
    """A run cannot start (bad input, or a folder that holds another run)."""


# ---------------------------------------------------------------- one epoch

RECORD_VERSION = 2  # 2: dropout-off training metrics, validation split, init_seed, weights file


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    hidden_spikes: float  # mean per sample
    input_spikes: float  # mean per sample


def _rng_state(device: torch.device, order: torch.Generator) -> dict:
    state = {"cpu": torch.get_rng_state(), "order": order.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device, order: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"])
    order.set_state(state["order"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train_epoch(model: SRMNetwork, dataset: D.EncodedDataset, optimizer: torch.optim.Optimizer,
                batch_size: int, order: torch.Generator | None = None,
                progress: Callable[[int], None] | None = None) -> EpochStats:
    """One pass over ``dataset`` in a random order drawn from ``order`` (a CPU generator;
    None: the global one). Loss and accuracy are those of training mode, dropout on."""
    model.train()
    device = dataset.times.device
    perm = torch.randperm(len(dataset), generator=order).to(device)
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss, correct, hidden, input
    for start in range(0, len(dataset), batch_size):
        times, index_order, labels = dataset.batch(perm[start:start + batch_size])
        out = model(times, index_order)
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


def _batches(dataset: D.EncodedDataset, batch_size: int):
    device = dataset.times.device
    for start in range(0, len(dataset), batch_size):
        yield dataset.batch(torch.arange(start, min(start + batch_size, len(dataset)), device=device))


@torch.no_grad()
def evaluate(model: SRMNetwork, dataset: D.EncodedDataset, batch_size: int = EVAL_BATCH,
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
    for times, order, labels in _batches(dataset, batch_size):
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


@torch.no_grad()
def silencing_accuracy_drop(model: SRMNetwork, dataset: D.EncodedDataset,
                            batch_size: int = EVAL_BATCH) -> list[float]:
    """For each hidden neuron, the accuracy on ``dataset`` lost when it alone is silenced
    (dropout off): the second importance measure of the neurons chapter, next to the paper's
    L1 norm of the outgoing weights. Negative when silencing a neuron helps."""
    model.eval()
    correct_full = torch.zeros((), dtype=torch.float64, device=dataset.times.device)
    correct_silenced = torch.zeros(model.config.hidden, dtype=torch.float64, device=dataset.times.device)
    for times, order, labels in _batches(dataset, batch_size):
        correct_full += (model(times, order).logits.argmax(1) == labels).sum()
        silenced = model.silenced_logits(times, order)  # (N, H, out)
        correct_silenced += (silenced.argmax(2) == labels[:, None]).sum(0)
    return ((correct_full - correct_silenced) / max(len(dataset), 1)).tolist()


# ---------------------------------------------------------------- a whole run

@dataclass
class RunData:
    """The encoded data of a run: training part, its dropout-off subset, validation (or None), test."""

    train: D.EncodedDataset
    train_eval: D.EncodedDataset
    val: D.EncodedDataset | None
    test: D.EncodedDataset


def load_run_data(config: RunConfig, device: torch.device) -> RunData:
    """The splits of ``config``: the validation part is the last ``val_size`` training samples."""
    (train_images, train_labels), val = D.split_validation(*D.load(config.dataset, "train"), config.val_size)
    train = D.encode(*D.subset(train_images, train_labels, config.train_subset), config.t_enc, device)
    test = D.encode(*D.subset(*D.load(config.dataset, "test"), config.test_subset), config.t_enc, device)
    val_set = D.encode(*val, config.t_enc, device) if config.val_size else None
    return RunData(train, train.head(min(TRAIN_EVAL_SAMPLES, len(train))), val_set, test)


def initial_network(config: RunConfig, device: torch.device | str = "cpu") -> SRMNetwork:
    """The untrained network of ``config``: its weights drawn from ``config.weights_seed``
    (this reseeds torch's global generator)."""
    torch.manual_seed(config.weights_seed)
    return SRMNetwork(config.network_config()).to(device)


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
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{metrics_path} is not a run record; choose another --out") from err
    diff = config_difference(saved, config)
    if diff:
        raise RunError(f"--out {out} holds a run with a different configuration "
                       f"(differs in: {', '.join(diff)}); choose another --out")
    return record


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
    """Trains ``config`` into folder ``out`` (resuming it if interrupted); returns the record."""
    out = Path(out)
    existing = check_out_dir(config, out)
    dev = resolve_device(device)
    if existing is not None and existing.get("status") == "finished":
        log(f"{out}: already finished ({len(existing['epochs'])} epochs), nothing to do")
        return existing
    data = load_run_data(config, dev)
    out.mkdir(parents=True, exist_ok=True)
    model = initial_network(config, dev)
    order = torch.Generator().manual_seed(stream_seed(config.seed, "order"))
    torch.manual_seed(stream_seed(config.seed, "masks"))
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
    checkpoint_path = out / "checkpoint.pt"
    if checkpoint_path.exists():
        ckpt = torch.load(checkpoint_path, map_location=dev, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"], dev, order)
        record["epochs"] = ckpt["epochs"]
        record["wall_time_s"] = ckpt["wall_time_s"]
        log(f"{out}: resuming after epoch {len(record['epochs'])} of {config.epochs}")
    write_json_atomic(out / "metrics.json", record)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs * len(data.train), unit="sample", unit_scale=True,
                   initial=len(record["epochs"]) * len(data.train), file=sys.stderr,
                   desc=f"{config.dataset} {config.variant}", dynamic_ncols=True)
    for epoch in range(len(record["epochs"]) + 1, config.epochs + 1):
        start = time.perf_counter()
        train_stats = train_epoch(model, data.train, optimizer, config.batch_size, order,
                                  bar.update if bar else None)
        train_time = time.perf_counter() - start
        scheduler.step()
        train_eval_stats, _ = evaluate(model, data.train_eval)
        val_stats = None if data.val is None else evaluate(model, data.val)[0]
        test_stats, _ = evaluate(model, data.test)
        epoch_time = time.perf_counter() - start
        record["epochs"].append(_epoch_entry(epoch, train_stats, train_eval_stats, val_stats, test_stats, model,
                                             len(data.train) / train_time, epoch_time))
        record["wall_time_s"] += epoch_time
        if not math.isfinite(train_stats.loss):
            log(f"{out}: epoch {epoch} training loss is {train_stats.loss}")
        save_torch_atomic(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": _rng_state(dev, order), "epochs": record["epochs"], "wall_time_s": record["wall_time_s"]})
        write_json_atomic(out / "metrics.json", record)
        if bar:
            bar.set_postfix(loss=f"{train_stats.loss:.3f}", test_acc=f"{test_stats.accuracy:.4f}")
    if bar:
        bar.close()
    _, per_neuron = evaluate(model, data.test, per_neuron=True)
    record.update(per_neuron)
    record["hidden_importance"] = model.hidden_importance().tolist()
    record["hidden_silencing_drop"] = silencing_accuracy_drop(model, data.test)
    save_torch_atomic(out / WEIGHTS_FILE, {"config": config.to_dict(), "model": model.state_dict()})
    record["weights_file"] = WEIGHTS_FILE
    record["weights_sha256"] = hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest()
    # the process's peak resident memory (data, model, training); ru_maxrss is in kB on Linux
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record["status"] = "finished"
    write_json_atomic(out / "metrics.json", record)
    checkpoint_path.unlink(missing_ok=True)  # the weights file and the record hold what is left of it
    last = record["epochs"][-1]
    log(f"{out}: finished; test accuracy {last['test_acc']:.4f}, training loss {last['train_loss']:.4f}")
    return record


def load_trained(run_dir: str | Path, device: str | None = "cpu") -> tuple[RunConfig, SRMNetwork, dict]:
    """A finished run's configuration, trained network (in eval mode) and record.

    The weights file must be the one the record names (its SHA-256 is checked), so an
    analysis can never pair a record with another run's weights.
    """
    run_dir = Path(run_dir)
    try:
        record = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{run_dir} holds no readable run record (metrics.json): {err}") from err
    if record.get("status") != "finished" or "weights_sha256" not in record:
        raise RunError(f"{run_dir}: the run is not finished, or its record names no weights file "
                       f"(records older than version {RECORD_VERSION} kept none); rerun it")
    path = run_dir / record.get("weights_file", WEIGHTS_FILE)
    if not path.exists():
        raise RunError(f"{path} is missing (weights are not in git): rerun the run to recreate it")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != record["weights_sha256"]:
        raise RunError(f"{path} does not belong to {run_dir / 'metrics.json'} (SHA-256 differs); rerun the run")
    config = RunConfig.from_dict(record["config"])
    dev = resolve_device(device)
    saved = torch.load(path, map_location=dev, weights_only=True)
    model = SRMNetwork(config.network_config()).to(dev)
    model.load_state_dict(saved["model"])
    return config, model.eval(), record


def timing_free(record: dict) -> dict:
    """The record without fields that measure time or provenance (for equality checks)."""
    drop = {"wall_time_s", "train_samples_per_s", "git_commit", "git_dirty", "device_name", "peak_rss_mb"}
    clean = {k: v for k, v in record.items() if k not in drop}
    clean["epochs"] = [{k: v for k, v in e.items() if k not in drop} for e in record["epochs"]]
    return clean
