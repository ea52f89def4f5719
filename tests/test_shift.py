"""The shift and out-of-distribution sets (snnlib.uncertainty.shift): names and parameters, the transforms
against their definitions (rotation direction, rotation by 0 is the identity, blur against
scipy, noise statistics, the OOD conversions against Pillow), and shapes, dtypes and value
ranges of the encoded sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnlib.experiment import data as D
from snnlib.uncertainty import shift as S


def test_shift_specs_name_every_set():
    names = [s.name for s in S.shift_specs("mnist", (30, 60))]
    assert names == ["test", "rotate30", "rotate60", "ood_cifar10"]
    names = [s.name for s in S.shift_specs("cifar10")]
    assert names == ["test"] + [f"noise{i}" for i in range(1, 6)] + [f"blur{i}" for i in range(1, 6)] + ["ood_mnist"]
    assert [s.parameter for s in S.shift_specs("cifar10")[1:6]] == list(S.NOISE_STD)
    assert [s.parameter for s in S.shift_specs("cifar10")[6:11]] == list(S.BLUR_SIGMA)
    with pytest.raises(ValueError):
        S.shift_specs("mnist", (0,))


def test_rotation_turns_counter_clockwise_and_zero_is_the_identity(use_real_data):
    image = np.zeros((1, 5, 5), np.uint8)
    image[0, 0, 2] = 200  # top centre
    turned = S.rotate_images(image, 90)
    assert turned[0, 2, 0] == 200 and turned.sum() == 200  # now left centre
    images, _ = D.load("mnist", "test")
    assert np.array_equal(S.rotate_images(images[:300], 0), images[:300])
    assert np.array_equal(S.rotate_images(images[:50], 360), images[:50])
    colour, _ = D.load("cifar10", "test")
    assert np.array_equal(S.rotate_images(colour[:20], 0), colour[:20])
    half = S.rotate_images(images[:50], 180)
    assert np.array_equal(half, images[:50, ::-1, ::-1])  # 180 degrees: both axes flipped


def test_noise_and_blur_follow_their_definitions(use_real_data):
    from scipy.ndimage import gaussian_filter

    images, _ = D.load("cifar10", "test")
    x = images[:40]
    blurred = S.gaussian_blur(x, 0.7)
    ref = gaussian_filter(x / 255.0, sigma=(0, 0.7, 0.7, 0), mode="nearest", truncate=S.BLUR_TRUNCATE)
    assert np.abs(blurred.astype(int) - np.round(ref * 255)).max() <= 1
    assert np.array_equal(S.gaussian_blur(x, 0.0), x)
    assert np.array_equal(S.gaussian_noise(x, 0.0, 1), x)
    noisy = S.gaussian_noise(x, 0.1, 5)
    diff = noisy.astype(float) / 255 - x / 255.0
    inside = (x > 40) & (x < 215)  # away from the clipping
    assert diff[inside].std() == pytest.approx(0.1, rel=0.05) and abs(diff[inside].mean()) < 0.005
    # image i's noise does not depend on how many images are drawn
    assert np.array_equal(S.gaussian_noise(images[:10], 0.1, 5), noisy[:10])
    assert not np.array_equal(S.gaussian_noise(x, 0.1, 6), noisy)


def test_ood_conversions(use_real_data):
    from PIL import Image

    colour, _ = D.load("cifar10", "test")
    grey = S.cifar_as_mnist(colour[:10])
    assert grey.shape == (10, 28, 28) and grey.dtype == np.uint8
    pil = np.stack([np.asarray(Image.fromarray(im).convert("L").resize((28, 28), Image.BILINEAR)) for im in colour[:10]])
    assert np.abs(grey.astype(int) - pil).max() <= 2  # Pillow rounds its luma in integers
    digits, _ = D.load("mnist", "test")
    padded = S.mnist_as_cifar(digits[:10])
    assert padded.shape == (10, 32, 32, 3) and padded.dtype == np.uint8
    assert np.array_equal(padded[:, 2:30, 2:30, 1], digits[:10]) and padded[:, :2].sum() == 0
    assert np.array_equal(padded[..., 0], padded[..., 2])


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_every_set_encodes_like_the_test_set(use_real_data, dataset):
    features = 784 if dataset == "mnist" else 3072
    for spec in S.shift_specs(dataset, (45, 180)):
        images, labels = S.shift_images(spec, 30)
        assert images.dtype == np.uint8 and images.shape == (30, *D.SHAPES[dataset])
        assert labels.shape == (30,)
        encoded = S.shifted_dataset(spec, 12, 30)
        assert encoded.times.dtype == torch.uint8 and encoded.times.shape == (30, features)
        assert encoded.labels.dtype == torch.int64 and len(encoded) == 30
        fired = encoded.times[encoded.times != 255]
        assert int(fired.max()) <= 12
        assert torch.equal(encoded.times, D.encode(images, labels, 12).times)
    test = S.shifted_dataset(S.ShiftSpec("test", dataset, "test"), 12, 30)
    reference = D.encode(*D.subset(*D.load(dataset, "test"), 30), 12)
    assert torch.equal(test.times, reference.times) and torch.equal(test.labels, reference.labels)
