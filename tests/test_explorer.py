"""The results explorer's data (snnlib.study.explorer): they agree with the records they come from, on
small synthetic sealed records and on the real results folder, and the page carries them whole."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from recordmaker import make_evaluation, make_record, reseal

from snnlib.experiment.system import write_json_atomic
from snnlib.study import claims as C
from snnlib.study import explorer as X
from snnlib.study import stats
from snnlib.study.design import run_key, study_design
from snnlib.study.explorer_page import explorer_html

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


DESIGN = study_design()


def write(root: Path, record: dict, evaluation: bool = False) -> None:
    """``record`` (and its evaluation) in the folder the study's design plans for it (else its own ``path``,
    where the reader ignores it)."""
    folder = root / DESIGN.by_key.get(run_key(record), record["path"])
    folder.mkdir(parents=True, exist_ok=True)
    if evaluation:
        write_json_atomic(folder / "uncertainty.json", make_evaluation(record, nll=0.1 + record["config"]["seed"] / 100))
    record = dict(record)
    record.pop("path")
    write_json_atomic(folder / "metrics.json", record)


def varied(record: dict, metric: str, last: float, step: float) -> dict:
    """``record`` whose ``metric`` climbs by ``step`` per epoch up to ``last`` (resealed)."""
    epochs = record["epochs"]
    for i, entry in enumerate(epochs):
        entry[metric] = last - step * (len(epochs) - 1 - i)
    return reseal(record)


def with_config(record: dict, **changes: object) -> dict:
    for key, value in changes.items():
        if key.startswith("network."):
            record["config"]["network"][key.split(".", 1)[1]] = value
        else:
            record["config"][key] = value
    return reseal(record)


BASE_ACC = {0: 0.95, 1: 0.96, 2: 0.97}
DROP_ACC = {0: 0.90, 1: 0.92, 2: 0.91}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("explorer")
    for seed, acc in BASE_ACC.items():
        write(root, varied(make_record(seed=seed, test_acc=acc, path=f"g/mnist/none/seed{seed}"), "test_acc", acc, 0.001),
              evaluation=True)
    for seed, acc in DROP_ACC.items():
        write(root, varied(make_record(variant="dropout", seed=seed, test_acc=acc, train_loss=0.2 + seed / 10,
                                       path=f"g/mnist/dropout/seed{seed}"), "test_acc", acc, 0.002), evaluation=True)
    for seed in (0, 1):
        write(root, make_record(variant="dropout", p=0.1, time_consistent=True, seed=seed, test_acc=0.94 + seed / 100,
                                path=f"rates/mnist/dropout_p0.1_consistent/seed{seed}"))
    write(root, make_record(variant="dropout2d", site="hidden", seed=0, test_acc=0.93, path="s/mnist/d2d_hidden/seed0"))
    write(root, make_record(variant="alpha", site="input", seed=4, test_acc=0.5, path="s/mnist/alpha_input/seed4"))
    for seed in (0, 1):  # another learning rate: its own base network
        write(root, with_config(make_record(seed=seed, test_acc=0.8 + seed / 100, path=f"lr/mnist/none/seed{seed}"),
                                lr=0.003))
        write(root, with_config(make_record(variant="dropout", seed=seed, test_acc=0.7 + seed / 100,
                                            path=f"lr/mnist/dropout/seed{seed}"), lr=0.003))
    # not cells of the design: the C3 control, another network, an unfinished run
    write(root, make_record(seed=100, init_seed=0, test_acc=0.5, path="control/mnist/none/seed100"))
    write(root, with_config(make_record(seed=7, test_acc=0.5, path="tuning/mnist/none/seed7"), **{"network.tau": 3.0}))
    unfinished = make_record(variant="dropout", seed=9, test_acc=0.5, path="g/mnist/dropout/seed9")
    unfinished["status"] = "running"
    unfinished["epochs"] = unfinished["epochs"][:3]
    write(root, reseal(unfinished))
    return root, X.explorer_data(root)


def cell(data: dict, ident: str) -> dict:
    return next(c for c in data["cells"] if c["id"] == ident)


MAIN_DROPOUT = "mnist|dropout|0.5|step|current|20|0.001"
MAIN_BASE = "mnist|none|-|-|-|20|0.001"


def test_cells_are_the_configurations_of_the_design(synthetic):
    _, data = synthetic
    assert {c["id"] for c in data["cells"]} == {
        MAIN_BASE, MAIN_DROPOUT, "mnist|dropout|0.1|sample|current|20|0.001", "mnist|dropout2d|0.5|step|hidden|20|0.001",
        "mnist|alpha|0.5|step|input|20|0.001", "mnist|none|-|-|-|20|0.003", "mnist|dropout|0.5|step|current|20|0.003"}
    assert data["runs"] == 3 + 3 + 2 + 1 + 1 + 2 + 2  # no control, tuning or unfinished run
    assert cell(data, MAIN_BASE)["seeds"] == [0, 1, 2] and cell(data, MAIN_DROPOUT)["seeds"] == [0, 1, 2]
    assert cell(data, MAIN_DROPOUT)["base"] == MAIN_BASE
    assert cell(data, "mnist|dropout|0.5|step|current|20|0.003")["base"] == "mnist|none|-|-|-|20|0.003"
    assert cell(data, MAIN_BASE)["base"] is None
    options = {key: [o["value"] for o in values] for key, values in data["options"].items()}
    assert options["mask"] == ["step", "sample"] and options["p"] == ["0.1", "0.5"] and options["lr"] == ["0.001", "0.003"]
    assert options["site"] == ["current", "hidden", "input"]


def test_final_numbers_and_difference_agree_with_the_records(synthetic):
    _, data = synthetic
    dropout, base = cell(data, MAIN_DROPOUT), cell(data, MAIN_BASE)
    final = dropout["final"]["test_acc"]
    assert final["values"] == list(DROP_ACC.values()) and final["n"] == 3
    assert final["mean"] == pytest.approx(np.mean(list(DROP_ACC.values())))
    assert final["sd"] == pytest.approx(np.std(list(DROP_ACC.values()), ddof=1))
    assert dropout["final"]["train_loss"]["mean"] == pytest.approx(0.3)
    d = stats.compare(list(BASE_ACC.values()), list(DROP_ACC.values()))
    mine = dropout["vs_base"]["test_acc"]
    assert (mine["diff"], mine["low"], mine["high"]) == pytest.approx((d.diff, d.ci_low, d.ci_high))
    assert (mine["n"], mine["n_base"]) == (3, 3) and base["vs_base"] == {}
    # one run: a difference, no interval
    alpha = cell(data, "mnist|alpha|0.5|step|input|20|0.001")
    assert alpha["vs_base"]["test_acc"]["diff"] == pytest.approx(0.5 - np.mean(list(BASE_ACC.values())))
    assert alpha["vs_base"]["test_acc"]["low"] is None and alpha["final"]["test_acc"]["sd"] is None


def test_curves_are_the_per_epoch_mean_and_sd_and_every_seed(synthetic):
    _, data = synthetic
    series = cell(data, MAIN_DROPOUT)["series"]["test_acc"]
    assert len(series["mean"]) == 20 and len(series["seeds"]) == 3
    for epoch in (1, 10, 20):
        values = [acc - 0.002 * (20 - epoch) for acc in DROP_ACC.values()]
        assert series["mean"][epoch - 1] == pytest.approx(np.mean(values), rel=1e-5)
        assert series["sd"][epoch - 1] == pytest.approx(np.std(values, ddof=1), rel=1e-5)
        assert [row[epoch - 1] for row in series["seeds"]] == pytest.approx(values, rel=1e-5)
    assert set(series) == {"mean", "sd", "seeds"}
    assert set(cell(data, MAIN_DROPOUT)["series"]) == set(X.CURVE_METRICS)
    assert all(v is None for v in cell(data, "mnist|alpha|0.5|step|input|20|0.001")["series"]["test_acc"]["sd"])


def test_uncertainty_comes_from_the_evaluations_beside_the_records(synthetic):
    _, data = synthetic
    dropout, base = cell(data, MAIN_DROPOUT), cell(data, MAIN_BASE)
    nll = dropout["uncertainty"]["nll"]["deterministic"]
    assert nll["seeds"] == [0, 1, 2] and nll["values"] == pytest.approx([0.1, 0.11, 0.12])
    assert set(dropout["uncertainty"]["nll"]) == {"deterministic"}  # no MC dropout in these evaluations
    d = stats.compare(base["uncertainty"]["nll"]["deterministic"]["values"], nll["values"])
    assert dropout["uncertainty_vs_base"]["nll"]["deterministic"]["diff"] == pytest.approx(d.diff)
    assert cell(data, "mnist|dropout2d|0.5|step|hidden|20|0.001")["uncertainty"] == {}


def test_commands_rerun_the_cell(synthetic):
    _, data = synthetic
    (main,) = cell(data, MAIN_DROPOUT)["commands"]
    assert main == ("for S in 0 1 2; do python -m snnlib train --dataset mnist --variant dropout --p 0.5 --epochs 20 "
                    "--val-size 5000 --site current --seed $S "
                    "--out rerun/paper/mnist/dropout_p0.5_step_current/seed$S; done")
    (sample,) = cell(data, "mnist|dropout|0.1|sample|current|20|0.001")["commands"]
    assert "--p 0.1" in sample and "--time-consistent" in sample and "--lr" not in sample
    (rate,) = cell(data, "mnist|dropout|0.5|step|current|20|0.003")["commands"]
    assert "--lr 0.003" in rate and "--time-consistent" not in rate
    (one,) = cell(data, "mnist|alpha|0.5|step|input|20|0.001")["commands"]
    assert one.endswith("--site input --seed 4 --out rerun/sites/mnist/alpha_p0.5_step_input/seed4")
    (base,) = cell(data, MAIN_BASE)["commands"]
    assert "--variant none" in base and "--site" not in base and "--p " not in base


def test_grid_and_tests(synthetic):
    _, data = synthetic
    grid = {(r["dataset"], r["kind"], r["site"]): r for r in data["grid"]}
    assert len(grid) == 5 * 3 and {r["dataset"] for r in data["grid"]} == {"mnist"}
    main = grid[("mnist", "dropout", "current")]
    assert main["cell"] == MAIN_DROPOUT
    assert main["diff"] == pytest.approx(100 * cell(data, MAIN_DROPOUT)["vs_base"]["test_acc"]["diff"])
    assert main["label"] == f"{main['diff']:+.2f}"
    same = grid[("mnist", "feature", "hidden")]  # the same operation as dropout2d there: its cell, no value
    assert same["cell"] == "mnist|dropout2d|0.5|step|hidden|20|0.001"
    assert same["diff"] is None and "dropout2d" in same["label"]
    missing = grid[("mnist", "dropout", "hidden")]
    assert missing["cell"] is None and missing["label"] == "not run"
    # every pre-registered test is listed once; those whose runs exist point at their cell and back
    assert len(data["tests"]) == len(C.evaluate_claims([]).tests)
    for i, test in enumerate(data["tests"]):
        if test["cell"] is not None:
            assert i in cell(data, test["cell"])["tests"]
    assert any(data["tests"][i]["claim"] == "C1" for i in cell(data, MAIN_DROPOUT)["tests"])


def test_welch_gives_the_numbers_of_compare():
    rng = np.random.default_rng(0)
    for n_base, n in ((3, 3), (5, 10), (25, 3), (2, 2)):
        a, b = rng.normal(0.9, 0.01, n_base), rng.normal(0.88, 0.02, n)
        mine, theirs = X.welch(a, b), stats.compare(a, b)
        assert (mine.diff, mine.ci_low, mine.ci_high, mine.welch_p) == pytest.approx(
            (theirs.diff, theirs.ci_low, theirs.ci_high, theirs.welch_p))
        assert math.isnan(mine.permutation_p) and not math.isnan(theirs.permutation_p)  # the page skips it
    same = X.welch([0.5, 0.5], [0.6, 0.6])
    assert (same.diff, same.ci_low, same.ci_high) == pytest.approx((0.1, 0.1, 0.1))
    assert math.isnan(X.welch([0.5], [0.6, 0.7]).ci_low)


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results folder") as err:
        X.explorer_data(tmp_path / "missing")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no finished run") as err:
        X.explorer_data(tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="no folder") as err:
        X.write_explorer(tmp_path, tmp_path / "nowhere" / "explorer.html")


def test_page_carries_the_data_and_nothing_from_the_network(synthetic, tmp_path):
    root, data = synthetic
    explorer = X.write_explorer(root, tmp_path / "explorer.html")
    page = (tmp_path / "explorer.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and explorer.data == data
    embedded = re.search(r'<script type="application/json" class="snx-data">(.*?)</script>', page, re.DOTALL).group(1)
    assert json.loads(embedded) == data
    assert not re.search(r"https?://cdn|cdnjs|unpkg|jsdelivr", page, re.IGNORECASE)
    hosts = set(re.findall(r"https?://([a-z0-9.-]+)", page))
    assert hosts <= {"www.w3.org", "vega.github.io", "github.com"}, hosts  # namespaces and names, never loaded
    assert len(page.encode()) < 3_000_000
    assert explorer_html(data) in page
    assert "dropout cells" in explorer.summary() and "explorer" in repr(explorer)


# ---------------------------------------------------------------- the real results folder

needs_results = pytest.mark.skipif(not any(RESULTS.glob("paper/*/*/seed*/metrics.json")),
                                   reason="no run records in results/")


@pytest.fixture(scope="module")
def real() -> dict:
    return X.explorer_data(RESULTS)


def raw(folder: str) -> list[dict]:
    """The records of a folder, read as plain JSON (no snnlib reader), by seed."""
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{folder}/seed*/metrics.json"))]
    return sorted(records, key=lambda r: r["config"]["seed"])


@needs_results
@pytest.mark.parametrize("folder, ident", [
    ("paper/mnist/dropout_p0.5_step_current", MAIN_DROPOUT),
    ("paper/cifar10/dropout2d_p0.5_step_current", "cifar10|dropout2d|0.5|step|current|20|0.001"),
    ("sites/cifar10/alpha_p0.5_step_input", "cifar10|alpha|0.5|step|input|20|0.001"),
    ("rates/mnist/dropout_p0.1_consistent_current", "mnist|dropout|0.1|sample|current|20|0.001"),
    ("budget/cifar10/dropout_p0.5_step_current", "cifar10|dropout|0.5|step|current|60|0.001"),
])
def test_real_cells_agree_with_their_records(real, folder, ident):
    records = [r for r in raw(folder) if r.get("status") == "finished"]
    if not records:
        pytest.skip(f"no finished records in results/{folder}")
    mine = cell(real, ident)
    assert mine["seeds"] == [r["config"]["seed"] for r in records]
    last = [r["epochs"][-1]["test_acc"] for r in records]
    assert mine["final"]["test_acc"]["mean"] == pytest.approx(np.mean(last), rel=1e-12)
    assert mine["final"]["test_acc"]["sd"] == pytest.approx(np.std(last, ddof=1), rel=1e-12)
    for epoch in (1, len(records[0]["epochs"])):
        values = [r["epochs"][epoch - 1]["test_loss"] for r in records]
        assert mine["series"]["test_loss"]["mean"][epoch - 1] == pytest.approx(np.mean(values), rel=1e-5)
    base = cell(real, mine["base"])
    d = stats.compare(base["final"]["test_acc"]["values"], last)
    assert mine["vs_base"]["test_acc"]["diff"] == pytest.approx(d.diff)
    assert mine["vs_base"]["test_acc"]["low"] == pytest.approx(d.ci_low)
    assert mine["vs_base"]["test_acc"]["n_base"] == base["n"]
    assert all(f"rerun/{folder}/seed$S" in c for c in mine["commands"][:1])


@needs_results
def test_real_base_network_holds_every_base_seed(real):
    base_last = {r["config"]["seed"]: r["epochs"][-1]["test_acc"] for folder in
                 ("paper/mnist/none_p0_step_current", "ensembles/mnist/none_p0_step_current") for r in raw(folder)}
    mine = cell(real, MAIN_BASE)
    assert mine["seeds"] == sorted(base_last)
    assert mine["final"]["test_acc"]["mean"] == pytest.approx(np.mean(list(base_last.values())), rel=1e-12)


@needs_results
def test_real_uncertainty_agrees_with_the_evaluation_files(real):
    files = sorted(RESULTS.glob("paper/mnist/dropout_p0.5_step_current/seed*/uncertainty.json"))
    if not files:
        pytest.skip("no uncertainty evaluations in results/")
    values = [json.loads(p.read_text())["methods"]["mc_dropout"]["results"]["test"]["nll"] for p in files]
    mine = cell(real, MAIN_DROPOUT)["uncertainty"]["nll"]["mc_dropout"]
    assert mine["mean"] == pytest.approx(np.mean(values), rel=1e-12) and mine["n"] == len(values)


@needs_results
def test_real_tests_are_those_of_the_claims(real):
    claims = C.evaluate_claims(X.R.load_study(RESULTS))  # the study's reading, as the explorer's
    assert [(t["claim"], t["dataset"], t["kind"], t["site"], t["metric"], t["label"]) for t in real["tests"]] == [
        (t.claim, t.dataset, t.kind, t.site, t.metric, t.label) for t in claims.tests]
    tested = [t for t in real["tests"] if t["cell"] is not None]
    assert tested, "no pre-registered test found its cell"
    primary = next(t for t in tested if t["role"] == "primary" and t["claim"] == "C1")
    assert primary["verdicts"] and all(v.split(": ")[-1] in C.VERDICTS for v in primary["verdicts"])
    for row in real["grid"]:
        if row["diff"] is not None:
            assert row["diff"] == pytest.approx(100 * cell(real, row["cell"])["vs_base"]["test_acc"]["diff"])
