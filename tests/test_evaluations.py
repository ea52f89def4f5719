"""The uncertainty chapter's tables and tests, on synthetic evaluations of the record layout."""

from __future__ import annotations

import json
import math

import pytest

from snnlib.experiment.config import RunConfig
from snnlib.study import evaluations as E
from snnlib.study import uncertainty_verdict as UV


def evaluation(variant="none", seed=0, p=None, time_consistent=False, nll=0.1, ece=0.01, auroc=0.9, kind="run"):
    p = (0.0 if variant == "none" else 0.5) if p is None else p
    config = RunConfig(variant=variant, p=p, seed=seed, time_consistent=time_consistent, val_size=5000).to_dict()
    sets = {"test": {"kind": "test", "family": None, "level": None},
            "rotate30": {"kind": "shift", "family": "rotation", "level": 30},
            "rotate60": {"kind": "shift", "family": "rotation", "level": 60},
            "ood_cifar10": {"kind": "ood", "family": None, "level": None}}

    def results(shift):
        out = {"test": {"accuracy": 0.97, "nll": nll, "brier": 0.05, "ece": ece, "mean_confidence": 0.9,
                        "mean_entropy": 0.1,
                        "reliability": {"confidence": [None, 0.7, 0.95], "accuracy": [None, 0.6, 0.99],
                                        "count": [0, 10 + seed, 90]},
                        "coverage": {"coverage": [0.5, 1.0], "accuracy": [1.0, 0.97 - 0.001 * seed],
                                     "mean_accuracy": 0.985}}}
        for name, level in (("rotate30", 1), ("rotate60", 2)):
            out[name] = {"accuracy": 0.9 - 0.2 * level, "nll": nll * (1 + shift * level), "brier": 0.1,
                         "ece": ece * (1 + level), "mean_confidence": 0.8, "mean_entropy": 0.3,
                         "auroc_vs_test": {"max_prob": 0.6, "entropy": 0.6}}
        out["ood_cifar10"] = {"mean_confidence": 0.6, "mean_entropy": 1.0,
                              "auroc_vs_test": {"max_prob": auroc, "entropy": auroc - 0.01}}
        return out

    methods = {"deterministic": {"cost": {"forward_passes": 1, "synaptic_events_per_prediction": 8e4},
                                 "results": results(1.0)}}
    if variant == "none":
        methods["temperature"] = {"cost": {"forward_passes": 1, "synaptic_events_per_prediction": 8e4},
                                  "results": results(0.5)}
    else:
        methods["mc_dropout"] = {"cost": {"forward_passes": 50, "synaptic_events_per_prediction": 4e6},
                                 "results": results(0.2),
                                 "curve": {"test": {"n": [1, 2, 50], "nll": [nll * 2, nll * 1.5, nll],
                                                    "ece": [0.1, 0.05, ece]}}}
    if kind == "ensemble":
        methods = {"ensemble": {"cost": {"forward_passes": 3, "synaptic_events_per_prediction": 2.4e5},
                                "results": results(0.3)}}
    ev = {"kind": kind, "config": config, "sets": sets, "methods": methods}
    if kind == "ensemble":
        ev["members"] = ["a", "b", "c"]
    return ev


def study(mc_nll=0.08):
    evals = [evaluation("none", s, nll=0.10 + 0.001 * s, ece=0.010 + 0.0001 * s, auroc=0.9 + 0.001 * s)
             for s in range(10)]
    evals += [evaluation("dropout", s, nll=mc_nll + 0.001 * s, ece=0.02 + 0.0001 * s, auroc=0.95 + 0.001 * s)
              for s in range(10)]
    evals += [evaluation("dropout2d", s, nll=0.12 + 0.001 * s, ece=0.01 + 0.0001 * s) for s in range(10)]
    evals.append(evaluation("none", 0, kind="ensemble", nll=0.07))
    for i, ev in enumerate(evals):
        ev["path"] = f"x/{i}/uncertainty.json"
    return evals


def test_table_rows_and_summary():
    table = E.evaluations_table(study())
    assert len(table) == (10 * 2 + 10 * 2 + 10 * 2 + 1) * 4  # evaluations x methods x sets
    ensemble = table[table["members"] == 3]
    assert len(ensemble) == 4 and ensemble["seed"].isna().all() and set(ensemble["method"]) == {"ensemble"}
    rows = E.method_summary(table, "test", ("nll",))
    det = rows[(rows["variant"] == "none") & (rows["method"] == "deterministic")].iloc[0]
    assert det["n"] == 10 and det["nll_mean"] == pytest.approx(sum(0.10 + 0.001 * s for s in range(10)) / 10)
    assert rows[rows["method"] == "ensemble"].iloc[0]["nll_mean"] == pytest.approx(0.07)
    shift = E.method_summary(table, "shift", ("nll",))
    mc = shift[(shift["variant"] == "dropout") & (shift["method"] == "mc_dropout")].iloc[0]
    # the mean over the two rotations of nll * (1 + 0.2 * level), levels 1 and 2
    assert mc["nll_mean"] == pytest.approx(sum((0.08 + 0.001 * s) * 1.3 for s in range(10)) / 10)
    assert mc["events"] == 4e6 and mc["forward_passes"] == 50


def test_mask_tests_use_dropout2d_as_the_per_sample_mask_at_the_papers_rate():
    tests = E.mask_tests(E.evaluations_table(study()), datasets=["mnist"], rates=(), metrics=(("test", "nll"),))
    assert len(tests) == 1 and tests[0].difference == pytest.approx(0.08 - 0.12) and tests[0].label == "better"


def test_curve_and_shift_curve():
    c = E.curve(study(), "test", "nll", variant="dropout")
    assert list(c["n"]) == [1, 2, 50] and c["runs"].tolist() == [10, 10, 10]
    assert c["mean"].iloc[-1] == pytest.approx(0.08 + 0.0045)
    s = E.shift_curve(E.evaluations_table(study()), "mnist", "rotation", "ece", "deterministic", variant="none")
    assert list(s["level"]) == [0, 30, 60] and s["runs"].tolist() == [10, 10, 10]


def test_load_evaluations_skips_what_it_cannot_read(tmp_path):
    """Damaged or unsealed files are skipped with a warning (reading sealed evaluations beside their
    records is tested in tests/test_integrity.py)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "uncertainty.json").write_text(json.dumps(evaluation()))  # no digest, no record beside it
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "uncertainty.json").write_text("{")
    with pytest.warns(UserWarning):
        assert E.load_evaluations(tmp_path) == []
    assert E.load_evaluations(tmp_path / "none") == [] and math.isnan(E._none(None))


def test_reliability_pools_the_bins_by_count():
    diagram = E.reliability(study(), "deterministic", variant="none")
    assert diagram["count"].tolist() == [0, sum(10 + s for s in range(10)), 900]
    assert math.isnan(diagram["confidence"].iloc[0])
    assert diagram["confidence"].iloc[1] == pytest.approx(0.7) and diagram["accuracy"].iloc[2] == pytest.approx(0.99)
    assert E.reliability(study(), "mc_dropout", variant="alpha").empty


def test_coverage_curve_averages_accuracy_at_each_coverage():
    curve = E.coverage_curve(study(), "mc_dropout", variant="dropout")
    assert list(curve["coverage"]) == [0.5, 1.0] and set(curve["runs"]) == {10}
    assert curve["mean"].tolist() == pytest.approx([1.0, 0.97 - 0.001 * 4.5])
    assert E.coverage_curve(study(), "mc_dropout", variant="alpha").empty


# ---------------------------------------------------------------- the pre-registered verdict

def full_evaluation(variant="dropout", seed=0, nll=0.1, ece=0.01, auroc=0.9, members=None):
    """An evaluation with the sets the verdict reads (test, the mild shift rotate30, the OOD set) and,
    for a dropout network, MC dropout's curve with a point at 5 passes."""
    ev = evaluation(variant, seed, nll=nll, ece=ece, auroc=auroc, kind="ensemble" if members else "run")
    if members:
        ev["members"] = [{"seed": m} for m in members]
    if "mc_dropout" in ev["methods"]:
        mc = ev["methods"]["mc_dropout"]
        mc["passes"] = 50
        mc["curve"] = {name: {"n": [1, 5, 50], "nll": [9.0, nll + 0.5, nll], "ece": [9.0, ece + 0.5, ece],
                              "auroc_vs_test": {"max_prob": [0.5, auroc - 0.5, auroc]}}
                       for name in ("test", "rotate30", "ood_cifar10")}
    return ev


def test_method_values_take_mc_dropout_at_five_passes_from_its_curve():
    values = UV.method_values([full_evaluation(nll=0.1, ece=0.01, auroc=0.9)])
    mc = values[values["method"] == "mc_dropout"].set_index("passes")
    assert mc.loc[50, "test_nll"] == pytest.approx(0.1) and mc.loc[5, "test_nll"] == pytest.approx(0.6)
    assert mc.loc[5, "ood_auroc"] == pytest.approx(0.4) and mc.loc[50, "ood_auroc"] == pytest.approx(0.9)
    # the mild shift of MNIST is rotate30 alone: nll * (1 + 0.2 * 1) from the results, the curve's at 5
    assert mc.loc[50, "mild_nll"] == pytest.approx(0.1 * 1.2) and mc.loc[5, "mild_nll"] == pytest.approx(0.6)
    ensemble = UV.method_values([full_evaluation("none", members=(0, 1, 2, 3, 4))])
    assert ensemble["members"].iloc[0] == (0, 1, 2, 3, 4) and math.isnan(ensemble["seed"].iloc[0])


@pytest.mark.parametrize("labels, verdict", [
    (["better"] * 5, "better"),
    (["better"] * 3 + ["not significant"] * 2, "better"),
    (["better"] * 2 + ["not significant"] * 3, "no clear difference"),  # a majority is needed
    (["better"] * 4 + ["worse"], "mixed"),  # a significantly worse metric blocks "better"
    (["worse"] * 3 + ["not significant"] * 2, "worse"),
    (["not significant"] * 5, "no clear difference"),
    (["better"] * 4 + ["no data"], "not enough data"),
])
def test_row_verdicts(labels, verdict):
    assert UV.row_verdict(labels) == verdict


def verdict_values(dropout_shift=-0.02, missing_seed=None):
    """Base runs (deterministic and temperature), five disjoint ensembles, and MC dropout of each kind:
    standard dropout's NLL and ECE lower by ``dropout_shift`` and its AUROC higher; the others equal to
    the base's."""
    evals = [full_evaluation("none", s, nll=0.10 + 0.001 * s, ece=0.010 + 0.001 * s, auroc=0.9 + 0.001 * s)
             for s in range(10)]
    evals += [full_evaluation("none", members=tuple(range(k, k + 5)), nll=0.10 + 0.001 * k,
                              ece=0.010 + 0.001 * k, auroc=0.9 + 0.001 * k) for k in range(0, 25, 5)]
    evals.append(full_evaluation("none", members=(0, 2, 4, 6, 8), nll=0.01, ece=0.001, auroc=1.0))  # not planned
    for kind in ("dropout", "dropout2d", "feature_alpha", "alpha"):
        shift = dropout_shift if kind == "dropout" else 0.0
        evals += [full_evaluation(kind, s, nll=0.10 + 0.001 * s + shift, ece=0.010 + 0.001 * s + shift,
                                  auroc=0.9 + 0.001 * s - shift) for s in range(10) if (kind, s) != missing_seed]
    return UV.method_values(evals)


def test_the_verdict_follows_the_preregistered_rule():
    tests = UV.verdict_tests(verdict_values(), datasets=("mnist",))
    primary = [t for t in tests if t.role == "primary"]
    assert len(primary) == 3 * 4 * 2 * 5  # baselines x kinds x (MC at 5 and 50 passes) x metrics
    family = {t.family for t in primary if t.detail["baseline"] == "deterministic"}
    assert len(family) == 1 and sum(t.family in family for t in tests) == 40
    matrix = UV.verdict_matrix(tests)
    rows = matrix[(matrix["role"] == "primary") & (matrix["method"] == "MC dropout, 50 passes")].set_index(
        ["baseline", "kind"])
    assert rows.loc[("deterministic", "dropout"), "verdict"] == "better"
    assert rows.loc[("deterministic", "dropout"), "test_nll"] == "better"
    assert rows.loc[("deterministic", "dropout2d"), "verdict"] == "no clear difference"
    # the five planned ensembles (0-4, ..., 20-24); the sixth, of other seeds, is left out
    ens = next(t for t in primary if t.detail["baseline"] == "ensemble" and t.kind == "dropout"
               and t.metric == "test_nll" and t.detail["passes"] == 50)
    assert ens.n_base == 5 and ens.label == "better"
    table = UV.verdict_matrix_markdown(matrix, "mnist")
    assert "| the deterministic base network | dropout | MC dropout, 50 passes | better | better | better | better " \
           "| better | **better** |" in table
    # the synthetic curve is worse at 5 passes than the base on every metric
    assert UV.uncertainty_answer(matrix, "mnist", "deterministic").startswith(
        "against the deterministic base network: better: dropout (50 passes); worse: dropout (5 passes), dropout2d "
        "(5 passes)")


def test_a_missing_seed_waits_and_keeps_the_family():
    tests = UV.verdict_tests(verdict_values(missing_seed=("alpha", 3)), datasets=("mnist",))
    alpha = [t for t in tests if t.kind == "alpha" and t.role == "primary"]
    assert all(t.label == "no data" for t in alpha)
    assert "seeds 3" in alpha[0].missing[0]
    dropout = next(t for t in tests if t.kind == "dropout" and t.role == "primary" and t.metric == "test_nll"
                   and t.detail["baseline"] == "deterministic" and t.detail["passes"] == 50)
    assert dropout.p_holm <= 40 * dropout.p + 1e-12 and dropout.label == "better"
    matrix = UV.verdict_matrix(tests)
    assert UV.uncertainty_answer(matrix, "mnist", "deterministic") == (
        "against the deterministic base network: not enough data yet")


def test_sampling_tests_pair_mc_dropout_with_the_same_networks_temperature_scaling():
    evals = [full_evaluation("dropout", s, nll=0.10 + 0.001 * s) for s in range(10)]
    for ev in evals:
        ev["methods"]["temperature"] = json.loads(json.dumps(ev["methods"]["deterministic"]))
        for numbers in ev["methods"]["temperature"]["results"].values():
            if "nll" in numbers:
                numbers["nll"] += 0.01
    tests = UV.sampling_tests(UV.method_values(evals), datasets=("mnist",))
    t = next(t for t in tests if t.kind == "dropout" and t.metric == "test_nll")
    assert t.test == "paired" and t.n_variant == 10 and t.difference == pytest.approx(-0.01) and t.label == "better"

