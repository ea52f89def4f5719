"""The grid runner (``python -m snnlib.experiment.runner``): grid files, results layout, skipping finished runs,
failures reported at the end, a kill in the middle of a grid and its resumption, ``--jobs`` and Dask.

The runs are tiny (a few hundred MNIST samples, one or two epochs); most of the time goes into starting
kernels, so the integration tests share as few runner invocations as they can. They read the real MNIST
cache (``data/``, as the kernels do) and are skipped when it is missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from snnlib.experiment import grid as G
from snnlib.experiment import runner
from snnlib.experiment.system import assign_devices
from snnlib.study import progress as PG

ROOT = Path(__file__).resolve().parent.parent
GRIDS = ROOT / "grids"
SMOKE = GRIDS / "smoke.json"
CORES = runner.cpu_count()


def run_runner(*args: object, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The runner as a user starts it, from another folder than the project."""
    return subprocess.run([sys.executable, "-m", "snnlib.experiment.runner", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def write_grid(folder: Path, grid: dict) -> Path:
    path = folder / f"{grid.get('name', 'grid')}.json"
    path.write_text(json.dumps(grid))
    return path


def rels(grid: dict) -> list[str]:
    return [spec.rel for spec in G.expand_grid(grid)]


def lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if f"] {word}" in line]


# ---------------------------------------------------------------- grid files (no kernels)

def test_smoke_grid_expands_to_the_documented_layout():
    grid = G.load_grid(SMOKE)
    assert rels(grid) == ["mnist/none_p0_step_current/seed0", "mnist/dropout_p0.5_step_current/seed0",
                          "mnist/none_p0_step_current/seed1", "mnist/dropout_p0.5_step_current/seed1"]
    specs = G.expand_grid(grid)
    assert all(s.error is None for s in specs)
    assert {(s.config["epochs"], s.config["train_subset"], s.config["test_subset"]) for s in specs} == {(1, 300, 200)}


def grid_specs(name: str) -> list:
    specs = G.expand_grid(G.load_grid(GRIDS / f"{name}.json"))
    assert all(s.error is None for s in specs), name
    return specs


def test_project_grids_are_valid_and_complete():
    paper = grid_specs("paper")
    assert len(paper) == 2 * 6 * 5
    assert {s.rel.split("/")[1] for s in paper} == {
        "none_p0_step_current", "dropout_p0.5_step_current", "dropout2d_p0.5_step_current",
        "feature_p0.5_step_current", "feature_alpha_p0.5_step_current", "alpha_p0.5_step_current"}
    assert {(s.config["epochs"], s.config["train_subset"], s.config["val_size"]) for s in paper} == {(20, None, 5000)}
    # seeds 5-9 land in the same folders; feature dropout (= dropout2d on this layer) is not repeated
    more = grid_specs("paper_seeds")
    assert len(more) == 2 * 5 * 5 and not {s.rel for s in more} & {s.rel for s in paper}
    assert {s.config["seed"] for s in more} == {5, 6, 7, 8, 9}
    # the base runs of each dataset first: seeds 5-9 of the base network are one ensemble (uncertainty),
    # evaluated on the machine that trained all five
    for dataset in ("mnist", "cifar10"):
        order = [s.config["variant"] for s in more if s.config["dataset"] == dataset]
        assert order[:5] == ["none"] * 5 and "none" not in order[5:]
    # the C3 control: the initial weights of base seed s, another sample order
    control = grid_specs("control")
    assert {(s.config["init_seed"], s.config["seed"]) for s in control} == {(s, 100 + s) for s in range(10)}
    # every distinct operation at the two other sites (third edition): on the hidden spikes feature dropout
    # is dropout2d, on the input spikes dropout2d and feature dropout are dropout, so neither is run twice;
    # 10 seeds for C1's cells, 5 for the others (CIFAR-10's dense per-step alpha dropout on the input: 3)
    sites = grid_specs("sites") + grid_specs("sites_dense") + grid_specs("sites_seeds")
    cells: dict = {}
    for s in sites:
        c = s.config
        cells.setdefault((c["dataset"], c["site"], c["variant"]), set()).add(c["seed"])
    want = {}
    for dataset in ("mnist", "cifar10"):
        want.update({(dataset, "hidden", "dropout"): 10, (dataset, "hidden", "dropout2d"): 10,
                     (dataset, "hidden", "feature_alpha"): 5, (dataset, "hidden", "alpha"): 5,
                     (dataset, "input", "dropout"): 10, (dataset, "input", "feature_alpha"): 5,
                     (dataset, "input", "alpha"): 5 if dataset == "mnist" else 3})
    assert {cell: len(seeds) for cell, seeds in cells.items()} == want
    assert all(seeds == set(range(len(seeds))) for seeds in cells.values())
    rates = grid_specs("rates")
    assert {(s.config["dataset"], s.config["p"], s.config["time_consistent"]) for s in rates} == {
        (d, p, tc) for d in ("mnist", "cifar10") for p in (0.1, 0.2, 0.3) for tc in (False, True)}
    budget = grid_specs("budget")
    assert {(s.config["epochs"], s.config["variant"]) for s in budget} == {
        (60, "none"), (60, "dropout"), (60, "dropout2d")}
    study = [s for name in ("paper", "paper_seeds", "control", "sites", "sites_dense", "sites_seeds", "rates",
                            "budget", "tuning") for s in grid_specs(name)]
    assert {s.config["val_size"] for s in study} == {5000}


def test_other_fields_become_a_folder_suffix_and_duplicates_run_once():
    grid = G.check_grid({"name": "g", "base": {"lr": 1e-3, "network": {"K": 4}},
                              "axes": {"network.tau": [2.0, 4.0]},
                              "runs": [{"variant": "dropout", "p": 0.5, "weight_decay": 1e-5},
                                       {"variant": "dropout", "p": 0.5, "weight_decay": 1e-5}]})
    specs = G.expand_grid(grid)
    assert [s.rel for s in specs] == ["mnist/dropout_p0.5_step_current_network.tau2_weight_decay1e-05/seed0",
                                      "mnist/dropout_p0.5_step_current_network.tau4_weight_decay1e-05/seed0"]
    assert specs[1].config["network"]["tau"] == 4.0 and specs[1].config["network"]["K"] == 4
    assert specs[1].config["lr"] == 1e-3


# every kind of value a configuration can hold, and a few more; repr() tells 3 from 3.0 and True from 1
PARAMETERS = {"lr": 1e-05, "tiny": 2.5e-07, "big": 1e20, "half": 0.5, "zero": 0.0, "count": 3, "three": 3.0,
              "nothing": None, "flag": True, "off": False, "text": 'a b "c" \\ d\nnext line', "empty": "",
              "nan": float("nan"), "inf": float("-inf"), "items": [1, 2.0, None, "x"],
              "nested": {"lr": 1e-05, "network": {"tau": 4.0, "K": 4, "delays": None}, "on": True}}


def new_notebook():
    nbformat = pytest.importorskip("nbformat")
    return nbformat, nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})


def test_parameters_of_every_type_reach_the_notebook_unchanged(tmp_path):
    """The parameter dict travels to papermill's Python API through the child process as it is."""
    nbformat, nb = new_notebook()
    defaults = nbformat.v4.new_code_cell("\n".join(f"{name} = 'default'" for name in PARAMETERS))
    defaults.metadata["tags"] = ["parameters"]
    names = ", ".join(f"{name!r}: repr({name})" for name in PARAMETERS)
    seen = nbformat.v4.new_code_cell(f"import json\njson.dump({{{names}}}, open('seen.json', 'w'))")
    nb.cells = [defaults, seen]
    nbformat.write(nb, tmp_path / "params.ipynb")
    status, stderr = runner.run_notebook(tmp_path / "params.ipynb", tmp_path / "out.ipynb", PARAMETERS,
                                         cwd=tmp_path, threads=1)
    assert status == 0, stderr
    assert json.loads((tmp_path / "seen.json").read_text()) == {k: repr(v) for k, v in PARAMETERS.items()}


def test_the_kernel_runs_with_the_allocator_settings_and_one_thread(tmp_path, monkeypatch):
    """glibc reads its allocator settings at start: the runner puts them into the kernel's environment."""
    from snnlib.experiment.system import ALLOCATOR_ENV, allocator_env

    for key in ALLOCATOR_ENV:
        monkeypatch.delenv(key, raising=False)
    nbformat, nb = new_notebook()
    keys = [*ALLOCATOR_ENV, "OMP_NUM_THREADS"]
    nb.cells = [nbformat.v4.new_code_cell(f"import json, os\njson.dump({{k: os.environ.get(k) for k in {keys!r}}}, "
                                          "open('env.json', 'w'))")]
    nbformat.write(nb, tmp_path / "env.ipynb")
    status, stderr = runner.run_notebook(tmp_path / "env.ipynb", tmp_path / "out.ipynb", {}, cwd=tmp_path, threads=1)
    assert status == 0, stderr
    assert json.loads((tmp_path / "env.json").read_text()) == {**ALLOCATOR_ENV, "OMP_NUM_THREADS": "1"}
    assert allocator_env({"MALLOC_TRIM_THRESHOLD_": "1"})["MALLOC_TRIM_THRESHOLD_"] == "1"  # the user's value wins


def test_a_failing_notebook_names_its_error(tmp_path):
    nbformat, nb = new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('no such subset')")]
    nbformat.write(nb, tmp_path / "fails.ipynb")
    status, stderr = runner.run_notebook(tmp_path / "fails.ipynb", tmp_path / "out.ipynb", {}, cwd=tmp_path)
    assert status == 1 and stderr.strip().splitlines()[-1] == "ValueError: no such subset", stderr
    assert (tmp_path / "out.ipynb").is_file()  # the executed notebook, with the error, to look at


# ---------------------------------------------------------------- devices of the concurrent slots (no GPU needed)

@pytest.mark.parametrize("name, jobs, gpus, expected", [
    ("auto", 4, 2, ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]),
    ("auto", 3, 4, ["cuda:0", "cuda:1", "cuda:2"]),
    ("auto", 5, 1, ["cuda:0"] * 5),
    ("auto", 2, 0, ["cpu", "cpu"]),
    ("cpu", 3, 2, ["cpu"] * 3),
    ("cuda:1", 2, 4, ["cuda:1", "cuda:1"]),
    ("cuda", 1, 0, ["cuda"]),
])
def test_assign_devices_round_robin(name, jobs, gpus, expected):
    assert assign_devices(name, jobs, gpus) == expected


def test_assign_devices_counts_the_visible_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert assign_devices("auto", 4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert assign_devices("auto", 2) == ["cpu", "cpu"]


def fake_execute(log: list, lock: threading.Lock, running: dict, seconds: float = 0.05):
    """Stands in for :func:`runner.execute`: notes each task's device and how many ran on it at once."""

    def execute(task: dict) -> dict:
        device = task["params"]["device"]
        with lock:
            running[device] = running.get(device, 0) + 1
            log.append((task["name"], device, running[device], sum(running.values())))
        time.sleep(seconds)
        with lock:
            running[device] -= 1
        return {"status": "done", "record": {"test_acc": 0.5, "wall_time_s": seconds}, "elapsed_s": seconds}

    return execute


@pytest.mark.parametrize("gpus, jobs, devices", [(2, 2, {"cuda:0", "cuda:1"}), (2, 4, {"cuda:0", "cuda:1"}),
                                                 (3, 2, {"cuda:0", "cuda:1"}), (0, 2, {"cpu"})])
def test_jobs_spread_runs_over_the_gpus(monkeypatch, tmp_path, capsys, gpus, jobs, devices):
    """--jobs N --device auto: each concurrent slot on its own GPU, round-robin; cpu when there is none."""
    log, lock, running = [], threading.Lock(), {}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(runner, "execute", fake_execute(log, lock, running))
    grid = write_grid(tmp_path, {"name": "spread", "axes": {"seed": list(range(8))}})
    assert runner.main([str(grid), "--results", str(tmp_path / "results"), "--jobs", str(jobs)]) == 0
    assert "8 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert sorted(name for name, *_ in log) == sorted(rels(G.load_grid(grid)))
    assert {device for _, device, *_ in log} == devices
    # never more runs at once on a device than slots it has, nor more runs than jobs
    slots = runner.assign_devices("auto", jobs, gpus)
    assert all(on_device <= slots.count(device) for _, device, on_device, _ in log)
    assert max(total for *_, total in log) <= jobs


def test_a_named_device_is_every_slots(monkeypatch, tmp_path, capsys):
    log, lock, running = [], threading.Lock(), {}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(runner, "execute", fake_execute(log, lock, running, seconds=0.01))
    grid = write_grid(tmp_path, {"name": "named", "axes": {"seed": [0, 1, 2]}})
    assert runner.main([str(grid), "--results", str(tmp_path / "results"), "--jobs", "2", "--device", "cpu"]) == 0
    assert {device for _, device, *_ in log} == {"cpu"}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"base": {}}', "'name'"),
    ('{"name": "../up"}', "'name'"),
    ('{"name": "g", "extra": 1}', "unknown key"),
    ('{"name": "g", "base": {"learning_rate": 0.1}}', "unknown field 'learning_rate'"),
    ('{"name": "g", "axes": {"seed": 3}}', "non-empty list"),
    ('{"name": "g", "axes": {"seed": []}}', "non-empty list"),
    ('{"name": "g", "axes": {"network": [{"tau": 2}]}}', "network.NAME"),
    ('{"name": "g", "runs": {"variant": "none"}}', "'runs' must be a list"),
    ('{"name": "g", "axes": {"seed": [0, 1]}, "runs": [{"seed": 2}]}', "which is an axis"),
    ('{"name": "g", "runs": [{"lr": 0.1}, {"lr": 0.1, "batch_size": 64, "network": {}}, '
     '{"lr": 0.1, "epochs": 3}]}', None),  # valid: three different folders
    ('{"name": "g", "base": {"lr": 0.1}, "runs": [{}, {"epochs": 3}]}', None),
    ('{"name": "g", "base": {"epochs": 3}, "runs": [{}, {"network.tau": 2.0}]}', None),
])
def test_bad_grid_files_exit_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "G.json"
    path.write_text(content)
    code = runner.main([str(path), "--results", str(tmp_path / "results"), "--dry-run"])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0, err
        return
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and message in err, err
    assert not (tmp_path / "results").exists()


def test_duplicates_run_once_and_two_configurations_in_one_folder_are_a_bad_grid(tmp_path, capsys):
    path = write_grid(tmp_path, {"name": "g", "runs": [{"p": 0.0}, {"p": 0}, {"variant": "none"}]})
    assert runner.main([str(path), "--dry-run", "--results", str(tmp_path)]) == 0  # the same configuration
    assert capsys.readouterr().out.count("  new ") == 1
    path.write_text(json.dumps({"name": "g", "runs": [{"variant": "dropout", "p": 0.5},
                                                      {"variant": "dropout", "p": "0.5"}]}))
    assert runner.main([str(path), "--dry-run", "--results", str(tmp_path)]) == 2
    assert "both map to folder mnist/dropout_p0.5_step_current/seed0" in capsys.readouterr().err


def test_bad_options_exit_2(tmp_path, capsys):
    for argv in ([str(tmp_path / "missing.json")], [str(SMOKE), "--jobs", "0"], [str(SMOKE), "--device", "gpu0"],
                 [str(SMOKE), "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], [str(SMOKE), "--threads", "0"]):
        assert runner.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err


def test_dry_run_lists_states_without_running(tmp_path, capsys):
    grid = G.load_grid(SMOKE)
    assert runner.main([str(SMOKE), "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("  new ") == 4 and "4 new" in out
    assert not (tmp_path / "smoke").exists()
    # a folder that holds another run is reported, not overwritten
    folder = tmp_path / "smoke" / rels(grid)[0]
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"config": {"dataset": "cifar10"}, "epochs": []}))
    assert runner.main([str(SMOKE), "--results", str(tmp_path), "--dry-run"]) == 1
    assert "foreign" in capsys.readouterr().out


# ---------------------------------------------------------------- runs (kernels)

@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory, real_data_dir):
    """The smoke grid run once with --jobs 2: (results folder, completed process, seconds)."""
    results = tmp_path_factory.mktemp("smoke") / "results"
    start = time.perf_counter()
    proc = run_runner(SMOKE, "--results", results, "--jobs", 2, "--device", "cpu", cwd=results.parent)
    return results, proc, time.perf_counter() - start


def check_finished_grid(grid_root: Path, expected: list[str]) -> dict[str, dict]:
    found = sorted(p.parent.relative_to(grid_root).as_posix() for p in grid_root.glob("**/metrics.json"))
    assert found == sorted(expected)
    records = {}
    for rel in expected:
        record = json.loads((grid_root / rel / "metrics.json").read_text())
        assert record["status"] == "finished", rel
        assert len(record["epochs"]) == record["config"]["epochs"]
        assert (grid_root / rel / "experiment.ipynb").is_file()  # the executed notebook, next to the record
        records[rel] = record
    return records


def test_smoke_grid_with_two_jobs(smoke_results):
    results, proc, _ = smoke_results
    assert proc.returncode == 0, proc.stdout + proc.stderr
    grid = G.load_grid(SMOKE)
    records = check_finished_grid(results / "smoke", rels(grid))
    for spec in G.expand_grid(grid):
        assert records[spec.rel]["config"] == spec.config
    assert len(lines_with(proc.stdout, "done")) == 4
    assert "4 done, 0 skipped, 0 failed" in proc.stdout
    # --jobs 2 shares the cores: each run's torch got cores // 2 threads
    nb = json.loads((results / "smoke" / rels(grid)[0] / "experiment.ipynb").read_text())
    assert nb["metadata"]["papermill"]["parameters"]["threads"] == max(1, CORES // 2)


def test_a_run_another_process_trains_is_left_to_it(tmp_path, real_data_dir):
    """Two runners on one results folder: a configuration whose folder is locked is busy, not failed."""
    from snnlib.experiment.system import folder_lock

    grid = G.load_grid(SMOKE)
    busy = tmp_path / "results" / "smoke" / rels(grid)[0]
    busy.mkdir(parents=True)
    with folder_lock(busy):
        proc = run_runner(SMOKE, "--results", tmp_path / "results", "--jobs", 1, "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 done, 0 skipped, 1 busy (another process trains them), 0 failed" in proc.stdout
    assert not (busy / "metrics.json").exists()


def test_finished_runs_are_skipped_without_a_kernel(smoke_results):
    results, proc, _ = smoke_results
    assert proc.returncode == 0
    files = sorted(p for p in (results / "smoke").glob("**/*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    again = run_runner(SMOKE, "--results", results, cwd=results.parent)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(lines_with(again.stdout, "skipped")) == 4 and "0 done, 4 skipped" in again.stdout
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before  # notebooks untouched too


def test_records_read_the_runners_layout(smoke_results, tmp_path):
    from snnlib.study import records

    results, proc, _ = smoke_results
    assert proc.returncode == 0
    found = records.load_records(results)
    expected = PG.expected_runs([SMOKE])
    assert [r["path"] for r in found] == sorted(expected)
    table = records.runs_table(found)
    rows = records.summary(table)
    assert [(r.variant, r.n, r.seeds) for r in rows.itertuples()] == [("none", 2, [0, 1]), ("dropout", 2, [0, 1])]
    assert "| MNIST | dropout | 0.5 | per step | current | 1 | 2 |" in records.format_summary(rows)
    # the smoke runs as part of a bigger grid: seeds 2 and 3 missing, one of them started
    bigger = [f"smoke/mnist/{c}/seed{k}" for c in ("none_p0_step_current", "dropout_p0.5_step_current")
              for k in range(4)]
    partial = [*found, {**found[0], "path": "smoke/mnist/none_p0_step_current/seed2", "status": "running"}]
    assert PG.missing_runs(bigger, partial) == [
        "smoke/mnist/none_p0_step_current: seed 3 missing; seed 2 unfinished",
        "smoke/mnist/dropout_p0.5_step_current: seeds 2, 3 missing"]
    assert records.load_records(tmp_path / "nothing") == []


def test_failures_are_reported_at_the_end(tmp_path, real_data_dir):
    # one good configuration; one invalid (p = 1.5: caught before any kernel starts); one that fails inside its
    # notebook (its folder holds a damaged checkpoint: found only when the run opens it); one whose folder holds
    # another run
    grid = {"name": "fail", "base": {"dataset": "mnist", "epochs": 1, "train_subset": 300, "test_subset": 200},
            "runs": [{"variant": "dropout", "p": 1.5}, {"variant": "none", "p": 0.0, "test_subset": 100},
                     {"variant": "dropout", "p": 0.5, "seed": 3}, {"variant": "none", "p": 0.0}]}
    path = write_grid(tmp_path, grid)
    invalid, in_notebook, foreign, ok = rels(grid)
    planted = tmp_path / "results" / "fail" / foreign
    planted.mkdir(parents=True)
    (planted / "metrics.json").write_text(json.dumps({"config": {"dataset": "cifar10"}, "epochs": []}))
    damaged = tmp_path / "results" / "fail" / in_notebook
    damaged.mkdir(parents=True)
    (damaged / "checkpoint.pt").write_bytes(b"not a checkpoint")

    proc = run_runner(path, "--results", tmp_path / "results", "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 done, 0 skipped, 3 failed" in proc.stdout
    assert len(lines_with(proc.stdout, "done")) == 1 and ok in lines_with(proc.stdout, "done")[0]
    summary = proc.stdout.split("3 configuration(s) failed:")[1]
    assert f"{invalid}: invalid configuration: dropout probability p must be in [0, 1), got 1.5" in summary
    assert f"{in_notebook}: RunError: {damaged / 'checkpoint.pt'} is damaged or not a saved state" in summary
    assert f"(see {tmp_path / 'results' / 'fail' / in_notebook / 'experiment.ipynb'})" in summary
    assert f"{foreign}: " in summary and "different configuration" in summary
    assert json.loads((tmp_path / "results" / "fail" / ok / "metrics.json").read_text())["status"] == "finished"
    assert json.loads((planted / "metrics.json").read_text()) == {"config": {"dataset": "cifar10"}, "epochs": []}
    assert not (tmp_path / "results" / "fail" / invalid).exists()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _started(pid: int) -> str | None:
    """When a process started (clock ticks since boot), None when it is gone: with the pid, its identity."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()[19]


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to follow the kernels")
def test_killed_grid_resumes_without_repeating_or_losing_runs(tmp_path, real_data_dir):
    # Two runs, one after the other; SIGKILL the runner, its child and the kernel once the first run has
    # finished and the second is between its two epochs.
    grid = {"name": "kill", "base": {"dataset": "mnist", "variant": "dropout", "p": 0.5, "epochs": 2,
                                     "train_subset": 600, "test_subset": 200},
            "axes": {"seed": [0, 1]}}
    path = write_grid(tmp_path, grid)
    first, second = rels(grid)
    grid_root = tmp_path / "results" / "kill"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "snnlib.experiment.runner", str(path),
                             "--results", str(tmp_path / "results"),
                             "--device", "cpu"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def record(rel: str) -> dict | None:
        try:
            return json.loads((grid_root / rel / "metrics.json").read_text())
        except (OSError, ValueError):
            return None

    deadline = time.monotonic() + 300
    try:
        while True:
            a, b = record(first), record(second)
            if a and a["status"] == "finished" and b and b["status"] == "running" and len(b["epochs"]) >= 1:
                break
            assert proc.poll() is None, "the grid ended before it could be interrupted: " + \
                (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "timed out waiting for the second run's first epoch"
            time.sleep(0.01)
        # A hard stop of everything: the runner's process group (the runner and its child, which runs the
        # notebook through papermill) and the kernel, which runs in a session of its own (left alone, it
        # would notice its parent is gone within a second).
        processes = _descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in processes:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    deadline = time.monotonic() + 30
    while any((s := _proc_stat(p)) is not None and s[0] != "Z" for p in processes):
        assert time.monotonic() < deadline, "a process of the runner survived SIGKILL"
        time.sleep(0.1)

    finished_before = (grid_root / first / "metrics.json").read_bytes()
    partial = record(second)
    assert partial["status"] == "running" and 1 <= len(partial["epochs"]) < 2

    proc = run_runner(path, "--results", tmp_path / "results", "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(lines_with(proc.stdout, "skipped")) == 1 and first in lines_with(proc.stdout, "skipped")[0]
    resumed = lines_with(proc.stdout, "done")
    assert len(resumed) == 1 and second in resumed[0]
    assert f"resumed after epoch {len(partial['epochs'])}" in resumed[0]
    records = check_finished_grid(grid_root, [first, second])
    assert (grid_root / first / "metrics.json").read_bytes() == finished_before  # not repeated
    final = records[second]
    # the epochs done before the kill were kept, timings included (a rerun from scratch would change them)
    assert final["epochs"][:len(partial["epochs"])] == partial["epochs"]
    assert [e["epoch"] for e in final["epochs"]] == [1, 2]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to follow the kernels")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_runner_leaves_no_kernel_behind(tmp_path, real_data_dir, signum):
    """SIGTERM (like Ctrl-C): exit status 130, the kernel shut down. SIGKILL of the runner alone: its child
    notices and kills its kernel (which runs in a session of its own). Either way no process of the run
    survives, and the record stays."""
    # far more epochs than the test waits for: on a fast machine a short run could finish before the signal
    grid = {"name": "stop", "base": {"dataset": "mnist", "epochs": 1000, "train_subset": 600, "test_subset": 200}}
    path = write_grid(tmp_path, grid)
    (rel,) = rels(grid)
    record_path = tmp_path / "results" / "stop" / rel / "metrics.json"
    proc = subprocess.Popen([sys.executable, "-m", "snnlib.experiment.runner", str(path),
                             "--results", str(tmp_path / "results"),
                             "--device", "cpu"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    processes: dict[int, str | None] = {}
    try:
        deadline = time.monotonic() + 300
        while not record_path.exists():  # the kernel is training
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "timed out waiting for the run to start"
            time.sleep(0.05)
        processes = {pid: _started(pid) for pid in _descendants(proc.pid)}
        assert len(processes) >= 2  # the child and its kernel
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
        if signum == signal.SIGTERM:
            assert proc.returncode == 130 and "interrupted" in stderr, stderr
        # the child polls its parent every PARENT_POLL_S and then kills its kernel: gone within seconds, so
        # that a runner restarted at once does not meet a kernel still writing (the folder lock would refuse it)
        deadline = time.monotonic() + 10
        while alive := [p for p in processes if (s := _proc_stat(p)) is not None and s[0] != "Z"]:
            assert time.monotonic() < deadline, f"processes of the run survived for 10 s: {alive}"
            time.sleep(0.1)
    finally:  # on a failure: end what this test started (the same processes, not others that took a pid)
        if proc.poll() is None:
            proc.kill()
        for pid, started in processes.items():
            if started is not None and _started(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        proc.wait()
    assert json.loads(record_path.read_text())["status"] == "running"  # resumable, not finished


def test_dask_scheduler(tmp_path, real_data_dir):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        proc = run_runner(SMOKE, "--results", tmp_path / "results", "--scheduler", cluster.scheduler_address,
                          "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    grid = G.load_grid(SMOKE)
    check_finished_grid(tmp_path / "results" / "smoke", rels(grid))
    assert "4 done, 0 skipped, 0 failed" in proc.stdout
    # two task slots on this host share its cores
    nb = json.loads((tmp_path / "results" / "smoke" / rels(grid)[0] / "experiment.ipynb").read_text())
    assert nb["metadata"]["papermill"]["parameters"]["threads"] == max(1, CORES // 2)
