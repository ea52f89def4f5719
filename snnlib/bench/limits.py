"""How close the training step comes to the machine's limits: each part's bytes and flops, timed against the
machine's bandwidth and matrix-multiply rate (``python -m snnlib bench --limits``)."""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from snnlib.bench.step import _bench_data
from snnlib.model import functional as SF
from snnlib.model.dropout import ALPHA_KINDS, alpha_dropout_apply, dropout_inverted, keep_mask, mask_shape
from snnlib.model.network import NetworkConfig, SRMNetwork

F32, I32 = 4, 4  # bytes of a float32 value and of an int32 index


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
        """The bytes loaded and stored (``cache_bytes``, or ``bytes`` when that is None)."""
        return self.bytes if self.cache_bytes is None else self.cache_bytes

    def __add__(self, other: Work) -> Work:
        return Work(self.bytes + other.bytes, self.flops + other.flops, self.matmul_flops + other.matmul_flops,
                    self.touched + other.touched)



def events_work(N: int, I: int, T: int, E: int, bags: int) -> Work:
    """Building the event lists (:func:`snnlib.model.functional.events_from_times`) of a batch.

    Reads the first-spike times ``N I`` (uint8, 1 byte) and their row-wise order ``N I``
    (int32); writes the two index lists ``2 E`` and their offsets ``N bags + I`` (int32).
    ``E`` is the number of events (input spikes, plus the silent inputs when they are kept
    as events past the window), ``bags`` the bags per sample (``T`` or ``T + 1``). No
    floating-point work.
    """
    return Work(N * I * (1 + I32) + (2 * E + N * bags + I) * I32, 0.0)



def gather_forward_work(N: int, T: int, K: int, I: int, H: int, E: int, bags: int) -> Work:
    """Eq 3 forward (:func:`snnlib.model.functional.event_current`): ``K`` bag sums, then the delay sum.

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
    """Drawing a dropout mask (:func:`snnlib.model.dropout.keep_mask`): ``M`` uniform draws compared with p.

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
    """The first-spike gate forward (:func:`snnlib.model.functional.first_spikes`) on ``(T, N, H)`` potentials.

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
