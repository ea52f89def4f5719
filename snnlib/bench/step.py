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
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from snnlib.experiment import data as D
from snnlib.model.kernels import times_to_raster
from snnlib.model.network import NetworkConfig, SRMNetwork

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
        from snnlib.model.functional import _SpikeFn

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
