"""Thin ``nn.Module`` wrapper around the pure functions: one SRM layer (eqs 1-3)."""

from __future__ import annotations

import math

import torch
from torch import nn

from snnlib.model import functional as SF
from snnlib.model.kernels import kernel_matrix


def default_delays(K: int, spread: int = 1) -> list[int]:
    """Delays ``0, spread, 2 * spread, ..., (K - 1) * spread`` steps."""
    return [k * spread for k in range(K)]


class SRMLayer(nn.Module):
    """A fully connected layer of SRM neurons with ``K`` delayed sub-synapses (eq 1).

    ``v_h(t) = sum_i sum_k w_hi^k eps(t - t_i - d_k)``. Attributes: ``weight``
    ``(out_features, in_features, K)``, ``delays`` (K integer steps), ``tau`` and
    ``threshold``. The weights are stored as ``weight_events`` ``(K, in, out)``, one table
    per delay, so that an input spike reads one contiguous row of each; ``weight`` is a
    view of it.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        K: int = 4,
        delays: list[int] | None = None,
        tau: float = 3.0,
        threshold: float = 1.0,
        surrogate_slope: float = 5.0,
        init_gain: float = 1.0,
    ):
        super().__init__()
        delays = default_delays(K) if delays is None else [int(d) for d in delays]
        if len(delays) != K:
            raise ValueError(f"expected K={K} delays, got {len(delays)}")
        if min(delays) < 0:
            raise ValueError(f"delays must be >= 0, got {delays}")
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.in_features, self.out_features, self.K = in_features, out_features, K
        self.tau, self.threshold, self.surrogate_slope = float(tau), float(threshold), surrogate_slope
        self.register_buffer("delays", torch.tensor(delays, dtype=torch.long), persistent=False)
        self.delays_list = delays  # the same as plain ints, for the loops of eq 3
        std = init_gain * threshold / math.sqrt(in_features * K)
        # drawn as (in, K, out), the order of earlier versions, so a seed gives the same weights
        w = torch.randn(in_features, K, out_features) * std
        self.weight_events = nn.Parameter(w.permute(1, 0, 2).contiguous())
        self._kernels: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}

    @property
    def weight(self) -> torch.Tensor:
        """The weights as ``(out_features, in_features, K)`` (a view of ``weight_events``)."""
        return self.weight_events.permute(2, 1, 0)

    def _check_window(self, T: int) -> None:
        if max(self.delays_list) >= T:
            raise ValueError(f"delay {max(self.delays_list)} does not fit a window of T={T} steps")

    def kernel(self, T: int) -> torch.Tensor:
        """Cached ``(T, T)`` Toeplitz matrix of eq 2 on the weights' device."""
        self._check_window(T)
        w = self.weight_events
        key = (T, str(w.device), w.dtype)
        if key not in self._kernels:
            self._kernels[key] = kernel_matrix(T, self.tau, w.device, w.dtype)
        return self._kernels[key]

    def current(self, spikes: torch.Tensor | SF.SpikeEvents) -> torch.Tensor:
        """Eq 3: the delayed weighted spike sum ``Z`` ``(T, N, out)`` before the kernel.

        Event-driven for :class:`SpikeEvents` and for rasters that need no gradient; a
        raster that needs a gradient (hidden spikes in training) takes one dense product.
        """
        if isinstance(spikes, torch.Tensor) and spikes.requires_grad:
            self._check_window(spikes.shape[0])
            return SF.apply_delays(SF.dense_bags(spikes, self.weight_events), self.delays_list)
        if isinstance(spikes, torch.Tensor):
            spikes = SF.events_from_raster(spikes)
        self._check_window(spikes.T)
        return SF.event_current(spikes, self.weight_events, self.delays_list)

    def potential(self, spikes: torch.Tensor | SF.SpikeEvents) -> torch.Tensor:
        """Eq 1: membrane potentials ``(T, N, out)`` for input spikes ``(T, N, in)``."""
        current = self.current(spikes)
        return SF.psp(current, self.kernel(current.shape[0]))

    def fire(self, potential: torch.Tensor) -> torch.Tensor:
        """First-spike raster of the potentials (threshold with surrogate gradient)."""
        return SF.first_spikes(potential, self.threshold, self.surrogate_slope)

    def forward(self, spikes: torch.Tensor | SF.SpikeEvents) -> torch.Tensor:
        return self.fire(self.potential(spikes))

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, K={self.K}, delays={self.delays_list}, "
                f"tau={self.tau}, threshold={self.threshold}")
