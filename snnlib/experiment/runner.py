"""Runs a grid of configurations through ``notebooks/experiment.ipynb`` (papermill), resumably.

Usage::

    python -m snnlib.experiment.runner GRID.json [--jobs N | --scheduler tcp://HOST:PORT] [--results results/]
                                      [--device auto] [--threads N] [--stack [N]] [--dry-run]

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
- ``base`` (optional): :class:`~snnlib.experiment.config.RunConfig` fields shared by every configuration; fields
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
(:mod:`snnlib.experiment.notebook_task`, which calls ``papermill.execute_notebook`` with the parameter dict),
so that a failure or a kill affects only that configuration; the notebook calls
:func:`snnlib.experiment.run.run`, the code behind ``python -m snnlib train``. Finished runs (``metrics.json`` with
status ``finished`` and the same configuration) are skipped without starting a kernel; a run interrupted at
any moment is resumed from its checkpoint by running the grid again. ``--jobs N`` runs N configurations at
once on this machine, each with torch threads = max(1, cores // N) (set as ``OMP_NUM_THREADS`` before the
kernel imports torch). With ``--device auto`` (the default) the N concurrent slots take the visible GPUs
round-robin (slot j computes on ``cuda:{j % GPUs}``, see :func:`snnlib.experiment.system.assign_devices`), or the CPU
when there is none; any other device is used by every slot. ``--scheduler ADDRESS`` submits every
configuration to an existing Dask distributed cluster instead (``distributed`` must be installed there, and
the workers must see this checkout and the results folder at the same paths); each run gets max(1, host
cores // task slots on that host) threads, and ``--device`` is passed on as given (``auto``: CUDA if the
worker has it). ``--threads`` overrides both thread counts.

``--stack [N]`` trains each group of configurations that share a dataset, a seed and the sizes of their data and
network (:func:`snnlib.experiment.stack.stack_key`: they see the same batches in the same order) as one stack, at
most N to a stack (default: the whole group): ONE execution of the notebook per stack, whose ``group`` parameter
lists them (:func:`snnlib.experiment.stack.run_group`). Within a stack the dropout (kind, p, mask, site),
``init_seed``, ``epochs``, ``lr`` and ``weight_decay`` may differ. Each run keeps its folder, claim, lock,
checkpoint and sealed record, and each record is its single run's (on the CPU number for number); the executed
notebook is saved in each run's folder. On a CPU, stacking gains little (README, Performance) and is off by
default; on a GPU each operation does the stack's work, which is what a launch-bound GPU needs.

Each configuration prints one line as it ends: ``done`` (test accuracy, training time, total time),
``skipped`` (finished earlier) or ``failed`` (the error, and the executed notebook to look at); a summary
and the list of failures come last. ``--dry-run`` lists every configuration with its state (new, partial,
finished, diverged, invalid, foreign: a folder that holds another run, damaged: a record that fails its
checks, such as an edited one or a finished one short of epochs, or unsealed: a version-2 record without a
digest, to be sealed by ``python -m snnlib seal``) and runs nothing; a damaged or unsealed folder is never
trained over, and counts as a failure.

Each run holds a lock on its folder while it trains (:func:`snnlib.experiment.system.folder_lock`), and the runner
claims the folder (:func:`snnlib.experiment.system.folder_claim`) before its notebook starts, for as long as the
notebook runs, so two runners on one results folder cannot write the same run nor its executed notebook: a
runner that reaches a configuration another process has claimed or is training leaves it to that process
(``busy``, not a failure) and goes on with the next, so two runners with ``--jobs 1`` each can work through
the same grid files side by side (``scripts/run_study.sh``). The lock file names the configuration trained
(:func:`snnlib.experiment.system.folder_owner`): a runner whose grid plans another configuration in a folder that
another process is training (two grids of one name with different settings) stops at once with exit status 2,
and a folder that holds another configuration's record is never run into (no notebook, no file written).
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
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from snnlib.experiment.config import RunConfig
from snnlib.experiment.grid import SETTLED_FAILURES, GridError, RunSpec, expand_grid, load_grid, run_state
from snnlib.experiment.notebook_task import (
    DEFAULT_NOTEBOOK,
    GROUP_PARAMETER,
    KERNEL,
    NOTEBOOK_PARAMETERS,
    cpu_count,
    execute,
    interrupt_children,
    notebook_parameters,
    other_owner,
    run_notebook,
    run_summary,
    run_task,
)
from snnlib.experiment.stack import group_configs
from snnlib.experiment.system import assign_devices, folder_busy, folder_claimed, parse_device

__all__ = ["build_parser", "execute", "main", "run_notebook"]

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


def _check_notebook(notebook: Path, stack: bool = False) -> None:
    if not notebook.is_file():
        raise GridError(f"notebook {notebook} not found")
    import papermill

    declared = set(papermill.inspect_notebook(str(notebook)))
    missing = [p for p in (*NOTEBOOK_PARAMETERS, *([GROUP_PARAMETER] if stack else [])) if p not in declared]
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
        prog="python -m snnlib.experiment.runner",
        description="Run every configuration of a grid file through notebooks/experiment.ipynb "
                    "(papermill), skipping finished runs and resuming interrupted ones.",
        epilog="The grid file format and the results layout are described in the module docstring "
               "(python -c 'import snnlib.experiment.runner; help(snnlib.experiment.runner)').")
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
    parser.add_argument("--stack", type=int, nargs="?", const=0, default=None, metavar="N",
                        help="train the configurations of one dataset and seed (and data and network sizes) as one "
                             "stack, one notebook execution each, at most N to a stack (default: all of a group); "
                             "each run still writes its own record")
    parser.add_argument("--dry-run", action="store_true", help="list the configurations and their state, run nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
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
    to_run = sum(len(task.get("group", [task])) for task in tasks)
    stacks = f" in {len(tasks)} notebook executions (--stack)" if args.stack is not None else ""
    print(f"grid {grid['name']}: {len(specs)} configurations, {to_run} to run{stacks}, results in {grid_root}",
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
    if args.stack is not None and args.stack < 0:
        raise GridError(f"--stack must be a positive integer (runs per stack), got {args.stack}")
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
        if out.is_dir() and (folder_busy(out) or folder_claimed(out)) and (why := other_owner(out, spec.config)):
            raise GridError(why)  # refused at once: two grids of one name plan different runs here
        tasks.append({"name": spec.rel, "out": str(out), "config": spec.config,
                      "params": notebook_parameters(spec.kwargs, out, args.device),
                      "notebook": str(notebook), "cwd": str(notebook.parent), "kernel": KERNEL,
                      "threads": args.threads, "host_slots": None,
                      "resumed_after": len(record.get("epochs", [])) if state == "partial" and record else 0})
    if tasks:
        _check_notebook(notebook, args.stack is not None)
    return tasks if args.stack is None else _stacks(tasks, args.stack or None)


def _stacks(tasks: list[dict], size: int | None) -> list[dict]:
    """The tasks grouped into stacks (:func:`snnlib.experiment.stack.group_configs`), in grid order of their
    first configuration; a stack of one stays a plain task."""
    groups = group_configs([RunConfig.from_dict(task["config"]) for task in tasks], size)
    stacked = []
    for group in sorted(groups):
        members = [tasks[i] for i in group]
        if len(members) == 1:
            stacked.append(members[0])
            continue
        first = members[0]
        stacked.append({key: first[key] for key in ("notebook", "cwd", "kernel", "threads", "host_slots")}
                       | {"name": f"{first['name']} and {len(members) - 1} stacked", "group": members})
    return stacked


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
                self.line("skipped", spec.rel, f"{_describe(run_summary(record))}  (finished earlier)")
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
    threads = max(1, cpu_count() // jobs)
    free: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in assign_devices(device, jobs):
        free.put(name)

    def in_a_slot(task: dict) -> list[tuple[dict, dict]]:
        slot_device = free.get()
        try:
            if "group" in task:  # a stack: every configuration of it on the slot's device
                return run_task({**task, "threads": task["threads"] or threads,
                                 "group": [{**member, "params": {**member["params"], "device": slot_device}}
                                           for member in task["group"]]})
            return [(task, execute({**task, "threads": task["threads"] or threads,
                                    "params": {**task["params"], "device": slot_device}}))]
        finally:
            free.put(slot_device)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(in_a_slot, task): task for task in tasks}
        for future in as_completed(futures):
            for member, result in future.result():
                finish(member, result)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        interrupt_children()
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
            futures[client.submit(run_task, task, key=key, pure=False, retries=0)] = task
        try:
            for future in dask_as_completed(list(futures)):
                task = futures[future]
                try:
                    outcomes = future.result()
                except Exception as err:  # noqa: BLE001 - a lost worker fails this configuration (stack) only
                    failed = {"status": "failed", "error": f"{type(err).__name__} on the cluster: {err}"}
                    outcomes = [(member, dict(failed)) for member in task.get("group", [task])]
                for member, result in outcomes:
                    finish(member, result)
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
            detail = _describe(run_summary(record))
        print(f"  {state:<8} {spec.rel}  {detail}".rstrip())
    print(", ".join(f"{counts[s]} {s}" for s in ("new", "partial", "finished", *SETTLED_FAILURES) if s in counts))
    return 1 if any(counts.get(s) for s in SETTLED_FAILURES) else 0


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy, so that Dask pickles ``execute`` by reference.
    from snnlib.experiment.runner import main as _main

    sys.exit(_main())
