"""Equation 2 (the SRM kernel), its Toeplitz matrix, and time-to-first-spike coding."""

from __future__ import annotations

import math

import pytest
import torch

from snnlib import alpha_kernel, first_spike_times, kernel_matrix, times_to_raster
from snnlib.model.kernels import NO_SPIKE, kernel_sum


def eps_formula(a: float, tau: float) -> float:
    """Eq 2 written out: (a / tau) * exp(1 - a / tau) for a > 0, else 0."""
    return (a / tau) * math.exp(1 - a / tau) if a > 0 else 0.0


# ---------------------------------------------------------------- eq 2

@pytest.mark.parametrize("tau", [0.5, 1.0, 3.0, 7.5])
def test_alpha_kernel_is_zero_for_non_positive_arguments(tau):
    """eps(a) = 0 for a <= 0 (causality): no response before or at the spike time."""
    a = torch.tensor([-100.0, -3.0, -1.0, -1e-6, 0.0])
    assert torch.equal(alpha_kernel(a, tau), torch.zeros(5))


@pytest.mark.parametrize("tau", [0.5, 1.0, 3.0, 7.5, 20.0])
def test_alpha_kernel_peaks_at_tau_with_value_one(tau):
    """eps(tau) = 1 and eps(a) < 1 elsewhere: the kernel peaks at a = tau."""
    assert alpha_kernel(torch.tensor([tau], dtype=torch.float64), tau).item() == pytest.approx(1.0, abs=1e-12)
    grid = torch.linspace(0.0, 10 * tau, 20001, dtype=torch.float64)
    values = alpha_kernel(grid, tau)
    assert values.max().item() <= 1.0 + 1e-12
    assert grid[values.argmax()].item() == pytest.approx(tau, abs=10 * tau / 20000)


@pytest.mark.parametrize("tau", [1.0, 2.5, 3.0])
@pytest.mark.parametrize("a", [0.25, 1.0, 2.0, 3.0, 4.5, 10.0, 37.0])
def test_alpha_kernel_matches_formula(a, tau):
    """A few exact values of eq 2 against (a / tau) * exp(1 - a / tau)."""
    got = alpha_kernel(torch.tensor([a], dtype=torch.float64), tau).item()
    assert got == pytest.approx(eps_formula(a, tau), rel=1e-12, abs=1e-300)


def test_alpha_kernel_accepts_integer_steps():
    """Integer step differences are promoted to float and give eq 2's values."""
    steps = torch.arange(-2, 8)
    got = alpha_kernel(steps, 3.0)
    assert got.is_floating_point()
    expected = torch.tensor([eps_formula(float(a), 3.0) for a in range(-2, 8)])
    assert torch.allclose(got, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("tau", [0.0, -1.0, -1e-9])
def test_alpha_kernel_rejects_non_positive_tau(tau):
    """tau <= 0 has no meaning in eq 2: ValueError naming tau."""
    with pytest.raises(ValueError, match="tau"):
        alpha_kernel(torch.tensor([1.0]), tau)


@pytest.mark.parametrize("tau", [5.0, 20.0])
def test_kernel_sum_is_about_e_tau(tau):
    """The sum of eq 2 over integer steps approaches its integral e * tau."""
    assert kernel_sum(tau) == pytest.approx(math.e * tau, rel=0.01)


# ---------------------------------------------------------------- Toeplitz matrix

@pytest.mark.parametrize("T,tau", [(1, 3.0), (6, 1.0), (24, 3.0), (40, 7.0)])
def test_kernel_matrix_entries_are_eps_of_step_difference(T, tau):
    """E[t, s] = eps(t - s): the causal convolution matrix of eq 1."""
    E = kernel_matrix(T, tau, dtype=torch.float64)
    assert E.shape == (T, T)
    expected = torch.tensor([[eps_formula(t - s, tau) for s in range(T)] for t in range(T)],
                            dtype=torch.float64)
    assert torch.allclose(E, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("T,tau", [(6, 1.0), (24, 3.0), (40, 7.0)])
def test_kernel_matrix_is_lower_triangular_toeplitz(T, tau):
    """Strictly lower triangular (eps(0) = 0) and constant along every diagonal."""
    E = kernel_matrix(T, tau)
    assert torch.equal(E, torch.tril(E, diagonal=-1))
    for offset in range(1, T):
        diagonal = torch.diagonal(E, offset=-offset)
        assert torch.all(diagonal == diagonal[0]), f"diagonal {offset} is not constant"
        assert diagonal[0].item() > 0


def test_kernel_matrix_dtype():
    """The requested dtype is honoured (float32 by default)."""
    assert kernel_matrix(5, 2.0).dtype == torch.float32
    assert kernel_matrix(5, 2.0, dtype=torch.float64).dtype == torch.float64


# ---------------------------------------------------------------- input coding

def test_first_spike_times_follow_the_coding_rule():
    """A pixel x > 0 fires at round((1 - x) * t_enc); a zero pixel never fires (255)."""
    x = torch.tensor([[1.0, 0.5, 0.25, 0.0, 1 / 12, 0.999]])
    times = first_spike_times(x, 12)
    assert times.dtype == torch.uint8
    assert times.tolist() == [[0, 6, 9, NO_SPIKE, 11, 0]]


def test_first_spike_times_flattens_each_sample():
    """(N, H, W, C) images become (N, H * W * C) times."""
    images = torch.rand(3, 4, 4, 3)
    assert first_spike_times(images, 10).shape == (3, 48)


@pytest.mark.parametrize("bad", [torch.tensor([[1.5]]), torch.tensor([[-0.1]])])
def test_first_spike_times_rejects_intensities_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        first_spike_times(bad, 12)


@pytest.mark.parametrize("t_enc", [0, -1, 255, 300])
def test_first_spike_times_rejects_bad_window(t_enc):
    with pytest.raises(ValueError, match="t_enc"):
        first_spike_times(torch.rand(2, 3), t_enc)


def test_times_to_raster_one_spike_at_each_time_below_T():
    """Raster[t, n, i] = 1 iff times[n, i] == t; times >= T (and 255) stay silent."""
    times = torch.tensor([[0, 3, 255], [5, 6, 2]], dtype=torch.uint8)
    raster = times_to_raster(times, 6)
    assert raster.shape == (6, 2, 3)
    expected = torch.zeros(6, 2, 3)
    for n, i, t in [(0, 0, 0), (0, 1, 3), (1, 0, 5), (1, 2, 2)]:
        expected[t, n, i] = 1
    assert torch.equal(raster, expected)
