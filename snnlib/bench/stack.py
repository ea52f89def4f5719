"""``python -m snnlib bench --stack``: S runs trained as one stack against the same S runs one by one.

In ONE process, on the same real data, for each stack size S (``--sizes``, default 1, 4, 16 and 64) and
dataset: arm A trains S networks one after another, each with its own forward pass (what S single runs
do, event lists included), arm B trains the same S networks as one stack
(:func:`snnlib.experiment.stack.train_step_stacked`, the stacked trainer's step, in its default chunks:
:func:`snnlib.experiment.stack.default_chunk`, or ``--chunk``). Both arms start from the same weights and
mask streams and see the same batches, so they train the same networks: after timing, the weights of A
and B are compared (``identical``). The networks are
a study group: the paper's six kinds on the synaptic current, per-step masks, p = 0.5 (none, dropout,
dropout2d, feature, feature alpha, alpha, repeated), each with its own Adam.

Timed in ``--repeats`` rounds, A and B alternating step by step (A's step, then B's on the same batch), then
one evaluation batch of :data:`snnlib.experiment.training.EVAL_BATCH` test samples each (dropout off, as the
per-epoch evaluations). Reported: medians in ms per run and step (per run and evaluation batch), and the
medians of the rounds' ratios A / B (paired: robust to a load that drifts over a round): for the training
steps, the evaluation, and a whole epoch of the study's runs composed from them (``epoch_ratio``: 55,000 or
45,000 training samples and 25,000 evaluated ones per epoch).

Also counted, per training step and per evaluation batch: the operations dispatched
(:func:`count_operations`; views and other metadata-only operations left out), each a kernel launch on a
GPU. On a GPU at this batch size a step waits on its launches, so these counts are what the stack saves
there; ``scripts/project_stack.py`` turns them and the H200 measurements into a projection.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from snnlib.experiment import data as D
from snnlib.experiment.config import RunConfig
from snnlib.experiment.stack import default_chunk, default_width, eval_batch_stacked, train_step_stacked
from snnlib.experiment.training import EVAL_BATCH
from snnlib.model.network import NetworkConfig, SRMNetwork

GROUP_KINDS = ("none", "dropout", "dropout2d", "feature", "feature_alpha", "alpha")
# per epoch of the study's runs (val_size 5000): training samples, and samples evaluated (10,000 of the
# training data, the 5,000 of the validation split, the 10,000 test samples)
EPOCH_TRAIN = {"mnist": 55_000, "cifar10": 45_000}
EPOCH_EVAL_BATCHES = math.ceil(10_000 / EVAL_BATCH) + math.ceil(5_000 / EVAL_BATCH) + math.ceil(10_000 / EVAL_BATCH)


def group(dataset: str, runs: int, device: torch.device) -> tuple[list[SRMNetwork], list[torch.optim.Optimizer]]:
    """``runs`` networks of a study group (:data:`GROUP_KINDS` in turn), the same initial weights (seed 0),
    each with its own fused Adam and its own mask generator (seed 1)."""
    in_features = 784 if dataset == "mnist" else 3072
    networks, optimizers = [], []
    for s in range(runs):
        kind = GROUP_KINDS[s % len(GROUP_KINDS)]
        torch.manual_seed(0)
        net = SRMNetwork(NetworkConfig(in_features=in_features, dropout=kind, p=0.0 if kind == "none" else 0.5))
        net = net.to(device)
        net.dropout.generator = torch.Generator(device=device).manual_seed(1)
        networks.append(net)
        optimizers.append(torch.optim.Adam(net.parameters(), lr=1e-3, fused=True))
    return networks, optimizers


def single_step(networks: list[SRMNetwork], optimizers: list[torch.optim.Optimizer], times: torch.Tensor,
                order: torch.Tensor, labels: torch.Tensor) -> None:
    """One training step of each network on its own (arm A: S single runs)."""
    for net, optimizer in zip(networks, optimizers, strict=True):
        net.train()
        loss = F.cross_entropy(net(times, order).logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def stacked_step(networks: list[SRMNetwork], optimizers: list[torch.optim.Optimizer], times: torch.Tensor,
                 order: torch.Tensor, labels: torch.Tensor, width: int = 1, chunk: int | None = None,
                 exact: bool | None = None) -> None:
    """One training step of the networks as one stack (arm B): the stacked trainer's step."""
    for net in networks:
        net.train()
    train_step_stacked(networks, optimizers, times, order, labels, width, chunk, exact)


@torch.no_grad()
def single_eval(networks: list[SRMNetwork], times: torch.Tensor, order: torch.Tensor, labels: torch.Tensor) -> None:
    """An evaluation batch (dropout off) of each network on its own."""
    for net in networks:
        net.eval()
        F.cross_entropy(net(times, order).logits, labels, reduction="sum")


def stacked_eval(networks: list[SRMNetwork], times: torch.Tensor, order: torch.Tensor, labels: torch.Tensor,
                 width: int = 1, chunk: int | None = None, exact: bool | None = None) -> None:
    """An evaluation batch of the networks as one stack: the stacked trainer's."""
    for net in networks:
        net.eval()
    eval_batch_stacked(networks, times, order, labels, width, chunk, exact)


# metadata-only operations: no kernel runs for them
_NO_KERNEL = ("view", "_unsafe_view", "reshape", "alias", "detach", "t", "transpose", "permute", "expand",
              "unsqueeze", "squeeze", "select", "slice", "as_strided", "unbind", "split", "split_with_sizes",
              "chunk", "narrow", "lift_fresh", "_reshape_alias", "set_", "empty", "empty_like", "empty_strided",
              "new_empty", "new_empty_strided", "_local_scalar_dense", "is_same_size", "numpy_T",
              "_record_function_enter_new", "_record_function_exit")


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        if func.overloadpacket.__name__.rstrip("_") not in _NO_KERNEL and func.overloadpacket.__name__ not in _NO_KERNEL:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_operations(fn: Callable[[], object]) -> int:
    """The operations ``fn`` dispatches (its backward and optimizer steps included), leaving out views and
    other metadata-only ones: about the kernels it would launch on a GPU."""
    with _Counter() as counter:
        fn()
    return counter.count


def _clock(device: torch.device) -> float:
    """Seconds, after the device's queued work has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def bench_stack(dataset: str, device: torch.device, args: argparse.Namespace,
                log: Callable[[str], None] = print) -> list[dict]:
    """Arms A (S single runs) and B (one stack of S) for each S of ``args.sizes`` (see the module docstring)."""
    train = D.encoded(dataset, "train", 12, device)
    test = D.encoded(dataset, "test", 12, device)
    batch = args.batch_size
    steps_needed = args.warmup + args.repeats * args.steps
    if steps_needed * batch > len(train):
        raise ValueError(f"{steps_needed} steps of {batch} need more than the {len(train)} training samples")
    batches = [train.batch(torch.arange(i * batch, (i + 1) * batch, device=device)) for i in range(steps_needed)]
    evaluation = test.batch(torch.arange(EVAL_BATCH, device=device))
    results = []
    for runs in args.sizes:
        row = _measure(dataset, runs, device, args, batches, evaluation)
        results.append(row)
        ops = row["operations"]
        log(f"{dataset} S={runs}: training {row['single_train_ms']:.2f} -> {row['stacked_train_ms']:.2f} ms per run "
            f"and step ({row['train_ratio']:.2f}x), evaluation {row['single_eval_ms']:.1f} -> {row['stacked_eval_ms']:.1f} "
            f"ms per run and batch ({row['eval_ratio']:.2f}x), epoch {row['epoch_ratio']:.2f}x; operations per step "
            f"{ops['single_step']} -> {ops['stacked_step']}; same weights: {row['identical_weights']}")
    return results


def _measure(dataset: str, runs: int, device: torch.device, args: argparse.Namespace, batches: list,
             evaluation: tuple) -> dict:
    """Arms A and B for one stack size, alternating (see :func:`bench_stack`)."""
    width = args.width or default_width(device, runs)
    config = RunConfig(dataset=dataset)
    chunks = {"train": args.chunk or default_chunk(device, runs, args.batch_size, config),
              "eval": args.chunk or default_chunk(device, runs, EVAL_BATCH, config)}
    nets_a, opts_a = group(dataset, runs, device)
    nets_b, opts_b = group(dataset, runs, device)
    arms = {"single": (lambda i: single_step(nets_a, opts_a, *batches[i]), lambda: single_eval(nets_a, *evaluation)),
            "stacked": (lambda i: stacked_step(nets_b, opts_b, *batches[i], width, chunks["train"]),
                        lambda: stacked_eval(nets_b, *evaluation, width, chunks["eval"]))}
    train_ms: dict[str, list[float]] = {"single": [], "stacked": []}
    eval_ms: dict[str, list[float]] = {"single": [], "stacked": []}
    for i in range(args.warmup):
        for step, _ in arms.values():
            step(i)
    for r in range(args.repeats):
        first = args.warmup + r * args.steps
        spent = {name: 0.0 for name in arms}
        for i in range(first, first + args.steps):
            for name, (step, _) in arms.items():  # A's step, then B's on the same batch: paired under one load
                spent[name] -= _clock(device)
                step(i)
                spent[name] += _clock(device)
        for name, (_, evaluate) in arms.items():
            train_ms[name].append(1e3 * spent[name] / (args.steps * runs))
            start = _clock(device)
            evaluate()
            eval_ms[name].append(1e3 * (_clock(device) - start) / runs)
    identical = all(torch.equal(a, b) for net_a, net_b in zip(nets_a, nets_b, strict=True)
                    for a, b in zip(net_a.parameters(), net_b.parameters(), strict=True))
    ops = {"single_step": count_operations(lambda: arms["single"][0](0)),
           "stacked_step": count_operations(lambda: arms["stacked"][0](0)),
           "single_eval": count_operations(arms["single"][1]),
           "stacked_eval": count_operations(arms["stacked"][1]),
           # what the stack dispatches on a GPU: one gather for all S, batched loss and evaluation readout
           "stacked_step_gpu_form": count_operations(lambda: stacked_step(nets_b, opts_b, *batches[0], runs, runs,
                                                                          False)),
           "stacked_eval_gpu_form": count_operations(lambda: stacked_eval(nets_b, *evaluation, runs, runs, False))}
    return {**_row(dataset, runs, width, train_ms, eval_ms, ops, identical), "chunks": chunks}


def _row(dataset: str, runs: int, width: int, train_ms: dict, eval_ms: dict, ops: dict, identical: bool) -> dict:
    med = {f"{arm}_{part}_ms": statistics.median(times[arm]) for part, times in (("train", train_ms), ("eval", eval_ms))
           for arm in ("single", "stacked")}
    steps = math.ceil(EPOCH_TRAIN[dataset] / 128)
    epoch = {arm: steps * med[f"{arm}_train_ms"] + EPOCH_EVAL_BATCHES * med[f"{arm}_eval_ms"]
             for arm in ("single", "stacked")}
    # each round's ratio, A over B measured side by side: the median of these is robust to a load that drifts
    rounds = [(steps * a + EPOCH_EVAL_BATCHES * ea) / (steps * b + EPOCH_EVAL_BATCHES * eb) for a, b, ea, eb in
              zip(train_ms["single"], train_ms["stacked"], eval_ms["single"], eval_ms["stacked"], strict=True)]
    return {"dataset": dataset, "runs": runs, "width": width, **med,
            "train_ratio": statistics.median(a / b for a, b in zip(train_ms["single"], train_ms["stacked"], strict=True)),
            "eval_ratio": statistics.median(a / b for a, b in zip(eval_ms["single"], eval_ms["stacked"], strict=True)),
            "epoch_ratio": statistics.median(rounds), "epoch_ratio_of_medians": epoch["single"] / epoch["stacked"],
            "epoch_s_per_run": {arm: epoch[arm] / 1e3 for arm in epoch},
            "operations": ops, "operations_per_run": {k: v / runs for k, v in ops.items()},
            "identical_weights": identical,
            "train_ms": train_ms, "eval_ms": eval_ms}
