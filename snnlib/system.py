"""The machine: devices, atomic files and provenance (git commit), in one place.

The lowest layer beside ``kernels``: it imports nothing else from snnlib, so every other
module (data, training, runner, bench, cli) parses a device, writes a file and records
the commit the same way.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


# ---------------------------------------------------------------- devices

def parse_device(name: str) -> torch.device | None:
    """The form of a device name: ``auto`` gives None; ``cpu``, ``cuda`` and ``cuda:N`` a device.

    Checks only the spelling, not whether the device exists here (a grid may name a device
    of the machine that runs it). Raises ``ValueError`` with the allowed names.
    """
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


def device_description(device: torch.device) -> str:
    """The hardware in words: the GPU's name, or the CPU and its torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


# ---------------------------------------------------------------- atomic files

def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Writes ``path`` through a temporary file and a rename, so that a reader (or a run
    killed mid-write) sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


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


def save_torch_atomic(path: str | Path, obj: object) -> None:
    """``torch.save``, written atomically."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


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
