"""Landing finished runs (scripts/land_records.py): a run whose uncertainty evaluations are planned lands
only with them, because they need its weights, which are not committed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from recordmaker import make_evaluation, make_record

from snnlib.study import preregistration as P
from snnlib.study import progress as PG

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "land_records.py"


def _landing():
    spec = importlib.util.spec_from_file_location("land_records", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.landing


def _write(root: Path, rel: str, data: dict) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(json.dumps({k: v for k, v in data.items() if k != "path"}, indent=1))


def test_the_evaluation_plan_covers_the_uncertainty_study():
    """The plan of scripts/run_uncertainty.py (``evaluation_plan`` over the grid files): each dataset's
    base network and the four dropout kinds at the paper's cell, seeds 0-9, and every rates run evaluated on
    their own, and five ensembles per dataset, each made from its seed group in the base network's cell;
    a base run plans the ensemble of its seed group; runs the study never evaluates have nothing planned."""
    plan = PG.evaluation_plan(PG.expected_runs(PG.study_grids(ROOT / "grids")))
    own = sorted(file for file in plan if file.endswith("/uncertainty.json"))
    cells = ["none_p0_step_current", *(f"{kind}_p0.5_step_current" for kind in P.UNCERTAINTY_KINDS)]
    rates = [f"dropout_p{p}_{mask}_current" for p in (0.1, 0.2, 0.3) for mask in ("step", "consistent")]
    assert own == sorted([f"paper/{d}/{cell}/seed{seed}/uncertainty.json" for d in ("mnist", "cifar10")
                          for cell in cells for seed in P.TEN]
                         + [f"rates/{d}/{cell}/seed{seed}/uncertainty.json" for d in ("mnist", "cifar10")
                            for cell in rates for seed in range(3)])
    assert all(plan[file] == (file.removesuffix("/uncertainty.json"),) for file in own)
    ensembles = {file: runs for file, runs in plan.items() if file not in own}
    assert len(ensembles) == 2 * len(P.ENSEMBLES)
    for file, runs in ensembles.items():
        cell = file.rsplit("/", 1)[0]
        group = next(g for g in P.ENSEMBLES if file.endswith(f"_seeds{''.join(map(str, g))}.json"))
        assert runs == tuple(f"{cell}/seed{seed}" for seed in group)
    base = {"variant": "none", "p": 0.0, "site": "current", "time_consistent": False, "epochs": 20}
    assert P.planned_evaluations("paper/cifar10/none_p0_step_current/seed7", {**base, "seed": 7}) == (
        "paper/cifar10/none_p0_step_current/seed7/uncertainty.json",
        "paper/cifar10/none_p0_step_current/ensemble_seeds56789.json")
    assert P.planned_evaluations("ensembles/mnist/none_p0_step_current/seed12", {**base, "seed": 12}) == (
        "ensembles/mnist/none_p0_step_current/ensemble_seeds1011121314.json",)
    feature = {**base, "variant": "feature", "p": 0.5, "seed": 3}
    assert P.planned_evaluations("paper/mnist/feature_p0.5_step_current/seed3", feature) == ()
    hidden = {**base, "variant": "alpha", "p": 0.5, "site": "hidden", "seed": 0}
    assert P.planned_evaluations("sites/mnist/alpha_p0.5_step_hidden/seed0", hidden) == ()


def test_a_run_lands_only_with_its_planned_evaluations(tmp_path):
    """A finished paper-grid run without its ``uncertainty.json`` is held back and named; once the
    evaluation is there both land; a run with nothing planned lands at once; a run already landed is not
    held back again."""
    landing = _landing()
    source, dest = tmp_path / "work", tmp_path / "results"
    paper = make_record("mnist", "dropout", seed=2, path="paper/mnist/dropout_p0.5_step_current/seed2")
    hidden = make_record("mnist", "alpha", seed=0, site="hidden", path="sites/mnist/alpha_p0.5_step_hidden/seed0")
    for record in (paper, hidden):
        _write(source, f"{record['path']}/metrics.json", record)
    copies, errors, waiting, _ = landing(source, dest)
    assert [str(c) for c in copies] == [f"{hidden['path']}/metrics.json"] and not errors
    assert waiting == [f"{paper['path']} waits for {paper['path']}/uncertainty.json "
                       f"(python scripts/run_uncertainty.py {source})"]
    _write(source, f"{paper['path']}/uncertainty.json", make_evaluation(paper))
    copies, _, waiting, _ = landing(source, dest)
    assert {str(c) for c in copies} == {f"{hidden['path']}/metrics.json", f"{paper['path']}/metrics.json",
                                         f"{paper['path']}/uncertainty.json"} and not waiting
    (source / paper["path"] / "uncertainty.json").unlink()
    _write(dest, f"{paper['path']}/metrics.json", paper)
    assert not landing(source, dest).waiting


def test_the_landing_command_says_what_it_held_back(tmp_path):
    """The command lists each held-back run and counts them; nothing of it is copied."""
    source, dest = tmp_path / "work", tmp_path / "results"
    base = make_record("cifar10", "none", seed=5, path="paper/cifar10/none_p0_step_current/seed5")
    _write(source, f"{base['path']}/metrics.json", base)
    _write(source, f"{base['path']}/uncertainty.json", make_evaluation(base))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(source), "--dest", str(dest)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert ("held back: paper/cifar10/none_p0_step_current/seed5 waits for "
            "paper/cifar10/none_p0_step_current/ensemble_seeds56789.json") in proc.stdout
    assert "0 files landed, 1 runs held back" in proc.stdout
    assert not dest.exists() or not any(dest.rglob("*.json"))


def test_the_study_script_evaluates_runs_as_they_finish(tmp_path):
    """scripts/run_study.sh copies the landed records into a new working folder, goes through every grid with
    each runner and calls scripts/run_uncertainty.py on the working folder while the runners go and once
    after them (here: a stand-in for Python that logs what it is asked to do)."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/bash
echo "$*" >> {log}
""")
    fake.chmod(0o755)
    results = tmp_path / "results"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "run_study.sh"), str(results), "2"], capture_output=True,
                          text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "STAGGER": "0", "EVALUATE_EVERY": "1"})
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    grids = [c.split()[2] for c in calls if "snnlib.experiment.runner" in c]
    assert sorted(grids) == sorted(2 * [f"grids/{g}.json" for g in ("paper", "control", "tuning", "sites_dense", "sites",
                                                                      "sites_seeds", "paper_seeds", "rates", "budget",
                                                                      "ensembles", "hidden_budget",
                                                                      "learning_rates")])
    evaluations = [c for c in calls if "uncertainty" in c]
    assert len(evaluations) >= 2 and set(evaluations) == {f"scripts/run_uncertainty.py {results}"}
    # the working folder starts from the landed records and evaluations, which are not evaluated again
    landed = sorted(p.relative_to(ROOT / "results") for p in (ROOT / "results").rglob("*.json")
                    if p.name in ("metrics.json", "uncertainty.json") or p.name.startswith("ensemble"))
    assert landed and all((results / rel).read_bytes() == (ROOT / "results" / rel).read_bytes() for rel in landed)


def test_the_uncertainty_script_evaluates_what_has_finished(tmp_path, monkeypatch, capsys):
    """scripts/run_uncertainty.py makes a planned evaluation once all its runs have finished, each in a process
    of its own with one thread (an ensemble with ``--ensemble``), skips one already made, and names the runs
    that the others wait for."""
    spec = importlib.util.spec_from_file_location("run_uncertainty", ROOT / "scripts" / "run_uncertainty.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    calls = []
    monkeypatch.setattr(script.subprocess, "run", lambda command: calls.append(command[1:]) or
                        subprocess.CompletedProcess(command, 0))
    rates = "rates/mnist/dropout_p0.1_step_current/seed0"
    made = "rates/mnist/dropout_p0.1_step_current/seed1"
    base = "ensembles/cifar10/none_p0_step_current"
    _write(tmp_path, f"{rates}/metrics.json", make_record("mnist", "dropout", seed=0, p=0.1))
    _write(tmp_path, f"{made}/metrics.json", make_record("mnist", "dropout", seed=1, p=0.1))
    _write(tmp_path, f"{made}/uncertainty.json", {})
    for seed in range(10, 15):
        _write(tmp_path, f"{base}/seed{seed}/metrics.json", make_record("cifar10", seed=seed))
    _write(tmp_path, f"{base}/seed15/metrics.json", make_record("cifar10", seed=15, status="running"))
    assert script.main([str(tmp_path), "--grids", str(ROOT / "grids")]) == 0
    members = [str(tmp_path / base / f"seed{seed}") for seed in range(10, 15)]
    assert calls == [["-m", "snnlib", "uncertainty", *members, "--threads", "1",  # grid files in name order
                      "--ensemble", str(tmp_path / base / "ensemble_seeds1011121314.json")],
                     ["-m", "snnlib", "uncertainty", str(tmp_path / rates), "--threads", "1"]]
    out = capsys.readouterr().out
    assert f"{base}/ensemble_seeds1516171819.json waits for {', '.join(f'{base}/seed{s}' for s in range(15, 20))}" \
        in out.splitlines()
    assert made not in out
