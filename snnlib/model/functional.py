"""Pure functions of the SRM network: equations 1 and 3, and the threshold.

The first layer's work is event-driven (each input fires at most once, so its work grows with the
input spikes, not with T x inputs): an input spike of neuron
``i`` at step ``t`` of sample ``n`` adds, for each delay ``k``, the row ``W[k, i]`` (all
``C`` targets) to the bag ``(n, t)``, which reaches the current at step ``t + d_k``. A bag
sum is ``torch.nn.functional.embedding_bag``; its gradient with respect to the weights
is again a bag sum, over the events of each input neuron, so both directions are
gathers (no scatter-add).

Layouts: rasters and currents are ``(T, N, C)``; weights are ``(K, in_features, C)``,
one table per delay: a gather from one ``in x C`` table at a time stays in cache better
than one from all ``K`` at once (about 30% faster on CIFAR-10's 3072 inputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SpikeEvents:
    """The spikes of a batch as two sorted event lists, ready for bag sums.

    ``fwd_index`` holds the input neuron of each event, grouped by bag ``n * T + t``
    (``fwd_offsets`` marks where each of the ``N * T`` bags starts). ``bwd_index`` holds
    the step and sample of each event as ``t * N + n`` (a row of a time-major ``(T, N)``
    tensor), grouped by input neuron (``bwd_offsets``, ``in_features`` groups).
    ``fwd_values``/``bwd_values`` are the spike amplitudes (``None`` means all ones),
    which dropout on the input spikes makes different from 1.

    Indices and offsets are int32 (``INDEX``), which ``embedding_bag`` takes as well as
    int64 and reads faster. ``n_silent`` > 0 marks lists that also hold the batch's silent
    inputs, as events at step ``T``, past the window: each sample then has ``T + 1`` bags,
    the last of which is never read, and the weight gradient reads zeros for them. An
    almost fully firing batch (CIFAR-10) so keeps the full ``(N, I)`` grid and needs no
    compaction; the sums are the same.
    """

    n_samples: int
    T: int
    in_features: int
    fwd_index: torch.Tensor
    fwd_offsets: torch.Tensor
    bwd_index: torch.Tensor
    bwd_offsets: torch.Tensor
    fwd_values: torch.Tensor | None = None
    bwd_values: torch.Tensor | None = None
    n_silent: int = 0

    @property
    def count(self) -> int:
        """Number of input spikes (events) in the batch."""
        return int(self.fwd_index.numel()) - self.n_silent

    @property
    def bags_per_sample(self) -> int:
        """``T``, or ``T + 1`` when the silent inputs have a bag of their own."""
        return self.T + 1 if self.n_silent else self.T

    @property
    def last_step(self) -> int:
        """The latest step that has an event (``T`` for silent inputs; -1 when none)."""
        return int(self.bwd_index.max()) // self.n_samples if self.bwd_index.numel() else -1


# A batch keeps its silent inputs as events (no compaction) when they are at most this
# share of its (N, I) grid: compacting costs about 11 ns per grid entry, a silent event
# about 48 ns of bag sums (measured on CIFAR-10, one thread): break-even near 1/4.
SILENT_GRID_SHARE = 0.25


INDEX = torch.int32  # dtype of the event lists' indices and offsets


def _exclusive_cumsum(counts: torch.Tensor) -> torch.Tensor:
    return (torch.cumsum(counts, 0) - counts).to(INDEX)


def events_from_raster(raster: torch.Tensor) -> SpikeEvents:
    """Event lists of any ``(T, N, I)`` raster; nonzero entries are events with their value."""
    T, N, n_in = raster.shape
    sample_major = raster.detach().transpose(0, 1)  # (N, T, I): nonzero() sorts by (n, t, i)
    n, t, i = sample_major.nonzero(as_tuple=True)
    values = sample_major[n, t, i]
    bag = n * T + t
    time_major = t * N + n
    fwd_offsets = _exclusive_cumsum(torch.bincount(bag, minlength=N * T))
    by_input = torch.argsort(i, stable=True)
    bwd_offsets = _exclusive_cumsum(torch.bincount(i, minlength=n_in))
    binary = bool((values == 1).all())
    return SpikeEvents(
        N, T, n_in, i.to(INDEX), fwd_offsets, time_major[by_input].to(INDEX), bwd_offsets,
        None if binary else values, None if binary else values[by_input],
    )


def events_from_times(
    times: torch.Tensor, T: int, order: torch.Tensor | None = None
) -> SpikeEvents:
    """Event lists of single-spike inputs given as first-spike times ``(N, I)``.

    ``order`` (optional) is ``times`` argsorted along each row (stable); pass it when the
    same samples are used many times (the datasets precompute it once) to avoid a sort.
    Times ``>= T`` are silent.
    """
    N, n_in = times.shape
    dev = times.device
    if order is None:
        order = torch.sort(times, dim=1, stable=True).indices
    samples = torch.arange(N, device=dev, dtype=INDEX)
    # each input's row t * N + n of a time-major grid, in (I, N) order; silent inputs
    # (times >= T) land at an extra step T. Then the events per (step, sample)
    rows = times.clamp(max=min(T, 255)).T.contiguous().to(INDEX).mul_(N).add_(samples).view(-1)
    counts = torch.bincount(rows, minlength=(T + 1) * N).view(T + 1, N)
    n_silent = int(counts[T].sum())
    if n_silent <= SILENT_GRID_SHARE * N * n_in:
        # keep the full grid, silent inputs as events of step T: no compaction
        fwd_index = order.reshape(-1)
        fwd_offsets = _exclusive_cumsum((counts if n_silent else counts[:T]).T.reshape(-1))
        bwd_index = rows
        per_input = torch.full((n_in,), N, dtype=INDEX, device=dev)
    else:
        n_silent = 0
        per_bag = counts[:T].T
        fwd_offsets = _exclusive_cumsum(per_bag.reshape(-1))
        n_fired = per_bag.sum(1)
        total = int(n_fired.sum())
        # the first n_fired entries of each row of ``order``, gathered from the flat rows
        shift = samples * n_in - _exclusive_cumsum(n_fired)
        at = torch.arange(total, device=dev) + torch.repeat_interleave(shift, n_fired, output_size=total)
        fwd_index = order.reshape(-1)[at]
        fires = rows < T * N  # in (I, N) order: the events come grouped by input
        bwd_index = torch.masked_select(rows, fires)
        per_input = fires.view(n_in, N).sum(1)
    return SpikeEvents(
        N, T, n_in, fwd_index.to(INDEX), fwd_offsets, bwd_index, _exclusive_cumsum(per_input),
        n_silent=n_silent,
    )


def dense_bags(raster: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Eq 3 before the delays for a ``(T, N, I)`` raster and ``(K, I, C)`` weights: the
    ``(T, N, K, C)`` weighted spike sums of each step, as one dense matrix product.

    Used where the raster itself needs a gradient (hidden spikes under a surrogate), since
    a surrogate gradient is nonzero at steps without a spike.
    """
    T, N, n_in = raster.shape
    K, _, C = weight.shape
    rows = weight.permute(1, 0, 2).reshape(n_in, K * C)  # (I, K * C): one product for all delays
    return (raster.reshape(T * N, n_in) @ rows).view(T, N, K, C)


class _DelaySum(torch.autograd.Function):
    """``Z[t] = sum_k bags[t - d_k, ..., k, :]``; backward is K strided copies (no zero-filled slices).

    ``bags`` is ``(T, ..., K, C)``: the dims between time and the delays (samples, and a stack of
    networks in :mod:`snnlib.model.stack`) are carried along."""

    @staticmethod
    def forward(ctx, bags: torch.Tensor, delays: tuple[int, ...]) -> torch.Tensor:  # type: ignore[override]
        T, C = bags.shape[0], bags.shape[-1]
        ctx.delays, ctx.shape = delays, bags.shape
        current = bags.new_zeros(T, *bags.shape[1:-2], C)
        for k, d in enumerate(delays):
            if d < T:
                current[d:] += bags[: T - d, ..., k, :]
        return current

    @staticmethod
    def backward(ctx, grad_current: torch.Tensor):  # type: ignore[override]
        T = ctx.shape[0]
        grad = grad_current.new_empty(ctx.shape)
        for k, d in enumerate(ctx.delays):
            grad[: T - d, ..., k, :] = grad_current[d:]
            grad[T - d:, ..., k, :] = 0
        return grad, None


def apply_delays(bags: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """Eq 3, the delay sum: ``Z[t] = sum_k bags[t - d_k, :, k]``, shape ``(T, N, C)``.

    This is the synaptic current (the weighted spike sum) that the paper's dropout acts on.
    ``bags`` may carry more dims between the samples and the delays, ``(T, N, ..., K, C)``: the
    current is then ``(T, N, ..., C)``.
    """
    return _DelaySum.apply(bags, tuple(delays))


def _gradient_index(ev: SpikeEvents, delays: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """The bags of eq 3's weight gradient for the events ``ev``: (index, offsets, values, past).

    An event's time-major row ``t * N + n`` for delay ``k`` is its own row plus ``d_k * N``: one bag
    per (delay, input), delay-major, so the result is laid out as the weight ``(K, I, C)``. ``past``
    is the number of steps read past the window (rows that read zero)."""
    N, K, dev = ev.n_samples, len(delays), ev.bwd_index.device
    past = ev.last_step + max(delays) + 1 - ev.T
    index = (ev.bwd_index[None, :] + torch.tensor(delays, device=dev, dtype=INDEX)[:, None] * N)
    offsets = ev.bwd_offsets[None, :] + torch.arange(K, device=dev, dtype=INDEX)[:, None] * ev.bwd_index.numel()
    values = None if ev.bwd_values is None else ev.bwd_values.repeat(K)
    return index.view(-1), offsets.view(-1), values, past


def _gradient_bags(bags: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int], n_samples: int,
                   rows: torch.Tensor) -> torch.Tensor:
    """The weight gradient of eq 3, ``(K * I, width)``: the bags of :func:`_gradient_index` summed
    over ``rows``, the current's gradient as time-major rows ``(T * N, width)``.

    The gradient of ``W[k, i]`` is the sum of the rows of input ``i``'s events shifted by ``d_k``
    steps; a row past the window reads zero, from zero rows appended only where one is read.
    ``width`` is ``C``, or ``S * C`` for S networks' currents side by side (each column's sum is
    the same)."""
    index, offsets, values, past = bags
    if past > 0:
        rows = torch.cat([rows, rows.new_zeros(past * n_samples, rows.shape[1])])
    return F.embedding_bag(index, rows, offsets, mode="sum", per_sample_weights=values)


class _EventCurrent(torch.autograd.Function):
    """Eq 3 for input events: one bag sum per delay, then the delay sum.

    The gradient of ``W[k, i]`` is a bag sum over input ``i``'s events of the current's
    gradient at their step plus ``d_k``: a gather from the gradient itself (plus zero rows
    for steps past the window), so no ``(N, T, K, C)`` tensor is ever built.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, events: SpikeEvents, delays: tuple[int, ...]) -> torch.Tensor:  # type: ignore[override]
        ctx.events, ctx.delays = events, delays
        N, T = events.n_samples, events.T
        # a first delay of 0 starts the sum from its bags (0 + x is x); any other, from zeros
        current = None if delays[0] == 0 else weight.new_zeros(T, N, weight.shape[2])
        for k, d in enumerate(delays):
            # detached: embedding_bag then takes its forward-only kernel
            bags = F.embedding_bag(
                events.fwd_index, weight[k].detach(), events.fwd_offsets, mode="sum",
                per_sample_weights=events.fwd_values,
            ).view(N, events.bags_per_sample, -1)
            if current is None:
                current = bags[:, :T].transpose(0, 1).contiguous()
            elif d < T:
                current[d:] += bags[:, : T - d].transpose(0, 1)
        return current

    @staticmethod
    def backward(ctx, grad_current: torch.Tensor):  # type: ignore[override]
        ev: SpikeEvents = ctx.events
        T, N, C = grad_current.shape
        grad = _gradient_bags(_gradient_index(ev, ctx.delays), N, grad_current.reshape(T * N, C))
        return grad.view(len(ctx.delays), ev.in_features, C), None, None


def event_current(events: SpikeEvents, weight: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """Eq 3 for input events: ``Z[t] = sum_k sum_{spikes i at t - d_k} W[k, i]``, ``(T, N, C)``.

    ``weight`` is ``(K, I, C)``. Work is proportional to the number of events; the same
    numbers as ``apply_delays(dense_bags(raster, weight), delays)`` (tested).
    """
    K, n_in, _ = weight.shape
    if n_in != events.in_features:
        raise ValueError(f"events have {events.in_features} inputs, weight has {n_in}")
    if len(delays) != K:
        raise ValueError(f"weight has K={K} delays, got {len(delays)}")
    if events.fwd_index.numel() * K > torch.iinfo(INDEX).max:
        raise ValueError(f"{events.fwd_index.numel()} events x K={K} delays overflow the int32 event "
                         "indices; use smaller batches")
    return _EventCurrent.apply(weight, events, tuple(int(d) for d in delays))


class _StackedEventCurrent(torch.autograd.Function):
    """Eq 3 for S networks that see the same input events: one set of event lists, S weight tables.

    The tables are gathered ``width`` networks at a time, side by side as rows of ``width * C``
    (``(I, width * C)`` per delay): width 1 reads each network's own table, which stays in a CPU's
    caches; width S reads all in one gather per delay (few launches on a GPU). Every column of a
    bag is summed over the same events in the same order as one network's, so each network's
    current and weight gradient are :func:`event_current`'s, bit for bit (tested).
    """

    @staticmethod
    def forward(ctx, events: SpikeEvents, delays: tuple[int, ...], width: int,  # type: ignore[override]
                *weights: torch.Tensor) -> torch.Tensor:
        ctx.events, ctx.delays, ctx.width = events, delays, width
        N, T, S = events.n_samples, events.T, len(weights)
        K, n_in, C = weights[0].shape
        current = weights[0].new_empty(T, N, S, C)
        for first in range(0, S, width):
            chunk = [w.detach() for w in weights[first:first + width]]  # detached: the forward-only kernel
            n = len(chunk)
            table = chunk[0] if n == 1 else torch.stack(chunk, 2).view(K, n_in, n * C)
            part = current[:, :, first:first + n]  # (T, N, n, C)
            if delays[0] != 0:
                part.zero_()
            for k, d in enumerate(delays):
                bags = F.embedding_bag(events.fwd_index, table[k], events.fwd_offsets, mode="sum",
                                       per_sample_weights=events.fwd_values).view(N, events.bags_per_sample, n, C)
                if k == 0 and d == 0:  # as event_current: the first delay's bags, then the others added
                    part.copy_(bags[:, :T].transpose(0, 1))
                elif d < T:
                    part[d:] += bags[:, : T - d].transpose(0, 1)
        return current

    @staticmethod
    def backward(ctx, grad_current: torch.Tensor):  # type: ignore[override]
        ev: SpikeEvents = ctx.events
        T, N, S, C = grad_current.shape
        K, bags, grads = len(ctx.delays), _gradient_index(ev, ctx.delays), []
        for first in range(0, S, ctx.width):
            n = min(ctx.width, S - first)
            rows = grad_current[:, :, first:first + n].reshape(T * N, n * C)
            grad = _gradient_bags(bags, N, rows).view(K, ev.in_features, n, C)
            grads += [grad[:, :, 0]] if n == 1 else [grad[:, :, j].contiguous() for j in range(n)]
        return (None, None, None, *grads)


def stacked_event_current(events: SpikeEvents, weights: Sequence[torch.Tensor], delays: list[int],
                          width: int = 1) -> torch.Tensor:
    """Eq 3 for S networks on the same input events: ``Z[t, :, s] = sum_k sum_{spikes i at t - d_k}
    W_s[k, i]``, ``(T, N, S, C)``.

    ``weights``: S tables ``(K, I, C)``, one per network; each gets its own gradient. ``width``: how
    many networks one gather serves (1 on a CPU, whose caches hold one table; S on a GPU). The
    event lists are built once for all S; each network's numbers are :func:`event_current`'s.
    """
    if not weights:
        raise ValueError("stacked_event_current needs at least one weight table")
    shape = tuple(weights[0].shape)
    if any(tuple(w.shape) != shape for w in weights):
        raise ValueError(f"every weight table must have the shape {shape}")
    K, n_in, _ = shape
    if n_in != events.in_features:
        raise ValueError(f"events have {events.in_features} inputs, weight has {n_in}")
    if len(delays) != K:
        raise ValueError(f"weight has K={K} delays, got {len(delays)}")
    if events.fwd_index.numel() * K > torch.iinfo(INDEX).max:
        raise ValueError(f"{events.fwd_index.numel()} events x K={K} delays overflow the int32 event "
                         "indices; use smaller batches")
    width = max(1, min(int(width), len(weights)))
    return _StackedEventCurrent.apply(events, tuple(int(d) for d in delays), width, *weights)


def psp(current: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Eq 1: membrane potential ``v(t) = sum_s eps(t - s) Z(s)`` as one Toeplitz product.

    ``kernel`` is :func:`snnlib.model.kernels.kernel_matrix` ``(T, T)``; ``current`` is
    ``(T, N, C)``.
    """
    T = current.shape[0]
    return (kernel @ current.reshape(T, -1)).view(current.shape)


class _SpikeFn(torch.autograd.Function):
    """Heaviside step forward, fast-sigmoid derivative backward (SuperSpike surrogate)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad / (1 + ctx.slope * x.abs()) ** 2, None


class _FirstSpikes(torch.autograd.Function):
    """First threshold crossing forward; surrogate gradient up to and including it backward."""

    @staticmethod
    def forward(ctx, potential: torch.Tensor, threshold: float, slope: float) -> torch.Tensor:  # type: ignore[override]
        T = potential.shape[0]
        crossed = torch.ge(potential, threshold, out=torch.empty_like(potential))  # 0/1 floats
        # "no crossing at an earlier step" from a product with a strictly lower-triangular
        # matrix of ones: exact for 0/1 values, and much faster than cumsum over the leading
        # dim; kept as 0/1 floats, since multiplying by them is cheaper than a masked fill
        earlier = torch.tril(torch.ones(T, T, device=potential.device, dtype=potential.dtype), -1)
        before = earlier @ crossed.view(T, -1)
        alive = torch.eq(before, 0, out=before).view(potential.shape)
        ctx.save_for_backward(potential, alive)
        ctx.threshold, ctx.slope = threshold, slope
        return crossed.mul_(alive)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        potential, alive = ctx.saved_tensors
        surrogate = (potential - ctx.threshold).abs_().mul_(ctx.slope).add_(1).square_()
        return torch.div(grad, surrogate, out=surrogate).mul_(alive), None, None


def first_spikes(potential: torch.Tensor, threshold: float, slope: float = 5.0) -> torch.Tensor:
    """A neuron fires once, at the first step its potential reaches the threshold.

    Returns a 0/1 raster like ``potential`` ``(T, N, C)``. The step function gets the
    fast-sigmoid surrogate gradient ``1 / (1 + slope * |v - theta|)^2``; the "has not
    fired yet" gate is treated as a constant, so gradient reaches every step up to and
    including the first spike, and none after it. One autograd node (the same numbers as
    ``_SpikeFn`` times the gate, with fewer passes over the ``(T, N, C)`` tensors).
    """
    return _FirstSpikes.apply(potential, float(threshold), float(slope))
