"""snnlib: an SRM spiking network and the dropout family, for the study of Lyu and Yin.

Layers, lowest first (a module imports only those above it in this list):
``params`` (typed, validated parameters) and ``system`` (devices, atomic files, sealed
states, folder locks) -> ``kernels`` (eq 2, encoding) -> ``functional`` (eqs 1, 3,
threshold) -> ``dropout`` (eqs 4-8) -> ``layers`` -> ``network`` -> ``data`` ->
``training`` (runs and records) -> ``plots``, ``bench``, ``runner``, ``cli``.
"""

from .dropout import KINDS, SpikeDropout, make_dropout
from .functional import SpikeEvents, events_from_raster, events_from_times
from .kernels import alpha_kernel, first_spike_times, kernel_matrix, times_to_raster
from .layers import SRMLayer
from .network import SITES, NetworkConfig, SRMNetwork

__all__ = [
    "KINDS", "SITES", "NetworkConfig", "SRMLayer", "SRMNetwork", "SpikeDropout", "SpikeEvents",
    "alpha_kernel", "events_from_raster", "events_from_times", "first_spike_times", "kernel_matrix",
    "make_dropout", "times_to_raster",
]
