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


def test_planned_evaluations_follow_the_uncertainty_script(tmp_path):
    """Every run that scripts/run_uncertainty.sh evaluates on its own has ``uncertainty.json`` planned; a base
    run has the ensemble of its seed group; runs the script never reads have nothing planned."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "run_uncertainty.sh"), str(tmp_path)],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHON": "false"}, check=True)
    evaluated = [line.split(": not finished yet")[0] for line in proc.stdout.splitlines()
                 if line.endswith(": not finished yet")]
    assert len(evaluated) == 2 * (5 * 10 + 6 * 3)
    for run in evaluated:
        rel = str(Path(run).relative_to(tmp_path))
        grid, dataset, cell, seed = rel.split("/")
        variant = cell.split("_p")[0]
        p = float(cell.split("_p")[1].split("_")[0])
        config = {"seed": int(seed[4:]), "variant": variant, "p": p, "site": "current", "epochs": 20,
                  "time_consistent": "_consistent_" in cell}
        assert f"{rel}/uncertainty.json" in P.planned_evaluations(rel, config)
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
    copies, conflicts, waiting = landing(source, dest)
    assert [str(c) for c in copies] == [f"{hidden['path']}/metrics.json"] and not conflicts
    assert waiting == [f"{paper['path']} waits for {paper['path']}/uncertainty.json "
                       f"(scripts/run_uncertainty.sh {source})"]
    _write(source, f"{paper['path']}/uncertainty.json", make_evaluation(paper))
    copies, _, waiting = landing(source, dest)
    assert {str(c) for c in copies} == {f"{hidden['path']}/metrics.json", f"{paper['path']}/metrics.json",
                                         f"{paper['path']}/uncertainty.json"} and not waiting
    (source / paper["path"] / "uncertainty.json").unlink()
    _write(dest, f"{paper['path']}/metrics.json", paper)
    _, _, waiting = landing(source, dest)
    assert not waiting


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
    assert "0 files landed, 1 runs held back, 0 conflicts" in proc.stdout
    assert not dest.exists() or not any(dest.rglob("*.json"))


def test_the_study_script_evaluates_runs_as_they_finish(tmp_path):
    """scripts/run_study.sh copies the landed records into a new working folder, goes through every grid with
    each runner and evaluates a finished run of the rates grid while the runners go (here: a stand-in for
    Python that logs what it is asked to do)."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/bash
echo "$*" >> {log}
if [ "$2" = snnlib ] && [ "$3" = uncertainty ]; then echo '{{}}' > "$4/uncertainty.json"; fi
""")
    fake.chmod(0o755)
    results = tmp_path / "results"
    run = results / "rates/mnist/dropout_p0.1_step_current/seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"status": "finished"}')
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "run_study.sh"), str(results), "2"], capture_output=True,
                          text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "STAGGER": "0", "EVALUATE_EVERY": "1"})
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    grids = [c.split()[2] for c in calls if "snnlib.experiment.runner" in c]
    assert sorted(grids) == sorted(2 * [f"grids/{g}.json" for g in ("paper", "control", "tuning", "sites_dense", "sites",
                                                                      "sites_seeds", "paper_seeds", "rates", "budget",
                                                                      "ensembles")])
    assert calls.count(f"-m snnlib uncertainty {run} --threads 1") == 1
    assert (run / "uncertainty.json").exists()
    # the working folder starts from the landed records and evaluations, which are not evaluated again
    landed = sorted(p.relative_to(ROOT / "results") for p in (ROOT / "results").rglob("*.json")
                    if p.name in ("metrics.json", "uncertainty.json") or p.name.startswith("ensemble"))
    assert landed and all((results / rel).read_bytes() == (ROOT / "results" / rel).read_bytes() for rel in landed)
    assert [c for c in calls if "uncertainty" in c] == [f"-m snnlib uncertainty {run} --threads 1"]
