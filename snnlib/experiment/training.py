"""Training, evaluation and the run record (``metrics.json``), resumable at any moment.

A run lives in one folder: ``metrics.json`` (configuration, per-epoch numbers, the
provenance: git commit, torch version, device, wall time), ``checkpoint.pt`` (model,
optimizer, scheduler and random-generator states after the last finished epoch) while it
runs, and ``weights.pt`` (the trained network) once it has finished. Files are written
atomically (temporary file, then rename), the checkpoint before the record, so a run
killed at any moment resumes from its last finished epoch and ends with exactly the
numbers of an uninterrupted run.

The record carries the SHA-256 of its contents (``record_sha256``; record version 3 requires it)
and the weights file's (``weights_sha256``); the weights file and the checkpoint carry the
configuration. :func:`snnlib.experiment.record.record_problem` says why a record cannot be trusted
(edited, unsealed, short of the epochs it claims, malformed); ``train``, :func:`load_trained` and every
reader of the analysis refuse such a record with one line.

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

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from snnlib.experiment import data as D
from snnlib.experiment.config import RunConfig, stream_seed
from snnlib.model.network import SRMNetwork

# Dropout-off metrics on the training data use this many of its first samples.
TRAIN_EVAL_SAMPLES = 10_000
EVAL_BATCH = 500  # evaluation batch size: larger batches run slower on the CPU (cache)


# ---------------------------------------------------------------- one epoch


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    hidden_spikes: float  # mean per sample
    input_spikes: float  # mean per sample


def _rng_state(device: torch.device, order: torch.Generator, masks: torch.Generator | None = None) -> dict:
    """The random streams of a run for its checkpoint: ``cpu`` (on a CPU, the masks' stream), ``order``
    and, on a GPU, ``cuda`` (the masks' stream there). ``masks``: the run's own mask generator, or None
    for torch's global one; a checkpoint looks the same either way, so either kind of run resumes it."""
    own = masks is not None
    state = {"cpu": masks.get_state() if own and device.type != "cuda" else torch.get_rng_state(),
             "order": order.get_state()}
    if device.type == "cuda":
        state["cuda"] = masks.get_state() if own else torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device, order: torch.Generator,
                   masks: torch.Generator | None = None) -> None:
    """Restores what :func:`_rng_state` saved (into ``masks`` if given, else into the global generators).
    A generator's state is a CPU byte tensor, wherever the checkpoint was loaded to."""
    state = {k: v.cpu() for k, v in state.items()}
    order.set_state(state["order"])
    if masks is not None:
        if device.type != "cuda":
            masks.set_state(state["cpu"])
        elif "cuda" in state:
            masks.set_state(state["cuda"])
        return
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def masks_generator(config: RunConfig, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator of the run's own for its dropout masks, on ``device``, seeded as a single run seeds
    torch's global generator (``stream_seed(seed, "masks")``): it gives the same draws."""
    return torch.Generator(device=device).manual_seed(stream_seed(config.seed, "masks"))


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
    # the parts are row ranges of the whole splits, encoded once per dataset (data.encoded)
    full_train = D.encoded(config.dataset, "train", config.t_enc, device)
    full_test = D.encoded(config.dataset, "test", config.t_enc, device)
    labels = full_train.labels.cpu().numpy()
    (_, train_labels), (_, val_labels) = D.split_validation(labels, labels, config.val_size)
    n_train = len(D.subset(train_labels, train_labels, config.train_subset)[1])
    n_test = len(D.subset(*(full_test.labels.cpu().numpy(),) * 2, config.test_subset)[1])
    train = full_train.rows(0, n_train)
    test = full_test.rows(0, n_test)
    val_set = full_train.rows(len(train_labels), len(labels)) if config.val_size else None
    return RunData(train, train.head(min(TRAIN_EVAL_SAMPLES, len(train))), val_set, test)


def initial_network(config: RunConfig, device: torch.device | str = "cpu") -> SRMNetwork:
    """The untrained network of ``config``: its weights drawn from ``config.weights_seed``
    (this reseeds torch's global generator)."""
    torch.manual_seed(config.weights_seed)
    return SRMNetwork(config.network_config()).to(device)


