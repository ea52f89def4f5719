"""Pure functions of the SRM network: equations 1 and 3, and the threshold.

The first layer's work is event-driven (DESIGN.md section 2): an input spike of neuron
``i`` at step ``t`` of sample ``n`` adds the row ``W[i]`` (all ``K`` delays times all
``C`` targets at once) to the bag ``(n, t)``. A bag sum is ``torch.nn.functional.
embedding_bag``; its gradient with respect to the weights is again a bag sum, over the
events of each input neuron, so both directions are gathers (no scatter-add).

Layouts: rasters and currents are ``(T, N, C)``; weights are stored as
``(in_features, K, C)`` so one event reads one contiguous row of ``K * C`` floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SpikeEvents:
    """The spikes of a batch as two sorted event lists, ready for bag sums.

    ``fwd_index`` holds the input neuron of each event, grouped by bag ``n * T + t``
    (``fwd_offsets`` marks where each of the ``N * T`` bags starts). ``bwd_index`` holds
    the bag of each event, grouped by input neuron (``bwd_offsets``, ``in_features``
    groups). ``fwd_values``/``bwd_values`` are the spike amplitudes (``None`` means all
    ones), which dropout on the input spikes makes different from 1.
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

    @property
    def count(self) -> int:
        """Number of input spikes (events) in the batch."""
        return int(self.fwd_index.numel())


def _exclusive_cumsum(counts: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(counts, 0) - counts


def events_from_raster(raster: torch.Tensor) -> SpikeEvents:
    """Event lists of any ``(T, N, I)`` raster; nonzero entries are events with their value."""
    T, N, n_in = raster.shape
    sample_major = raster.detach().transpose(0, 1)  # (N, T, I): nonzero() sorts by (n, t, i)
    n, t, i = sample_major.nonzero(as_tuple=True)
    values = sample_major[n, t, i]
    bag = n * T + t
    fwd_offsets = _exclusive_cumsum(torch.bincount(bag, minlength=N * T))
    by_input = torch.argsort(i, stable=True)
    bwd_offsets = _exclusive_cumsum(torch.bincount(i, minlength=n_in))
    binary = bool((values == 1).all())
    return SpikeEvents(
        N, T, n_in, i, fwd_offsets, bag[by_input], bwd_offsets,
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
    t = times.long()
    if order is None:
        order = torch.sort(t, dim=1, stable=True).indices
    fires = t < T
    counts = torch.zeros(N, T + 1, dtype=torch.long, device=t.device)
    counts.scatter_add_(1, t.clamp(max=T), torch.ones_like(t))
    per_bag = counts[:, :T]
    fwd_offsets = _exclusive_cumsum(per_bag.reshape(-1))
    bags = torch.arange(N, device=t.device)[None, :] * T + t.T  # (I, N)
    if bool(fires.all()):
        fwd_index = order.reshape(-1)
        bwd_index = bags.reshape(-1)
        per_input = torch.full((n_in,), N, dtype=torch.long, device=t.device)
    else:
        # masked_select is several times faster than boolean indexing on the CPU
        n_fired = per_bag.sum(1)
        fwd_index = torch.masked_select(order, torch.arange(n_in, device=t.device)[None, :] < n_fired[:, None])
        fires_t = fires.T.contiguous()
        bwd_index = torch.masked_select(bags, fires_t)
        per_input = fires_t.sum(1)
    return SpikeEvents(
        N, T, n_in, fwd_index.long(), fwd_offsets, bwd_index, _exclusive_cumsum(per_input)
    )


class _EventBagSum(torch.autograd.Function):
    """Bag sums of weight rows with a gradient that is itself a bag sum (no scatter)."""

    @staticmethod
    def forward(ctx, weight_rows: torch.Tensor, events: SpikeEvents) -> torch.Tensor:  # type: ignore[override]
        ctx.events = events
        return F.embedding_bag(
            events.fwd_index, weight_rows, events.fwd_offsets, mode="sum",
            per_sample_weights=events.fwd_values,
        )

    @staticmethod
    def backward(ctx, grad_bags: torch.Tensor):  # type: ignore[override]
        ev: SpikeEvents = ctx.events
        grad_rows = F.embedding_bag(
            ev.bwd_index, grad_bags.contiguous(), ev.bwd_offsets, mode="sum",
            per_sample_weights=ev.bwd_values,
        )
        return grad_rows, None


def event_bags(events: SpikeEvents, weight: torch.Tensor) -> torch.Tensor:
    """Eq 3 before the delays: ``(T, N, K, C)``, the summed weight rows of all spikes of
    sample ``n`` at step ``t``, one slice per sub-synapse ``k``.

    ``weight`` is ``(I, K, C)``. Work is proportional to the number of events. The bags
    come out sample-major in memory; the result is a time-major view of them.
    """
    n_in, K, C = weight.shape
    if n_in != events.in_features:
        raise ValueError(f"events have {events.in_features} inputs, weight has {n_in}")
    bags = _EventBagSum.apply(weight.reshape(n_in, K * C), events)
    return bags.view(events.n_samples, events.T, K, C).transpose(0, 1)


def dense_bags(raster: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Same as :func:`event_bags` for a ``(T, N, I)`` raster, as one dense matrix product.

    Used where the raster itself needs a gradient (hidden spikes under a surrogate), since
    a surrogate gradient is nonzero at steps without a spike.
    """
    T, N, n_in = raster.shape
    _, K, C = weight.shape
    return (raster.reshape(T * N, n_in) @ weight.reshape(n_in, K * C)).view(T, N, K, C)


class _DelaySum(torch.autograd.Function):
    """``Z[t] = sum_k bags[t - d_k, :, k]``; backward is K strided copies (no zero-filled slices)."""

    @staticmethod
    def forward(ctx, bags: torch.Tensor, delays: tuple[int, ...]) -> torch.Tensor:  # type: ignore[override]
        T, N, _, C = bags.shape
        ctx.delays, ctx.shape, ctx.sample_major = delays, bags.shape, bags.transpose(0, 1).is_contiguous()
        current = bags.new_zeros(T, N, C)
        for k, d in enumerate(delays):
            if d < T:
                current[d:] += bags[: T - d, :, k]
        return current

    @staticmethod
    def backward(ctx, grad_current: torch.Tensor):  # type: ignore[override]
        T, N, K, C = ctx.shape
        if ctx.sample_major:  # give the gradient the layout of the bags (event path: (N, T, K, C))
            grad = grad_current.new_empty(N, T, K, C).transpose(0, 1)
        else:
            grad = grad_current.new_empty(T, N, K, C)
        for k, d in enumerate(ctx.delays):
            grad[: T - d, :, k] = grad_current[d:]
            grad[T - d:, :, k] = 0
        return grad, None


def apply_delays(bags: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """Eq 3, the delay sum: ``Z[t] = sum_k bags[t - d_k, :, k]``, shape ``(T, N, C)``.

    This is the synaptic current (the weighted spike sum) that the paper's dropout acts on.
    """
    return _DelaySum.apply(bags, tuple(delays))


def psp(current: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Eq 1: membrane potential ``v(t) = sum_s eps(t - s) Z(s)`` as one Toeplitz product.

    ``kernel`` is :func:`snnlib.kernels.kernel_matrix` ``(T, T)``; ``current`` is
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


def first_spikes(potential: torch.Tensor, threshold: float, slope: float = 5.0) -> torch.Tensor:
    """A neuron fires once, at the first step its potential reaches the threshold.

    Returns a 0/1 raster like ``potential`` ``(T, N, C)``. The step function gets the
    fast-sigmoid surrogate gradient ``1 / (1 + slope * |v - theta|)^2``; the "has not
    fired yet" gate is treated as a constant, so gradient reaches every step up to and
    including the first spike, and none after it.
    """
    crossed = _SpikeFn.apply(potential - threshold, slope)
    T = crossed.shape[0]
    # "crossed at an earlier step" as a product with a strictly lower-triangular matrix of
    # ones: exact for 0/1 values, and much faster than cumsum over the leading dim on CPUs.
    earlier = torch.tril(torch.ones(T, T, device=crossed.device, dtype=crossed.dtype), -1)
    fired_before = (earlier @ crossed.detach().reshape(T, -1)).view(crossed.shape)
    return crossed * (fired_before == 0).to(crossed.dtype)
