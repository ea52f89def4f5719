"""The dropout family (eqs 4-8) on multi-step (T, N, F) tensors: statistics and semantics.

Large seeded tensors; tolerances are several standard errors wide.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snnlib import KINDS, make_dropout
from snnlib.model.dropout import (
    ALPHA_PRIME,
    dropout_inverted,
    dropout_test_scaling,
    dropout_unscaled,
    keep_mask,
    spike_dropout,
)

# Eq 8's saturation value alpha' = -lambda * alpha of SELU, written out independently.
ALPHA_PRIME_REF = -1.0507009873554805 * 1.6732632423543772  # -1.7581


def alpha_ab(p: float) -> tuple[float, float]:
    """Eq 8's affine correction: a = ((1 - p)(1 + p alpha'^2))^-1/2, b = -a alpha' p."""
    a = 1.0 / math.sqrt((1 - p) * (1 + p * ALPHA_PRIME_REF**2))
    return a, -a * ALPHA_PRIME_REF * p


def positive_input(shape) -> torch.Tensor:
    """Strictly positive values, so a zero in the output can only mean 'dropped'."""
    return torch.rand(shape) + 0.5


def train_mode(kind: str, p: float, time_consistent: bool = False):
    return make_dropout(kind, p, time_consistent).train()


def constant_over_time(mask: torch.Tensor) -> bool:
    return torch.equal(mask, mask[:1].expand_as(mask))


ELEMENT_SHAPE = (32, 64, 256)  # (T, N, F): 524k elements
CHANNEL_SHAPE = (4, 256, 512)  # 131k neurons


# ---------------------------------------------------------------- standard dropout (eqs 4-6)

@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("time_consistent", [False, True])
def test_dropout_scales_survivors_by_one_over_keep_probability(p, time_consistent):
    """Eqs 4-5, inverted: a kept element becomes x / (1 - p), a dropped one 0."""
    x = positive_input(ELEMENT_SHAPE)
    y = train_mode("dropout", p, time_consistent)(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("time_consistent", [False, True])
def test_dropout_drop_fraction_is_p_and_mean_is_preserved(p, time_consistent):
    """Each element is dropped with probability p; E[y] = x."""
    x = positive_input(ELEMENT_SHAPE)
    y = train_mode("dropout", p, time_consistent)(x)
    # a time-consistent mask has only N * F independent draws
    tol = 0.005 if not time_consistent else 0.02
    assert (y == 0).float().mean().item() == pytest.approx(p, abs=tol)
    assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.03)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_draws_a_fresh_mask_at_every_step(p):
    """time_consistent=False (the paper): masks of different steps are independent, so two
    steps disagree on a fraction 2 p (1 - p) of the elements."""
    y = train_mode("dropout", p)(positive_input(ELEMENT_SHAPE))
    dropped = y == 0
    assert not constant_over_time(dropped)
    disagree = (dropped[0] != dropped[1]).float().mean().item()
    assert disagree == pytest.approx(2 * p * (1 - p), abs=0.02)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_time_consistent_mask_is_constant_over_time(p):
    """time_consistent=True: one mask per sample and neuron, kept for all T steps."""
    y = train_mode("dropout", p, time_consistent=True)(positive_input(ELEMENT_SHAPE))
    dropped = y == 0
    assert constant_over_time(dropped)
    assert not torch.equal(dropped[0, 0], dropped[0, 1]), "samples must get different masks"


# ---------------------------------------------------------------- channel kinds by zeroing

@pytest.mark.parametrize("kind", ["dropout2d", "feature"])
@pytest.mark.parametrize("time_consistent", [False, True])
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_channel_dropout_zeroes_whole_neurons(kind, time_consistent, p):
    """Eq 7 / feature dropout: a neuron's whole time series is zeroed (mask constant over
    T whatever time_consistent says), survivors scaled by 1 / (1 - p), mean preserved."""
    x = positive_input(CHANNEL_SHAPE)
    y = train_mode(kind, p, time_consistent)(x)
    dropped = y == 0
    assert constant_over_time(dropped)
    assert dropped[0].float().mean().item() == pytest.approx(p, abs=0.01)
    assert torch.allclose(y[~dropped], x[~dropped] / (1 - p), rtol=1e-6, atol=0)
    assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.02)
    assert not torch.equal(dropped[0, 0], dropped[0, 1]), "samples must get different masks"


# ---------------------------------------------------------------- alpha dropout (eq 8)

def test_alpha_prime_is_selu_saturation():
    """alpha' = -lambda * alpha = -1.7581."""
    assert ALPHA_PRIME == pytest.approx(-1.7581, abs=1e-4)
    assert ALPHA_PRIME == pytest.approx(ALPHA_PRIME_REF, rel=1e-12)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_alpha_dropout_values(p):
    """Eq 8: dropped elements become a * alpha' + b, kept ones a * x + b; a fraction p drops."""
    a, b = alpha_ab(p)
    x = torch.randn(ELEMENT_SHAPE)
    y = train_mode("alpha", p)(x)
    dropped = torch.isclose(y, torch.tensor(a * ALPHA_PRIME_REF + b), rtol=0, atol=1e-6)
    assert dropped.float().mean().item() == pytest.approx(p, abs=0.005)
    assert torch.allclose(y[~dropped], a * x[~dropped] + b, rtol=1e-5, atol=1e-6)


def test_alpha_dropout_turns_silence_into_plus_minus_0779():
    """At p = 0.5 a zero input (no current, no spike) becomes +0.779 (kept) or -0.779
    (dropped), half each: the mechanism behind claim C2."""
    y = train_mode("alpha", 0.5)(torch.zeros(ELEMENT_SHAPE))
    values = y.unique()
    assert values.numel() == 2
    assert values.tolist() == pytest.approx([-0.779, 0.779], abs=1e-3)
    assert (y < 0).float().mean().item() == pytest.approx(0.5, abs=0.005)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("time_consistent", [False, True])
def test_alpha_dropout_keeps_zero_mean_unit_variance(p, time_consistent):
    """For N(0, 1) inputs the output keeps mean 0 and variance 1 (the point of eq 8)."""
    y = train_mode("alpha", p, time_consistent)(torch.randn(ELEMENT_SHAPE))
    assert y.mean().item() == pytest.approx(0.0, abs=0.02)
    assert y.var().item() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_alpha_dropout_agrees_with_torch(p):
    """Same moments as torch.nn.functional.alpha_dropout, and the same two values for a
    zero input."""
    x = torch.randn(ELEMENT_SHAPE)
    ours = train_mode("alpha", p)(x)
    theirs = F.alpha_dropout(x, p, training=True)
    assert ours.mean().item() == pytest.approx(theirs.mean().item(), abs=0.01)
    assert ours.var().item() == pytest.approx(theirs.var().item(), abs=0.01)
    zeros = torch.zeros(ELEMENT_SHAPE)
    ours_values = train_mode("alpha", p)(zeros).unique()
    theirs_values = F.alpha_dropout(zeros, p, training=True).unique()
    assert torch.allclose(ours_values, theirs_values, rtol=0, atol=1e-5)


def test_alpha_dropout_mask_in_time():
    """Per-step mask by default; one mask for all steps with time_consistent=True."""
    x = torch.zeros(ELEMENT_SHAPE)
    assert not constant_over_time(train_mode("alpha", 0.5)(x) < 0)
    assert constant_over_time(train_mode("alpha", 0.5, time_consistent=True)(x) < 0)


# ---------------------------------------------------------------- feature alpha dropout

@pytest.mark.parametrize("p", [0.2, 0.5])
def test_feature_alpha_dropout_sets_whole_neurons(p):
    """A dropped neuron takes a * alpha' + b at every step; kept neurons a * x + b."""
    a, b = alpha_ab(p)
    x = torch.randn(CHANNEL_SHAPE)
    y = train_mode("feature_alpha", p)(x)
    dropped = torch.isclose(y, torch.tensor(a * ALPHA_PRIME_REF + b), rtol=0, atol=1e-6)
    assert constant_over_time(dropped)
    assert dropped[0].float().mean().item() == pytest.approx(p, abs=0.01)
    assert torch.allclose(y[~dropped], a * x[~dropped] + b, rtol=1e-5, atol=1e-6)


def test_feature_alpha_dropout_turns_silent_neurons_into_constant_0779():
    """At p = 0.5 a silent neuron's whole series becomes +0.779 or -0.779."""
    y = train_mode("feature_alpha", 0.5)(torch.zeros(CHANNEL_SHAPE))
    assert constant_over_time(y)
    assert y.unique().tolist() == pytest.approx([-0.779, 0.779], abs=1e-3)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_feature_alpha_dropout_agrees_with_torch(p):
    """Moments match torch.nn.functional.feature_alpha_dropout on the (N, F, T) layout (a
    neuron is a channel), and so do the values a silent neuron can take."""
    x = torch.randn(CHANNEL_SHAPE)
    ours = train_mode("feature_alpha", p)(x)
    theirs = F.feature_alpha_dropout(x.permute(1, 2, 0), p, training=True).permute(2, 0, 1)
    assert ours.mean().item() == pytest.approx(theirs.mean().item(), abs=0.02)
    assert ours.var().item() == pytest.approx(theirs.var().item(), abs=0.02)
    assert ours.var().item() == pytest.approx(1.0, abs=0.02)
    zeros = torch.zeros(CHANNEL_SHAPE)
    ours_zero = train_mode("feature_alpha", p)(zeros)
    theirs_zero = F.feature_alpha_dropout(zeros.permute(1, 2, 0), p, training=True).permute(2, 0, 1)
    assert constant_over_time(theirs_zero), "torch's channel mask is constant along the last axis"
    assert torch.allclose(ours_zero.unique(), theirs_zero.unique(), rtol=0, atol=1e-5)
    ours_dropped = (ours_zero[0] < 0).float().mean().item()
    assert ours_dropped == pytest.approx((theirs_zero[0] < 0).float().mean().item(), abs=0.01)


# ---------------------------------------------------------------- modes and validation

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("time_consistent", [False, True])
def test_eval_mode_is_identity(kind, time_consistent):
    """Every kind is the identity at test time (inverted scaling needs no test-time factor)."""
    module = make_dropout(kind, 0.5, time_consistent).eval()
    x = torch.randn(8, 4, 16)
    assert torch.equal(module(x), x)


@pytest.mark.parametrize("kind", KINDS)
def test_p_zero_and_kind_none_are_identity_in_training(kind):
    x = torch.randn(8, 4, 16)
    assert torch.equal(train_mode(kind, 0.0)(x), x)
    assert torch.equal(train_mode("none", 0.5)(x), x)


def test_make_dropout_stores_its_settings():
    module = make_dropout("feature_alpha", 0.25, True)
    assert (module.kind, module.p, module.time_consistent) == ("feature_alpha", 0.25, True)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
@pytest.mark.parametrize("kind", KINDS)
def test_p_outside_unit_interval_is_rejected_with_allowed_range(kind, p):
    """p must lie in [0, 1); the message names that range."""
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        make_dropout(kind, p)


def test_functional_dropout_rejects_bad_p():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        spike_dropout(torch.ones(2, 2, 2), "dropout", 1.0)


@pytest.mark.parametrize("kind", ["Dropout", "alpha_dropout", "", "spatial"])
def test_unknown_kind_is_rejected(kind):
    """An unknown kind is a ValueError that lists the allowed kinds."""
    with pytest.raises(ValueError, match="allowed") as info:
        make_dropout(kind, 0.5)
    for allowed in KINDS:
        assert allowed in str(info.value)


# ---------------------------------------------------------------- eq 5 + eq 6 vs inverted

@pytest.mark.parametrize("p", [0.2, 0.5])
def test_keep_mask_is_bernoulli_one_minus_p(p):
    """Eq 4: r ~ Bernoulli(1 - p)."""
    r = keep_mask((1000, 1000), p)
    assert set(r.unique().tolist()) <= {0.0, 1.0}
    assert r.mean().item() == pytest.approx(1 - p, abs=0.003)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.7])
def test_paper_scaling_and_inverted_dropout_agree_in_expectation(p):
    """Eq 5 in training then eq 6 at test (scale by 1 - p) keeps E[train input] = test input,
    exactly as inverted dropout (x r / (1 - p) in training, identity at test) does; the two
    differ only by the constant factor 1 - p applied in both phases."""
    x = torch.randn(64)
    r = (torch.rand(50000, 64) >= p).float()
    paper_train = dropout_unscaled(x, r)  # eq 5
    paper_test = dropout_test_scaling(x, p)  # eq 6
    inverted_train = dropout_inverted(x, r, p)
    assert torch.allclose(paper_train.mean(0), paper_test, rtol=0, atol=0.03)
    assert torch.allclose(inverted_train.mean(0), x, rtol=0, atol=0.03 / (1 - p))
    assert torch.allclose(dropout_test_scaling(inverted_train, p), paper_train, rtol=1e-6, atol=1e-6)
    assert torch.allclose(paper_test, x * (1 - p))


def test_time_consistent_element_masks_equal_the_channel_kinds():
    """On a fully connected layer a channel is a neuron: with one mask per sample kept over
    time, element dropout IS dropout2d / feature dropout, and alpha IS feature alpha
    (same seed, identical output). The study's remedy grid relies on this identity."""
    x = torch.randn(8, 16, 32)
    pairs = [("dropout", "dropout2d"), ("dropout", "feature"), ("alpha", "feature_alpha")]
    for element_kind, channel_kind in pairs:
        torch.manual_seed(3)
        a = make_dropout(element_kind, 0.5, time_consistent=True).train()(x)
        torch.manual_seed(3)
        b = make_dropout(channel_kind, 0.5).train()(x)
        assert torch.equal(a, b), (element_kind, channel_kind)


# ---------------------------------------------------------------- alpha dropout in numbers (eq 8)

def test_alpha_dropout_moments_hand_computed_at_half():
    """p = 0.5: a = (0.5 (1 + 0.5 alpha'^2))^-1/2 = 0.88640, b = 0.77919; gain a / 2 = 0.44320."""
    from snnlib.model.dropout import alpha_dropout_moments

    m = alpha_dropout_moments(0.5)
    a = 1.0 / math.sqrt(0.5 * (1 + 0.5 * ALPHA_PRIME_REF**2))
    assert m.a == pytest.approx(a, rel=1e-12)
    assert m.a == pytest.approx(0.886405, abs=1e-6)
    assert m.b == pytest.approx(0.779194, abs=1e-6)
    assert m.gain == pytest.approx(0.443202, abs=1e-6)
    assert m.kept_zero == pytest.approx(0.779194, abs=1e-6)
    assert m.dropped_zero == pytest.approx(-0.779194, abs=1e-6)
    assert m.zero_std == pytest.approx(0.779194, abs=1e-6)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.8])
def test_alpha_dropout_moments_match_eq8(p):
    """The gain and offsets follow from eq 8's a and b written out independently."""
    from snnlib.model.dropout import alpha_dropout_moments

    m = alpha_dropout_moments(p)
    a, b = alpha_ab(p)
    assert (m.p, m.a, m.b) == (p, pytest.approx(a, rel=1e-12), pytest.approx(b, rel=1e-12))
    assert m.gain == pytest.approx(a * (1 - p), rel=1e-12)
    assert m.kept_zero == pytest.approx(b, rel=1e-12)
    assert m.dropped_zero == pytest.approx(a * ALPHA_PRIME_REF + b, rel=1e-12)
    # the two offsets average to zero over masks
    assert (1 - p) * m.kept_zero + p * m.dropped_zero == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_alpha_dropout_moments_monte_carlo(p):
    """Against alpha_dropout_apply with drawn masks: E[y] = gain * x for a constant input, and a
    zero input takes exactly the two offsets, with mean 0 and the stated standard deviation."""
    from snnlib.model.dropout import alpha_dropout_apply, alpha_dropout_moments

    m = alpha_dropout_moments(p)
    n = 400_000
    x = torch.full((n,), 1.5, dtype=torch.float64)
    keep = keep_mask((n,), p, dtype=torch.float64)
    y = alpha_dropout_apply(x, keep, p)
    se = y.std().item() / math.sqrt(n)
    assert abs(y.mean().item() - m.gain * 1.5) < 5 * se
    zero = alpha_dropout_apply(torch.zeros(n, dtype=torch.float64), keep, p)
    values = sorted(set(zero.round(decimals=9).tolist()))
    assert values == [pytest.approx(m.dropped_zero, abs=1e-9), pytest.approx(m.kept_zero, abs=1e-9)]
    assert abs(zero.mean().item()) < 5 * m.zero_std / math.sqrt(n)
    assert zero.std().item() == pytest.approx(m.zero_std, rel=0.01)
