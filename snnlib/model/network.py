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

from snnlib.model import functional as SF
from snnlib.model.dropout import (
    ALPHA_KINDS,
    ALPHA_PRIME,
    KINDS,
    SpikeDropout,
    alpha_affine,
    alpha_dropout_apply,
    check_p,
    keep_mask,
    make_dropout,
)
from snnlib.model.kernels import NO_SPIKE, times_to_raster
from snnlib.model.layers import SRMLayer, default_delays
from snnlib.model.params import ParameterError, boolean, choice, integer, real

SITES = ("current", "hidden", "input")
# Sizes beyond these would not fit in memory or time on the machines this study runs on; a
# larger value is refused in one line rather than failing in the allocator.
MAX_NEURONS = 16_384
MAX_FEATURES = 65_536
MAX_STEPS = 1_000


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
        choice("dropout", self.dropout, KINDS, "dropout kind")
        check_p(real("p", self.p))
        boolean("time_consistent", self.time_consistent)
        choice("site", self.site, SITES, "dropout site")
        for name, high in (("in_features", MAX_FEATURES), ("hidden", MAX_NEURONS), ("out_features", MAX_NEURONS),
                           ("T", MAX_STEPS), ("K", MAX_STEPS), ("delay_spread", MAX_STEPS)):
            setattr(self, name, integer(name, getattr(self, name), 1, high))
        for name in ("tau", "threshold", "readout_scale", "surrogate_slope", "init_gain"):
            real(name, getattr(self, name), 0, low_open=True)
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

    @classmethod
    def check_overrides(cls, overrides: object) -> None:
        """Raises a one-line ``ValueError`` unless ``overrides`` is a dict of known field names."""
        if not isinstance(overrides, dict):
            raise ParameterError(f"network must be a dict of NetworkConfig fields, got {overrides!r}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ParameterError(f"unknown network field(s) {', '.join(map(str, unknown))}; allowed: "
                                 f"{', '.join(names)}")


@dataclass
class NetworkOutput:
    logits: torch.Tensor  # (N, out)
    hidden_spikes: torch.Tensor  # (T, N, hidden) 0/1 first-spike raster
    input_spikes: int  # number of input spikes in the batch (before any dropout)


def kept_order(order: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The row-wise order of the inputs after dropout, from the dataset's precomputed ``order``
    (a stable argsort of the times) and the ``(N, I)`` mask ``keep``, without a sort.

    A stable partition of each row of ``order``: the kept inputs first, in their order (which is
    the stable argsort's for every input that still fires), then the dropped ones. A dropped input
    no longer fires, so it only lands in the silent bag past the window, whose order changes no sum
    that is used: :func:`snnlib.model.functional.events_from_times` gives the same events as with a sort
    (tested, bit for bit). The event lists of a CIFAR-10 batch take about 1.5x less time
    (``scripts/bench_speedups.py``).
    """
    kept_in_order = keep.gather(1, order.long())
    first = kept_in_order.long().cumsum(1).sub_(1)
    n_kept = first[:, -1:] + 1
    dest = torch.where(kept_in_order, first, (~kept_in_order).long().cumsum(1).add_(n_kept - 1))
    return torch.empty_like(order).scatter_(1, dest, order)


def input_dropout_current(layer: SRMLayer, times: torch.Tensor, dropout: SpikeDropout,
                          T: int, order: torch.Tensor | None = None) -> torch.Tensor:
    """Eq 3 with training-mode dropout on the input spikes given as first-spike times ``(N, I)``.

    Each input fires at most once, so the kinds reduce to three cheap exact forms:

    * zeroing kinds (``dropout``, ``dropout2d``, ``feature``, any mask in time): a spike is
      kept with probability ``1 - p``, independently per sample and input; the mask at the
      steps without a spike multiplies zeros. One draw per (sample, input), the kept spikes
      as events, the current scaled by ``1 / (1 - p)`` (it is linear in the spikes). A fresh
      mask per step and one per sample are the same operation here, in distribution.
    * time-constant alpha kinds (``feature_alpha``; ``alpha`` with one mask per sample):
      ``y = a r x + c`` with ``c = a alpha' (1 - r) + b`` constant over the window, so the
      current is ``a`` times the kept spikes' event current plus ``c @ W_k`` once per sample,
      added from step ``d_k`` on: a silent input is not silent any more, but costs one
      product per sample instead of one per step.
    * per-step ``alpha``: every entry of the ``(T, N, I)`` raster becomes non-zero at every
      step, so the event form has nothing to save: one dense product (eq 3 as a matrix).

    The same numbers as eq 3 on the dropped-out raster (tested against the dense form). ``order``
    (optional): the dataset's row-wise argsort of ``times``; the event lists of the kept spikes then
    need no sort (:func:`kept_order`).
    """
    N, n_in = times.shape
    kind, p = dropout.kind, dropout.p
    weight, delays = layer.weight_events, layer.delays_list
    if kind not in ALPHA_KINDS:
        keep = keep_mask((N, n_in), p, times.device, generator=dropout.generator).bool()
        kept = times.masked_fill(~keep, NO_SPIKE)
        kept_events = SF.events_from_times(kept, T, None if order is None else kept_order(order, keep))
        return layer.current(kept_events) / (1.0 - p)
    if kind == "alpha" and not dropout.time_consistent:
        raster = times_to_raster(times, T).to(weight.dtype)
        keep = keep_mask(tuple(raster.shape), p, times.device, weight.dtype, dropout.generator)
        return SF.apply_delays(SF.dense_bags(alpha_dropout_apply(raster, keep, p), weight), delays)
    a, b = alpha_affine(p)
    keep = keep_mask((N, n_in), p, times.device, weight.dtype, dropout.generator)
    kept = times.masked_fill(keep == 0, NO_SPIKE)
    kept_events = SF.events_from_times(kept, T, None if order is None else kept_order(order, keep.bool()))
    current = layer.current(kept_events) * a
    constant = (a * ALPHA_PRIME) * (1.0 - keep) + b  # (N, I): a silent or dropped input's value
    K, _, C = weight.shape
    per_delay = (constant @ weight.permute(1, 0, 2).reshape(n_in, K * C)).view(N, K, C)
    for k, d in enumerate(delays):
        current[d:] += per_delay[:, k]
    return current


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

    def _dropping(self, site: str) -> bool:
        return self.training and self.config.site == site and self.dropout.kind != "none" and self.dropout.p > 0

    def hidden_current(self, x: torch.Tensor, order: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Eq 3 for the input layer (with input-site dropout in training) and the input spike count."""
        T = self.config.T
        if x.dtype == torch.uint8:
            spikes = int((x < T).sum())
            if self._dropping("input"):
                return input_dropout_current(self.hidden, x, self.dropout, T, order), spikes
            return self.hidden.current(SF.events_from_times(x, T, order)), spikes
        spikes = int((x != 0).sum())
        if self._dropping("input"):
            x = self.dropout(x)
            if self.dropout.kind in ALPHA_KINDS:  # every entry non-zero: the dense product
                return SF.apply_delays(SF.dense_bags(x, self.hidden.weight_events), self.hidden.delays_list), spikes
        return self.hidden.current(SF.events_from_raster(x)), spikes

    def hidden_spikes(self, x: torch.Tensor, order: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """The hidden layer's first-spike raster ``(T, N, hidden)`` and the input spike count."""
        current, spikes = self.hidden_current(x, order)
        if self._dropping("current"):
            current = self.dropout(current)
        potential = SF.psp(current, self.hidden.kernel(current.shape[0]))
        return self.hidden.fire(potential), spikes

    def output_potential(self, hidden_spikes: torch.Tensor) -> torch.Tensor:
        """The readout layer's potentials ``(T, N, out)`` (hidden-site dropout in training)."""
        to_output = self.dropout(hidden_spikes) if self._dropping("hidden") else hidden_spikes
        return self.output.potential(to_output)

    def forward(self, x: torch.Tensor, order: torch.Tensor | None = None) -> NetworkOutput:
        """``x``: first-spike times ``(N, in)`` as uint8 (see :mod:`snnlib.model.kernels`) or a
        float spike raster ``(T, N, in)``. ``order``: optional row-wise argsort of the
        times (precomputed by the datasets)."""
        hidden_spikes, input_spikes = self.hidden_spikes(x, order)
        logits = self.config.readout_scale * self.output_potential(hidden_spikes).amax(0)
        return NetworkOutput(logits, hidden_spikes, input_spikes)

    def hidden_importance(self) -> torch.Tensor:
        """Importance of each hidden neuron: the L1 norm of its outgoing weights ``(hidden,)``.

        This is the "rank neurons by weight" measure of the paper's Table 2.
        """
        return self.output.weight_events.detach().abs().sum(dim=(0, 2))

    @torch.no_grad()
    def silenced_logits(self, x: torch.Tensor, order: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, hidden, out)`` with each hidden neuron silenced in turn (no dropout).

        Silencing neuron ``h`` removes its contribution ``sum_k W[k, h] eps(t - t_h - d_k)``
        from every output potential (eqs 1-3 are linear in the hidden spikes), so all
        ``hidden`` ablations come from one pass: the full potentials minus each neuron's
        part. The second importance measure of the neurons chapter (accuracy lost when a
        neuron is silenced) is built on it.
        """
        spikes, _ = self.hidden_spikes(x, order)
        full = self.output.potential(spikes)  # (T, N, O)
        T = spikes.shape[0]
        kernel = self.output.kernel(T)
        weight = self.output.weight_events  # (K, H, O)
        parts = torch.zeros(T, *spikes.shape[1:], weight.shape[2], dtype=full.dtype, device=full.device)
        for k, d in enumerate(self.output.delays_list):
            shifted = torch.zeros_like(spikes)
            shifted[d:] = spikes[: T - d]
            psp = SF.psp(shifted, kernel)  # (T, N, H): neuron h's response through delay k
            parts += psp[..., None] * weight[k]  # (T, N, H, O)
        return self.config.readout_scale * (full[:, :, None, :] - parts).amax(0)
