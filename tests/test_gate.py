"""Landing is a gate, and reading follows the design (issue 32): only the design's runs land, whole or not at all;
a copy, a stray or a damaged file never moves a count or a verdict; landing and regenerating stop cleanly; values
are checked against their meaning; two runners of one grid name cannot mix configurations; bad data paths and odd
files get one line each. Fast tests on synthetic records, and one end-to-end landing through the command."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from recordmaker import make_record, reseal

from snnlib.experiment import data as D
from snnlib.experiment.run import record_problem
from snnlib.experiment.system import folder_claim, name_owner, walk_files
from snnlib.study import records as R
from snnlib.study.design import KEPT_APART, run_key, study_design
from snnlib.study.progress import compare_records

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
DESIGN = study_design()


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _put(root: Path, rel: str, record: dict) -> Path:
    path = root / rel / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "path"}))
    return path


def _planned(record: dict) -> str:
    """The folder the study's design plans for ``record``'s configuration and seed."""
    return DESIGN.by_key[run_key(record)]


def _sites_run(seed: int = 0) -> dict:
    return make_record("mnist", "alpha", seed=seed, site="hidden")  # nothing planned to evaluate: lands at once


# ---------------------------------------------------------------- 1. only the design lands

def test_only_the_design_lands_and_a_refusal_stops_the_whole_landing(tmp_path):
    """A smoke run (a subset) in a planned cell's folder and a copy of a planned run in another folder are refused,
    one line each, and then not even the good run lands."""
    land = _script("land_records")
    source, dest = tmp_path / "work", tmp_path / "results"
    good = _sites_run()
    _put(source, _planned(good), good)
    smoke = reseal({**make_record("mnist", "dropout", seed=41, epochs=1),
                    "config": {**make_record("mnist", "dropout", seed=41, epochs=1)["config"], "train_subset": 2000}})
    _put(source, "paper/mnist/dropout_p0.5_step_current/seed41", smoke)
    _put(source, "paper/mnist/a_dup", _sites_run(1))
    plan = land.landing(source, dest)
    assert len(plan.errors) == 2
    assert any("a_dup" in e and "copy of the run the design plans in sites/" in e for e in plan.errors)
    assert any("seed41" in e and "outside the design" in e for e in plan.errors)
    assert land.main([str(source), "--dest", str(dest)]) == 1
    assert not dest.exists() or not list(dest.rglob("*.json"))


def test_a_planned_run_landed_with_other_numbers_is_a_conflict_and_a_damaged_copy_is_repaired(tmp_path):
    land = _script("land_records")
    source, dest = tmp_path / "work", tmp_path / "results"
    run, other = _sites_run(), reseal({**_sites_run(), "wall_time_s": 2.0})
    _put(source, _planned(run), run)
    target = _put(dest, _planned(run), other)
    plan = land.landing(source, dest)
    assert plan.copies == [] and len(plan.errors) == 1 and "landed already with other numbers" in plan.errors[0]
    target.write_text(target.read_text()[:200])  # half-written by an interrupted copy of an older library
    plan = land.landing(source, dest)
    assert plan.errors == [] and plan.repairs == plan.copies == [Path(_planned(run)) / "metrics.json"]
    assert land.main([str(source), "--dest", str(dest)]) == 0
    assert target.read_bytes() == (source / _planned(run) / "metrics.json").read_bytes()
    assert not list(dest.glob(".landing*"))  # the staging folder is gone


def test_a_file_dest_holds_byte_for_byte_is_never_refused(tmp_path):
    """A working folder starts from a copy of what has landed, including evaluations the plan does not list
    (older ones): identical files are left alone, not refused."""
    land = _script("land_records")
    source, dest = tmp_path / "work", tmp_path / "results"
    for root in (source, dest):
        (root / "ensembles/mnist/none_p0_step_current/seed10").mkdir(parents=True)
        (root / "ensembles/mnist/none_p0_step_current/seed10/uncertainty.json").write_text("{}")
    plan = land.landing(source, dest)
    assert plan.errors == [] and plan.copies == []
    (source / "ensembles/mnist/none_p0_step_current/seed10/uncertainty.json").write_text('{"x": 1}')
    assert "the design plans no such evaluation" in land.landing(source, dest).errors[0]


def test_landing_end_to_end_through_the_command(tmp_path):
    """The command seals nothing it should not, lands the design's finished runs (staged, then renamed), holds
    back the unfinished and refuses everything when a stray record is there."""
    source, dest = tmp_path / "work", tmp_path / "results"
    done, running = _sites_run(0), make_record("mnist", "alpha", seed=1, site="hidden", status="running",
                                               epochs=20)
    running["epochs"] = running["epochs"][:3]
    _put(source, _planned(done), done)
    _put(source, _planned(running), reseal(running))
    command = [sys.executable, str(SCRIPTS / "land_records.py"), str(source), "--dest", str(dest)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert f"landed {_planned(done)}/metrics.json" in proc.stdout and "1 files landed, 0 runs held back" in proc.stdout
    assert (dest / _planned(done) / "metrics.json").exists() and not (dest / _planned(running)).exists()
    _put(source, "scratch/mnist/anything/seed0", make_record("mnist", "none", seed=0, epochs=2))
    done2 = _sites_run(2)
    _put(source, _planned(done2), done2)
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "outside the design" in proc.stderr and "nothing landed" in proc.stderr
    assert not (dest / _planned(done2)).exists()


# ---------------------------------------------------------------- 2. reading never depends on folder names

def test_a_copy_of_a_planned_run_is_an_error_whatever_its_folder_sorts_as(tmp_path):
    """``cp -r seed3 seed10`` (or a copy that sorts first): the planned folder's record counts, the copy is an
    error that names both folders, and the report counts it."""
    root = tmp_path / "results"
    base = make_record("mnist", "none", seed=3)
    _put(root, _planned(base), base)
    for copy in ("paper/mnist/none_p0_step_current/seed10", "paper/mnist/a_first/seed3"):
        _put(root, copy, base)
    scan = R.scan_records(root, DESIGN)
    assert [r["path"] for r in scan.records] == [_planned(base)]
    assert len(scan.refused) == 2 and all(_planned(base) in why for _, why in scan.refused)
    assert "2 errors" in R.scan_line(scan)


def test_a_record_outside_the_design_is_ignored_and_cannot_change_the_c3_control(tmp_path):
    root = tmp_path / "results"
    control = make_record("mnist", "none", seed=100, init_seed=0)
    _put(root, _planned(control), control)
    subset = reseal({**make_record("mnist", "none", seed=41, epochs=1),
                     "config": {**make_record("mnist", "none", seed=41, epochs=1)["config"], "test_subset": 500}})
    _put(root, "scratch/s1", subset)
    scan = R.scan_records(root, DESIGN)
    assert [r["path"] for r in scan.records] == [_planned(control)] and scan.refused == []
    assert scan.ignored == [("scratch/s1", "outside the design (no grid file plans this configuration and seed)")]
    # the C3 control is found even when a subset run sits in the same table (None became NaN there)
    table = R.runs_table([*scan.records, {**subset, "path": "scratch/s1"}])
    assert pd.isna(table["test_subset"]).any() and list(R.control_runs(table, "mnist")["seed"]) == [100]


def test_without_a_design_two_different_records_of_one_run_count_neither(tmp_path):
    a, b = make_record("mnist", "none", seed=0), reseal({**make_record("mnist", "none", seed=0), "wall_time_s": 9.0})
    _put(tmp_path, "x/one", a)
    _put(tmp_path, "y/two", b)
    _put(tmp_path, "z/same", a)
    scan = R.scan_records(tmp_path)
    assert scan.records == [] and len(scan.refused) == 3
    assert all("none is counted" in why for _, why in scan.refused)


# ---------------------------------------------------------------- 4. compare

def test_compare_counts_a_damaged_reference_whose_rerun_is_missing_as_a_difference():
    rows = compare_records([], [], reference_refused=[("cifar10/none/seed0", "it was changed after it was written")])
    assert [(r["path"], r["verdict"]) for r in rows] == [("cifar10/none/seed0", "reference refused")]


# ---------------------------------------------------------------- 5. values against their meaning

@pytest.mark.parametrize(("key", "value", "words"), [
    ("test_acc", 1e300, "its test_acc is 1e+300, which must be a number in [0, 1]"),
    ("test_loss", -0.5, "which must be a finite number of at least 0"),
    ("val_acc", -0.1, "its val_acc"),
])
def test_a_resealed_record_with_a_value_outside_its_meaning_is_refused(key, value, words):
    record = make_record("mnist", "dropout", seed=3)
    record["epochs"][-1][key] = value
    assert words in record_problem(reseal(record))


def test_counts_must_be_whole_and_neuron_values_within_their_range():
    record = make_record("mnist", "dropout", seed=3)
    assert record_problem(reseal({**record, "test_samples": 99.5})) == \
        "its test_samples is 99.5, which must be a whole number of at least 0"
    assert "hidden_firing_rate[0]" in record_problem(reseal({**record, "hidden_firing_rate": [1.5] * 8}))
    assert record_problem(record) is None


# ---------------------------------------------------------------- 6. runners

def test_a_runner_refuses_at_once_when_another_process_trains_another_configuration_in_its_folder(tmp_path):
    """Another process holds the claim of a folder and trains lr 3e-3 there; a runner whose grid of the same name
    plans lr 1e-3 in that folder stops with exit status 2 before anything runs, and writes nothing there."""
    from snnlib.experiment import runner

    grid = {"name": "g", "base": {"dataset": "mnist", "epochs": 1, "train_subset": 256, "val_size": 0}, "runs": [{}]}
    grid_file = tmp_path / "g.json"
    grid_file.write_text(json.dumps(grid))
    folder = tmp_path / "results" / "g" / "mnist" / "none_p0_step_current" / "seed0"
    folder.mkdir(parents=True)
    other = json.loads(json.dumps(make_record("mnist", "none", seed=0)["config"]))
    other.update(epochs=1, train_subset=256, val_size=0, lr=0.003)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom snnlib.experiment.system import folder_claim, name_owner\n"
        f"with folder_claim({str(folder)!r}):\n    name_owner({str(folder)!r}, sys.argv[1])\n"
        "    print('held', flush=True)\n    time.sleep(60)\n"), json.dumps(other, sort_keys=True)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = sorted(os.listdir(folder))
        code = runner.main([str(grid_file), "--results", str(tmp_path / "results")])
        assert code == 2 and sorted(os.listdir(folder)) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_run_is_never_started_in_a_folder_that_holds_another_configuration(tmp_path):
    from snnlib.experiment.notebook_task import execute

    record = make_record("mnist", "none", seed=0)
    folder = tmp_path / "run"
    _put(tmp_path, "run", record)
    (folder / "experiment.ipynb").write_text("the finished run's notebook")
    config = {**record["config"], "lr": 0.003}
    result = execute({"name": "run", "out": str(folder), "config": config, "params": {}, "notebook": "none.ipynb",
                      "cwd": str(tmp_path), "kernel": "python3", "threads": 1, "host_slots": None})
    assert result["status"] == "failed" and "holds the record of another configuration" in result["error"]
    assert (folder / "experiment.ipynb").read_text() == "the finished run's notebook"


def test_the_owner_of_a_folder_is_named_only_for_the_run_trained_there(tmp_path):
    from snnlib.experiment.system import folder_owner

    with folder_claim(tmp_path):
        name_owner(tmp_path, '{"a": 1}')
        mtime = (tmp_path / ".lock").stat().st_mtime_ns
        name_owner(tmp_path, '{"a": 1}')  # the same run again: the file is not touched
        assert (tmp_path / ".lock").stat().st_mtime_ns == mtime and folder_owner(tmp_path) == '{"a": 1}'


# ---------------------------------------------------------------- 7. data paths and odd files

def test_a_data_path_that_is_a_file_is_one_clear_error(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("")
    monkeypatch.setenv("SNNLIB_DATA", str(not_a_folder))
    with pytest.raises(D.DataError, match="is a file, not a folder; set SNNLIB_DATA to a folder"):
        D.fetch("mnist")


def test_a_truncated_labels_file_is_named_as_the_labels_file(tmp_path, monkeypatch):
    from conftest import REAL_DATA_DIR

    for part in ("images", "labels"):
        data = (REAL_DATA_DIR / f"mnist_test_{part}.npy").read_bytes()
        (tmp_path / f"mnist_test_{part}.npy").write_bytes(data[:1000] if part == "labels" else data)
    for part in ("images", "labels"):
        (tmp_path / f"mnist_train_{part}.npy").symlink_to(REAL_DATA_DIR / f"mnist_train_{part}.npy")
    monkeypatch.setenv("SNNLIB_DATA", str(tmp_path))
    with pytest.raises(D.DataError, match=r"\(mnist_test_labels\.npy\)"):
        D.load("mnist", "test", verify=False)


def test_the_readers_skip_fifos_links_and_deep_folders_with_a_line(tmp_path):
    root = tmp_path / "results"
    record = make_record("mnist", "none", seed=3)
    _put(root, _planned(record), record)
    os.mkfifo(root / "paper" / "metrics.json")
    os.mkfifo(root / "paper" / "fifo.json")
    (root / "paper" / "link").symlink_to(root / _planned(record))
    deep = root
    for _ in range(30):  # past the readers' depth; a recursive walk of thousands would overflow the stack
        deep = deep / "d"
    deep.mkdir(parents=True)
    files, skipped = walk_files(root, lambda name: name == "metrics.json")
    assert [f.parent.relative_to(root).as_posix() for f in files] == [_planned(record)]
    why = dict(skipped)
    assert "not a regular file or folder" in why["paper/metrics.json"] and "symbolic link" in why["paper/link"]
    assert any("deeper than" in w for w in why.values())
    scan = R.scan_records(root, DESIGN)  # returns at once: nothing that is not a regular file is opened
    assert len(scan.records) == 1 and len(scan.refused) == 4


def test_claims_on_a_folder_with_a_fifo_answers_with_lines_not_a_hang(tmp_path):
    root = tmp_path / "results"
    record = make_record("mnist", "none", seed=3)
    _put(root, _planned(record), record)
    os.mkfifo(root / "paper" / "uncertainty.json")
    proc = subprocess.run([sys.executable, "-m", "snnlib", "claims", str(root)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "paper/uncertainty.json: it is not a regular file or folder; not read" in proc.stderr
    assert "1 run records counted, 0 outside the design ignored, 1 error" in proc.stdout


# ---------------------------------------------------------------- 3. stopping the regeneration

def _small_study(tmp_path):
    """(results, notebooks, README.md) of a regeneration test: one planned record, an empty chapters folder and a
    README whose report block says OLD."""
    results, notebooks = tmp_path / "results", tmp_path / "notebooks"
    notebooks.mkdir()
    record = make_record("mnist", "none", seed=3)
    _put(results, _planned(record), record)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- begin: python -m snnlib report results -->\nOLD\n"
                      "<!-- end: python -m snnlib report results -->\n")
    return results, notebooks, readme


def test_stopping_the_regeneration_stops_its_kernels_and_replaces_nothing(tmp_path):
    """scripts/regenerate.py, started by a parent that is then killed (as when `make land` is killed by its
    process id): its chapter's kernel is stopped within seconds, nothing is replaced and nothing staged is left."""
    results, notebooks, readme = _small_study(tmp_path)
    marker = tmp_path / "kernel.pid"
    cell = f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)"
    chapter = {"cells": [{"cell_type": "code", "metadata": {}, "source": cell, "outputs": [], "execution_count": None}],
               "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
               "nbformat": 4, "nbformat_minor": 5}
    (notebooks / "slow.ipynb").write_text(json.dumps(chapter))
    before = (notebooks / "slow.ipynb").read_text()
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, {str(SCRIPTS / 'regenerate.py')!r}, 'slow', '--results', "
        f"{str(results)!r}, '--readme', {str(readme)!r}, '--notebooks', {str(notebooks)!r}])\n"
        "import time; time.sleep(300)\n")])
    try:
        deadline = time.time() + 120
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.5)
        assert marker.exists(), "the chapter's kernel never started"
        time.sleep(0.5)
        kernel = int(marker.read_text())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        os.kill(kernel, signal.SIGKILL)
        pytest.fail("the chapter's kernel outlived the stopped regeneration")
    time.sleep(1)
    assert "OLD" in readme.read_text() and (notebooks / "slow.ipynb").read_text() == before
    leftovers = [p.name for p in (*tmp_path.iterdir(), *notebooks.iterdir(), *results.iterdir())
                 if "regenerating" in p.name]
    assert leftovers == []


def test_the_folders_kept_apart_are_not_read_by_the_design(tmp_path):
    """Reruns of planned runs kept under reproducibility/ on purpose are neither counted nor errors."""
    root = tmp_path / "results"
    record = make_record("mnist", "none", seed=3)
    _put(root, _planned(record), record)
    _put(root, "reproducibility/uncertainty_reruns/mnist/none_p0_step_current/seed3", record)
    scan = R.scan_records(root, DESIGN)
    assert [r["path"] for r in scan.records] == [_planned(record)] and scan.refused == [] and scan.ignored == []
    assert len(R.scan_records(root).refused) == 1  # without the design, the copy is named
    # ... unless the reader leaves the folders kept apart out, as `summary` and `compare` do
    apart = R.scan_records(root, apart=KEPT_APART)
    assert [r["path"] for r in apart.records] == [_planned(record)] and apart.refused == []


def test_summary_of_a_results_folder_leaves_its_reruns_out(tmp_path):
    """`python -m snnlib summary results` counts each planned run once, though reproducibility/ holds a rerun of it
    that differs (another machine's rounding): it named both and counted neither before."""
    root = tmp_path / "results"
    record = make_record("mnist", "none", seed=3, test_acc=0.97)
    rerun = make_record("mnist", "none", seed=3, test_acc=0.96)
    _put(root, _planned(record), record)
    _put(root, "reproducibility/uncertainty_reruns/mnist/none_p0_step_current/seed3", rerun)
    proc = subprocess.run([sys.executable, "-m", "snnlib", "summary", str(root)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "skipping" not in proc.stderr, proc.stderr
    assert "| 1 | 97.00 |" in proc.stdout


def test_the_regeneration_replaces_the_readme_block_the_figures_and_the_chapters_together(tmp_path):
    """A whole run of scripts/regenerate.py on a small results folder and one quick chapter: every part is
    replaced, nothing staged is left."""
    regenerate = _script("regenerate")
    results, notebooks, readme = _small_study(tmp_path)
    chapter = {"cells": [{"cell_type": "code", "metadata": {}, "source": "print(6 * 7)", "outputs": [],
                          "execution_count": None}],
               "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
               "nbformat": 4, "nbformat_minor": 5}
    (notebooks / "quick.ipynb").write_text(json.dumps(chapter))
    moved = regenerate.regenerate(results, readme, notebooks, ("quick",))
    assert notebooks / "quick.ipynb" in moved and readme in moved and (results / "figures").is_dir()
    assert "42" in (notebooks / "quick.ipynb").read_text() and "OLD" not in readme.read_text()
    assert not [p for p in (*tmp_path.rglob("*"),) if "regenerating" in p.name]
