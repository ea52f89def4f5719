"""The command line, run as ``python -m snnlib`` in a subprocess on the real (cached) data:
determinism, resume after SIGKILL, idempotent reruns, one-line errors, help texts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snnlib import KINDS, SITES
from snnlib.cli import build_parser
from snnlib.experiment.data import DATASETS
from snnlib.experiment.run import timing_free

# Small, quick runs; one CPU thread so two runs never compete for the 2 cores.
COMMON = ["--dataset", "mnist", "--variant", "dropout", "--p", "0.2", "--test-subset", "256",
          "--threads", "1", "--no-progress"]
TINY = ["train", *COMMON, "--train-subset", "512", "--epochs", "2"]
# Long enough epochs (~0.3 s each) to kill the run between its first and last checkpoint.
RESUMABLE = ["train", *COMMON, "--train-subset", "3072", "--epochs", "4"]

TRAIN_OPTIONS = [
    "--dataset", "--variant", "--p", "--time-consistent", "--site", "--seed", "--init-seed", "--epochs",
    "--train-subset", "--test-subset", "--val-size", "--batch-size", "--lr", "--weight-decay", "--t-enc", "--T",
    "--K", "--delay-spread", "--tau", "--threshold", "--hidden", "--device", "--threads",
    "--no-progress", "--out",
]


def cli_env(data_dir: Path) -> dict:
    return {**os.environ, "SNNLIB_DATA": str(data_dir), "COLUMNS": "200", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def cli(real_data_dir: Path):
    """Runs ``python -m snnlib ARGS`` on the real data and returns the CompletedProcess."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "snnlib", *args], capture_output=True, text=True,
                              env=cli_env(real_data_dir), timeout=timeout)

    return run


@pytest.fixture(scope="module")
def finished_run(cli, tmp_path_factory) -> Path:
    """A finished TINY run, shared by the tests below (which must leave it unchanged)."""
    out = tmp_path_factory.mktemp("cli") / "tiny"
    proc = cli(*TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def read_record(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def snapshot(folder: Path) -> dict:
    """Content and modification time of every file in a folder."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------- (a) determinism

def test_finished_run_record(finished_run):
    """A finished run holds its full configuration and one entry per epoch."""
    record = read_record(finished_run)
    assert record["status"] == "finished"
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert record["config"]["variant"] == "dropout" and record["config"]["p"] == 0.2
    assert record["config"]["train_subset"] == 512 and record["config"]["network"]["T"] == 24
    # a finished run keeps its trained network, not the checkpoint it resumed from
    assert (finished_run / "weights.pt").exists() and not (finished_run / "checkpoint.pt").exists()
    for epoch in record["epochs"]:
        assert 0.0 <= epoch["test_acc"] <= 1.0 and epoch["train_loss"] > 0


def test_identical_runs_give_identical_metrics(cli, finished_run, tmp_path):
    """Same command, same numbers: metrics.json equal up to timing and provenance fields."""
    proc = cli(*TINY, "--out", str(tmp_path / "again"))
    assert proc.returncode == 0, proc.stderr
    assert timing_free(read_record(tmp_path / "again")) == timing_free(read_record(finished_run))


def test_another_seed_gives_other_metrics(cli, finished_run, tmp_path):
    """The comparison above is not vacuous: a different seed changes the numbers."""
    proc = cli(*TINY, "--seed", "1", "--out", str(tmp_path / "seed1"))
    assert proc.returncode == 0, proc.stderr
    other, base = read_record(tmp_path / "seed1"), read_record(finished_run)
    assert other["epochs"][-1]["train_loss"] != base["epochs"][-1]["train_loss"]


# ---------------------------------------------------------------- (b) resume after SIGKILL

def test_run_killed_after_first_checkpoint_resumes_to_identical_metrics(real_data_dir, tmp_path):
    """SIGKILL after the first checkpoint, then the same command again: the final record
    equals that of an uninterrupted run (model, optimizer, scheduler and RNG restored)."""
    env = cli_env(real_data_dir)
    command = [sys.executable, "-m", "snnlib", *RESUMABLE]
    reference_out, killed_out = tmp_path / "reference", tmp_path / "killed"
    reference = subprocess.Popen([*command, "--out", str(reference_out)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen([*command, "--out", str(killed_out)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while victim.poll() is None and not (killed_out / "checkpoint.pt").exists():
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    interrupted = read_record(killed_out)
    assert interrupted["status"] == "running" and len(interrupted["epochs"]) < 4

    resumed = subprocess.run([*command, "--out", str(killed_out)], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stdout
    _, reference_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, reference_err
    final = read_record(killed_out)
    assert final["status"] == "finished" and len(final["epochs"]) == 4
    assert timing_free(final) == timing_free(read_record(reference_out))


# ---------------------------------------------------------------- (c) finished run

def test_rerunning_a_finished_run_changes_nothing(cli, finished_run):
    """The same command on a finished run says so and leaves every file untouched."""
    before = snapshot(finished_run)
    proc = cli(*TINY, "--out", str(finished_run))
    assert proc.returncode == 0, proc.stderr
    assert "already finished" in proc.stdout
    assert snapshot(finished_run) == before


# ---------------------------------------------------------------- (d) bad input

def assert_one_error_line(proc: subprocess.CompletedProcess) -> str:
    """Exit status 2, exactly one stderr line starting with 'error:', no traceback."""
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert proc.returncode == 2
    return lines[0]


BAD_INPUTS = {
    "unknown-dataset": (["--dataset", "svhn"], "unknown dataset"),
    "unknown-variant": (["--variant", "spatial_dropout"], "unknown dropout kind"),
    "unknown-site": (["--site", "output"], "unknown dropout site"),
    "p-one": (["--p", "1.0"], "[0, 1)"),
    "p-negative": (["--p", "-0.1"], "[0, 1)"),
    "tau-zero": (["--tau", "0"], "tau"),
    "threshold-negative": (["--threshold", "-1"], "threshold"),
    "epochs-zero": (["--epochs", "0"], "epochs"),
    "delay-longer-than-window": (["--K", "30", "--T", "24"], "T=24"),
}


@pytest.mark.parametrize("extra,expected", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_exits_with_one_error_line(cli, tmp_path, extra, expected):
    """Each bad value is reported on one line naming the problem; no run folder is made."""
    out = tmp_path / "run"
    proc = cli("train", "--dataset", "mnist", "--train-subset", "64", "--test-subset", "64", "--epochs", "1",
               "--no-progress", *extra, "--out", str(out))
    line = assert_one_error_line(proc)
    assert expected in line
    assert not out.exists()


def test_out_folder_holding_another_run_is_refused_untouched(cli, finished_run):
    """An --out folder with a different configuration is refused; its files stay as they were."""
    before = snapshot(finished_run)
    proc = cli(*TINY, "--seed", "7", "--out", str(finished_run))
    line = assert_one_error_line(proc)
    assert "different configuration" in line and "seed" in line
    assert snapshot(finished_run) == before


def test_non_numeric_option_value_exits_with_one_error_line(cli, tmp_path):
    proc = cli("train", "--dataset", "mnist", "--epochs", "two", "--out", str(tmp_path / "run"))
    assert_one_error_line(proc)


# ---------------------------------------------------------------- (e) help

def test_top_level_help_lists_the_commands(cli):
    proc = cli("--help")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"train", "fetch"} <= set(commands)
    for command in commands:
        assert command in proc.stdout


def test_train_parser_has_exactly_the_documented_options():
    """Guards the list below: a new option must be added to the help test."""
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    options = {s for action in train._actions for s in action.option_strings} - {"-h", "--help"}
    assert options == set(TRAIN_OPTIONS)


def test_train_help_mentions_every_option_and_choice(cli):
    """``train --help`` names every option and every allowed dataset, dropout kind and site."""
    proc = cli("train", "--help")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    for option in TRAIN_OPTIONS:
        assert option in proc.stdout, option
    for choice in (*DATASETS, *KINDS, *SITES):
        assert choice in proc.stdout, choice
    assert "[0, 1)" in proc.stdout


def test_fetch_help(cli):
    proc = cli("fetch", "--help")
    assert proc.returncode == 0
    for name in DATASETS:
        assert name in proc.stdout


def test_summary_prints_the_final_table_of_a_results_folder(cli, finished_run):
    proc = cli("summary", str(finished_run.parent))
    assert proc.returncode == 0, proc.stderr
    record = read_record(finished_run)
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| MNIST"))
    assert f"{100 * record['epochs'][-1]['test_acc']:.2f}" in row
    assert f"{record['epochs'][-1]['train_eval_loss']:.4f}" in row and "training loss (dropout off)" in proc.stdout
    assert "1 finished runs in 1 configurations" in proc.stdout
    bad = cli("summary", str(finished_run.parent / "missing"))
    assert_one_error_line(bad)


# ---------------------------------------------------------------- (f) compare a rerun with its records

def copy_run(run: Path, root: Path, edit=None) -> Path:
    """A copy of ``run``'s record at ``root/tiny``, changed by ``edit(record)`` if given (as a rerun
    would have written it: with its own digest)."""
    from snnlib.experiment.run import write_record

    record = read_record(run)
    if edit:
        edit(record)
    (root / "tiny").mkdir(parents=True)
    write_record(root / "tiny" / "metrics.json", record)
    return root


def test_compare_a_rerun_with_its_records(cli, finished_run, tmp_path):
    """An exact copy is identical, importances off by float32 rounding are reproduced, a
    changed per-epoch number differs (exit 1); --json writes the rows and never overwrites."""
    reference = finished_run.parent
    same = copy_run(finished_run, tmp_path / "same")
    proc = cli("compare", str(reference), str(same), "--json", str(tmp_path / "new" / "same.json"))
    assert proc.returncode == 0, proc.stderr
    assert "tiny: identical" in proc.stdout and "1 of 1 rerun records reproduce" in proc.stdout
    written = json.loads((tmp_path / "new" / "same.json").read_text())
    assert written["reproduced"] == written["runs"] == 1 and written["rows"][0]["verdict"] == "identical"

    def nudge_importance(record):
        record["hidden_importance"][0] += 1e-6 * (1 + abs(record["hidden_importance"][0]))

    rounding = copy_run(finished_run, tmp_path / "rounding", nudge_importance)
    proc = cli("compare", str(reference), str(rounding))
    assert proc.returncode == 0 and "tiny: reproduced (importances within" in proc.stdout

    def change_accuracy(record):
        record["epochs"][-1]["test_acc"] += 0.001

    other = copy_run(finished_run, tmp_path / "other", change_accuracy)
    proc = cli("compare", str(reference), str(other))
    assert proc.returncode == 1 and "tiny: differs" in proc.stdout

    before = (tmp_path / "new" / "same.json").read_text()
    refused = cli("compare", str(reference), str(same), "--json", str(tmp_path / "new" / "same.json"))
    assert_one_error_line(refused)
    assert (tmp_path / "new" / "same.json").read_text() == before
    assert_one_error_line(cli("compare", str(reference), str(tmp_path / "missing")))


# ---------------------------------------------------------------- (g) the verdicts on the claims

def test_claims_prints_the_verdict_table_and_writes_json_once(cli, tmp_path):
    """On a folder of synthetic records of the study's settings: the verdict table on stdout, every
    test in --json, which is never overwritten; a missing folder is one error line."""
    from recordmaker import make_record

    from snnlib.experiment.system import write_json_atomic
    from snnlib.study.design import run_key, study_design

    design = study_design()
    for seed in range(5):
        for variant, acc in (("none", 0.97), ("dropout", 0.95)):
            record = make_record("mnist", variant, seed, test_acc=acc + 0.001 * seed, train_loss=0.05 + 0.001 * seed)
            record.pop("path")
            folder = tmp_path / "results" / design.by_key[run_key(record)]  # where the design plans it
            folder.mkdir(parents=True)
            write_json_atomic(folder / "metrics.json", record)
    out = tmp_path / "claims.json"
    proc = cli("claims", str(tmp_path / "results"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("| claim | reading | dropout site |")
    assert "| C1 | the paper's metrics | current | 8 | not enough data |" in proc.stdout
    written = json.loads(out.read_text())
    assert written["records"] == 10 and written["verdicts"] and written["tests"]
    c1 = [c for c in written["tests"] if c["claim"] == "C1" and c["kind"] == "dropout" and c["site"] == "current"
          and c["dataset"] == "mnist" and c["metric"] == "test_acc"]
    # five of the ten planned seeds a side: the difference is shown, the test waits for its data
    assert len(c1) == 1 and c1[0]["n_base"] == c1[0]["n_variant"] == 5 and c1[0]["difference"] < 0
    assert c1[0]["label"] == "no data" and c1[0]["missing"]
    before = out.read_text()
    assert_one_error_line(cli("claims", str(tmp_path / "results"), "--json", str(out)))
    assert out.read_text() == before
    assert_one_error_line(cli("claims", str(tmp_path / "missing")))
