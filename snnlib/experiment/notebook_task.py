"""One configuration of a grid, run through ``notebooks/experiment.ipynb`` (papermill) in a child process of
its own (``python -m snnlib.experiment.notebook_task --execute-one``), so that a failure or a kill affects only
that configuration: :func:`execute` claims the run's folder, skips a run another process has ended, runs the
notebook (:func:`run_notebook`) and checks the record it wrote. The runner (:mod:`snnlib.experiment.runner`)
plans the grid and hands each configuration to :func:`execute`, on this machine or on a Dask worker."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

from snnlib.experiment.config import RunConfig, config_difference
from snnlib.experiment.grid import LAYOUT_KEYS
from snnlib.experiment.run import divergence, record_problem
from snnlib.experiment.system import (
    FolderLocked,
    allocator_env,
    folder_busy,
    folder_claim,
    folder_owner,
    name_owner,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NOTEBOOK = PROJECT_ROOT / "notebooks" / "experiment.ipynb"
KERNEL = "python3"

# RunConfig fields that are parameters of their own in the notebook; the rest travel in ``config_extra``.
NOTEBOOK_FIELDS = (*LAYOUT_KEYS, "epochs", "train_subset", "test_subset")
NOTEBOOK_PARAMETERS = (*NOTEBOOK_FIELDS, "config_extra", "device", "threads", "progress", "out_dir", "fresh")
GROUP_PARAMETER = "group"  # the notebook's stack of runs (the runner's --stack): [{"config": ..., "out_dir": ...}]


def notebook_parameters(kwargs: dict, out: Path, device: str) -> dict:
    """The notebook's parameters for a configuration (``threads`` is filled in where it runs)."""
    config = RunConfig(**kwargs)
    explicit = {name: getattr(config, name) for name in NOTEBOOK_FIELDS}
    extra = {f.name: getattr(config, f.name) for f in fields(RunConfig) if f.name not in NOTEBOOK_FIELDS}
    return {**explicit, "config_extra": extra, "device": device, "threads": None, "progress": False,
            "out_dir": str(out), "fresh": False}


CHILD_FLAG = "--execute-one"  # python -m snnlib.experiment.notebook_task --execute-one: its task as JSON on stdin
PARENT_POLL_S = 0.5  # how often a child checks that the runner is still there

_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def run_notebook(notebook: str | Path, output: str | Path, parameters: dict, *, kernel: str = KERNEL,
                 cwd: str | Path | None = None, threads: int | None = None) -> tuple[int, str]:
    """Executes ``notebook`` into ``output`` with ``parameters`` in a child process; (exit status, stderr).

    The child is ``python -m snnlib.experiment.notebook_task --execute-one``: it reads the task as JSON
    from its stdin and calls ``papermill.execute_notebook`` with the parameter dict (JSON keeps every float,
    None, bool, string and nested dict as it is). A child of its own per configuration, so that a failure or
    a kill affects only it, and so that ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = ``threads`` are in the
    environment before its kernel imports torch. Exit status 0 when every cell ran; otherwise the last line
    of stderr names the error (``ename: evalue`` of the failing cell).
    """
    task = {"notebook": str(Path(notebook).resolve()), "output": str(Path(output).resolve()),
            "parameters": parameters, "kernel": kernel, "cwd": None if cwd is None else str(Path(cwd).resolve())}
    env = allocator_env(dict(os.environ))
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    # started from the project so that ``-m snnlib`` is this checkout, installed or not
    proc = subprocess.Popen([sys.executable, "-m", "snnlib.experiment.notebook_task", CHILD_FLAG], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT)
    with _children_lock:
        _children.add(proc)
    try:
        _, stderr = proc.communicate(json.dumps(task))
    finally:
        with _children_lock:
            _children.discard(proc)
    return proc.returncode, stderr


def descendants(pid: int) -> list[int]:
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


def stop_when_parent_goes(interval: float = PARENT_POLL_S) -> None:
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
        stop_descendants(143)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _execute_one() -> int:
    """The child process of :func:`run_notebook`: one notebook through papermill's Python API."""
    task = json.load(sys.stdin)
    stop_when_parent_goes()
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


def cpu_count() -> int:
    """The cores this process may use."""
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
    return max(1, cpu_count() // max(1, slots))


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
            return _busy(result, out, task["config"])
        out.mkdir(parents=True, exist_ok=True)
        with folder_claim(out):  # held for the whole notebook: no second runner starts one here
            # busy, another run's folder (never run a notebook, nor write its copy, there) or ended by
            # another runner since this one looked (its notebook stays): nothing to run
            if _settle_before(task, out, result):
                return result
            return _execute_claimed(task, out, output_nb, result)
    except FolderLocked:  # another runner has claimed it
        _busy(result, out, task["config"])
    except Exception as err:  # noqa: BLE001 - a failure of one configuration must not stop the grid
        result["error"] = f"{type(err).__name__}: {err}"
    finally:
        result["elapsed_s"] = time.perf_counter() - start
    return result


def other_owner(out: Path, config: dict) -> str | None:
    """Why the process working on ``out`` is not training ``config`` there (the configuration it named,
    :func:`snnlib.experiment.system.folder_owner`, differs), or None."""
    owner = folder_owner(out)
    if owner is None:
        return None
    try:
        differs = config_difference(json.loads(owner), RunConfig.from_dict(config))
    except (ValueError, TypeError):
        return None
    if not differs:
        return None
    return (f"another process trains another configuration in {out} (it differs in: {', '.join(differs)}): two "
            f"grids with one name plan different runs in one folder; give one grid another name or another "
            f"results folder")


def _busy(result: dict, out: Path, config: dict) -> dict:
    """``busy`` when the process working on ``out`` trains ``config`` there, a failure when it trains another."""
    why = other_owner(out, config)
    if why is None:
        result.update(status="busy")
    else:
        result["error"] = why
    return result


def _foreign_record(out: Path, config: dict) -> str | None:
    """Why ``out`` holds another run's record (a readable record of another configuration), or None."""
    try:
        record = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    saved = record.get("config") if isinstance(record, dict) else None
    differs = config_difference(saved, RunConfig.from_dict(config)) if isinstance(saved, dict) else ["config"]
    if not differs:
        return None
    return (f"{out} holds the record of another configuration (it differs in: {', '.join(differs)}); "
            f"nothing was run or written there; move it away")


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
    return _check_record(task["config"], out, result)


def _check_record(config: dict, out: Path, result: dict) -> dict:
    """``result`` done if ``out`` holds the sealed, finished record of ``config``, else failed and why."""
    record = json.loads((out / "metrics.json").read_text())
    problem = record_problem(record, sealed=True)
    if config_difference(record.get("config"), RunConfig.from_dict(config)):
        result["error"] = "the notebook ran another configuration than asked (are all parameters passed?)"
    elif problem is not None:
        result["error"] = f"the run's record cannot be used: {problem}"
    elif record.get("status") == "diverged":
        result["error"] = divergence(record)
    elif record.get("status") != "finished":
        result["error"] = f"the notebook ended but the run's status is {record.get('status')!r}"
    else:
        result.update(status="done", record=run_summary(record))
    return result


def run_task(task: dict) -> list[tuple[dict, dict]]:
    """Runs a task of the runner, one configuration (:func:`execute`) or a stack of them
    (:func:`execute_group`); (configuration's task, result) for each of its configurations."""
    if "group" in task:
        return execute_group(task)
    return [(task, execute(task))]


def execute_group(task: dict) -> list[tuple[dict, dict]]:
    """Runs a stack of configurations (``task["group"]``, each a task as :func:`execute` takes) through ONE
    execution of the notebook, whose ``group`` parameter lists them: it trains them as one stack
    (:func:`snnlib.experiment.stack.run_group`), each run writing its own record. Each folder is claimed and
    checked as :func:`execute` does (busy, foreign, ended runs are left out, each with its result); the
    executed notebook is saved in the first run's folder and copied into the others'. Never raises."""
    start = time.perf_counter()
    results: dict[str, dict] = {}
    ready: list[dict] = []
    with contextlib.ExitStack() as claims:
        for member in task["group"]:
            out = Path(member["out"])
            result = results[member["name"]] = {"name": member["name"], "out": str(out), "status": "failed",
                                                "notebook": str(out / "experiment.ipynb"),
                                                "device": member["params"].get("device")}
            try:
                if folder_busy(out):
                    _busy(result, out, member["config"])
                    continue
                out.mkdir(parents=True, exist_ok=True)
                claims.enter_context(folder_claim(out))
                if _settle_before(member, out, result):
                    continue
                ready.append(member)
            except FolderLocked:
                _busy(result, out, member["config"])
            except Exception as err:  # noqa: BLE001 - a failure of one configuration must not stop the others
                result["error"] = f"{type(err).__name__}: {err}"
        if ready:
            _execute_group_claimed(task, ready, results)
    for result in results.values():
        result["elapsed_s"] = time.perf_counter() - start
    return [(member, results[member["name"]]) for member in task["group"]]


def _settle_before(task: dict, out: Path, result: dict) -> bool:
    """Whether ``out`` (claimed) needs no run: another process trains it, it holds another run's record, or
    the run has ended (``result`` says which); else names its owner for other runners and returns False."""
    if folder_busy(out):
        _busy(result, out, task["config"])
        return True
    foreign = _foreign_record(out, task["config"])
    if foreign:
        result["error"] = foreign
        return True
    done = _settled_record(out, task["config"])
    if done is None:
        name_owner(out, json.dumps(task["config"], sort_keys=True))
        return False
    if done["status"] == "diverged":
        result["error"] = divergence(done)
    else:
        result.update(status="skipped", record=run_summary(done))
    return True


def _execute_group_claimed(task: dict, ready: list[dict], results: dict[str, dict]) -> None:
    """The notebook for the configurations ``ready`` (their folders claimed), then each one's outcome."""
    first = ready[0]
    output_nb = Path(first["out"]) / "experiment.ipynb"
    threads = task.get("threads") or _dask_threads(task.get("host_slots"))
    group = [{"config": member["config"], "out_dir": member["out"]} for member in ready]
    status, stderr = run_notebook(task["notebook"], output_nb, {**first["params"], "threads": threads, "group": group},
                                  kernel=task["kernel"], cwd=task["cwd"], threads=threads)
    error = None
    if status != 0:
        error = (_notebook_error(output_nb) or _last_line(stderr)
                 or f"the notebook's process exited with status {status}")
    for member in ready:
        out, result = Path(member["out"]), results[member["name"]]
        result["threads"] = threads
        copy = out / "experiment.ipynb"
        if copy != output_nb and output_nb.exists():
            with contextlib.suppress(OSError):
                shutil.copyfile(output_nb, copy)
        try:
            _check_record(member["config"], out, result)
        except (OSError, ValueError) as err:
            result["error"] = f"no readable record in {out}: {err}"
        if result["status"] != "done" and error is not None:
            result["error"] = f"{error} (see {output_nb})"


def run_summary(record: dict) -> dict:
    """The last epoch's test accuracy and training loss, the epochs and the wall time of a record."""
    last = record["epochs"][-1] if record.get("epochs") else {}
    return {"test_acc": last.get("test_acc"), "train_loss": last.get("train_loss"),
            "epochs": len(record.get("epochs", [])), "wall_time_s": record.get("wall_time_s")}


def stop_descendants(code: int = 143) -> None:
    """Kill every process below this one (kernels run in sessions of their own, out of reach of a signal
    to the process group) and exit with ``code``."""
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    os._exit(code)


def interrupt_children() -> None:
    """SIGINT to every notebook child (nbclient shuts its kernel down), SIGKILL after 20 s."""
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


if __name__ == "__main__":
    if sys.argv[1:] != [CHILD_FLAG]:
        sys.exit(f"usage: python -m snnlib.experiment.notebook_task {CHILD_FLAG} (a task as JSON on stdin); "
                 "run grids with python -m snnlib.experiment.runner")
    sys.exit(_execute_one())
