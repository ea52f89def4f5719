"""The machine: devices, atomic files and provenance (git commit), in one place.

The lowest layer beside ``kernels``: it imports nothing else from snnlib, so every other
module (data, training, runner, bench, cli) parses a device, writes a file and records
the commit the same way.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import platform
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"

# glibc's allocator for training and evaluation processes: per-step alpha dropout on the input makes
# temporaries of 37.7 MB (CIFAR-10), above glibc's dynamic mmap ceiling of 32 MB, so every step mapped
# and unmapped them again (73,700 page faults, 188 ms of system time per step). These settings keep
# freed memory in the heap: the same numbers, a CIFAR-10 step 1.8x faster (README, Performance).
# Read by glibc at process start, so the runner puts them into its children's environment and
# ``python -m snnlib train`` / ``uncertainty`` restart themselves with them (:func:`allocator_env`).
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "17179869184"}


def allocator_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with :data:`ALLOCATOR_ENV` added (values the user set are kept)."""
    return {**ALLOCATOR_ENV, **env}


# ---------------------------------------------------------------- devices

def parse_device(name: str) -> torch.device | None:
    """The form of a device name: ``auto`` gives None; ``cpu``, ``cuda`` and ``cuda:N`` a device.

    Checks only the spelling, not whether the device exists here (a grid may name a device
    of the machine that runs it). Raises ``ValueError`` with the allowed names.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ValueError(f"device must be a name, got {name!r}; allowed: {DEVICE_CHOICES}")
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {name!r}; allowed: {DEVICE_CHOICES}") from err
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}; allowed: {DEVICE_CHOICES}")
    return device


def resolve_device(name: str | None) -> torch.device:
    """The device to compute on: ``auto`` (or None) is CUDA when available, else the CPU.

    A named CUDA device must exist on this machine.
    """
    device = parse_device("auto" if name is None else name)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA "
                             f"device(s) are visible")
    return device


def assign_devices(name: str, jobs: int, gpu_count: int | None = None) -> list[str]:
    """The device of each of ``jobs`` concurrent slots: round-robin over the visible GPUs.

    With ``name`` ``auto`` and ``gpu_count`` GPUs (default: the visible ones), slot ``j``
    gets ``cuda:{j % gpu_count}``; with no GPU every slot gets ``cpu``. Any other name is
    used by every slot as given.
    """
    if name != "auto":
        return [name] * jobs
    count = torch.cuda.device_count() if gpu_count is None else gpu_count
    return [f"cuda:{j % count}" for j in range(jobs)] if count > 0 else ["cpu"] * jobs


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name as the kernel reports it (Linux), else the platform's processor or machine type."""
    with contextlib.suppress(OSError):
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    """The hardware in words: the GPU's name, or the CPU's model and its torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


# ---------------------------------------------------------------- atomic files

class StorageError(OSError):
    """A file could not be written (disk full, read-only or unwritable folder): one line saying so."""

    def __str__(self) -> str:
        return str(self.strerror)


_STORAGE_HINTS = {errno.ENOSPC: "no space left on the device; free some space and run the same command again",
                  errno.EDQUOT: "the disk quota is exceeded; free some space and run the same command again",
                  errno.EROFS: "the file system is read-only; choose a writable folder",
                  errno.EACCES: "permission denied; choose a folder you may write",
                  errno.EPERM: "operation not permitted; choose a folder you may write",
                  errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
                  errno.EISDIR: "the path is a folder; choose another path"}


def storage_error(path: str | Path, err: OSError) -> StorageError:
    """A :class:`StorageError` for an ``OSError`` met while writing ``path``, in one line."""
    why = _STORAGE_HINTS.get(err.errno, err.strerror or str(err))
    return StorageError(err.errno, f"cannot write {path}: {why}")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Writes ``path`` through a temporary file and a rename, so that a reader (or a run
    killed mid-write) sees the old file or the new one, never half of one.

    When writing fails, the temporary file is removed (a full disk is not kept full by it) and
    the old file is left as it was; an ``OSError`` becomes a one-line :class:`StorageError`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, StorageError):
            raise storage_error(path, err) from err
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """``data`` into ``path``, atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def replace_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` into the existing file ``path`` in place of its contents, atomically: a symbolic
    link is followed (the file it names is replaced, the link stays), the file keeps its mode, and a
    read-only file (no write permission for its owner) is refused with a one-line :class:`StorageError`
    rather than replaced. Returns the file written."""
    link = Path(path)
    target = link.resolve()
    if not target.is_file():
        raise ValueError(f"no file {link}; name an existing file")
    mode = stat.S_IMODE(target.stat().st_mode)
    if not mode & stat.S_IWUSR:
        raise StorageError(errno.EACCES, f"cannot write {link}: it is read-only (mode {mode:o}); make it writable "
                                         f"(chmod u+w) or choose another file")

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, mode)

    write_atomic(target, write)
    return target


def json_digest(obj: dict, leave_out: tuple[str, ...] = ()) -> str:
    """SHA-256 of ``obj`` as canonical strict JSON (sorted keys, non-finite numbers as null), without
    its top-level keys ``leave_out`` (the digest itself, and fields a reader adds)."""
    body = {k: v for k, v in obj.items() if k not in leave_out}
    return hashlib.sha256(json.dumps(strict_json(body), sort_keys=True, allow_nan=False).encode()).hexdigest()


def strict_json(obj: object) -> object:
    """``obj`` with every non-finite float (NaN, infinities) replaced by None, which strict JSON
    can hold (a diverged run's loss is recorded as null, not as a NaN literal)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


def write_json_atomic(path: str | Path, obj: object) -> None:
    """``obj`` as strict JSON (see :func:`strict_json`), written atomically."""
    text = json.dumps(strict_json(obj), indent=1, allow_nan=False)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def torch_bytes(obj: object) -> bytes:
    """``torch.save(obj)`` in memory: written to disk as plain bytes, a full disk is a plain
    ``OSError`` rather than an error deep inside torch's zip writer."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_torch_atomic(path: str | Path, obj: object) -> str:
    """``torch.save``, written atomically; returns the SHA-256 of the file."""
    data = torch_bytes(obj)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- sealed states

STATE_FORMAT = "snnlib-state-1"


class StateError(RuntimeError):
    """A saved state that cannot be used: damaged, or written by another configuration."""


def save_state(path: str | Path, config: dict, state: dict) -> str:
    """Saves ``state`` (tensors, numbers) with the ``config`` that produced it and the SHA-256 of
    its serialized bytes, atomically; returns that digest.

    The file is a torch file holding ``{"format", "config", "sha256", "state"}`` where ``state``
    is the serialized inner state, so a flipped bit in it or in the configuration is found by
    :func:`load_state`.
    """
    inner = torch_bytes(state)
    digest = _state_digest(config, inner)
    write_bytes_atomic(path, torch_bytes({"format": STATE_FORMAT, "config": config, "sha256": digest,
                                          "state": inner}))
    return digest


def _state_digest(config: dict, inner: bytes) -> str:
    """SHA-256 of the configuration (canonical JSON) and the serialized state together."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode() + b"\0" + inner).hexdigest()


def load_state(path: str | Path, map_location: torch.device | str = "cpu") -> tuple[dict, dict]:
    """(config, state) of a file written by :func:`save_state`; raises :class:`StateError` in one
    line if the file is truncated, not such a file, or its state fails its SHA-256 check."""
    path = Path(path)
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(outer, dict) or outer.get("format") != STATE_FORMAT:
            raise StateError(f"{path} is not a saved state of this library ({STATE_FORMAT})")
        inner = outer["state"]
        if _state_digest(outer["config"], inner) != outer["sha256"]:
            raise StateError(f"{path} is damaged (its SHA-256 check failed)")
        state = torch.load(io.BytesIO(inner), map_location=map_location, weights_only=True)
    except StateError:
        raise
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StateError(f"{path} is damaged or not a saved state ({type(err).__name__}: {first[:80]})") from err
    return outer["config"], state


# ---------------------------------------------------------------- reading a folder tree

MAX_DEPTH = 12  # folders below a results folder that a reader looks into (the study's runs sit 4 deep)


def walk_files(root: str | Path, wanted: Callable[[str], bool],
               max_depth: int = MAX_DEPTH) -> tuple[list[Path], list[tuple[str, str]]]:
    """(files, skipped): the regular files under ``root`` whose name ``wanted`` accepts, sorted by path, and
    (path relative to ``root``, why) for each thing not read: an entry that is neither a regular file nor a
    folder (a FIFO, a socket, a device, a symbolic link: never opened, never followed), a folder deeper than
    ``max_depth``, a folder that cannot be listed. Iterative, so any depth of nesting is safe."""
    root = Path(root)
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            skipped.append((folder.relative_to(root).as_posix(), f"its folder cannot be listed ({err.strerror})"))
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as err:
                skipped.append((path.relative_to(root).as_posix(), f"it cannot be read ({err.strerror})"))
                continue
            if stat.S_ISDIR(mode):
                if depth + 1 >= max_depth:
                    skipped.append((path.relative_to(root).as_posix(),
                                    f"it is a folder deeper than {max_depth} levels; not read"))
                else:
                    stack.append((path, depth + 1))
            elif not stat.S_ISREG(mode):
                what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file or folder"
                skipped.append((path.relative_to(root).as_posix(), f"it is {what}; not read"))
            elif wanted(entry.name):
                files.append(path)
    return sorted(files), sorted(skipped)


# ---------------------------------------------------------------- run folders

class FolderLocked(RuntimeError):
    """Another process holds the folder's lock."""


LOCK_FILE = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Holds an exclusive lock on ``folder`` (``fcntl.flock`` on ``folder/.lock``) for the block.

    The folder must exist. A second process (or a second lock in this one) gets
    :class:`FolderLocked` at once rather than waiting. The lock goes with the process: a killed
    process holds nothing, so no stale lock is left to remove by hand.
    """

    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise storage_error(path, err) from err
    with _exclusive(fd, f"another process is writing {folder} (it holds {path}); wait for it to end or choose "
                        f"another folder"):
        yield path


def name_owner(folder: str | Path, owner: str) -> None:
    """Writes ``owner`` (the configuration a process is about to train in ``folder``, which it has claimed or
    locked) into the folder's lock file, for :func:`folder_owner`; the file is left alone when it says so."""
    path = Path(folder) / LOCK_FILE
    data = owner.encode()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.pread(fd, len(data) + 1, 0) != data:
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
        finally:
            os.close(fd)
    except OSError as err:
        raise storage_error(path, err) from err


def folder_owner(folder: str | Path) -> str | None:
    """What the process working on ``folder`` said it trains there (:func:`name_owner`), or None; meaningful
    while the folder is busy or claimed."""
    try:
        text = (Path(folder) / LOCK_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


@contextlib.contextmanager
def _exclusive(fd: int, taken: str) -> Iterator[None]:
    """Holds ``fcntl.flock`` on the open ``fd`` for the block, then closes it (which releases the lock);
    :class:`FolderLocked` with the message ``taken`` at once if another holds it."""
    import fcntl

    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise FolderLocked(taken) from err
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_claim(folder: str | Path) -> Iterator[Path]:
    """Holds an exclusive claim on the existing ``folder`` for the block: ``fcntl.flock`` on the folder
    itself, independent of :func:`folder_lock` (the runner claims a run folder for the whole notebook,
    whose kernel then takes the folder's lock). A second claim, from any process, gets
    :class:`FolderLocked` at once; the claim goes with the process."""
    folder = Path(folder)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise storage_error(folder, err) from err
    with _exclusive(fd, f"another process is working on {folder}; wait for it to end or choose another folder"):
        yield folder


def folder_claimed(folder: str | Path) -> bool:
    """Whether another process holds the claim of ``folder`` (:func:`folder_claim`) now."""
    try:
        with folder_claim(folder):
            return False
    except FolderLocked:
        return True
    except StorageError:
        return False


def folder_busy(folder: str | Path) -> bool:
    """Whether another process holds ``folder``'s lock now (a folder without a lock file is not busy)."""
    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return False
    try:
        with folder_lock(folder):
            return False
    except FolderLocked:
        return True


# ---------------------------------------------------------------- provenance

def git_commit() -> tuple[str, bool]:
    """(commit hash, whether snnlib differs from it) of the project, or ("unknown", False).

    Only the library counts as dirty: edits to notebooks or documentation do not change
    what a run computes.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "snnlib"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout.strip() != ""
        return commit or "unknown", dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
