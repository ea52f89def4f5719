"""Runs a grid of configurations through ``notebooks/experiment.ipynb`` (papermill), resumably.

Usage::

    python -m snnlib.runner GRID.json [--jobs N | --scheduler tcp://HOST:PORT] [--results results/]
                                      [--device auto] [--threads N] [--dry-run]

Grid file
---------
A JSON object::

    {
      "name": "paper",
      "description": "free text (optional)",
      "base": {"epochs": 20, "site": "current", "time_consistent": false},
      "axes": {"dataset": ["mnist", "cifar10"], "seed": [0, 1, 2, 3, 4]},
      "runs": [{"variant": "none", "p": 0.0}, {"variant": "dropout", "p": 0.5}]
    }

- ``name`` (required; letters, digits, ``_.-``): results go to ``RESULTS/<name>/``.
- ``base`` (optional): :class:`~snnlib.training.RunConfig` fields shared by every configuration; fields
  left out anywhere take RunConfig's defaults.
- ``axes`` (optional): field -> non-empty list of values; the configurations take their Cartesian product.
- ``runs`` (optional): a list of override dicts (the cells of the grid that a product cannot express, such
  as p = 0 for ``none`` but 0.5 for the dropout kinds). Missing or empty counts as one empty entry.

Every configuration is ``base``, updated by one combination of ``axes``, updated by one entry of ``runs``,
for every combination and every entry: the axes in file order (the last varies fastest), then ``runs``
innermost, which is also the order of execution. Keys are RunConfig fields (dataset, variant, p,
time_consistent, site, seed, epochs, train_subset, test_subset, batch_size, lr, weight_decay, t_enc,
network); ``network`` is a dict of NetworkConfig overrides merged key by key, and ``network.NAME`` sets
one of them (also as an axis). A run entry may not set a key that is an axis. Identical configurations
are run once, however they are spelled (a default given or left out): in the folder of the first. Structural
problems (not JSON, a key given twice in one object, unknown keys, two different configurations in one
folder) are a bad grid file: one line on stderr and exit status 2, before anything runs. A configuration whose
values are invalid (say p = 1.5) fails on its own: the others still run, and it is reported at the end.

Results layout
--------------
One folder per configuration, which a notebook can glob (``**/metrics.json``)::

    RESULTS/<name>/<dataset>/<variant>_p<p>_<step|consistent>_<site>[_<key><value>...]/seed<seed>/
        metrics.json      the run record (commit it)
        checkpoint.pt     for resuming (ignored by git)
        experiment.ipynb  the executed notebook (ignored by git)

``step`` means a fresh dropout mask at every time step, ``consistent`` one mask per sample. The suffix
names, in sorted order, every other field that an axis or a run entry sets (e.g. ``_lr0.002``,
``_network.tau4``), so that varying such a field cannot make two configurations share a folder.

Execution
---------
Each configuration runs ``notebooks/experiment.ipynb`` into ``<run>/experiment.ipynb`` with its parameters
(kernel ``python3``, working directory ``notebooks/``) in a child process of its own
(``python -m snnlib.runner --execute-one``, which calls ``papermill.execute_notebook`` with the parameter
dict), so that a failure or a kill affects only that configuration; the notebook calls
:func:`snnlib.training.run`, the code behind ``python -m snnlib train``. Finished runs (``metrics.json`` with
status ``finished`` and the same configuration) are skipped without starting a kernel; a run interrupted at
any moment is resumed from its checkpoint by running the grid again. ``--jobs N`` runs N configurations at
once on this machine, each with torch threads = max(1, cores // N) (set as ``OMP_NUM_THREADS`` before the
kernel imports torch). With ``--device auto`` (the default) the N concurrent slots take the visible GPUs
round-robin (slot j computes on ``cuda:{j % GPUs}``, see :func:`snnlib.system.assign_devices`), or the CPU
when there is none; any other device is used by every slot. ``--scheduler ADDRESS`` submits every
configuration to an existing Dask distributed cluster instead (``distributed`` must be installed there, and
the workers must see this checkout and the results folder at the same paths); each run gets max(1, host
cores // task slots on that host) threads, and ``--device`` is passed on as given (``auto``: CUDA if the
worker has it). ``--threads`` overrides both thread counts.

Each configuration prints one line as it ends: ``done`` (test accuracy, training time, total time),
``skipped`` (finished earlier) or ``failed`` (the error, and the executed notebook to look at); a summary
and the list of failures come last. ``--dry-run`` lists every configuration with its state (new, partial,
finished, diverged, invalid, foreign: a folder that holds another run, damaged: a record that fails its
checks, such as an edited one or a finished one short of epochs, or unsealed: a version-2 record without a
digest, to be sealed by ``python -m snnlib seal``) and runs nothing; a damaged or unsealed folder is never
trained over, and counts as a failure.

Each run holds a lock on its folder while it trains (:func:`snnlib.system.folder_lock`), and the runner
claims the folder (:func:`snnlib.system.folder_claim`) before its notebook starts, for as long as the
notebook runs, so two runners on one results folder cannot write the same run nor its executed notebook: a
runner that reaches a configuration another process has claimed or is training leaves it to that process
(``busy``, not a failure) and goes on with the next, so two runners with ``--jobs 1`` each can work through
the same grid files side by side (``scripts/run_study.sh``).
Ctrl-C or SIGTERM shut the kernels down cleanly. When the runner is killed (even
with SIGKILL), each child notices within a second that its parent is gone, kills its kernel and exits, so
the runner can be restarted at once. With ``--scheduler``, configurations already started keep running on
the cluster.

Exit status: 0 when every configuration is finished (or busy in another process); 1 when some failed (all
listed at the end), or, with ``--dry-run``, when some configuration is invalid, foreign, diverged, damaged
or unsealed; 2 for a bad grid file or bad options; 130 when interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from .system import FolderLocked, allocator_env, assign_devices, folder_busy, folder_claim, parse_device
from .training import RunConfig, config_difference, divergence, record_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOK = PROJECT_ROOT / "notebooks" / "experiment.ipynb"
KERNEL = "python3"

CONFIG_FIELDS = tuple(f.name for f in fields(RunConfig))
CONFIG_DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}
LAYOUT_KEYS = ("dataset", "variant", "p", "time_consistent", "site", "seed")
# RunConfig fields that are parameters of their own in the notebook; the rest travel in ``config_extra``.
NOTEBOOK_FIELDS = (*LAYOUT_KEYS, "epochs", "train_subset", "test_subset")
NOTEBOOK_PARAMETERS = (*NOTEBOOK_FIELDS, "config_extra", "device", "threads", "progress", "out_dir", "fresh")
TOP_KEYS = ("name", "description", "base", "axes", "runs")
# states of a configuration that the runner reports as failed without running it
SETTLED_FAILURES = ("diverged", "invalid", "foreign", "damaged", "unsealed")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class GridError(ValueError):
    """The grid file cannot be used (reported in one line, exit status 2)."""


@dataclass
class RunSpec:
    """One configuration of a grid."""

    index: int  # 1-based position in the grid
    kwargs: dict  # RunConfig keyword arguments
    rel: str  # folder relative to RESULTS/<name>/
    config: dict | None = None  # RunConfig.to_dict(), when the configuration is valid
    error: str | None = None  # why it is invalid


# ---------------------------------------------------------------- the grid file

def _check_keys(d: dict, where: str, allow_network_dict: bool = True) -> None:
    for key, value in d.items():
        name, dot, sub = key.partition(".")
        if name not in CONFIG_FIELDS or (dot and (name != "network" or not sub)):
            raise GridError(f"{where}: unknown field {key!r}; allowed: {', '.join(CONFIG_FIELDS)} "
                            "and network.NAME")
        if key == "network":
            if not allow_network_dict:
                raise GridError(f"{where}: use network.NAME as an axis, not network")
            if not isinstance(value, dict):
                raise GridError(f"{where}: network must be an object of NetworkConfig overrides")


def _flatten(d: dict) -> dict:
    """``{"network": {"tau": 4}}`` -> ``{"network.tau": 4}``; other keys unchanged."""
    flat = {}
    for key, value in d.items():
        if key == "network":
            flat.update({f"network.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _unflatten(flat: dict) -> dict:
    kwargs, network = {}, {}
    for key, value in flat.items():
        if key.startswith("network."):
            network[key[len("network."):]] = value
        else:
            kwargs[key] = value
    if network:
        kwargs["network"] = network
    return kwargs


def check_grid(grid: object, source: str = "grid") -> dict:
    """Validates the structure of a grid (not the values of its configurations); returns it."""
    if not isinstance(grid, dict):
        raise GridError(f"{source}: a grid must be a JSON object with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(grid) - set(TOP_KEYS))
    if unknown:
        raise GridError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(TOP_KEYS)}")
    name = grid.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GridError(f"{source}: 'name' must be a folder name of letters, digits and _.- (got {name!r})")
    base = grid.get("base", {})
    if not isinstance(base, dict):
        raise GridError(f"{source}: 'base' must be an object of RunConfig fields")
    _check_keys(base, f"{source}: base")
    axes = grid.get("axes", {})
    if not isinstance(axes, dict):
        raise GridError(f"{source}: 'axes' must be an object mapping fields to lists of values")
    _check_keys(axes, f"{source}: axes", allow_network_dict=False)
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{source}: axis {key!r} must be a non-empty list of values")
    runs = grid.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise GridError(f"{source}: 'runs' must be a list of objects (overrides of RunConfig fields)")
    for i, run in enumerate(runs, 1):
        _check_keys(run, f"{source}: runs[{i}]")
        clash = sorted(set(_flatten(run)) & set(axes))
        if clash:
            raise GridError(f"{source}: runs[{i}] sets {', '.join(clash)}, which is an axis")
    return grid


def _no_key_twice(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key given twice (plain JSON keeps the last one silently)."""
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise GridError(f"key {key!r} is given twice in one object; give each key once")
        obj[key] = value
    return obj


def load_grid(path: str | Path) -> dict:
    """Reads and checks a grid file; raises :class:`GridError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise GridError(f"cannot read grid file {path}: {err.strerror or err}") from err
    try:
        grid = json.loads(text, object_pairs_hook=_no_key_twice)
    except GridError as err:
        raise GridError(f"{path}: {err}") from err
    except ValueError as err:
        raise GridError(f"{path} is not valid JSON: {err}") from err
    return check_grid(grid, str(path))


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value).removesuffix(".0")  # exact: distinct numbers never share a folder
    elif value is None:
        text = "none"
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "-", text)


def run_folder(kwargs: dict, varied: dict | None = None) -> str:
    """``<dataset>/<variant>_p<p>_<step|consistent>_<site>[_<key><value>...]/seed<seed>``."""
    f = {**CONFIG_DEFAULTS, **kwargs}
    p = f["p"]
    p = float(p) if isinstance(p, int | float) and not isinstance(p, bool) else p
    mask = {True: "consistent", False: "step"}.get(f["time_consistent"], _fmt(f["time_consistent"]))
    name = f"{_fmt(f['variant'])}_p{_fmt(p)}_{mask}_{_fmt(f['site'])}"
    for key in sorted(varied or {}):
        name += f"_{key}{_fmt(varied[key])}"
    return f"{_fmt(f['dataset'])}/{name}/seed{_fmt(f['seed'])}"


def expand_grid(grid: dict) -> list[RunSpec]:
    """The grid's configurations in execution order (invalid ones carry ``error``)."""
    axes = grid.get("axes") or {}
    axis_keys = list(axes)
    runs = grid.get("runs") or [{}]
    base = _flatten(grid.get("base") or {})
    specs: list[RunSpec] = []
    by_folder: dict[str, RunSpec] = {}
    by_config: dict[str, RunSpec] = {}
    index = 0
    for combo in itertools.product(*(axes[k] for k in axis_keys)):
        for run in runs:
            index += 1
            run_flat = _flatten(run)
            flat = {**base, **dict(zip(axis_keys, combo, strict=True)), **run_flat}
            varied = {k: flat[k] for k in (*axis_keys, *run_flat) if k not in LAYOUT_KEYS}
            kwargs = _unflatten(flat)
            spec = RunSpec(index=index, kwargs=kwargs, rel=run_folder(kwargs, varied))
            try:
                spec.config = RunConfig(**kwargs).to_dict()
            except (TypeError, ValueError) as err:
                spec.error = str(err)
            other = by_folder.get(spec.rel)
            if other is not None:
                if other.kwargs == spec.kwargs or (other.config is not None and other.config == spec.config):
                    continue  # the same configuration twice: run it once
                raise GridError(f"configurations {other.index} and {spec.index} differ but both map to folder "
                                f"{spec.rel}: {other.kwargs} vs {spec.kwargs}")
            key = None if spec.config is None else json.dumps(spec.config, sort_keys=True)
            if key in by_config:
                continue  # the same configuration spelled another way: run once, in the first one's folder
            by_folder[spec.rel] = spec
            if key is not None:
                by_config[key] = spec
            specs.append(spec)
    return specs


def run_state(spec: RunSpec, grid_root: Path) -> tuple[str, dict | None, str]:
    """(state, record, detail): state is new, partial, finished, diverged (its training loss became NaN or
    infinite: settled, reported as a failure), foreign (another run's folder), damaged (a record of this
    configuration that fails its checks: edited, or short of epochs), unsealed (a version-2 record without
    a digest) or invalid. Damaged and unsealed folders are reported as failures, never trained over."""
    if spec.error is not None:
        return "invalid", None, f"invalid configuration: {spec.error}"
    path = grid_root / spec.rel / "metrics.json"
    if not path.exists():
        return "new", None, ""
    try:
        record = json.loads(path.read_text())
        saved = record["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return "foreign", None, f"{path} is not a run record; move it away"
    diff = config_difference(saved, RunConfig.from_dict(spec.config))
    if diff:
        return "foreign", None, (f"{path.parent} holds a run with a different configuration "
                                 f"(differs in: {', '.join(diff)}); move it away")
    problem = record_problem(record, sealed=False)
    if problem is not None:
        if "not sealed" in problem:
            return "unsealed", None, f"{path}: {problem}"
        return "damaged", None, f"{path} cannot be used: {problem}; move it away to run it again"
    if record.get("status") == "finished":
        return "finished", record, ""
    if record.get("status") == "diverged":
        return "diverged", record, f"{divergence(record)}; move {path.parent} away to run it again"
    return "partial", record, f"{len(record.get('epochs', []))}/{spec.config['epochs']} epochs"


# ---------------------------------------------------------------- one configuration

def notebook_parameters(kwargs: dict, out: Path, device: str) -> dict:
    """The notebook's parameters for a configuration (``threads`` is filled in where it runs)."""
    config = RunConfig(**kwargs)
    explicit = {name: getattr(config, name) for name in NOTEBOOK_FIELDS}
    extra = {f.name: getattr(config, f.name) for f in fields(RunConfig) if f.name not in NOTEBOOK_FIELDS}
    return {**explicit, "config_extra": extra, "device": device, "threads": None, "progress": False,
            "out_dir": str(out), "fresh": False}


CHILD_FLAG = "--execute-one"  # python -m snnlib.runner --execute-one: one notebook, its task as JSON on stdin
PARENT_POLL_S = 0.5  # how often a child checks that the runner is still there

_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def run_notebook(notebook: str | Path, output: str | Path, parameters: dict, *, kernel: str = KERNEL,
                 cwd: str | Path | None = None, threads: int | None = None) -> tuple[int, str]:
    """Executes ``notebook`` into ``output`` with ``parameters`` in a child process; (exit status, stderr).

    The child is ``python -m snnlib.runner --execute-one``: it reads the task as JSON from its stdin and calls
    ``papermill.execute_notebook`` with the parameter dict (JSON keeps every float, None, bool, string and
    nested dict as it is). A child of its own per configuration, so that a failure or a kill affects only it,
    and so that ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = ``threads`` are in the environment before its
    kernel imports torch. Exit status 0 when every cell ran; otherwise the last line of stderr names the
    error (``ename: evalue`` of the failing cell).
    """
    task = {"notebook": str(Path(notebook).resolve()), "output": str(Path(output).resolve()),
            "parameters": parameters, "kernel": kernel, "cwd": None if cwd is None else str(Path(cwd).resolve())}
    env = allocator_env(dict(os.environ))
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    # started from the project so that ``-m snnlib`` is this checkout, installed or not
    proc = subprocess.Popen([sys.executable, "-m", "snnlib.runner", CHILD_FLAG], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT)
    with _children_lock:
        _children.add(proc)
    try:
        _, stderr = proc.communicate(json.dumps(task))
    finally:
        with _children_lock:
            _children.discard(proc)
    return proc.returncode, stderr


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, their children, ...), from ``/proc`` (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields_ = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields_[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop_when_parent_goes(interval: float = PARENT_POLL_S) -> None:
    """In a child: once its parent (the runner, or a Dask worker) is gone, kill the kernel and exit.

    The kernel runs in a session of its own (jupyter_client starts it so), so a signal to the
    runner's process group does not reach it, and ipykernel's own watch for a dead parent only
    looks for init as the new parent. So the child kills every process below it (SIGKILL: the
    run resumes from its last checkpoint) and exits; the run folder's lock goes with the kernel.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        for pid in _descendants(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        os._exit(143)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _execute_one() -> int:
    """The child process of :func:`run_notebook`: one notebook through papermill's Python API."""
    task = json.load(sys.stdin)
    _stop_when_parent_goes()
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(task["notebook"], task["output"], parameters=task["parameters"],
                                   kernel_name=task["kernel"], cwd=task["cwd"], progress_bar=False,
                                   log_output=False)
    except PapermillExecutionError as err:
        print(f"{err.ename}: {err.evalue}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - reported to the runner in one line
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _dask_threads(host_slots: dict | None) -> int | None:
    """On a Dask worker: this host's cores shared among the task slots on this host."""
    try:
        from distributed import get_worker
        from distributed.comm import get_address_host

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    slots = (host_slots or {}).get(get_address_host(worker.address)) or worker.state.nthreads
    return max(1, _cpu_count() // max(1, slots))


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _notebook_error(path: Path) -> str | None:
    """``ename: evalue`` of the first error output in an executed notebook."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return _ANSI.sub("", f"{output.get('ename')}: {output.get('evalue')}")
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def execute(task: dict) -> dict:
    """Runs one configuration through its notebook (:func:`run_notebook`); returns a result (never raises).

    ``task`` holds plain data so that it can travel to a Dask worker: name, out, config, params (device
    included), notebook, cwd, kernel, threads, host_slots.
    """
    start = time.perf_counter()
    out = Path(task["out"])
    output_nb = out / "experiment.ipynb"
    result = {"name": task["name"], "out": str(out), "notebook": str(output_nb), "status": "failed",
              "device": task["params"].get("device")}
    try:
        if folder_busy(out):  # another process (a runner's kernel, a train command) is training it
            result.update(status="busy")
            return result
        out.mkdir(parents=True, exist_ok=True)
        with folder_claim(out):  # held for the whole notebook: no second runner starts one here
            if folder_busy(out):
                result.update(status="busy")
                return result
            done = _settled_record(out, task["config"])
            if done is not None:  # another runner ended it since this one looked: its notebook stays
                if done["status"] == "diverged":
                    result["error"] = divergence(done)
                else:
                    result.update(status="skipped", record=_summary(done))
                return result
            return _execute_claimed(task, out, output_nb, result)
    except FolderLocked:  # another runner has claimed it
        result.update(status="busy")
    except Exception as err:  # noqa: BLE001 - a failure of one configuration must not stop the grid
        result["error"] = f"{type(err).__name__}: {err}"
    finally:
        result["elapsed_s"] = time.perf_counter() - start
    return result


def _settled_record(out: Path, config: dict) -> dict | None:
    """The record in ``out`` if it is an intact record of ``config`` that is finished (or diverged)."""
    try:
        record = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if record_problem(record, sealed=False) is not None or \
            config_difference(record.get("config"), RunConfig.from_dict(config)):
        return None
    return record if record.get("status") in ("finished", "diverged") else None


def _execute_claimed(task: dict, out: Path, output_nb: Path, result: dict) -> dict:
    """The body of :func:`execute`, in a folder the runner has claimed."""
    threads = task.get("threads") or _dask_threads(task.get("host_slots"))
    result["threads"] = threads
    status, stderr = run_notebook(task["notebook"], output_nb, {**task["params"], "threads": threads},
                                  kernel=task["kernel"], cwd=task["cwd"], threads=threads)
    if status != 0:
        error = (_notebook_error(output_nb) or _last_line(stderr)
                 or f"the notebook's process exited with status {status}")
        if "another process is writing" in error:  # a train command took the folder's lock first
            result.update(status="busy")
            return result
        result["error"] = f"{error} (see {output_nb})"
        return result
    record = json.loads((out / "metrics.json").read_text())
    problem = record_problem(record, sealed=True)
    if config_difference(record.get("config"), RunConfig.from_dict(task["config"])):
        result["error"] = "the notebook ran another configuration than asked (are all parameters passed?)"
    elif problem is not None:
        result["error"] = f"the run's record cannot be used: {problem}"
    elif record.get("status") == "diverged":
        result["error"] = divergence(record)
    elif record.get("status") != "finished":
        result["error"] = f"the notebook ended but the run's status is {record.get('status')!r}"
    else:
        result.update(status="done", record=_summary(record))
    return result


def _summary(record: dict) -> dict:
    last = record["epochs"][-1] if record.get("epochs") else {}
    return {"test_acc": last.get("test_acc"), "train_loss": last.get("train_loss"),
            "epochs": len(record.get("epochs", [])), "wall_time_s": record.get("wall_time_s")}


def _interrupt_children() -> None:
    with _children_lock:
        children = list(_children)
    for proc in children:  # nbclient shuts its kernel down on SIGINT
        try:
            proc.send_signal(signal.SIGINT)
        except OSError:
            pass
    deadline = time.monotonic() + 20
    for proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------- the command

def _describe(summary: dict | None) -> str:
    if not summary:
        return ""
    acc, wall = summary.get("test_acc"), summary.get("wall_time_s")
    parts = []
    if acc is not None:
        parts.append(f"test_acc {acc:.4f}")
    if wall is not None:
        parts.append(f"run {wall:.1f} s")
    return "  ".join(parts)


def _check_notebook(notebook: Path) -> None:
    if not notebook.is_file():
        raise GridError(f"notebook {notebook} not found")
    import papermill

    declared = set(papermill.inspect_notebook(str(notebook)))
    missing = [p for p in NOTEBOOK_PARAMETERS if p not in declared]
    if missing:
        raise GridError(f"notebook {notebook} lacks the parameter(s) {', '.join(missing)}")


def _check_device(name: str) -> None:
    """The device's form (whether it exists is up to the machine that runs the configuration)."""
    try:
        parse_device(name)
    except ValueError as err:
        raise GridError(str(err)) from err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m snnlib.runner",
        description="Run every configuration of a grid file through notebooks/experiment.ipynb "
                    "(papermill), skipping finished runs and resuming interrupted ones.",
        epilog="The grid file format and the results layout are described in the module docstring "
               "(python -c 'import snnlib.runner; help(snnlib.runner)').")
    parser.add_argument("grid", help="grid file (JSON)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="configurations run at once on this machine (default 1); with --device auto they "
                             "take the visible GPUs round-robin")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask distributed scheduler (tcp://HOST:PORT) to run on instead")
    parser.add_argument("--results", default="results", help="results folder (default results/)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per run (default: cores // jobs, or per Dask host)")
    parser.add_argument("--notebook", default=str(DEFAULT_NOTEBOOK), help="experiment notebook (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="list the configurations and their state, run nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [CHILD_FLAG]:
        return _execute_one()
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr, flush=True)
        return 130


def _main(args: argparse.Namespace) -> int:
    try:
        grid, specs, jobs = _validate(args)
        grid_root = Path(args.results).resolve() / grid["name"]
        states = {spec.rel: run_state(spec, grid_root) for spec in specs}
        if args.dry_run:
            return _dry_run(grid, specs, states, grid_root)
        tasks = _plan(args, specs, states, grid_root)
    except GridError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    report = _Report(len(specs))
    print(f"grid {grid['name']}: {len(specs)} configurations, {len(tasks)} to run, results in {grid_root}",
          flush=True)
    report.earlier(specs, states)
    code = _execute(args, tasks, jobs, report)
    if code is not None:
        return code
    return _summarise(grid, report, time.perf_counter() - began)


def _validate(args: argparse.Namespace) -> tuple[dict, list[RunSpec], int]:
    """Checks the options and reads the grid: (grid, its configurations, jobs); raises :class:`GridError`."""
    if args.jobs is not None and args.scheduler:
        raise GridError("--jobs and --scheduler exclude each other (the cluster decides how many run at once)")
    jobs = 1 if args.jobs is None else args.jobs
    if jobs < 1:
        raise GridError(f"--jobs must be a positive integer, got {jobs}")
    if args.threads is not None and args.threads < 1:
        raise GridError(f"--threads must be a positive integer, got {args.threads}")
    _check_device(args.device)
    grid = load_grid(args.grid)
    return grid, expand_grid(grid), jobs


def _plan(args: argparse.Namespace, specs: list[RunSpec], states: dict, grid_root: Path) -> list[dict]:
    """The tasks of the configurations to run (new or partial ones), in grid order.

    Checks the notebook when there is anything to run (raises :class:`GridError`). Each task's
    ``params["device"]`` is ``--device``; a local run replaces it with its slot's device.
    """
    notebook = Path(args.notebook).resolve()
    tasks = []
    for spec in specs:
        state, record, _ = states[spec.rel]
        if state not in ("new", "partial"):
            continue
        out = grid_root / spec.rel
        tasks.append({"name": spec.rel, "out": str(out), "config": spec.config,
                      "params": notebook_parameters(spec.kwargs, out, args.device),
                      "notebook": str(notebook), "cwd": str(notebook.parent), "kernel": KERNEL,
                      "threads": args.threads, "host_slots": None,
                      "resumed_after": len(record.get("epochs", [])) if state == "partial" and record else 0})
    if tasks:
        _check_notebook(notebook)
    return tasks


class _Report:
    """One numbered line per configuration as it ends (done, skipped or failed); keeps counts and failures."""

    def __init__(self, total: int):
        self.total, self.width, self.position = total, len(str(total)), 0
        self.counts = {"done": 0, "skipped": 0, "busy": 0, "failed": 0}
        self.failures: list[tuple[str, str]] = []

    def line(self, status: str, rel: str, detail: str) -> None:
        self.position += 1
        self.counts[status] += 1
        if status == "failed":
            self.failures.append((rel, detail))
        print(f"[{self.position:>{self.width}}/{self.total}] {status:<7} {rel}  {detail}".rstrip(), flush=True)

    def earlier(self, specs: list[RunSpec], states: dict) -> None:
        """The configurations settled before anything runs: finished earlier, invalid or foreign."""
        for spec in specs:
            state, record, detail = states[spec.rel]
            if state == "finished":
                self.line("skipped", spec.rel, f"{_describe(_summary(record))}  (finished earlier)")
            elif state in SETTLED_FAILURES:
                self.line("failed", spec.rel, detail)

    def finished(self, task: dict, result: dict) -> None:
        """An executed configuration's line."""
        if result["status"] == "done":
            detail = f"{_describe(result['record'])}  total {result['elapsed_s']:.1f} s"
            if task["resumed_after"]:
                detail += f"  (resumed after epoch {task['resumed_after']})"
            self.line("done", task["name"], detail)
        elif result["status"] == "busy":
            self.line("busy", task["name"], "another process is training it (left to that process)")
        elif result["status"] == "skipped":
            self.line("skipped", task["name"], f"{_describe(result['record'])}  (another process ended it)")
        else:
            self.line("failed", task["name"], result.get("error", "unknown error"))


def _execute(args: argparse.Namespace, tasks: list[dict], jobs: int, report: _Report) -> int | None:
    """Runs the tasks here or on the Dask cluster; an exit status if that ended early (130, 2), else None.

    SIGTERM is handled like Ctrl-C: the children shut their kernels down and the runner exits with 130.
    """
    previous = None
    if threading.current_thread() is threading.main_thread():
        def _on_term(signum, frame):
            raise KeyboardInterrupt
        previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        if tasks and args.scheduler:
            return _run_dask(args, tasks, report.finished) or None
        if tasks:
            _run_local(tasks, jobs, args.device, report.finished)
        return None
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to resume ({report.counts['done']} done this time)",
              file=sys.stderr, flush=True)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _summarise(grid: dict, report: _Report, elapsed: float) -> int:
    """The closing lines (counts, then every failure); exit status 1 if any configuration failed."""
    counts = report.counts
    busy = f"{counts['busy']} busy (another process trains them), " if counts["busy"] else ""
    print(f"grid {grid['name']}: {counts['done']} done, {counts['skipped']} skipped, {busy}{counts['failed']} failed, "
          f"of {report.total} configurations in {elapsed:.1f} s", flush=True)
    if not report.failures:
        return 0
    print(f"{len(report.failures)} configuration(s) failed:", flush=True)
    for rel, detail in report.failures:
        print(f"  {rel}: {detail}", flush=True)
    return 1


def _run_local(tasks: list[dict], jobs: int, device: str, finish: Callable[[dict, dict], None]) -> None:
    """Runs the tasks ``jobs`` at a time on this machine, each with cores // jobs threads (or ``--threads``).

    Slot ``j`` of the ``jobs`` concurrent ones computes on ``assign_devices(device, jobs)[j]``: with
    ``auto``, the visible GPUs round-robin (cpu without one). A task takes a free slot when it starts and
    gives it back when it ends, so the runs going on at any moment use the slots' devices, no GPU more
    often than its share.
    """
    threads = max(1, _cpu_count() // jobs)
    free: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in assign_devices(device, jobs):
        free.put(name)

    def in_a_slot(task: dict) -> dict:
        slot_device = free.get()
        try:
            return execute({**task, "threads": task["threads"] or threads,
                            "params": {**task["params"], "device": slot_device}})
        finally:
            free.put(slot_device)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(in_a_slot, task): task for task in tasks}
        for future in as_completed(futures):
            finish(futures[future], future.result())
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        _interrupt_children()
        raise
    pool.shutdown(wait=True)


def _run_dask(args: argparse.Namespace, tasks: list[dict], finish: Callable[[dict, dict], None]) -> int:
    try:
        from distributed import Client
        from distributed import as_completed as dask_as_completed
    except ImportError:
        print("error: --scheduler needs the 'distributed' package", file=sys.stderr)
        return 2
    try:
        client = Client(args.scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as err:
        print(f"error: cannot connect to the Dask scheduler at {args.scheduler}: {err}", file=sys.stderr)
        return 2
    try:
        try:
            workers = client.scheduler_info(n_workers=-1)["workers"]
        except TypeError:  # older distributed
            workers = client.scheduler_info()["workers"]
        slots: dict[str, int] = {}
        for info in workers.values():
            slots[info["host"]] = slots.get(info["host"], 0) + int(info["nthreads"])
        futures = {}
        for task in tasks:
            task["host_slots"] = slots
            key = f"snnlib-run-{task['name']}-{time.time_ns()}"
            futures[client.submit(execute, task, key=key, pure=False, retries=0)] = task
        try:
            for future in dask_as_completed(list(futures)):
                task = futures[future]
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - a lost worker fails this configuration only
                    result = {"status": "failed", "error": f"{type(err).__name__} on the cluster: {err}"}
                finish(task, result)
        except KeyboardInterrupt:
            client.cancel(list(futures))  # runs already started finish on their workers
            raise
    finally:
        client.close()
    return 0


def _dry_run(grid: dict, specs: list[RunSpec], states: dict, grid_root: Path) -> int:
    print(f"grid {grid['name']}: {len(specs)} configurations, results in {grid_root}")
    counts: dict[str, int] = {}
    for spec in specs:
        state, record, detail = states[spec.rel]
        counts[state] = counts.get(state, 0) + 1
        if state == "finished":
            detail = _describe(_summary(record))
        print(f"  {state:<8} {spec.rel}  {detail}".rstrip())
    print(", ".join(f"{counts[s]} {s}" for s in ("new", "partial", "finished", *SETTLED_FAILURES) if s in counts))
    return 1 if any(counts.get(s) for s in SETTLED_FAILURES) else 0


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy, so that Dask pickles ``execute`` by reference.
    from snnlib.runner import main as _main

    sys.exit(_main())
