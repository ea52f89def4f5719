"""snnlib: an SRM spiking network and the dropout family, for the study of Lyu and Yin.

Packages, lowest first (each imports only those before it; ``tests/test_packaging.py`` checks it):

- :mod:`snnlib.model`: the network of equations 1-8 (kernels, event-driven layers, dropout);
- :mod:`snnlib.experiment`: data, one run and its sealed record, grids and the runner;
- :mod:`snnlib.bench` and :mod:`snnlib.uncertainty`: the speed of training, and the uncertainty of
  trained networks (side by side: neither imports the other);
- :mod:`snnlib.study`: reading the records: statistics, the pre-registration, the claims, the report;
- ``cli`` (``python -m snnlib``) and ``widgets`` (the book's live figures) on top.

The names below are the model's, for ``from snnlib import SRMNetwork``.
"""

from snnlib.model.dropout import KINDS, SpikeDropout, make_dropout
from snnlib.model.functional import SpikeEvents, events_from_raster, events_from_times
from snnlib.model.kernels import alpha_kernel, first_spike_times, kernel_matrix, times_to_raster
from snnlib.model.layers import SRMLayer
from snnlib.model.network import SITES, NetworkConfig, SRMNetwork

__all__ = [
    "KINDS", "SITES", "NetworkConfig", "SRMLayer", "SRMNetwork", "SpikeDropout", "SpikeEvents",
    "alpha_kernel", "events_from_raster", "events_from_times", "first_spike_times", "kernel_matrix",
    "make_dropout", "times_to_raster",
]
