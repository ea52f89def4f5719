"""The dropout family of the paper (equations 4-8) for multi-step ``(T, N, F)`` tensors.

Two axes matter for a spiking network:

* the mask in time: drawn afresh at every step (the paper's pseudo-code, what
  snnTorch and Norse examples do), or drawn once per sample and kept for all T steps
  (``time_consistent=True``: SpikingJelly's ``layer.Dropout``, Lava-dl, Lee et al. 2020);
* the unit a mask covers: one element (``dropout``, ``alpha``) or one neuron's whole
  time series (the channel kinds ``dropout2d``, ``feature``, ``feature_alpha``). On a
  fully connected layer a channel is a neuron, so a channel mask is constant over time by
  construction and ``time_consistent`` changes nothing for those kinds.

Masks are drawn with the global torch generator on the tensor's device, so a seeded run
is reproducible and a checkpoint that saves the RNG state resumes exactly. A module's
``generator`` (None by default: the global one) gives it a stream of its own: networks trained
side by side in one process (:mod:`snnlib.model.stack`) each draw their masks from their own,
seeded as a single run seeds the global generator, so each draws exactly a single run's masks.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

KINDS = ("none", "dropout", "dropout2d", "feature", "feature_alpha", "alpha")
CHANNEL_KINDS = ("dropout2d", "feature", "feature_alpha")
ALPHA_KINDS = ("alpha", "feature_alpha")

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
# Eq 8: the value a dropped unit takes, the SELU saturation -lambda * alpha.
ALPHA_PRIME = -SELU_SCALE * SELU_ALPHA


def check_p(p: float) -> float:
    """Validates a dropout probability: allowed range is [0, 1)."""
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p}")
    return p


def check_kind(kind: str) -> str:
    """Validates a dropout kind against :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"unknown dropout kind {kind!r}; allowed: {', '.join(KINDS)}")
    return kind


def keep_mask(shape: tuple[int, ...], p: float, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq 4: the Bernoulli mask ``r ~ Bernoulli(1 - p)`` (1 keeps a unit, 0 drops it).

    Drawn as ``uniform >= p``: the same distribution as ``bernoulli_``, about 3x faster on
    the CPU (which matters: a per-step mask has T * N * F elements every batch). ``generator``:
    the stream to draw from (on ``device``); None, the global one.
    """
    p = check_p(p)
    # in-place comparison keeps the float dtype (no boolean tensor, no conversion pass);
    # drawn in float32 whatever ``dtype`` is, so a seed gives the same masks in any dtype
    return torch.rand(shape, device=device, generator=generator).ge_(p).to(dtype)


def dropout_unscaled(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Eq 5: training-time dropout as the paper writes it, ``y = r * x`` (no rescaling)."""
    return x * keep


def dropout_test_scaling(x: torch.Tensor, p: float) -> torch.Tensor:
    """Eq 6: at test time every unit is kept and scaled by ``1 - p``.

    Eq 5 then eq 6 equal inverted dropout (``r * x / (1 - p)`` in training, identity at
    test) up to the constant ``1 - p``: both keep the expected input of the next layer
    equal between training and test. The library uses the inverted form, as PyTorch does.
    """
    return x * (1.0 - check_p(p))


class _InvertedDropout(torch.autograd.Function):
    """``r * x / (1 - p)`` as one autograd node: the same arithmetic as the two-op form in
    both directions, with one allocation each way instead of two."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.mul(x, keep).div_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return grad.div(ctx.scale).mul_(keep), None, None


def dropout_inverted(x: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """Eqs 4-5 with inverted scaling: ``y = r * x / (1 - p)``, so that ``E[y] = x``."""
    return _InvertedDropout.apply(x, keep, 1.0 - check_p(p))


def alpha_affine(p: float) -> tuple[float, float]:
    """Eq 8: the affine correction ``(a, b)`` of alpha dropout.

    After dropped units are set to ``alpha' = -1.7581``, ``a * x + b`` restores zero mean
    and unit variance for inputs that had them:
    ``a = ((1 - p) (1 + p alpha'^2))^(-1/2)`` and ``b = -a alpha' p``.
    """
    p = check_p(p)
    a = ((1.0 - p) * (1.0 + p * ALPHA_PRIME**2)) ** -0.5
    return a, -a * ALPHA_PRIME * p


def alpha_dropout_apply(x: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """Eq 8: ``a * (r * x + (1 - r) * alpha') + b``.

    Note what this does to a spiking network: a step with no input (``x = 0``) becomes
    ``b`` if kept and ``a * alpha' + b`` if dropped (``+0.779`` or ``-0.779`` at
    p = 0.5), at every step of every neuron.
    """
    a, b = alpha_affine(p)
    return a * (x * keep + ALPHA_PRIME * (1.0 - keep)) + b


def mask_shape(kind: str, shape: tuple[int, ...], time_consistent: bool) -> tuple[int, ...]:
    """Shape of the mask for a ``(T, N, F)`` input: ``(1, N, F)`` when constant over time."""
    if check_kind(kind) in CHANNEL_KINDS or time_consistent:
        return (1, *shape[1:])
    return tuple(shape)


def spike_dropout(x: torch.Tensor, kind: str, p: float, time_consistent: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Training-mode dropout of any kind on a ``(T, N, F)`` tensor (functional form); the mask
    is drawn from ``generator`` (None: the global one)."""
    if check_kind(kind) == "none" or check_p(p) == 0.0:
        return x
    keep = keep_mask(mask_shape(kind, tuple(x.shape), time_consistent), p, x.device, x.dtype, generator)
    if kind in ALPHA_KINDS:
        return alpha_dropout_apply(x, keep, p)
    return dropout_inverted(x, keep, p)


class SpikeDropout(nn.Module):
    """Dropout of one kind on ``(T, N, F)`` tensors; identity in eval mode.

    ``generator``: the random stream its masks come from (None, the default: torch's global
    generator on the tensor's device). Not part of the state dict; a checkpoint saves its state.
    """

    def __init__(self, kind: str = "dropout", p: float = 0.5, time_consistent: bool = False):
        super().__init__()
        self.kind = check_kind(kind)
        self.p = check_p(p)
        self.time_consistent = bool(time_consistent)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return spike_dropout(x, self.kind, self.p, self.time_consistent, self.generator)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, p={self.p}, time_consistent={self.time_consistent}"


def make_dropout(kind: str, p: float = 0.5, time_consistent: bool = False) -> SpikeDropout:
    """The dropout module for ``kind`` in :data:`KINDS` (``none`` is the identity)."""
    return SpikeDropout(kind, p, time_consistent)


class AlphaDropoutMoments(NamedTuple):
    """What eq 8 does to the input of the next layer, in numbers (see :func:`alpha_dropout_moments`)."""

    p: float
    a: float  # eq 8's scale
    b: float  # eq 8's shift
    gain: float  # training: E[y] = gain * x; at test y = x (gain 1)
    kept_zero: float  # a kept zero input becomes b
    dropped_zero: float  # a dropped unit (whatever its input) becomes a * alpha' + b
    zero_std: float  # standard deviation over masks of what a zero input becomes


def alpha_dropout_moments(p: float) -> AlphaDropoutMoments:
    """Eq 8 in numbers: the training-time gain and the two offsets of alpha dropout.

    With ``y = a * (r * x + (1 - r) * alpha') + b`` and ``r ~ Bernoulli(1 - p)``, the
    expected output over masks is ``E[y] = a (1 - p) x + a p alpha' + b = a (1 - p) x``
    (``b = -a alpha' p`` cancels the mean of the dropped units). So in training the next
    layer receives on average ``gain = a (1 - p)`` times its input (0.443 at p = 0.5),
    while at test time alpha dropout is switched off and the input passes unchanged
    (gain 1): a train/test mismatch of the scale. And an input of exactly zero (no
    spike, no current) becomes ``kept_zero = b`` if kept and
    ``dropped_zero = a alpha' + b = a alpha' (1 - p)`` if dropped (+0.779 and -0.779 at
    p = 0.5): mean zero over masks, standard deviation ``zero_std = |a alpha'| sqrt(p (1 - p))``.
    """
    a, b = alpha_affine(p)
    p = float(p)
    return AlphaDropoutMoments(
        p=p, a=a, b=b, gain=a * (1.0 - p), kept_zero=b, dropped_zero=a * ALPHA_PRIME + b,
        zero_std=abs(a * ALPHA_PRIME) * (p * (1.0 - p)) ** 0.5,
    )
