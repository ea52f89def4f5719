"""Shifted and out-of-distribution test sets, made from the project's own data (no downloads).

The protocol of Ovadia et al. (2019, "Can you trust your model's uncertainty?"), with what
MNIST and CIFAR-10 give:

* rotated MNIST: the test digits rotated by 15, 30, ..., 180 degrees (counter-clockwise,
  about the image centre, bilinear, zeros outside);
* CIFAR-10 with Gaussian noise and with Gaussian blur at 5 severities, with the parameters
  of CIFAR-10-C (Hendrycks and Dietterich 2019, ``make_cifar_c.py``): noise standard
  deviations :data:`NOISE_STD` = 0.04, 0.06, 0.08, 0.09, 0.10 on intensities in [0, 1]
  (then clipped to [0, 1]), blur sigmas :data:`BLUR_SIGMA` = 0.4, 0.6, 0.7, 0.8, 1.0
  pixels (per colour channel, kernel truncated at 4 sigma, edges extended by their nearest
  pixel: ``skimage.filters.gaussian``'s defaults);
* out of distribution: for MNIST networks, CIFAR-10 test images in grey (ITU-R 601 luma,
  ``0.299 R + 0.587 G + 0.114 B``, as Pillow's ``convert("L")``) shrunk to 28 x 28
  (bilinear with antialiasing); for CIFAR-10 networks, MNIST test digits padded with 2
  black pixels on each side to 32 x 32 and repeated in the three colour channels;
* near out of distribution (evaluation version 3 only, the second round's block 5): the test images cut
  into :data:`PATCH_GRID` x :data:`PATCH_GRID` patches (7 x 7 pixels on MNIST, 8 x 8 on CIFAR-10, the
  colour channels of a pixel kept together) and the patches shuffled per image
  (:func:`patch_shuffle`): every image keeps its multiset of pixel values, so the first-spike coding gives
  it the same number of input spikes at the same times, and a detector that counts input spikes cannot
  tell the set from the test set (its AUROC is 0.5 by construction), while the digit or object is gone.

Every transform works on the uint8 images (``(M, 28, 28)`` or ``(M, 32, 32, 3)``, HWC, as
:func:`snnlib.experiment.data.load` gives them), computes in float32 on intensities in [0, 1] and rounds
back to uint8 intensities (CIFAR-10-C stores its images as uint8 too), so the sets are encoded
by :func:`snnlib.experiment.data.encode`, the study's first-spike coding, exactly as the test set is; a
rotation by 0 degrees or a blur or noise of size 0 gives back the images unchanged. The
noise is drawn from numpy's PCG64 seeded with :data:`NOISE_SEED` and the severity, one
image after the other, so the first ``k`` images of a set are the same whatever the subset
size.

The sets come from the test split only (the first ``subset`` test images): a network never
saw them in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from snnlib.experiment import data as D

ROTATION_ANGLES = tuple(range(15, 181, 15))  # degrees; 0 is the test set itself
NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)  # CIFAR-10-C gaussian_noise, severities 1-5
BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)  # CIFAR-10-C gaussian_blur, severities 1-5
BLUR_TRUNCATE = 4.0  # kernel radius in sigmas (scipy / skimage default)
NOISE_SEED = 20190  # base seed of the Gaussian noise (plus the severity)
PATCH_GRID = 4  # the near-OOD set: the images cut into 4 x 4 patches (7 x 7 pixels on MNIST, 8 x 8 on CIFAR-10)
PATCH_SEED = 20261206  # the seed of the patch permutations (the addendum's date)
NEAR_OOD = "near_ood"  # the kind and the name of the near out-of-distribution set
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's convert("L")
OOD_SOURCE = {"mnist": "cifar10", "cifar10": "mnist"}  # the out-of-distribution set of each dataset
_CHUNK = 2000  # images per transform chunk (bounds the float32 working memory)


@dataclass(frozen=True)
class ShiftSpec:
    """One evaluation set of a dataset.

    ``kind``: ``test`` (the test set), ``shift`` (the test set transformed; labels kept),
    ``ood`` (images of the other dataset; their labels mean nothing to the network) or ``near_ood``
    (the test images with their patches shuffled, :func:`patch_shuffle`: no longer a digit or an
    object, so the labels mean nothing either). ``family``: ``rotation``, ``gaussian_noise``,
    ``gaussian_blur``, ``patch_shuffle`` or ``None``; ``level``: the angle in degrees or the severity
    1-5 (the patch grid's side for ``patch_shuffle``); ``parameter``: the angle, the noise standard
    deviation, the blur sigma or a patch's side in pixels.
    """

    name: str
    dataset: str
    kind: str
    family: str | None = None
    level: int | None = None
    parameter: float | None = None

    @property
    def labelled(self) -> bool:
        """Whether accuracy, NLL and calibration mean anything on this set."""
        return self.kind not in ("ood", NEAR_OOD)

    def describe(self) -> dict:
        return {"kind": self.kind, "family": self.family, "level": self.level, "parameter": self.parameter,
                "source": OOD_SOURCE[self.dataset] if self.kind == "ood" else self.dataset}


def shift_specs(dataset: str, angles: tuple[int, ...] | list[int] = ROTATION_ANGLES,
                include_test: bool = True, near_ood: bool = False) -> list[ShiftSpec]:
    """The evaluation sets of ``dataset``: the test set, its shifts, and the OOD set, in order.

    MNIST: ``test``, ``rotate15`` ... ``rotate180`` (``angles``), ``ood_cifar10``.
    CIFAR-10: ``test``, ``noise1`` ... ``noise5``, ``blur1`` ... ``blur5``, ``ood_mnist``.
    With ``near_ood`` (evaluation version 3), then ``near_ood``: the test images with their patches
    shuffled (:func:`patch_shuffle`).
    """
    if dataset not in D.DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; allowed: {', '.join(D.DATASETS)}")
    specs = [ShiftSpec("test", dataset, "test")] if include_test else []
    if dataset == "mnist":
        for angle in angles:
            angle = int(angle)
            if not 0 < angle <= 360:
                raise ValueError(f"rotation angles must be in (0, 360] degrees, got {angle}")
            specs.append(ShiftSpec(f"rotate{angle}", dataset, "shift", "rotation", angle, float(angle)))
    else:
        specs += [ShiftSpec(f"noise{s}", dataset, "shift", "gaussian_noise", s, NOISE_STD[s - 1]) for s in range(1, 6)]
        specs += [ShiftSpec(f"blur{s}", dataset, "shift", "gaussian_blur", s, BLUR_SIGMA[s - 1]) for s in range(1, 6)]
    specs.append(ShiftSpec(f"ood_{OOD_SOURCE[dataset]}", dataset, "ood"))
    if near_ood:
        side = D.SHAPES[dataset][0] // PATCH_GRID
        specs.append(ShiftSpec(NEAR_OOD, dataset, NEAR_OOD, "patch_shuffle", PATCH_GRID, float(side)))
    return specs


# ---------------------------------------------------------------- transforms of uint8 images

def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """Intensities in [0, 1] (float) to the nearest uint8 level."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8).numpy()


def _nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(M, H, W)`` or ``(M, H, W, C)`` to float32 ``(M, C, H, W)`` intensities in [0, 1]."""
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images (M, H, W) or (M, H, W, C), got {images.dtype} {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    return x[:, None] if images.ndim == 3 else x.permute(0, 3, 1, 2)


def _back(x: torch.Tensor, like: np.ndarray) -> np.ndarray:
    """float ``(M, C, H, W)`` back to uint8 in the layout of ``like``."""
    x = x[:, 0] if like.ndim == 3 else x.permute(0, 2, 3, 1)
    return _to_uint8(x.contiguous())


def _chunked(images: np.ndarray, transform) -> np.ndarray:
    if len(images) == 0:
        return images.copy()
    return np.concatenate([_back(transform(_nchw(images[i:i + _CHUNK]), i), images[i:i + _CHUNK])
                           for i in range(0, len(images), _CHUNK)])


def rotate_images(images: np.ndarray, degrees: float) -> np.ndarray:
    """The images rotated counter-clockwise by ``degrees`` about their centre (bilinear
    interpolation, zeros where the rotated image has no source pixel), as uint8.

    Built on ``affine_grid``/``grid_sample`` (``align_corners=False``: pixel centres at
    ``(2 i + 1) / W - 1``); a rotation by 0 returns the images unchanged.
    """
    theta = math.radians(float(degrees))
    c, s = math.cos(theta), math.sin(theta)
    # the sampling grid maps an output pixel to its source: the inverse rotation. With y
    # pointing down in image coordinates, this turns the picture counter-clockwise on screen.
    matrix = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=torch.float32)

    def transform(x: torch.Tensor, _: int) -> torch.Tensor:
        grid = F.affine_grid(matrix.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    return _chunked(images, transform)


def gaussian_noise(images: np.ndarray, std: float, seed: int) -> np.ndarray:
    """``clip(x + N(0, std^2), 0, 1)`` on intensities ``x`` in [0, 1], independently per pixel
    and channel (CIFAR-10-C's ``gaussian_noise``), as uint8. The noise of image ``i`` is the
    ``i``-th block of one PCG64 stream seeded with ``seed``, so a subset's images do not
    depend on its size."""
    if std < 0:
        raise ValueError(f"noise standard deviation must be >= 0, got {std}")
    rng = np.random.default_rng(seed)
    per_image = int(np.prod(images.shape[1:]))

    def transform(x: torch.Tensor, _: int) -> torch.Tensor:
        noise = rng.standard_normal((x.shape[0], per_image), dtype=np.float32)
        noise = torch.from_numpy(noise).view(x.shape[0], *images.shape[1:])
        noise = noise[:, None] if images.ndim == 3 else noise.permute(0, 3, 1, 2)
        return x + std * noise

    return _chunked(images, transform)


def gaussian_kernel(sigma: float, truncate: float = BLUR_TRUNCATE) -> torch.Tensor:
    """The normalized 1-D Gaussian of ``sigma`` pixels, radius ``int(truncate * sigma + 0.5)``
    (scipy's ``gaussian_filter`` rule)."""
    radius = int(truncate * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return torch.ones(1)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


def blur_matrix(size: int, sigma: float, truncate: float = BLUR_TRUNCATE) -> torch.Tensor:
    """The ``(size, size)`` matrix of a 1-D Gaussian blur of ``sigma`` pixels with the edges
    extended by their nearest pixel: row ``i`` holds the weights of the source pixels of
    output pixel ``i`` (kernel tap ``j`` reads pixel ``clamp(i + j - r, 0, size - 1)``)."""
    k = gaussian_kernel(sigma, truncate)
    r = (len(k) - 1) // 2
    matrix = torch.zeros(size, size)
    rows = torch.arange(size)
    for j in range(len(k)):
        matrix.index_put_((rows, (rows + j - r).clamp(0, size - 1)), k[j].expand(size), accumulate=True)
    return matrix


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Each channel convolved with a Gaussian of ``sigma`` pixels (separable, truncated at
    :data:`BLUR_TRUNCATE` sigma, edges extended by their nearest pixel), as uint8.

    The two passes are products with :func:`blur_matrix` (rows, then columns): the same sums
    as a padded convolution, several times faster than ``conv2d`` with a one-pixel-wide kernel
    on the CPU.
    """
    if sigma < 0:
        raise ValueError(f"blur sigma must be >= 0, got {sigma}")
    if len(gaussian_kernel(sigma)) == 1:
        return images.copy()
    h, w = images.shape[1], images.shape[2]
    rows, cols = blur_matrix(h, sigma), blur_matrix(w, sigma)

    def transform(x: torch.Tensor, _: int) -> torch.Tensor:
        return rows @ x @ cols.T

    return _chunked(images, transform)


def cifar_as_mnist(images: np.ndarray) -> np.ndarray:
    """CIFAR-10 images ``(M, 32, 32, 3)`` as MNIST-like ``(M, 28, 28)`` grey images (uint8)."""
    if images.shape[1:] != (32, 32, 3):
        raise ValueError(f"expected CIFAR-10 images (M, 32, 32, 3), got {images.shape}")
    luma = torch.tensor(LUMA).view(1, 3, 1, 1)

    def transform(x: torch.Tensor, _: int) -> torch.Tensor:
        grey = (x * luma).sum(1, keepdim=True)
        return F.interpolate(grey, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)

    out = [_to_uint8(transform(_nchw(images[i:i + _CHUNK]), i)[:, 0]) for i in range(0, len(images), _CHUNK)]
    return np.concatenate(out) if out else np.zeros((0, 28, 28), np.uint8)


def mnist_as_cifar(images: np.ndarray) -> np.ndarray:
    """MNIST digits ``(M, 28, 28)`` as CIFAR-like ``(M, 32, 32, 3)`` images: 2 black pixels of
    padding on each side, the grey level repeated in the three channels (uint8)."""
    if images.shape[1:] != (28, 28):
        raise ValueError(f"expected MNIST images (M, 28, 28), got {images.shape}")
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(padded[..., None], 3, axis=3)


def patch_permutations(count: int, grid: int = PATCH_GRID, seed: int = PATCH_SEED) -> np.ndarray:
    """The permutation of the ``grid * grid`` patches of each of ``count`` images, ``(count, grid * grid)``:
    row ``i`` is the argsort of the ``i``-th block of ``grid * grid`` uniform draws of one PCG64 stream
    seeded with ``seed``, so the first ``k`` rows are the same whatever ``count`` is."""
    draws = np.random.default_rng(seed).random((count, grid * grid))
    return np.argsort(draws, axis=1, kind="stable")


def patch_shuffle(images: np.ndarray, grid: int = PATCH_GRID, seed: int = PATCH_SEED) -> np.ndarray:
    """Each image cut into ``grid`` x ``grid`` equal patches (rows of patches, then columns; the colour
    channels of a pixel stay together) and its patches put back in the order of its row of
    :func:`patch_permutations` (output patch ``j`` is input patch ``perm[j]``), as uint8.

    A pure function of the images and the seed: image ``i`` gets permutation ``i``, so a subset's images do
    not depend on its size. No pixel value is changed, added or lost: every image keeps the multiset of its
    pixel values (per channel), and so, under the first-spike coding, its number of input spikes and their
    times; only where they are changes. The image side must be a multiple of ``grid``.
    """
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images (M, H, W) or (M, H, W, C), got {images.dtype} {images.shape}")
    m, h, w = images.shape[:3]
    if grid < 1 or h % grid or w % grid:
        raise ValueError(f"the images' sides ({h} x {w}) must be multiples of the patch grid {grid}")
    ph, pw = h // grid, w // grid
    rest = images.shape[3:]
    # (M, grid, ph, grid, pw, ...) -> (M, grid * grid, ph, pw, ...): patch index = row of patches * grid + column
    patches = images.reshape(m, grid, ph, grid, pw, *rest).swapaxes(2, 3).reshape(m, grid * grid, ph, pw, *rest)
    perm = patch_permutations(m, grid, seed)
    shuffled = np.take_along_axis(patches, perm.reshape(m, grid * grid, *([1] * (2 + len(rest)))), axis=1)
    out = shuffled.reshape(m, grid, grid, ph, pw, *rest).swapaxes(2, 3).reshape(images.shape)
    return np.ascontiguousarray(out)


# ---------------------------------------------------------------- the sets

def shift_images(spec: ShiftSpec, subset: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images and labels of one evaluation set: the first ``subset`` test images
    (all when None) of the set's source, transformed (the near-OOD set keeps the test labels, which
    mean nothing there)."""
    if spec.kind == "ood":
        images, labels = D.subset(*D.load(OOD_SOURCE[spec.dataset], "test"), subset)
        convert = cifar_as_mnist if spec.dataset == "mnist" else mnist_as_cifar
        return convert(images), labels
    images, labels = D.subset(*D.load(spec.dataset, "test"), subset)
    if spec.kind == "test":
        return images, labels
    if spec.family == "rotation":
        return rotate_images(images, spec.parameter), labels
    if spec.family == "gaussian_noise":
        return gaussian_noise(images, spec.parameter, NOISE_SEED + spec.level), labels
    if spec.family == "gaussian_blur":
        return gaussian_blur(images, spec.parameter), labels
    if spec.family == "patch_shuffle":
        return patch_shuffle(images, spec.level), labels
    raise ValueError(f"unknown shift family {spec.family!r}")


def shifted_dataset(spec: ShiftSpec, t_enc: int, subset: int | None = None,
                    device: torch.device | str = "cpu") -> D.EncodedDataset:
    """One evaluation set encoded with the study's first-spike coding (:func:`snnlib.experiment.data.encode`)."""
    return D.encode(*shift_images(spec, subset), t_enc, device)
