"""S networks of one architecture as one computation along a stack axis, each its own numbers.

Runs of one dataset and seed see the same batches in the same order; only their weights, their
dropout (kind, p, mask in time, site) and their masks differ. :func:`stacked_forward` runs their
forward passes together: the input events of a batch are built once and gathered for every
network's table (eq 3, ``snnlib.model.functional.stacked_event_current``), and the kernel
products (eq 1), the first-spike gate, the hidden-to-output products and the readout each take all
S networks in one operation, so each operation does S networks' work (on a GPU, which waits on
launches at this batch size, that is the saving). What differs per network runs per network with
the single network's own code: its dropout, with the masks drawn from its own generator
(``SpikeDropout.generator``), and, in training, the input layer of a network with dropout on its
input spikes (whose events are its own).

Layout: the stack axis comes after the samples, ``(T, N, S, C)``: eq 1's Toeplitz product and the
gate then read every network's columns in one product, each column as in a single network's.
Every operation is one whose columns (or batch entries) are computed as a single network's, so on
the CPU each network's logits, spikes and gradients are those of its own forward pass, bit for bit
(``tests/test_stack.py``); on a GPU they agree to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from snnlib.model import functional as SF
from snnlib.model.network import SRMNetwork

# NetworkConfig fields that may differ between the networks of a stack; every other one (sizes, T,
# K, delays, tau, threshold, readout) must be equal.
STACK_FREE_FIELDS = ("dropout", "p", "time_consistent", "site")


@dataclass
class StackOutput:
    """The forward pass of S networks: ``logits`` ``(N, S, out)``, ``hidden_spikes`` ``(T, N, S,
    hidden)`` (the first-spike rasters before any dropout on them) and the batch's input spikes."""

    logits: torch.Tensor
    hidden_spikes: torch.Tensor
    input_spikes: int


def check_stackable(networks: Sequence[SRMNetwork]) -> None:
    """Raises a one-line ``ValueError`` unless the networks can run as one stack: at least one, the
    same configuration apart from :data:`STACK_FREE_FIELDS`, the same device and mode."""
    if not networks:
        raise ValueError("a stack needs at least one network")
    first = networks[0]
    shared = {k: v for k, v in first.config.to_dict().items() if k not in STACK_FREE_FIELDS}
    for i, net in enumerate(networks[1:], 2):
        other = {k: v for k, v in net.config.to_dict().items() if k not in STACK_FREE_FIELDS}
        if other != shared:
            keys = sorted(k for k in shared if shared[k] != other.get(k))
            raise ValueError(f"network {i} of the stack differs from the first in {', '.join(keys)}; "
                             f"only {', '.join(STACK_FREE_FIELDS)} may differ")
        if net.hidden.weight_events.device != first.hidden.weight_events.device:
            raise ValueError(f"network {i} of the stack is on another device than the first")
        if net.training != first.training:
            raise ValueError(f"network {i} of the stack is in another mode (train/eval) than the first")


def input_events(T: int, x: torch.Tensor, order: torch.Tensor | None = None) -> SF.SpikeEvents:
    """The event lists of a batch's input spikes (first-spike times ``(N, in)`` as uint8, with their
    optional row-wise argsort ``order``, or a float raster ``(T, N, in)``), as a single network builds
    them: built once, they serve every network of a stack (and every chunk of one) without input-site
    dropout."""
    return SF.events_from_times(x, T, order) if x.dtype == torch.uint8 else SF.events_from_raster(x)


def stacked_hidden_spikes(networks: Sequence[SRMNetwork], x: torch.Tensor, order: torch.Tensor | None = None,
                          width: int = 1, events: SF.SpikeEvents | None = None) -> tuple[torch.Tensor, int]:
    """The hidden first-spike rasters of S networks, ``(T, N, S, hidden)``, and the input spike count.

    Eq 3 from one set of event lists (``events``, built here when not given: :func:`input_events`) for
    every network without input-site dropout in training (``snnlib.model.functional.stacked_event_current``,
    ``width`` networks per gather); a network with it computes its own (:meth:`SRMNetwork.hidden_current`,
    its masks from its own generator). Then each network's current-site dropout on its slice, and eq 1
    and the gate for all at once.
    """
    first = networks[0]
    T, delays = first.config.T, first.hidden.delays_list
    shared = [s for s, net in enumerate(networks) if not net._dropping("input")]
    if x.dtype == torch.uint8:
        spikes = int((x < T).sum())
    else:
        spikes = int((x != 0).sum())
    stacked = None
    if shared:
        events = input_events(T, x, order) if events is None else events
        stacked = SF.stacked_event_current(events, [networks[s].hidden.weight_events for s in shared], delays, width)
    if len(shared) == len(networks):
        current = stacked
    else:
        column = {s: j for j, s in enumerate(shared)}
        parts = stacked.unbind(2) if shared else ()
        current = torch.stack([parts[column[s]] if s in column else net.hidden_current(x, order)[0]
                               for s, net in enumerate(networks)], 2)
    dropping = [net._dropping("current") for net in networks]
    if any(dropping):
        current = torch.stack([net.dropout(part) if drop else part
                               for net, drop, part in zip(networks, dropping, current.unbind(2), strict=True)], 2)
    potential = SF.psp(current, first.hidden.kernel(T))
    return first.hidden.fire(potential), spikes


def stacked_output_potential(networks: Sequence[SRMNetwork], hidden_spikes: torch.Tensor,
                             exact: bool = True) -> torch.Tensor:
    """The readout layers' potentials ``(T, N, S, out)`` for the hidden rasters ``(T, N, S, hidden)``
    (each network's hidden-site dropout in training on its own slice).

    A raster that needs a gradient (training) takes the dense form of eq 3 (as
    :meth:`SRMLayer.current` does), all S products in one batched product. Without a gradient, ``exact``
    makes each network's raster its own events (:func:`snnlib.model.functional.events_from_raster`), as
    in a single network's evaluation (the same numbers); otherwise the batched product serves there too
    (the same sums in another order: a GPU's form, a few launches for all S). Eq 1 then runs for all."""
    first = networks[0]
    T, N, S, H = hidden_spikes.shape
    dropping = [net._dropping("hidden") for net in networks]
    # unbind, not S selects: its gradient is one stack, where each select's would fill a whole zero tensor
    slices = [net.dropout(part) if drop else part
              for net, drop, part in zip(networks, dropping, hidden_spikes.unbind(2), strict=True)]
    if hidden_spikes.requires_grad or not exact:
        K, _, O = first.output.weight_events.shape
        # each network's (H, K * O) rows, as SF.dense_bags lays them out: one copy for all S
        rows = torch.stack([net.output.weight_events.permute(1, 0, 2) for net in networks]).view(S, H, K * O)
        if any(dropping):
            raster = torch.stack(slices).view(S, T * N, H)
        else:
            raster = hidden_spikes.view(T * N, S, H).transpose(0, 1)
        bags = torch.bmm(raster, rows).view(S, T, N, K, O).permute(1, 2, 0, 3, 4)  # (T, N, S, K, O)
        current = SF.apply_delays(bags, first.output.delays_list)
    else:
        current = torch.stack([net.output.current(part) for net, part in zip(networks, slices, strict=True)], 2)
    return SF.psp(current, first.output.kernel(T))


def stacked_forward(networks: Sequence[SRMNetwork], x: torch.Tensor, order: torch.Tensor | None = None,
                    width: int = 1, exact: bool | None = None, events: SF.SpikeEvents | None = None) -> StackOutput:
    """S networks' forward pass on one batch as one computation (see the module's docstring).

    ``x``: first-spike times ``(N, in)`` as uint8 or a float raster ``(T, N, in)``, as
    :meth:`SRMNetwork.forward` takes; ``order`` its optional row-wise argsort. ``width``: networks
    per gather of eq 3 (1 suits a CPU, ``len(networks)`` a GPU). Network s's logits ``logits[:, s]``
    and spikes ``hidden_spikes[:, :, s]`` are those of ``networks[s](x, order)``, and so are the
    gradients a loss on them gives its weights: bit for bit with ``exact`` (the default on a CPU);
    without it (the default on a GPU, whose sums round differently anyway) the evaluation's readout
    takes the batched product, to rounding. ``events``: the batch's :func:`input_events`, if already built.
    """
    check_stackable(networks)
    if exact is None:
        exact = x.device.type != "cuda"
    hidden_spikes, input_spikes = stacked_hidden_spikes(networks, x, order, width, events)
    potential = stacked_output_potential(networks, hidden_spikes, exact)
    logits = networks[0].config.readout_scale * potential.amax(0)
    return StackOutput(logits, hidden_spikes, input_spikes)
