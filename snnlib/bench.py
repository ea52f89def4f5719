"""Training-throughput benchmark: snnlib against a dense reference and snnTorch/SpikingJelly.

Everything runs in ONE process on the same real data (the first samples of the test
split), so the printed ratios compare like with like. One measurement is the whole
training step: forward, backward and the Adam step, in samples per second, the median
of several timed repetitions after a warm-up. Peak memory is measured for each competitor in a fresh process
(CPU: peak resident memory during training steps above the level before them, which
includes the data and the model) or as the peak allocated device memory (CUDA).

Competitors:

* ``snnlib``: the study's network (event-driven first layer), with the chosen dropout.
* ``dense``: the same network and weights, time-stepped: at every step the window of
  the last ``max(d_k) + 1`` raster slices is multiplied by the weights (one matrix
  product per step), and the eq-2 kernel runs as its exact two-state recurrence. Its
  potentials are checked against snnlib's before timing.
* ``snntorch`` / ``spikingjelly``: what a user would pick instead: 784 or 3072 inputs, 128
  hidden, 10 outputs, T steps, second-order (alpha-like) neurons without delays. Optional
  (``make bench-deps``); reported as missing when not installed.

``--scaling``: snnlib alone as T, K and the hidden size vary. ``--limits``: how close
snnlib's training step comes to this machine's limits. In the same process and with the
same threads it measures the memory bandwidth (a copy and an add of arrays larger than the
caches, and of cache-sized ones) and the float32 matrix-multiply rate, then times the step
and each of its parts on one real batch (the event lists, eq 3's gather and its gradient,
the dropout mask and its application, eq 1's kernel product, the first-spike gate, the
readout layer, Adam). Each part's bytes and flops are counted from the shapes (the
``*_work`` functions state the formulas), giving its share of the step, the GB/s and
GFLOP/s it reaches and its fraction of the roofline bound
``max(bytes / bandwidth, flops / matmul rate)``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import data as D
from . import functional as SF
from .dropout import ALPHA_KINDS, alpha_dropout_apply, dropout_inverted, keep_mask, mask_shape
from .kernels import times_to_raster
from .network import NetworkConfig, SRMNetwork
from .system import DEVICE_CHOICES, device_description, git_commit, resolve_device, write_json_atomic

# ---------------------------------------------------------------- the dense reference


class DenseSRMNetwork(nn.Module):
    """snnlib's network computed the dense, time-stepped way (shares ``source``'s weights).

    Per step ``t``: ``z_t = [s_{t-d_0}, ..., s_{t-d_{K-1}}] @ W`` (one product of the
    ``(N, K * I)`` delayed raster window with the ``(K * I, H)`` weights), then the
    kernel of eq 2 as its two-state recurrence ``a_t = l a_{t-1} + z_t``,
    ``b_t = l (b_{t-1} + a_{t-1})``, ``v_t = (e / tau) b_t`` with ``l = exp(-1 / tau)``
    (``b_t = sum_s (t - s) l^(t - s) z_s``, exactly eq 2 at integer steps).
    """

    def __init__(self, source: SRMNetwork):
        super().__init__()
        self.source = source
        self.config = source.config

    def _currents(self, raster: torch.Tensor, weight_events: torch.Tensor) -> torch.Tensor:
        """Synaptic current ``(T, N, C)``: one product of the delayed window per step."""
        T, N, n_in = raster.shape
        K, _, C = weight_events.shape
        w = weight_events.reshape(K * n_in, C)  # rows (k, i)
        zero = raster.new_zeros(N, n_in)
        return torch.stack([
            torch.cat([raster[t - d] if t >= d else zero for d in self.config.delays], dim=1) @ w
            for t in range(T)])

    def _integrate(self, current: torch.Tensor, fire: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
        """Eq 2's kernel as its two-state recurrence; potentials, or first spikes if ``fire``."""
        tau = self.config.tau
        decay, gain = math.exp(-1.0 / tau), math.e / tau
        a = current.new_zeros(current.shape[1:])
        b, fired = torch.zeros_like(a), torch.zeros_like(a)
        outputs = []
        for z in current:
            b = decay * (b + a)
            a = decay * a + z
            v = gain * b
            if fire is None:
                outputs.append(v)
            else:  # first spike only: gate by "not fired before" (no gradient through the gate)
                s = fire(v) * (1 - fired)
                fired = fired + s.detach()
                outputs.append(s)
        return torch.stack(outputs)

    def potentials(self, raster: torch.Tensor) -> torch.Tensor:
        """Hidden-layer potentials ``(T, N, H)`` (to check against ``SRMLayer.potential``)."""
        return self._integrate(self._currents(raster, self.source.hidden.weight_events), None)

    def forward(self, raster: torch.Tensor) -> torch.Tensor:
        from .functional import _SpikeFn

        c, dropout = self.config, self.source.dropout

        def fire(v: torch.Tensor) -> torch.Tensor:
            return _SpikeFn.apply(v - c.threshold, c.surrogate_slope)

        if c.site == "input":
            raster = dropout(raster)
        current = self._currents(raster, self.source.hidden.weight_events)
        if c.site == "current":
            current = dropout(current)
        spikes = self._integrate(current, fire)
        if c.site == "hidden":
            spikes = dropout(spikes)
        out = self._integrate(self._currents(spikes, self.source.output.weight_events), None)
        return c.readout_scale * out.amax(0)


# ---------------------------------------------------------------- competitors


def _snntorch_net(n_in: int, T: int, tau: float) -> nn.Module | None:
    if importlib.util.find_spec("snntorch") is None:
        return None
    import snntorch as snn

    decay = math.exp(-1.0 / tau)

    class SnnTorchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(n_in, 128), nn.Linear(128, 10)
            self.lif1 = snn.Synaptic(alpha=decay, beta=decay)
            self.lif2 = snn.Synaptic(alpha=decay, beta=decay, threshold=1e9)  # readout: no spikes

        def forward(self, raster: torch.Tensor) -> torch.Tensor:
            syn1, mem1 = self.lif1.init_synaptic()
            syn2, mem2 = self.lif2.init_synaptic()
            peak = None
            for t in range(T):
                spk1, syn1, mem1 = self.lif1(self.fc1(raster[t]), syn1, mem1)
                _, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
                peak = mem2 if peak is None else torch.maximum(peak, mem2)
            return peak

    return SnnTorchNet()


def _spikingjelly_net(n_in: int, T: int, tau: float) -> nn.Module | None:
    if importlib.util.find_spec("spikingjelly") is None:
        return None
    from spikingjelly.activation_based import functional, layer, neuron

    class SpikingJellyNet(nn.Module):
        """Multi-step (T, N, ...) SpikingJelly network: Linear -> LIF -> Linear -> max potential."""

        def __init__(self) -> None:
            super().__init__()
            self.fc1 = layer.Linear(n_in, 128, step_mode="m")
            self.lif1 = neuron.LIFNode(tau=tau, step_mode="m", detach_reset=True)
            self.fc2 = layer.Linear(128, 10, step_mode="m")
            self.out = neuron.LIFNode(tau=tau, step_mode="m", v_threshold=float("inf"), store_v_seq=True)

        def forward(self, raster: torch.Tensor) -> torch.Tensor:
            functional.reset_net(self)
            self.out(self.fc2(self.lif1(self.fc1(raster))))
            return self.out.v_seq.amax(0)

    return SpikingJellyNet()


# ---------------------------------------------------------------- measuring


def measure(step: Callable[[int], None], batch_size: int, device: torch.device, warmup: int,
            repeats: int, steps: int) -> dict:
    """Median samples/s over ``repeats`` timed blocks of ``steps`` training steps.

    On CUDA also the peak allocated memory of the timed steps; on the CPU memory is
    measured separately, in a fresh process (see :func:`memory_probe`), because a process
    that already ran other networks keeps their memory.
    """
    for i in range(warmup):
        step(i)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rates = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            step(r * steps + i)
        sync()
        rates.append(batch_size * steps / (time.perf_counter() - start))
    result = {"samples_per_s": statistics.median(rates), "rates": rates}
    if device.type == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


# Linux's view of the running process (procfs), not a file of any machine
PROC_SELF = Path("/proc/self")


def _rss_mb() -> float:
    with open(PROC_SELF / "statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_probe(name: str, competitor: str, batch_size: int, variant: str, p: float, steps: int) -> dict:
    """In THIS (fresh) process: resident memory before training and its peak during ``steps`` steps."""
    device = torch.device("cpu")
    candidates = _candidates(name, _bench_data(name, device, batch_size), device, batch_size, variant, p,
                             [competitor])
    step = candidates.get(competitor)
    if step is None:
        return {}
    gc.collect()
    before = _rss_mb()
    with open(PROC_SELF / "clear_refs", "w") as f:  # Linux: reset the peak (VmHWM) to the current RSS
        f.write("5")
    for i in range(steps):
        step(i)
    with open(PROC_SELF / "status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    return {"rss_before_mb": before, "peak_rss_mb": peak, "peak_mb": peak - before}


def _probe_in_subprocess(name: str, competitor: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "snnlib", "bench", "--memory-probe", competitor, "--datasets", name,
           "--batch-size", str(args.batch_size), "--variant", args.variant, "--p", str(args.p)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _bench_data(name: str, device: torch.device, batch_size: int) -> D.EncodedDataset:
    """The first 8 batches of the real test set of ``name``, encoded once."""
    images, labels = D.load(name, "test")
    n = batch_size * 8
    return D.encode(images[:n], labels[:n], t_enc=12, device=device)


def _candidates(name: str, encoded: D.EncodedDataset, device: torch.device, batch_size: int, variant: str,
                p: float, competitors: list[str], **network: int) -> dict[str, Callable[[int], None] | None]:
    """A training-step function per competitor, all on the same real batches of ``name``."""
    config = NetworkConfig(**{"in_features": encoded.features, "dropout": variant, "p": p, **network})
    T = config.T
    batches = [encoded.batch(torch.arange(i * batch_size, (i + 1) * batch_size, device=device))
               for i in range(8)]
    torch.manual_seed(0)
    model = SRMNetwork(config).to(device)
    dense = DenseSRMNetwork(model)
    # same potentials, or the comparison means nothing
    raster = times_to_raster(batches[0][0], T)
    with torch.no_grad():
        ours, theirs = model.hidden.potential(raster), dense.potentials(raster)
    err = (ours - theirs).abs().max().item()
    if not err <= 1e-4 * max(1.0, ours.abs().max().item()):
        raise RuntimeError(f"dense reference disagrees with snnlib on {name}: max |dv| = {err}")

    def trainer(net: nn.Module, forward: Callable[[tuple], torch.Tensor]) -> Callable[[int], None]:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
        net.train()

        def step(i: int) -> None:
            batch = batches[i % len(batches)]
            loss = F.cross_entropy(forward(batch), batch[2])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    candidates: dict[str, Callable[[int], None] | None] = {}
    if "snnlib" in competitors:
        candidates["snnlib"] = trainer(model, lambda b: model(b[0], b[1]).logits)
    if "dense" in competitors:
        candidates["dense"] = trainer(dense, lambda b: dense(times_to_raster(b[0], T)))
    for label, factory in (("snntorch", _snntorch_net), ("spikingjelly", _spikingjelly_net)):
        if label in competitors:
            net = factory(encoded.features, T, config.tau)
            candidates[label] = None if net is None else trainer(
                net.to(device), lambda b, net=net: net(times_to_raster(b[0], T)))
    return candidates


def bench_dataset(name: str, device: torch.device, args: argparse.Namespace,
                  log: Callable[[str], None] = print) -> list[dict]:
    """Measures every competitor on ``name``; returns one result dict each."""
    competitors = ["snnlib", *[c for c in args.competitors if c != "snnlib"]]
    encoded = _bench_data(name, device, args.batch_size)
    candidates = _candidates(name, encoded, device, args.batch_size, args.variant, args.p, competitors)
    results = []
    for label in competitors:
        step = candidates.get(label)
        if step is None:
            log(f"{name:8s} {label:12s} not installed (run `make bench-deps`); skipped")
            continue
        result = measure(step, args.batch_size, device, args.warmup, args.repeats, args.steps)
        result.update(dataset=name, competitor=label)
        results.append(result)
    if device.type == "cpu":
        for r in results:
            r.update(_probe_in_subprocess(name, r["competitor"], args))
    ours = results[0]["samples_per_s"]
    for r in results:
        ratio = "" if r["competitor"] == "snnlib" else f"  snnlib is {ours / r['samples_per_s']:.1f}x faster"
        memory = f"peak {r['peak_mb']:7.1f} MB" if "peak_mb" in r else "peak      ? MB"
        log(f"{name:8s} {r['competitor']:12s} {r['samples_per_s']:9.0f} samples/s  {memory}{ratio}")
    return results


SCALING = {"T": [16, 24, 32, 48], "K": [2, 4, 8], "hidden": [64, 128, 256]}


def scaling(device: torch.device, args: argparse.Namespace, log: Callable[[str], None] = print) -> list[dict]:
    """snnlib alone: how throughput changes with T, K and the hidden size (one at a time)."""
    results = []
    for name in args.datasets:
        encoded = _bench_data(name, device, args.batch_size)
        for factor, values in SCALING.items():
            for value in values:
                step = _candidates(name, encoded, device, args.batch_size, args.variant, args.p, ["snnlib"],
                                   **{factor: value})["snnlib"]
                r = measure(step, args.batch_size, device, args.warmup, args.repeats, args.steps)
                r.update(dataset=name, competitor="snnlib", factor=factor, value=value)
                results.append(r)
                log(f"{name:8s} {factor:6s} = {value:4d}  {r['samples_per_s']:9.0f} samples/s")
    return results


# ---------------------------------------------------------------- how close to the machine's limit


@dataclass(frozen=True)
class Work:
    """What one part of the training step moves and computes, per batch.

    ``bytes``: the roofline's compulsory traffic, every distinct element the part reads or
    writes counted once (inputs, outputs, tensors saved for the backward pass), as one
    fused pass with perfect cache reuse would move it. Passes into which PyTorch splits an
    element-wise chain, and a gather's repeated reads of one row (one per event), are cache
    traffic and not counted, so ``bytes / bandwidth`` is a lower bound of the part's time.
    ``flops``: the floating-point operations it executes (a matrix product of ``(m, k)``
    by ``(k, n)`` is ``2 m k n``, dense even where a factor is triangular; an element-wise
    add, multiply, compare or square is 1). ``matmul_flops``: the part of ``flops`` done by
    matrix products (what torch's FLOP counter counts). ``cache_bytes``: what the part loads
    and stores where it differs from ``bytes``: a gather reads one row per event and delay,
    from a table that stays in the caches (None: the same as ``bytes``).
    """

    bytes: float
    flops: float
    matmul_flops: float = 0.0
    cache_bytes: float | None = None

    @property
    def touched(self) -> float:
        """The bytes loaded and stored: ``cache_bytes``, or ``bytes`` when that is None."""
        return self.bytes if self.cache_bytes is None else self.cache_bytes

    def __add__(self, other: Work) -> Work:
        return Work(self.bytes + other.bytes, self.flops + other.flops, self.matmul_flops + other.matmul_flops,
                    self.touched + other.touched)


F32, I32 = 4, 4  # bytes of a float32 value and of an int32 index


def events_work(N: int, I: int, T: int, E: int, bags: int) -> Work:
    """Building the event lists (:func:`snnlib.functional.events_from_times`) of a batch.

    Reads the first-spike times ``N I`` (uint8, 1 byte) and their row-wise order ``N I``
    (int32); writes the two index lists ``2 E`` and their offsets ``N bags + I`` (int32).
    ``E`` is the number of events (input spikes, plus the silent inputs when they are kept
    as events past the window), ``bags`` the bags per sample (``T`` or ``T + 1``). No
    floating-point work.
    """
    return Work(N * I * (1 + I32) + (2 * E + N * bags + I) * I32, 0.0)


def gather_forward_work(N: int, T: int, K: int, I: int, H: int, E: int, bags: int) -> Work:
    """Eq 3 forward (:class:`snnlib.functional._EventCurrent`): ``K`` bag sums, then the delay sum.

    ``E`` events (input spikes, plus the silent inputs when they are kept as events past
    the window) each gather one weight row of ``H`` floats per delay into their bag.
    Bytes: the rows that can be read, ``K min(E, I)`` of the ``(K, I, H)`` table, the ``E``
    indices and ``N bags`` offsets, and the current ``(T, N, H)`` written:
    ``4 (K min(E, I) H + E + N bags + T N H)``; loaded and stored (``cache_bytes``): every
    gathered row, ``4 (K E H + K E + K N bags + T N H)``. Flops: one add per gathered
    element, ``K E H`` (what a dense product of the raster would do with ``2 T N I K H``).
    """
    out = F32 * T * N * H
    return Work(F32 * K * min(E, I) * H + I32 * (E + N * bags) + out, float(K * E * H),
                cache_bytes=F32 * K * E * H + I32 * K * (E + N * bags) + out)


def gather_backward_work(N: int, T: int, K: int, I: int, H: int, E: int) -> Work:
    """Eq 3 backward: the weight gradient, one bag sum over ``K E`` rows of the current's gradient.

    Bytes: the rows of the ``(T, N, H)`` gradient that can be read, ``min(K E, T N)``, the
    ``E`` event indices and ``I`` offsets, and the weight gradient ``(K, I, H)`` written:
    ``4 (min(K E, T N) H + E + I + K I H)``; loaded and stored (``cache_bytes``): every
    gathered row and the ``K``-fold index, ``4 (K E H + K E + K I + K I H)``. Flops: ``K E H``.
    """
    out = F32 * K * I * H
    return Work(F32 * min(K * E, T * N) * H + I32 * (E + I) + out, float(K * E * H),
                cache_bytes=F32 * K * E * H + I32 * K * (E + I) + out)


def mask_work(mask_elements: int) -> Work:
    """Drawing a dropout mask (:func:`snnlib.dropout.keep_mask`): ``M`` uniform draws compared with p.

    Bytes: the mask written once, ``4 M``. Flops: the comparison, ``M``. The random number
    generator's own work (PyTorch's CPU generator is a serial Mersenne Twister) is neither
    bytes nor flops: a part limited by it shows a small fraction of the limit.
    """
    return Work(F32 * mask_elements, float(mask_elements))


def dropout_apply_work(elements: int, mask_elements: int, alpha: bool = False) -> Work:
    """Applying a dropout mask of ``M`` elements to ``X`` elements of the current (one direction).

    Forward ``y = x r / (1 - p)`` reads ``x`` and the mask and writes ``y``: bytes
    ``4 (2 X + M)``, flops ``2 X`` (alpha dropout ``a (x r + alpha' (1 - r)) + b``: ``6 X``).
    The backward ``g r / (1 - p)`` (alpha: ``a g r``) is the same work as the plain forward.
    """
    return Work(F32 * (2 * elements + mask_elements), float((6 if alpha else 2) * elements))


def kernel_product_work(T: int, columns: int) -> Work:
    """Eq 1 as a Toeplitz product ``E @ Z`` of the ``(T, T)`` kernel with ``(T, columns)`` (one direction).

    Forward and backward (``E^T @ G``) each: bytes ``4 (T T + 2 T columns)`` (the kernel,
    the input read and the output written), flops ``2 T T columns`` (the dense product;
    half of it multiplies the kernel's zeros above the diagonal).
    """
    flops = 2.0 * T * T * columns
    return Work(F32 * (T * T + 2 * T * columns), flops, flops)


def gate_forward_work(T: int, elements_per_step: int) -> Work:
    """The first-spike gate forward (:func:`snnlib.functional.first_spikes`) on ``(T, N, H)`` potentials.

    ``crossed = v >= theta``; ``before = L @ crossed`` with the strictly lower-triangular
    ``(T, T)`` ones ``L``; ``alive = before == 0``; ``spikes = crossed * alive``. With
    ``X = T N H``: bytes ``4 (3 X + T T)`` (potentials read, spikes and the saved
    ``alive`` written), flops ``2 T X + 3 X`` (the product and three element-wise passes).
    """
    X = T * elements_per_step
    matmul = 2.0 * T * X
    return Work(F32 * (3 * X + T * T), matmul + 3 * X, matmul)


def gate_backward_work(T: int, elements_per_step: int) -> Work:
    """The gate backward: ``g / (1 + slope |v - theta|)^2 * alive``.

    Bytes ``4 * 4 X`` (the gradient, the potentials and ``alive`` read, the gradient
    written), flops ``7 X`` (subtract, abs, multiply, add, square, divide, multiply).
    """
    X = T * elements_per_step
    return Work(F32 * 4 * X, 7.0 * X)


def output_forward_work(N: int, T: int, K: int, H: int, O: int, delays: list[int]) -> Work:
    """The readout layer forward: eq 3 as a dense product (the hidden spikes need a gradient at
    every step), the delay sum, eq 1 and the maximum over time.

    Flops: ``2 T N H K O`` (spikes ``(T N, H)`` by the weights ``(H, K O)``),
    ``sum_k (T - d_k) N O`` (delay sum), ``2 T T N O`` (kernel), ``T N O`` (max). Bytes:
    the spikes ``T N H`` and weights ``K H O`` read, the potentials ``T N O`` (saved for the
    max's gradient) and the logits ``N O`` written, times 4.
    """
    products = 2.0 * T * N * H * K * O + 2.0 * T * T * N * O
    flops = products + sum(T - d for d in delays) * N * O + T * N * O
    return Work(F32 * (T * N * H + K * H * O + T * N * O + N * O), flops, products)


def output_backward_work(N: int, T: int, K: int, H: int, O: int) -> Work:
    """The readout layer backward: the max's gradient, eq 1's (``E^T @ G``), the delay sum's
    (copies) and the dense product's two gradients (spikes and weights).

    Flops: ``4 T N H K O`` (two products of the forward's size) ``+ 2 T T N O + T N O``.
    Bytes: the logits' gradient ``N O``, the saved potentials ``T N O``, the spikes ``T N H``
    and weights ``K H O`` read; the spikes' gradient ``T N H`` and the weights' ``K H O``
    written; times 4.
    """
    products = 4.0 * T * N * H * K * O + 2.0 * T * T * N * O
    return Work(F32 * (N * O + T * N * O + 2 * T * N * H + 2 * K * H * O), products + T * N * O, products)


ADAM_FLOPS_PER_PARAMETER = 12  # two moment updates (7), bias-corrected step with sqrt and eps (about 5)


def adam_work(parameters: int) -> Work:
    """One fused Adam step over ``P`` parameters: reads the parameter, its gradient and the two
    moments, writes the parameter and the moments: bytes ``4 * 7 P``; flops about ``12 P``."""
    return Work(F32 * 7 * parameters, float(ADAM_FLOPS_PER_PARAMETER * parameters))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _call_times(fn: Callable[[], object], device: torch.device, calls: int) -> list[float]:
    """Seconds of each of ``calls`` single calls of ``fn``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _fastest_and_median(times: list[float]) -> dict:
    return {"fastest_s": min(times), "median_s": statistics.median(times)}


def time_calls(fn: Callable[[], object], device: torch.device, calls: int = 50, warmup: int = 1) -> dict:
    """Seconds of single calls of ``fn`` after ``warmup`` calls: the fastest and the median of ``calls``.

    The fastest call is the one least disturbed by other processes (on a shared or busy machine
    the median mostly measures them); each call is timed alone, so that one fits between them.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    return _fastest_and_median(_call_times(fn, device, calls))


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, rounds: int = 5, calls: int = 10,
                     warmup: int = 1) -> dict[str, dict]:
    """:func:`time_calls` of several functions taken in turns: ``rounds`` rounds of ``calls`` calls of each.

    A spell of other work on the machine then slows a few calls of every function rather
    than all the calls of one. Returns each function's fastest and median call.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(rounds):
        for label, fn in fns.items():
            times[label] += _call_times(fn, device, calls)
    return {label: _fastest_and_median(t) for label, t in times.items()}


def _bandwidths(device: torch.device, copy_mb: int, repeats: int) -> tuple[float, float]:
    """GB/s of a copy ``b = a`` (2 arrays moved) and of an add ``c = a + b`` (3 arrays) of ``copy_mb`` MB each."""
    n = copy_mb * 2**20 // F32
    a = torch.rand(n, device=device)
    b, c = torch.empty_like(a), torch.empty_like(a)
    copy_s = time_calls(lambda: b.copy_(a), device, repeats)["fastest_s"]
    add_s = time_calls(lambda: torch.add(a, b, out=c), device, repeats)["fastest_s"]
    return 2 * n * F32 / copy_s / 1e9, 3 * n * F32 / add_s / 1e9


def _matmul_rate(device: torch.device, n: int, repeats: int) -> float:
    """GFLOP/s of a float32 ``(n, n) @ (n, n)`` product (``2 n^3`` flops)."""
    x = torch.rand(n, n, device=device)
    y, z = torch.rand_like(x), torch.empty_like(x)
    return 2.0 * n**3 / time_calls(lambda: torch.mm(x, y, out=z), device, repeats)["fastest_s"] / 1e9


# sizes of the limit measurements: arrays far larger than the caches (a CPU's L3 of tens of MB, a
# GPU's L2), cache-sized arrays (one (T, N, hidden) activation is 1.5 MB), square matrix products
LIMIT_SIZES = {"cpu": {"copy_mb": 64, "cache_mb": 2, "matmul_n": (512, 1024, 2048)},
               "cuda": {"copy_mb": 1024, "cache_mb": 2, "matmul_n": (4096, 8192)}}


def machine_limits(device: torch.device, copy_mb: int | None = None, cache_mb: int | None = None,
                   matmul_n: tuple[int, ...] | None = None, repeats: int = 20) -> dict:
    """This machine's memory bandwidth and float32 matrix-multiply rate, with torch's current threads.

    Bandwidth: a copy ``b = a`` (read ``a``, write ``b``: 2 x ``copy_mb`` MB moved) and an add
    ``c = a + b`` (3 x ``copy_mb``) of arrays larger than the caches; the limit is the better of
    the two. The same with arrays of ``cache_mb`` gives the bandwidth of data that stays in the
    caches, which a batch's small tensors, used again soon, can reach. Matmul: the best rate of
    ``(n, n) @ (n, n)`` float32 products (``2 n^3`` flops) over the sizes ``matmul_n``. Each
    figure is the fastest of ``repeats`` calls (the cache-sized ones of ``10 repeats``): like
    the parts of the step, the calls least disturbed by other processes. Defaults: ``LIMIT_SIZES``.
    """
    sizes = LIMIT_SIZES["cuda" if device.type == "cuda" else "cpu"]
    copy_mb = copy_mb or sizes["copy_mb"]
    cache_mb = cache_mb or sizes["cache_mb"]
    matmul_n = matmul_n or sizes["matmul_n"]
    copy_gb_s, add_gb_s = _bandwidths(device, copy_mb, repeats)
    cache = max(_bandwidths(device, cache_mb, 10 * repeats))
    rates = {n: _matmul_rate(device, n, repeats) for n in matmul_n}
    return {"copy_gb_s": copy_gb_s, "add_gb_s": add_gb_s, "bandwidth_gb_s": max(copy_gb_s, add_gb_s),
            "cache_bandwidth_gb_s": cache, "matmul_gflop_s": max(rates.values()),
            "matmul_gflop_s_by_n": {str(n): rate for n, rate in rates.items()}, "copy_mb": copy_mb,
            "cache_mb": cache_mb, "threads": torch.get_num_threads()}


def step_parts(name: str, device: torch.device, batch_size: int, variant: str, p: float, rounds: int = 5,
               calls: int = 10, warmup: int = 3, **network: int) -> dict:
    """snnlib's training step on one real batch of ``name``, whole and part by part.

    The parts: the event lists, eq 3's gather forward and its weight gradient, the dropout
    mask and its application forward and backward (when dropout is on), eq 1's kernel
    product forward and backward, the first-spike gate forward and backward, the readout
    layer forward and backward, and the Adam step, each with its :class:`Work`. The whole
    step and every part on its own (the same batch, the intermediate tensors of a real
    forward pass, gradients of the right shape) are timed in turns by
    :func:`time_interleaved`; each figure is the fastest of ``rounds x calls`` single calls.
    ``rest`` is the whole step minus the parts (loss, autograd's bookkeeping, allocations);
    a part timed alone may find its operands in the caches more often than inside the step,
    and the step, a longer call, is more easily disturbed by other processes.
    """
    encoded = _bench_data(name, device, batch_size)
    config = NetworkConfig(**{"in_features": encoded.features, "dropout": variant, "p": p, **network})
    torch.manual_seed(0)
    model = SRMNetwork(config).to(device)
    model.train()
    times, order, labels = encoded.batch(torch.arange(batch_size, device=device))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        loss = F.cross_entropy(model(times, order).logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    c, hidden, output = config, model.hidden, model.output
    N, T, K, H, O, I = batch_size, c.T, c.K, c.hidden, c.out_features, encoded.features
    w_in = hidden.weight_events
    events = SF.events_from_times(times, T, order)
    E, bags = int(events.fwd_index.numel()), events.bags_per_sample
    kernel = hidden.kernel(T)
    with torch.no_grad():
        current = SF.event_current(events, w_in, hidden.delays_list)
        potential = SF.psp(current, kernel)
        spikes = SF.first_spikes(potential, c.threshold, c.surrogate_slope)

    def leaf(x: torch.Tensor) -> torch.Tensor:
        return x.detach().clone().requires_grad_(True)

    def like(x: torch.Tensor) -> torch.Tensor:
        return torch.randn_like(x)

    def backward(out: torch.Tensor, inputs: list[torch.Tensor]) -> Callable[[], object]:
        grad = like(out)
        return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)

    parts: list[tuple[str, Callable[[], object], Work]] = []
    parts.append(("event lists", lambda: SF.events_from_times(times, T, order), events_work(N, I, T, E, bags)))
    gathered = SF.event_current(events, w_in, hidden.delays_list)
    parts.append(("eq 3 gather, forward", lambda: SF.event_current(events, w_in, hidden.delays_list),
                  gather_forward_work(N, T, K, I, H, E, bags)))
    parts.append(("eq 3 gather, backward", backward(gathered, [w_in]), gather_backward_work(N, T, K, I, H, E)))
    drop = model.dropout
    if c.site == "current" and drop.kind != "none" and drop.p > 0:  # the step's dropout (model.train())
        shape = mask_shape(drop.kind, tuple(current.shape), drop.time_consistent)
        keep = keep_mask(shape, drop.p, device)
        alpha = drop.kind in ALPHA_KINDS
        x = leaf(current)

        def apply() -> torch.Tensor:
            return alpha_dropout_apply(x, keep, drop.p) if alpha else dropout_inverted(x, keep, drop.p)

        parts.append(("dropout mask", lambda: keep_mask(shape, drop.p, device), mask_work(keep.numel())))
        parts.append(("dropout apply, forward", apply, dropout_apply_work(current.numel(), keep.numel(), alpha)))
        parts.append(("dropout apply, backward", backward(apply(), [x]),
                      dropout_apply_work(current.numel(), keep.numel())))
    z = leaf(current)
    v = SF.psp(z, kernel)
    parts.append(("eq 1 kernel product, forward", lambda: SF.psp(z, kernel), kernel_product_work(T, N * H)))
    parts.append(("eq 1 kernel product, backward", backward(v, [z]), kernel_product_work(T, N * H)))
    u = leaf(potential)
    s = SF.first_spikes(u, c.threshold, c.surrogate_slope)
    parts.append(("first-spike gate, forward", lambda: SF.first_spikes(u, c.threshold, c.surrogate_slope),
                  gate_forward_work(T, N * H)))
    parts.append(("first-spike gate, backward", backward(s, [u]), gate_backward_work(T, N * H)))
    h = leaf(spikes)

    def readout() -> torch.Tensor:
        return c.readout_scale * model.output_potential(h).amax(0)

    logits = readout()
    parts.append(("readout layer, forward", readout, output_forward_work(N, T, K, H, O, output.delays_list)))
    parts.append(("readout layer, backward", backward(logits, [h, output.weight_events]),
                  output_backward_work(N, T, K, H, O)))
    adam_model = copy.deepcopy(model)  # random gradients: not the step's weights
    for param in adam_model.parameters():
        param.grad = like(param)
    adam = torch.optim.Adam(adam_model.parameters(), lr=1e-3, fused=True)
    parameters = sum(param.numel() for param in adam_model.parameters())
    parts.append(("Adam step", adam.step, adam_work(parameters)))

    timed = time_interleaved({"step": step, **{label: fn for label, fn, _ in parts}}, device, rounds, calls, warmup)
    rows = [{"part": label, "s": timed[label]["fastest_s"], "median_s": timed[label]["median_s"], "bytes": work.bytes,
             "cache_bytes": work.touched, "flops": work.flops, "matmul_flops": work.matmul_flops}
            for label, _, work in parts]
    step_s, parts_s = timed["step"]["fastest_s"], sum(r["s"] for r in rows)
    return {"dataset": name, "batch_size": N, "step_s": step_s, "step_median_s": timed["step"]["median_s"],
            "samples_per_s": N / step_s,
            "input_spikes_per_sample": events.count / N, "events": E, "parts": rows, "parts_s": parts_s,
            "rest_s": step_s - parts_s}


def limit_table(result: dict, limits: dict) -> list[dict]:
    """Each part's share of the step, achieved rates and fraction of the machine's limit.

    The limit of a part (its roofline bound) is ``max(bytes / bandwidth, flops / matmul
    rate)``; its fraction of the limit is that bound over its measured time (1: as fast as
    this machine can go). A fraction above 1 means the part's operands came from the caches,
    faster than from memory (a batch's tensors are a few MB, and a part timed on its own
    reads them again and again): ``fraction_of_cache_limit`` is the same with the bytes it loads
    and stores (``cache_bytes``: a gather's every row) at the bandwidth of cache-sized arrays.
    ``bound by`` names the larger of the two terms of the memory limit.
    """
    bandwidth, rate = limits["bandwidth_gb_s"] * 1e9, limits["matmul_gflop_s"] * 1e9
    cache = limits["cache_bandwidth_gb_s"] * 1e9
    step, N = result["step_s"], result["batch_size"]
    rows = []
    for r in result["parts"]:
        memory_s, compute_s = r["bytes"] / bandwidth, r["flops"] / rate
        bound = max(memory_s, compute_s)
        rows.append({**r, "share": r["s"] / step, "gb_s": r["bytes"] / r["s"] / 1e9,
                     "gflop_s": r["flops"] / r["s"] / 1e9, "bytes_per_sample": r["bytes"] / N,
                     "flops_per_sample": r["flops"] / N, "bound_s": bound, "fraction_of_limit": bound / r["s"],
                     "bound_by": "memory" if memory_s >= compute_s else "compute",
                     "fraction_of_cache_limit": max(r.get("cache_bytes", r["bytes"]) / cache, compute_s) / r["s"]})
    return rows


def limits(device: torch.device, args: argparse.Namespace, log: Callable[[str], None] = print) -> dict:
    """``bench --limits``: the machine's limits, then snnlib's step part by part on each dataset."""
    machine = machine_limits(device, repeats=max(args.repeats * args.steps // 2, 1))
    log(f"machine: memory {machine['bandwidth_gb_s']:.1f} GB/s (copy {machine['copy_gb_s']:.1f}, add "
        f"{machine['add_gb_s']:.1f}; {machine['cache_mb']} MB arrays: {machine['cache_bandwidth_gb_s']:.1f}), "
        f"float32 matmul {machine['matmul_gflop_s']:.1f} GFLOP/s (n = "
        f"{', '.join(f'{n}: {r:.0f}' for n, r in machine['matmul_gflop_s_by_n'].items())}), "
        f"{machine['threads']} threads")
    results = []
    for name in args.datasets:
        result = step_parts(name, device, args.batch_size, args.variant, args.p, args.repeats, args.steps,
                            args.warmup)
        result["parts"] = limit_table(result, machine)
        results.append(result)
        log(f"{name}: step {result['step_s'] * 1e3:.2f} ms ({result['samples_per_s']:,.0f} samples/s; the "
            f"parts alone {result['parts_s'] * 1e3:.2f} ms), {result['input_spikes_per_sample']:.0f} input spikes "
            "per sample")
        log(f"  {'part':34s} {'ms':>6s} {'share':>6s} {'MB':>6s} {'MFLOP':>6s} {'GB/s':>6s} {'GFLOP/s':>7s} "
            f"{'bound ms':>8s} {'of limit':>8s} {'in cache':>8s}  bound by")
        for r in result["parts"]:
            log(f"  {r['part']:34s} {r['s'] * 1e3:6.3f} {r['share']:6.1%} {r['bytes'] / 1e6:6.2f} "
                f"{r['flops'] / 1e6:6.1f} {r['gb_s']:6.1f} {r['gflop_s']:7.1f} {r['bound_s'] * 1e3:8.3f} "
                f"{r['fraction_of_limit']:8.1%} {r['fraction_of_cache_limit']:8.1%}  {r['bound_by']}")
        log(f"  {'rest (loss, autograd, allocations)':34s} {result['rest_s'] * 1e3:6.3f} "
            f"{result['rest_s'] / result['step_s']:6.1%}")
    return {"machine": machine, "results": results}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"], help="mnist and/or cifar10")
    p.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128, the study's)")
    p.add_argument("--variant", default="dropout", help="dropout kind of snnlib's network (default dropout)")
    p.add_argument("--p", type=float, default=0.5, help="dropout probability (default 0.5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions, the median is reported (default 5)")
    p.add_argument("--steps", type=int, default=10, help="training steps per repetition (default 10)")
    p.add_argument("--competitors", nargs="+", default=["snnlib", "dense", "snntorch", "spikingjelly"],
                   help="any of snnlib dense snntorch spikingjelly")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--scaling", action="store_true",
                   help="instead: snnlib's throughput as T, K and the hidden size vary (one at a time)")
    p.add_argument("--limits", action="store_true",
                   help="instead: this machine's memory bandwidth and matmul rate, and snnlib's training step "
                        "part by part (share of the step, achieved GB/s and GFLOP/s, fraction of the limit); "
                        "each time is the fastest of --repeats rounds of --steps single calls")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)  # internal: one fresh-process probe


def main(args: argparse.Namespace) -> int:
    allowed = {"snnlib", "dense", "snntorch", "spikingjelly"}
    bad = [c for c in args.competitors if c not in allowed]
    if bad:
        raise ValueError(f"unknown competitor {bad[0]!r}; allowed: {', '.join(sorted(allowed))}")
    for name in args.datasets:
        if name not in D.DATASETS:
            raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(D.DATASETS)}")
    for name in ("batch_size", "warmup", "repeats", "steps"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.datasets[0], args.memory_probe, args.batch_size, args.variant,
                                      args.p, max(args.steps, 5))))
        return 0
    if args.scaling and args.limits:
        raise ValueError("--scaling and --limits exclude each other")
    device = resolve_device(args.device)
    print(f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
          f"batch {args.batch_size}, snnlib variant {args.variant} p={args.p}")
    began, load_before = time.perf_counter(), _load_average()
    extra = {}
    if args.limits:
        measured = limits(device, args)
        results, extra = measured["results"], {"machine": measured["machine"]}
    elif args.scaling:
        results = scaling(device, args)
    else:
        results = [r for name in args.datasets for r in bench_dataset(name, device, args)]
    if args.json:
        commit, dirty = git_commit()
        record = {"config": {k: v for k, v in vars(args).items() if k not in ("func", "memory_probe")},
                  "device": str(device), "device_name": device_description(device),
                  "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                  "batch_size": args.batch_size, "git_commit": commit, "git_dirty": dirty,
                  "wall_time_s": time.perf_counter() - began,
                  "load_average": {"before": load_before, "after": _load_average()}, **extra, "results": results}
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, record)
    return 0


def _load_average() -> float | None:
    """The machine's 1-minute load average (other processes share the cores when it exceeds the
    threads used here), None where the system does not report it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
