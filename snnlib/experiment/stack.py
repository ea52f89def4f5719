"""Runs of one dataset and seed trained side by side in one process, each writing its own record.

Runs that share a dataset, a seed (so a sample order) and the sizes of their data and network see the
same batches in the same order. :func:`run_stack` trains such a group as one computation along a
stack axis (:func:`snnlib.model.stack.stacked_forward`): each batch's input events are built once and
every operation does all runs' work, while each run keeps its own weights, Adam state and learning-rate
schedule (its own ``epochs`` and ``lr``), its own dropout and its own mask generator, seeded as a single
run seeds torch's global one (:func:`snnlib.experiment.training.masks_generator`), so it draws exactly
the masks its single run draws. Each run has its own folder, lock, checkpoint and sealed record, the
same files :func:`snnlib.experiment.run.run` writes (:func:`~snnlib.experiment.run.start_run`,
:func:`~snnlib.experiment.run.end_epoch` and :func:`~snnlib.experiment.run.finish_run` are shared), so a
stacked run resumes as a single run and the other way round. On the CPU each record is its single
run's, number for number (``tests/test_stack.py``); on a GPU they agree to rounding.

What may differ within a group: the dropout (kind, p, mask in time, site), ``init_seed``, ``epochs``,
``lr`` and ``weight_decay``; every other field (:data:`STACK_KEYS` and the network's sizes) must be
equal (:func:`stack_key`). A run with fewer epochs leaves the stack when it ends; runs resumed at
different epochs join it when it reaches theirs. Times in a stacked record are the run's share: the
stack's time divided by the runs that trained in it (``stacked_runs`` in the record).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from snnlib.experiment import data as D
from snnlib.experiment.config import RunConfig, RunError
from snnlib.experiment.run import (
    RunState,
    _check_run_folder,
    _new_folders,
    _remove_if_empty,
    check_out_path,
    end_epoch,
    finish_run,
    start_run,
)
from snnlib.experiment.system import FolderLocked, folder_lock, resolve_device, storage_error
from snnlib.experiment.training import EVAL_BATCH, EpochStats, RunData, _batches, load_run_data
from snnlib.model.network import SRMNetwork
from snnlib.model.params import ParameterError, check_mapping
from snnlib.model.stack import STACK_FREE_FIELDS, StackOutput, input_events, stacked_forward

# RunConfig fields that every run of a stack shares (with the network's fields other than its dropout).
STACK_KEYS = ("dataset", "seed", "train_subset", "test_subset", "val_size", "batch_size", "t_enc")


def stack_key(config: RunConfig) -> str:
    """What the runs of one stack share, as text: :data:`STACK_KEYS` and the network's configuration
    apart from its dropout. Runs with equal keys can train as one stack."""
    network = {k: v for k, v in config.network_config().to_dict().items() if k not in STACK_FREE_FIELDS}
    return json.dumps({**{k: getattr(config, k) for k in STACK_KEYS}, "network": network}, sort_keys=True)


def group_configs(configs: Sequence[RunConfig], size: int | None = None) -> list[list[int]]:
    """The indices of ``configs`` in stacks: equal :func:`stack_key`, in order of first appearance,
    each stack at most ``size`` runs (None: no limit)."""
    groups: dict[str, list[list[int]]] = {}
    for i, config in enumerate(configs):
        stacks = groups.setdefault(stack_key(config), [[]])
        if size is not None and len(stacks[-1]) >= size:
            stacks.append([])
        stacks[-1].append(i)
    return [stack for stacks in groups.values() for stack in stacks]


def default_width(device: torch.device, runs: int) -> int:
    """Networks per gather of eq 3: all on a GPU (fewest launches), one on a CPU (each network's
    table stays in the caches)."""
    return runs if device.type == "cuda" else 1


# A CPU computes a stack in chunks whose (T, N, chunk, hidden) tensors stay about this size, so that they
# stay in its caches (a wider stack spills to memory and runs slower: README, Performance).
CPU_CHUNK_BYTES = 4 * 2**20


def default_chunk(device: torch.device, runs: int, samples: int, config: RunConfig) -> int:
    """Networks computed together, for batches of ``samples``: all on a GPU (it waits on launches, not
    on memory); on a CPU as many as keep a ``(T, N, chunk, hidden)`` float32 tensor within
    :data:`CPU_CHUNK_BYTES`, at least one. The event lists of a batch are built once for all chunks."""
    if device.type == "cuda":
        return runs
    net = config.network_config()
    return max(1, min(runs, CPU_CHUNK_BYTES // (net.T * samples * net.hidden * 4)))


# ---------------------------------------------------------------- a batch, an epoch of S runs


def _chunks(items: Sequence, chunk: int) -> list:
    return [items[i:i + chunk] for i in range(0, len(items), chunk)]


def train_step_stacked(models: Sequence[SRMNetwork], optimizers: Sequence[torch.optim.Optimizer], times: torch.Tensor,
                       order: torch.Tensor | None, labels: torch.Tensor, width: int = 1, chunk: int | None = None,
                       exact: bool | None = None) -> torch.Tensor:
    """One training step of S networks (in train mode) on one batch, ``chunk`` networks at a time (None:
    all), the batch's input events built once; returns ``(S, 4)``: each network's loss times the batch
    size, correct predictions, hidden and input spikes. Each network's step is its single run's
    (:func:`snnlib.experiment.training.train_epoch`'s), bit for bit with ``exact`` (a CPU's default)."""
    events = input_events(models[0].config.T, times, order)
    rows = []
    for part, opts in zip(_chunks(models, chunk or len(models)), _chunks(optimizers, chunk or len(models)),
                          strict=True):
        out = stacked_forward(part, times, order, width, exact, events)
        losses = stacked_losses(out.logits, labels, batched=None if exact is None else not exact)
        for optimizer in opts:
            optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # each loss's gradient (exactly 1 times its own) reaches only its own network
        for optimizer in opts:
            optimizer.step()
        with torch.no_grad():
            rows.append(_batch_totals(losses.detach().double() * labels.shape[0], out, labels))
    return torch.cat(rows)


@torch.no_grad()
def eval_batch_stacked(models: Sequence[SRMNetwork], times: torch.Tensor, order: torch.Tensor | None,
                       labels: torch.Tensor, width: int = 1, chunk: int | None = None,
                       exact: bool | None = None) -> torch.Tensor:
    """One evaluation batch of S networks (in eval mode), ``chunk`` at a time: ``(S, 4)``, each
    network's loss sum, correct predictions, hidden and input spikes, as
    :func:`snnlib.experiment.training.evaluate` sums them."""
    events = input_events(models[0].config.T, times, order)
    rows = []
    for part in _chunks(models, chunk or len(models)):
        out = stacked_forward(part, times, order, width, exact, events)
        losses = stacked_losses(out.logits, labels, "sum", None if exact is None else not exact)
        rows.append(_batch_totals(losses.double(), out, labels))
    return torch.cat(rows)


def train_epoch_stacked(models: Sequence[SRMNetwork], dataset: D.EncodedDataset,
                        optimizers: Sequence[torch.optim.Optimizer], batch_size: int, perm: torch.Tensor,
                        width: int = 1, progress: Callable[[int], None] | None = None,
                        chunk: int | None = None) -> list[EpochStats]:
    """One pass of S networks over ``dataset`` in the order ``perm``, each with its optimizer: per
    network the numbers of :func:`snnlib.experiment.training.train_epoch` with the same order."""
    for model in models:
        model.train()
    device = dataset.times.device
    totals = torch.zeros(len(models), 4, dtype=torch.float64, device=device)  # loss, correct, hidden, input
    for start in range(0, len(dataset), batch_size):
        times, index_order, labels = dataset.batch(perm[start:start + batch_size])
        totals += train_step_stacked(models, optimizers, times, index_order, labels, width, chunk)
        if progress:
            progress(labels.shape[0])
    return [EpochStats(*row) for row in (totals / len(dataset)).tolist()]


def stacked_losses(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean",
                   batched: bool | None = None) -> torch.Tensor:
    """Each network's cross-entropy ``(S,)`` for the logits ``(N, S, out)`` of a stack.

    Not ``batched`` (the default on a CPU): one loss per network, as its single run computes it (bit for
    bit; a batched form sums in another order). ``batched`` (the default on a GPU): one loss for all S,
    fewer launches, the same to rounding."""
    if logits.device.type == "cuda" if batched is None else batched:
        per_sample = F.cross_entropy(logits.permute(0, 2, 1), labels[:, None].expand(-1, logits.shape[1]),
                                     reduction="none")
        return per_sample.mean(0) if reduction == "mean" else per_sample.sum(0)
    return torch.stack([F.cross_entropy(part, labels, reduction=reduction) for part in logits.unbind(1)])


def _batch_totals(loss_sums: torch.Tensor, out: StackOutput, labels: torch.Tensor) -> torch.Tensor:
    """``(S, 4)``: each network's loss sum, correct predictions, hidden and input spikes in a batch."""
    correct = (out.logits.argmax(2) == labels[:, None]).sum(0).double()
    hidden = out.hidden_spikes.detach().sum(dim=(0, 1, 3)).double()  # whole numbers: exact in any order
    inputs = torch.full_like(hidden, float(out.input_spikes))
    return torch.stack([loss_sums, correct, hidden, inputs], 1)


@torch.no_grad()
def evaluate_stacked(models: Sequence[SRMNetwork], dataset: D.EncodedDataset, batch_size: int = EVAL_BATCH,
                     width: int = 1, chunk: int | None = None) -> list[EpochStats]:
    """Loss, accuracy and spike counts of S networks on ``dataset`` in eval mode (dropout off): per
    network the numbers of :func:`snnlib.experiment.training.evaluate`."""
    for model in models:
        model.eval()
    device = dataset.times.device
    totals = torch.zeros(len(models), 4, dtype=torch.float64, device=device)
    for times, order, labels in _batches(dataset, batch_size):
        totals += eval_batch_stacked(models, times, order, labels, width, chunk)
    return [EpochStats(*row) for row in (totals / max(len(dataset), 1)).tolist()]


# ---------------------------------------------------------------- a stack of runs


def run_stack(configs: Sequence[RunConfig], outs: Sequence[str | Path], device: str | None = "auto",
              progress: bool = True, log: Callable[[str], None] = print, width: int | None = None) -> list[dict]:
    """Trains the runs ``configs`` as one stack, run i into folder ``outs[i]`` (each resumed if
    interrupted, skipped if it has ended); returns their records in order.

    Each folder is locked for the whole stack, as :func:`snnlib.experiment.run.run` locks one; every check
    comes before anything is written (the configurations must share a :func:`stack_key`). ``width``:
    networks per gather of eq 3 (None: :func:`default_width`); it changes no number.
    """
    configs = list(configs)
    if not configs or not all(isinstance(c, RunConfig) for c in configs):
        raise TypeError("configs must be a non-empty list of RunConfig")
    if len(outs) != len(configs):
        raise RunError(f"{len(configs)} configurations but {len(outs)} run folders")
    if len({stack_key(c) for c in configs}) != 1:
        raise RunError("the runs of a stack must share their dataset, seed, data sizes, batch size, t_enc and "
                       "network sizes (snnlib.experiment.stack.STACK_KEYS); group them with group_configs")
    paths = [check_out_path(out) for out in outs]
    if len({p.resolve() for p in paths}) != len(paths):
        raise RunError("two runs of a stack name the same folder")
    if width is not None and width < 1:
        raise RunError(f"width must be a positive integer, got {width}")
    dev = resolve_device(device)
    for path in paths:
        _check_run_folder(path)
    created = [_new_folders(path) for path in paths]
    try:
        with contextlib.ExitStack() as locks:
            for path in paths:
                path.mkdir(parents=True, exist_ok=True)
                locks.enter_context(folder_lock(path))
            return _stack_locked(configs, paths, dev, progress, log, width)
    except FolderLocked as err:
        _remove_all(created)
        raise RunError(str(err)) from err
    except OSError as err:
        _remove_all(created)
        raise RunError(str(storage_error(paths[0], err))) from err
    except BaseException:
        _remove_all(created)
        raise


def run_group(group: object, device: str | None = "auto", progress: bool = True,
              log: Callable[[str], None] = print, width: int | None = None) -> list[dict]:
    """The experiment notebook's ``group`` parameter (the runner's ``--stack``) trained as one stack
    (:func:`run_stack`): a list of ``{"config": RunConfig fields, "out_dir": run folder}``, as the runner
    writes it; each entry is checked, a bad one refused in one line. Returns the records in order."""
    if not isinstance(group, list) or not group:
        raise ParameterError(f"group must be a non-empty list of runs, got {group!r}")
    configs, outs = [], []
    for i, entry in enumerate(group, 1):
        if not isinstance(entry, dict) or set(entry) != {"config", "out_dir"}:
            raise ParameterError(f"group entry {i} must be a dict with the keys config and out_dir, got {entry!r}")
        fields_ = check_mapping(f"group entry {i}'s config", entry["config"])
        try:
            configs.append(RunConfig(**fields_))
        except TypeError as err:
            raise ParameterError(f"group entry {i}'s config: {err}") from err
        outs.append(entry["out_dir"])
    return run_stack(configs, outs, device, progress, log, width)


def _remove_all(created: list[list[Path]]) -> None:
    for folders in created:
        _remove_if_empty(folders)


def _stack_locked(configs: list[RunConfig], paths: list[Path], dev: torch.device, progress: bool,
                  log: Callable[[str], None], width: int | None) -> list[dict]:
    data = load_run_data(configs[0], dev)
    records: list[dict | None] = [None] * len(configs)
    states: dict[int, RunState] = {}
    for i, (config, path) in enumerate(zip(configs, paths, strict=True)):
        state = start_run(config, path, dev, log, data=data, own_masks=True)
        if isinstance(state, dict):
            records[i] = state
        else:
            states[i] = state
    bar = None
    if progress and states:
        from tqdm.auto import tqdm

        bar = tqdm(total=max(s.config.epochs for s in states.values()) * len(data.train), unit="sample",
                   unit_scale=True, initial=min(s.done for s in states.values()) * len(data.train),
                   file=sys.stderr, desc=f"{configs[0].dataset} stack of {len(states)}", dynamic_ncols=True)
    training = dict(states)
    while training:
        for i in [i for i, s in training.items() if s.done >= s.config.epochs]:  # a run ends as its epochs do
            records[i] = finish_run(training.pop(i), log)
        if not training:
            break
        epoch = min(s.done for s in training.values()) + 1  # runs resumed further on join when it is theirs
        active = [i for i, s in training.items() if s.done == epoch - 1]
        for i in active:
            record = training[i].record
            record["stacked_runs"] = max(record.get("stacked_runs", 1), len(active))
        for j in _stack_epoch([training[i] for i in active], epoch, data, dev, width, bar, log):
            records[active[j]] = training.pop(active[j]).record  # diverged: its record says so
    if bar:
        bar.close()
    return records  # type: ignore[return-value]


def _stack_epoch(active: list[RunState], epoch: int, data: RunData, dev: torch.device, width: int | None,
                 bar: Any, log: Callable[[str], None]) -> list[int]:
    """Trains and evaluates one epoch of the runs ``active`` (all at ``epoch - 1``) and records it for
    each; returns the positions in ``active`` of the runs that diverged."""
    # each run draws its own order, as its single run does: one stream, one seed, so one permutation
    perms = [torch.randperm(len(data.train), generator=s.order) for s in active]
    if any(not torch.equal(perms[0], perm) for perm in perms[1:]):
        raise RunError("the runs of a stack draw different sample orders; they cannot share batches")
    models, config = [s.model for s in active], active[0].config
    gather = width or default_width(dev, len(active))
    train_chunk = default_chunk(dev, len(active), config.batch_size, config)
    eval_chunk = default_chunk(dev, len(active), EVAL_BATCH, config)
    start = time.perf_counter()
    train = train_epoch_stacked(models, data.train, [s.optimizer for s in active], config.batch_size,
                                perms[0].to(dev), gather, bar.update if bar else None, train_chunk)
    train_time = time.perf_counter() - start
    for s in active:
        s.scheduler.step()
    train_eval = evaluate_stacked(models, data.train_eval, width=gather, chunk=eval_chunk)
    val = [None] * len(active) if data.val is None else evaluate_stacked(models, data.val, width=gather,
                                                                         chunk=eval_chunk)
    test = evaluate_stacked(models, data.test, width=gather, chunk=eval_chunk)
    share = len(active)  # each run's share of the stack's time
    epoch_time = (time.perf_counter() - start) / share
    diverged = []
    for j, s in enumerate(active):
        if not end_epoch(s, epoch, train[j], train_eval[j], val[j], test[j], len(data.train) * share / train_time,
                         epoch_time, log):
            diverged.append(j)
    if bar:
        bar.set_postfix(epoch=epoch, runs=share)
    return diverged
