"""The uncertainty reruns of the second round's block 5: the grid (exactly the addendum's runs, outside the
study's design), the plan and the script's dry run, the comparison with the committed records, the landing
(whole or not at all, never over the study's reading) and the temperature-scaled verdict with the near-OOD AUROC,
on synthetic version-3 evaluations read back from a landed block."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from recordmaker import make_record

from snnlib.experiment.grid import GridError
from snnlib.study import preregistration as P
from snnlib.study import reruns as RR
from snnlib.study import uncertainty_v3 as V
from snnlib.study.design import Design, config_key, expected_runs, study_design, study_grids
from snnlib.uncertainty.evaluate import sealed_evaluation

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "run_uncertainty_reruns.py"
CELLS = ["none_p0_step_current", *(f"{kind}_p0.5_step_current" for kind in P.UNCERTAINTY_KINDS)]


def _script():
    spec = importlib.util.spec_from_file_location("run_uncertainty_reruns", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, rel: str, data: dict) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(json.dumps({k: v for k, v in data.items() if k != "path"}, indent=1))


# ---------------------------------------------------------------- the grid and the plan

def test_the_rerun_grid_is_the_addendums_and_outside_the_design():
    plan = RR.rerun_plan()
    assert plan.name == "uncertainty_reruns" and len(plan.runs) == 70
    want = sorted(f"uncertainty_reruns/{d}/none_p0_step_current/seed{s}" for d in P.DATASETS for s in range(15))
    want += sorted(f"uncertainty_reruns/{d}/{cell}/seed{s}" for d in P.DATASETS for cell in CELLS[1:] for s in P.FIVE)
    assert sorted(map(str, plan.runs)) == sorted(want)
    for run in plan.runs:
        c = run.config
        assert (c["epochs"], c["lr"], c["site"], c["time_consistent"], c["val_size"]) == (20, 1e-3, "current", False,
                                                                                           5000)
        assert c["p"] == (0.0 if c["variant"] == "none" else 0.5)
        # each is a run the study's design plans and has committed: its reference, the same configuration
        reference = plan.references[str(run)]
        grid = "ensembles" if c["seed"] >= 10 else "paper"
        assert reference == str(run).replace("uncertainty_reruns/", f"{grid}/")
        assert config_key(study_design().configs[reference]) == config_key(c)
        assert (ROOT / "results" / reference / "metrics.json").is_file()
    assert RR.RERUN_GRID not in study_grids(ROOT / "grids")
    with pytest.raises(GridError, match="plan the same configuration"):
        Design.of(expected_runs([*study_grids(ROOT / "grids"), RR.RERUN_GRID]))
    assert sorted(plan.ensembles) == sorted(f"uncertainty_reruns/{d}/none_p0_step_current/ensemble_seeds{g}.json"
                                            for d in P.DATASETS for g in ("01234", "56789", "1011121314"))
    for file, members in plan.ensembles.items():
        assert members == tuple(f"{file.rsplit('/', 1)[0]}/seed{s}" for s in
                                next(g for g in P.ENSEMBLES if file.endswith(f"{''.join(map(str, g))}.json")))
    with pytest.raises(ValueError, match="study's own folders"):
        RR.rerun_plan(ROOT / "grids" / "paper_seeds.json")


# ---------------------------------------------------------------- a synthetic block

NUMBERS = {  # (test NLL, test ECE, OOD AUROC, mild NLL, mild ECE, near-OOD AUROC) at seed 0; + 0.001 per seed
    "base": (0.10, 0.02, 0.80, 0.30, 0.05, 0.70), "better": (0.05, 0.005, 0.90, 0.20, 0.02, 0.80)}


def _results(dataset: str, numbers: tuple, seed: int) -> tuple[dict, dict]:
    nll, ece, ood, mild_nll, mild_ece, near = (x + 0.001 * seed for x in numbers)
    sets = {"test": {"kind": "test"}, f"ood_{'cifar10' if dataset == 'mnist' else 'mnist'}": {"kind": "ood"},
            "near_ood": {"kind": "near_ood", "family": "patch_shuffle"},
            **{name: {"kind": "shift"} for name in P.MILD_SHIFT_SETS[dataset]}}
    ood_name = next(n for n, s in sets.items() if s["kind"] == "ood")
    results = {"test": {"accuracy": 0.9, "nll": nll, "ece": ece}, ood_name: {"auroc_vs_test": {"max_prob": ood}},
               "near_ood": {"auroc_vs_test": {"max_prob": near}},
               **{name: {"nll": mild_nll, "ece": mild_ece} for name in P.MILD_SHIFT_SETS[dataset]}}
    return sets, results


def _entry(results: dict, forward: int, **extra) -> dict:
    return {"cost": {"forward_passes": forward, "synaptic_events_per_prediction": 1e5}, "results": results,
            "temperature": 1.5, "fitted_on": "validation", **extra}


def v3_run(record: dict, numbers: tuple) -> dict:
    """A sealed version-3 ``uncertainty.json`` of ``record``: temperature scaling and, for a dropout run, MC
    dropout temperature-scaled at 5 and 50 passes, all with ``numbers``."""
    config = record["config"]
    sets, results = _results(config["dataset"], numbers, config["seed"])
    methods = {"temperature": _entry(results, 1)}
    if config["variant"] != "none":
        methods.update({f"mc_dropout_temperature_{n}": _entry(results, n, passes=n, scaled_method="mc_dropout")
                        for n in (5, 50)})
    return sealed_evaluation({"kind": "run", "settings": {"uncertainty_version": 3, "passes": 50}, "config": config,
                              "weights_sha256": record["weights_sha256"], "record_sha256": record["record_sha256"],
                              "record_test_acc": record["epochs"][-1]["test_acc"], "sets": sets, "methods": methods})


def v3_ensemble(records: list[dict], numbers: tuple, index: int) -> dict:
    sets, results = _results(records[0]["config"]["dataset"], numbers, index)
    return sealed_evaluation({
        "kind": "ensemble", "settings": {"uncertainty_version": 3},
        "member_sha256": sorted(r["weights_sha256"] for r in records),
        "members": [{"path": f"seed{r['config']['seed']}", "seed": r["config"]["seed"],
                     "weights_sha256": r["weights_sha256"], "record_sha256": r["record_sha256"]} for r in records],
        "config": records[0]["config"], "sets": sets,
        "methods": {"ensemble_temperature": _entry(results, len(records), members=len(records))}})


def make_block(work: Path, results: Path, better: str = "dropout", skip: tuple[str, ...] = ()) -> RR.RerunPlan:
    """Every record of the plan in ``work`` (and the same record as the committed one in ``results``), each
    with its version-3 evaluation, and every ensemble: ``better``'s MC dropout better than the base network on
    every metric, the other kinds the same as the base network."""
    plan = RR.rerun_plan()
    records = {}
    for run in plan.runs:
        c = run.config
        record = make_record(c["dataset"], c["variant"], c["seed"])
        records[str(run)] = record
        _write(results, f"{plan.references[str(run)]}/metrics.json", record)
        if str(run) in skip:
            continue
        _write(work, f"{run}/metrics.json", record)
        _write(work, f"{run}/uncertainty.json", v3_run(record, NUMBERS["better" if c["variant"] == better else "base"]))
    for index, (file, members) in enumerate(sorted(plan.ensembles.items())):
        _write(work, file, v3_ensemble([records[m] for m in members], NUMBERS["base"], index % 3))
    return plan


@pytest.fixture(scope="module")
def block(tmp_path_factory) -> tuple[Path, Path]:
    """A finished synthetic block in a working folder, compared by the script (``--no-train``)."""
    root = tmp_path_factory.mktemp("reruns")
    work, results = root / "work", root / "results"
    make_block(work, results)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(work), "--no-train", "--results", str(results)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "compare" in proc.stdout and "70 identical" in proc.stdout
    return work, results


def test_the_dry_run_says_what_is_left(tmp_path):
    work, results = tmp_path / "work", tmp_path / "results"
    base = [f"uncertainty_reruns/mnist/none_p0_step_current/seed{s}" for s in range(5)]
    plan = make_block(work, results, skip=tuple(str(r) for r in RR.rerun_plan().runs if str(r) not in base))
    for run in base[1:]:
        (work / run / "uncertainty.json").unlink()
    for file in plan.ensembles:
        (work / file).unlink(missing_ok=True)
    unfinished = make_record("mnist", "dropout", 0, status="running")
    _write(work, "uncertainty_reruns/mnist/dropout_p0.5_step_current/seed0/metrics.json", unfinished)
    state = RR.block_state(plan, work)
    assert state.finished == base and len(state.unfinished) == 65 and state.evaluated == base[:1]
    assert state.to_evaluate == base[1:] and not state.complete()
    assert state.ensembles_ready == ["uncertainty_reruns/mnist/none_p0_step_current/ensemble_seeds01234.json"]
    proc = subprocess.run([sys.executable, str(SCRIPT), str(work), "--dry-run", "--jobs", "2"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "uncertainty_reruns: 70 runs planned, 5 finished, 65 to train (or under way)"
    assert lines[1] == "evaluations (version 3): 1 made, 4 to make"
    assert lines[2] == "ensembles: 0 of 6 made, 1 ready to make, 5 waiting for their members"
    assert f"-m snnlib.experiment.runner {RR.RERUN_GRID} --jobs 1 --threads 1 --results {work}" in lines[3]
    evaluations = [line for line in lines if line.startswith("would evaluate: ")]
    assert [line.split()[5] for line in evaluations[:4]] == [str(work / run) for run in base[1:]]
    assert all(line.endswith("--threads 1 --evaluation-version 3") for line in evaluations[:4])
    assert evaluations[4].endswith(f"--ensemble {work / state.ensembles_ready[0]}")
    assert not (work / "uncertainty_reruns" / RR.COMPARE_FILE).exists()  # a dry run writes nothing
    for bad in (["--jobs", "0"], ["--grid", str(tmp_path / "none.json")]):
        proc = subprocess.run([sys.executable, str(SCRIPT), str(work), *bad], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def test_each_rerun_is_compared_with_its_committed_record(tmp_path):
    work, results = tmp_path / "work", tmp_path / "results"
    plan = make_block(work, results)
    runs = [str(r) for r in plan.runs[:4]]
    changed = json.loads((work / runs[1] / "metrics.json").read_text())
    changed["epochs"][-1]["test_acc"] = 0.5
    from recordmaker import reseal

    _write(work, f"{runs[1]}/metrics.json", reseal(changed))
    shutil.rmtree(results / plan.references[runs[2]])
    shutil.rmtree(work / runs[3])
    rows = {row["path"]: row for row in RR.compare_reruns(plan, work, results)}
    assert len(rows) == 70 and all(row["reference"] == plan.references[path] for path, row in rows.items())
    assert rows[runs[0]]["verdict"] == "identical"
    assert rows[runs[1]]["verdict"] == "differs" and "test_acc" in rows[runs[1]]["why"]
    assert rows[runs[2]]["verdict"] == "reference refused" and "no committed record" in rows[runs[2]]["why"]
    assert rows[runs[3]]["verdict"] == "missing"
    document = RR.compare_document(plan, list(rows.values()))
    assert document["runs"] == 70 and document["reproduced"] == 67 and str(tmp_path) not in json.dumps(document)


# ---------------------------------------------------------------- landing

def test_the_block_lands_whole_and_never_over_the_studys_reading(block, tmp_path):
    work, results = block
    plan = RR.rerun_plan()
    landing = RR.landing_plan(plan, work, tmp_path / "dest")
    assert not landing.errors and not landing.missing and len(landing.copies) == 70 + 70 + 6 + 1
    # in a folder of the study's results that the design reads, it would refuse the copies of its runs:
    # nothing lands there; results/reproducibility/ is kept apart (design.KEPT_APART), so the block may land there
    guarded = RR.landing_plan(plan, work, results / "copies", study_results=results)
    assert len(guarded.errors) == 1 and "would refuse 70 of the block's records" in guarded.errors[0]
    proc = subprocess.run([sys.executable, str(SCRIPT), str(work), "--land", "--dest", str(results / "copies"),
                           "--results", str(results)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "nothing landed" in proc.stderr and not (results / "copies").exists()
    kept_apart = RR.landing_plan(plan, work, results / "reproducibility", study_results=results)
    assert not kept_apart.errors and not kept_apart.missing and len(kept_apart.copies) == 70 + 70 + 6 + 1
    dest = tmp_path / "reproducibility"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(work), "--land", "--dest", str(dest), "--results",
                           str(results)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "147 files landed" in proc.stdout and not list(dest.glob(".landing*"))
    assert (dest / plan.compare_file).read_bytes() == (work / plan.compare_file).read_bytes()
    again = subprocess.run([sys.executable, str(SCRIPT), str(work), "--land", "--dest", str(dest), "--results",
                            str(results)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "0 files landed" in again.stdout
    evaluation = dest / str(plan.runs[0]) / "uncertainty.json"
    evaluation.write_text(evaluation.read_text().replace("0.7", "0.6", 1))
    assert any("never overwritten" in e for e in RR.landing_plan(plan, work, dest).errors)


def test_an_incomplete_or_stray_block_does_not_land(block, tmp_path):
    work, _ = block
    plan = RR.rerun_plan()
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    first = str(plan.runs[0])
    (copy / first / "uncertainty.json").unlink()
    landing = RR.landing_plan(plan, copy, tmp_path / "dest")
    assert landing.missing == [f"{first}/uncertainty.json"] and not landing.errors
    shutil.copy(work / first / "uncertainty.json", copy / first / "uncertainty.json")
    stray = copy / "uncertainty_reruns" / "mnist" / "none_p0_step_current" / "ensemble_extra.json"
    shutil.copy(work / next(iter(plan.ensembles)), stray)
    assert any("makes no such file" in e for e in RR.landing_plan(plan, copy, tmp_path / "dest").errors)


# ---------------------------------------------------------------- the verdict

def test_the_temperature_scaled_verdict_on_a_landed_block(block, tmp_path):
    work, _ = block
    dest = tmp_path / "reproducibility"
    plan = RR.rerun_plan()
    landing = RR.landing_plan(plan, work, dest)
    spec = importlib.util.spec_from_file_location("land_records", ROOT / "scripts" / "land_records.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.land(work, dest, [Path(rel) for rel in landing.copies])
    evaluations = V.load_rerun_evaluations(dest)
    assert len(evaluations) == 76
    values = V.scaled_values(evaluations)
    scaled_rows = values[values["method"] == V.SCALED_MC]
    assert sorted(set(scaled_rows["passes"])) == [5, 50] and len(scaled_rows) == 2 * 2 * 4 * 5
    tests = V.scaled_verdict_tests(values)
    assert len(tests) == 2 * 2 * 4 * 2 * 5 and not any(t.missing for t in tests)
    near = V.near_ood_tests(values)
    matrix = V.scaled_verdict_matrix(tests, near)
    assert len(matrix) == 2 * 2 * 4 * 2
    for _, row in matrix.iterrows():
        want = "better" if row["kind"] == "dropout" else "no clear difference"
        assert row["verdict"] == want and row[V.NEAR_OOD_COLUMN] == ("better" if row["kind"] == "dropout"
                                                                      else "not significant")
    answer = V.scaled_answer(matrix, values, "mnist")
    assert answer.startswith("MNIST, every method temperature-scaled (reruns, exploratory): MC dropout against the "
                             "base network's temperature scaling: better: dropout; no clear difference: dropout2d, "
                             "feature alpha dropout, alpha dropout; against temperature-scaled deep ensembles")
    assert "AUROC 0.70 for the base network, 0.70 for the ensembles and 0.70-0.80 for MC dropout (50 passes) of the " \
           "4 kinds" in answer and answer.count(". ") == 1
    assert "| temperature-scaled deep ensembles" in V.scaled_matrix_markdown(matrix, "cifar10")
    assert V.second_round_sentences(dest) == [V.scaled_answer(matrix, values, d) for d in ("mnist", "cifar10")]
    assert V.summary_sentence(matrix, values) == (
        "Exploratory, with every method temperature-scaled (the second round's reruns at the paper's site): MC dropout "
        "(50 passes) is better than the base network's temperature scaling for 2 of 8 dropout networks and better "
        "than temperature-scaled deep ensembles of five base runs for 2 of 8 dropout networks; on a near "
        "out-of-distribution set that a count of input spikes cannot tell from the test set, the maximum "
        "probability's AUROC (the base network, the ensembles, MC dropout) is MNIST 0.70, 0.70 and 0.70-0.80; "
        "CIFAR-10 0.70, 0.70 and 0.70-0.80.")
    from snnlib.study import answer as A

    assert A.answer_sentences([], reruns=dest)[-1] == V.summary_sentence(matrix, values)  # the answer's last line
    assert len(A.answer_sentences([], reruns=tmp_path / "none")) == len(A.answer_sentences([]))
    tables = V.second_round_tables(dest)
    assert len(tables) == 2 * 3 and tables[0].startswith("**MNIST**, every method temperature-scaled")
    assert tables[1] == ("**MNIST**, MC dropout temperature-scaled against the base network's temperature scaling\n\n"
                         + V.scaled_matrix_markdown(matrix, "mnist", "temperature"))
    body = tables[0].splitlines()[4:]
    assert len(body) == 2 + 4 * 2 and body[0].startswith("| base, 1 pass | 5 |")
    assert body[1].startswith("| base, ensemble of 5 | 3 |") and body[-1].startswith("| alpha dropout, MC 50 | 5 |")
    assert "against" not in tables[2].splitlines()[2] and tables[2].count("| **") == 4 * 2
    # a copy of a rerun in another folder is refused there, like anywhere else
    stray = dest / "uncertainty_reruns" / "mnist" / "elsewhere" / "seed0"
    shutil.copytree(dest / str(plan.runs[0]), stray)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(V.load_rerun_evaluations(dest)) == 76
    assert any("elsewhere" in str(w.message) for w in caught)


def test_the_chapter_says_when_the_reruns_have_not_landed(tmp_path):
    (line,) = V.second_round_sentences(tmp_path / "none")
    assert "have not landed yet" in line and "70 networks trained again" in line
    assert V.second_round_tables(tmp_path / "none") == []


def test_the_answer_waits_for_data():
    values = V.scaled_values([])
    matrix = V.scaled_verdict_matrix(V.scaled_verdict_tests(values), V.near_ood_tests(values))
    assert set(matrix["verdict"]) == {"not enough data"}
    answer = V.scaled_answer(matrix, values, "cifar10")
    assert "against the base network's temperature scaling: not enough data yet" in answer
    assert answer.endswith("The near-OOD set (shuffled patches) has no evaluations yet.")
    assert V.summary_sentence(matrix, values) == ""  # the answer leaves block 5 out until it has landed


def test_the_spike_counter_cannot_see_the_near_ood_set(use_real_data):
    """The spike-count detector (uncertainty_verdict.spike_count_auroc's) scores 0.5 exactly on the near-OOD
    set against the test images it is made from."""
    assert V.near_ood_spike_count_auroc("mnist", subset=500) == 0.5
    assert V.near_ood_spike_count_auroc("cifar10", subset=300) == 0.5
    assert V.scaled_passes_match()
