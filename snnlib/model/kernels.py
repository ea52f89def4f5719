"""Lowest layer: the SRM kernel (eq 2), its Toeplitz form and time-to-first-spike coding.

Everything here is a pure function of tensors; nothing imports the rest of snnlib.
Tensors follow SpikingJelly's multi-step convention: time first, ``(T, N, features)``.
Times are integer simulation steps (dt = 1).
"""

from __future__ import annotations

import math

import torch

# Marks an input that never fires (a zero pixel) in a first-spike-time array.
NO_SPIKE = 255


def alpha_kernel(a: torch.Tensor, tau: float) -> torch.Tensor:
    """Equation 2 of the paper, the SRM response kernel.

    ``eps(a) = (a / tau) * exp(1 - a / tau)`` for ``a > 0`` and 0 otherwise. It rises
    from 0, peaks at ``a = tau`` with value 1 and decays; its sum over integer steps is
    about ``e * tau``.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    a = torch.as_tensor(a)
    if not a.is_floating_point():
        a = a.float()
    scaled = a / tau
    return torch.where(a > 0, scaled * torch.exp(1 - scaled), torch.zeros_like(a))


def kernel_matrix(
    T: int, tau: float, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The ``(T, T)`` lower-triangular Toeplitz matrix ``E[t, s] = eps(t - s)`` of eq 2.

    Multiplying a current ``Z`` of shape ``(T, ...)`` by it performs the causal
    convolution of eq 1: ``v(t) = sum_s eps(t - s) Z(s)``.
    """
    steps = torch.arange(T, device=device, dtype=dtype)
    return alpha_kernel(steps[:, None] - steps[None, :], tau)


def first_spike_times(images: torch.Tensor, t_enc: int) -> torch.Tensor:
    """Time-to-first-spike coding of intensities in [0, 1] to spike steps.

    A pixel of intensity ``x`` fires once at ``round((1 - x) * t_enc)``: bright pixels
    fire early. A pixel of exactly 0 carries no information in this code and never
    fires; it is marked ``NO_SPIKE`` (255). Returns ``uint8`` of the images' shape
    (flattened per sample: ``(N, features)``).
    """
    if not 0 < t_enc < NO_SPIKE:
        raise ValueError(f"t_enc must be in [1, {NO_SPIKE - 1}], got {t_enc}")
    x = images.reshape(images.shape[0], -1).float()
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("images must hold intensities in [0, 1]")
    times = torch.round((1 - x) * t_enc).to(torch.uint8)
    return torch.where(x > 0, times, torch.full_like(times, NO_SPIKE))


def times_to_raster(times: torch.Tensor, T: int) -> torch.Tensor:
    """Turns first-spike times ``(N, features)`` into a 0/1 raster ``(T, N, features)``.

    Times ``>= T`` (including ``NO_SPIKE``) produce no spike.
    """
    steps = torch.arange(T, device=times.device)
    return (times.long()[None] == steps[:, None, None]).float()


def kernel_sum(tau: float) -> float:
    """Sum of eq 2 over all positive integer steps, about ``e * tau`` for large tau."""
    n = int(math.ceil(40 * tau)) + 2
    return float(alpha_kernel(torch.arange(1, n, dtype=torch.float64), tau).sum())
