"""The pre-registration (snnlib.study.preregistration): fixed families, tests that can pass, identical
operations counted once, and grid files that run exactly the planned seeds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from snnlib.experiment.grid import expand_grid, load_grid
from snnlib.study import preregistration as P

GRIDS = Path(__file__).resolve().parent.parent / "grids"


def test_family_sizes_are_fixed_by_the_design():
    sizes = P.family_sizes()
    assert sizes["C1, current"] == sizes["C1, hidden"] == 2 * 2 * 2  # kinds x datasets x metrics
    assert sizes["C1, input"] == 1 * 2 * 2  # dropout = dropout2d on the input spikes
    assert sizes["C2, current"] == sizes["C2, hidden"] == sizes["C2, input"] == 3 * 2 * 2
    assert sizes["C3, hidden_importance"] == 4 * 2 * 2  # kinds (feature = dropout2d) x datasets x statistics
    assert sizes["C3, hidden_silencing_drop"] == 16
    roles = {s.family: s.role for s in P.design()}
    assert roles["C3, hidden_silencing_drop"] == "secondary" and roles["C1, hidden, secondary"] == "secondary"


def test_every_primary_test_can_pass_holm_with_its_planned_seeds():
    for row in P.power_table():
        assert row["smallest_p"] < row["holm_first_threshold"], row
        assert math.isfinite(row["t_needed"])


def test_the_permutation_floor_is_why_the_second_edition_could_not_decide():
    assert P.permutation_floor(5, 5) == pytest.approx(2 / 252)
    assert P.permutation_floor(5, 5) > P.ALPHA / 8  # the C1 family of 8
    assert P.permutation_floor(6, 6) < P.ALPHA / 8  # 2 / 924
    assert P.permutation_floor(10, test="paired") == pytest.approx(2 / 1024)


def test_identical_operations_are_one_test_in_every_family():
    for family in P.family_sizes():
        specs = [s for s in P.design() if s.family == family]
        keys = [(s.dataset, s.runs_of, s.site, s.metric, s.measure) for s in specs]
        assert len(keys) == len(set(keys)), family
    assert P.operation("input", "dropout2d") == P.operation("input", "feature") == "dropout"
    assert P.operation("hidden", "feature") == P.operation("current", "feature") == "dropout2d"
    assert P.operation("hidden", "dropout2d") == "dropout2d"
    assert P.distinct("input", ("dropout", "dropout2d")) == ("dropout",)


def _grid_cells(*names: str) -> dict[tuple, set[int]]:
    cells: dict[tuple, set[int]] = {}
    for name in names:
        for spec in expand_grid(load_grid(GRIDS / f"{name}.json")):
            c = spec.config
            if c["epochs"] != 20 or c["init_seed"] is not None or c["time_consistent"]:
                continue
            kind = c["variant"]
            site = "current" if kind == "none" else c["site"]
            cells.setdefault((c["dataset"], kind, site), set()).add(c["seed"])
    return cells


def test_the_grid_files_run_the_planned_seeds_and_no_duplicate_operation():
    cells = _grid_cells("paper", "paper_seeds", "sites", "sites_seeds", "sites_dense")
    for spec in P.design():
        runs_of = spec.runs_of
        assert set(spec.seeds) <= cells.get((spec.dataset, runs_of, spec.site), set()), spec
        if spec.reference_seeds and spec.claim != "C3":
            assert set(spec.reference_seeds) <= cells[(spec.dataset, "none", "current")]
    for (_dataset, kind, site) in _grid_cells("sites", "sites_seeds", "sites_dense"):
        assert P.operation(site, kind) == kind, f"{kind} on the {site} is another kind's operation"
    control = [s.config for s in expand_grid(load_grid(GRIDS / "control.json"))]
    for dataset in P.DATASETS:
        assert {c["init_seed"] for c in control if c["dataset"] == dataset} == set(P.CONTROL_SEEDS)


def test_the_ensembles_are_disjoint_and_their_base_runs_are_planned():
    members = [s for ensemble in P.ENSEMBLES for s in ensemble]
    assert len(members) == len(set(members)) == 25 and all(len(e) == P.ENSEMBLE_MEMBERS for e in P.ENSEMBLES)
    cells = _grid_cells("paper", "paper_seeds", "ensembles")
    for dataset in P.DATASETS:
        assert set(members) <= cells[(dataset, "none", "current")]


def test_the_uncertainty_script_builds_the_planned_ensembles(tmp_path, capsys):
    """scripts/run_uncertainty.py plans one ensemble per group of ``P.ENSEMBLES`` and dataset, made from
    that group's base runs; on an empty results folder each waits for them and nothing is written."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_uncertainty", GRIDS.parent / "scripts" / "run_uncertainty.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(tmp_path), "--grids", str(GRIDS)]) == 0
    waiting = [line for line in capsys.readouterr().out.splitlines() if "/ensemble_seeds" in line]
    expected = []
    for dataset in ("mnist", "cifar10"):
        for group in P.ENSEMBLES:
            cell = f"{'paper' if group[0] < 10 else 'ensembles'}/{dataset}/none_p0_step_current"
            members = ", ".join(f"{cell}/seed{seed}" for seed in group)
            expected.append(f"{cell}/ensemble_seeds{''.join(map(str, group))}.json waits for {members}")
    assert sorted(waiting) == sorted(expected)
    assert not any(tmp_path.iterdir())
    assert script.main([str(tmp_path), "--grids", str(tmp_path)]) == 2  # no grid files: says so, exits non-zero


def test_the_addendum_plans_exactly_the_runs_of_its_grid_files():
    budget = [s.config for s in expand_grid(load_grid(GRIDS / "hidden_budget.json"))]
    wanted = {(kind, epochs, lr, seed) for _, epochs, lr in P.BUDGET_CONDITIONS for kind in P.BUDGET_KINDS
              for seed in P.BUDGET_SEEDS}
    assert {(c["variant"], c["epochs"], c["lr"], c["seed"]) for c in budget} == wanted
    assert all((c["dataset"], c["site"], c["p"], c["time_consistent"], c["val_size"]) ==
               ("cifar10", "hidden", 0.5, False, 5000) for c in budget)
    rates = [s.config for s in expand_grid(load_grid(GRIDS / "learning_rates.json"))]
    new_rates = tuple(r for r in P.LR_RATES if r != 1e-3)
    assert {(c["dataset"], c["variant"], c["lr"], c["seed"]) for c in rates} == {
        (d, k, r, s) for d in P.DATASETS for k in P.LR_KINDS for r in new_rates for s in P.LR_SEEDS}
    assert all(c["site"] == "current" and c["epochs"] == 20 and not c["time_consistent"]
               and c["p"] == (0.0 if c["variant"] == "none" else 0.5) for c in rates)
    assert set(P.LR_KINDS) - {"none"} == {P.operation("current", k) for k in (*P.C1_KINDS, *P.C2_KINDS)}


def test_best_epoch_and_chosen_rate_follow_the_addendum():
    assert P.best_epoch([0.1, 0.5, 0.5, 0.4]) == 1  # the first of the best
    with pytest.raises(ValueError, match="no best-validation epoch"):
        P.best_epoch([])
    assert P.chosen_rate({3e-4: 0.90, 1e-3: 0.95, 3e-3: 0.93}) == 1e-3
    assert P.chosen_rate({3e-4: 0.96, 1e-3: 0.95, 3e-3: 0.93}) == 3e-4
    assert P.chosen_rate({3e-4: 0.95, 1e-3: 0.95, 3e-3: 0.95}) == 1e-3  # a tie keeps the study's rate
    assert P.chosen_rate({3e-4: 0.95, 3e-3: 0.95}) == 3e-4
    assert "2026-12-06" in P.ADDENDUM and P.ADDENDUM_DATE == "2026-12-06"
