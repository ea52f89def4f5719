"""The uncertainty chapter's tables and tests, on synthetic evaluations of the record layout."""

from __future__ import annotations

import json
import math

import pytest

from snnlib import evaluations as E
from snnlib.training import RunConfig


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


def test_uncertainty_tests_label_better_and_worse_with_holm():
    tests = E.uncertainty_tests(E.evaluations_table(study()), datasets=["mnist"], kinds=("dropout", "dropout2d"),
                                methods=("mc_dropout",))
    by = {(t.kind, t.detail["baseline"], t.detail["sets"], t.metric): t for t in tests}
    assert by["dropout", "deterministic", "test", "nll"].label == "better"  # lower NLL
    assert by["dropout", "deterministic", "test", "ece"].label == "worse"
    assert by["dropout", "deterministic", "ood", "auroc_max_prob"].label == "better"
    assert by["dropout2d", "deterministic", "test", "nll"].label == "worse"
    t = by["dropout", "deterministic", "test", "nll"]
    assert t.n_base == t.n_variant == 10 and t.difference == pytest.approx(-0.02) and t.p_holm < 0.05


def test_mask_tests_use_dropout2d_as_the_per_sample_mask_at_the_papers_rate():
    tests = E.mask_tests(E.evaluations_table(study()), datasets=["mnist"], rates=(), metrics=(("test", "nll"),))
    assert len(tests) == 1 and tests[0].difference == pytest.approx(0.08 - 0.12) and tests[0].label == "better"


def test_curve_and_shift_curve():
    c = E.curve(study(), "test", "nll", variant="dropout")
    assert list(c["n"]) == [1, 2, 50] and c["runs"].tolist() == [10, 10, 10]
    assert c["mean"].iloc[-1] == pytest.approx(0.08 + 0.0045)
    s = E.shift_curve(E.evaluations_table(study()), "mnist", "rotation", "ece", "deterministic", variant="none")
    assert list(s["level"]) == [0, 30, 60] and s["runs"].tolist() == [10, 10, 10]


def test_load_evaluations(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "uncertainty.json").write_text(json.dumps(evaluation()))
    (tmp_path / "ensemble_seeds01234.json").write_text(json.dumps(evaluation(kind="ensemble")))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "uncertainty.json").write_text("{")
    with pytest.warns(UserWarning):
        found = E.load_evaluations(tmp_path)
    assert sorted(ev["path"] for ev in found) == ["a/uncertainty.json", "ensemble_seeds01234.json"]
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


def test_verdicts_follow_the_stated_rule():
    table = E.evaluations_table(study())
    frame = E.verdicts(table, datasets=("mnist",)).set_index("baseline")
    det = frame.loc["deterministic"]
    # ten seeds: MC dropout's lower test NLL survives Holm, its higher ECE is significantly worse
    assert det["answer"] == "yes"
    assert "dropout, MC dropout: test NLL" in det["better"]
    assert "dropout, MC dropout: test ECE (15 bins)" in det["worse"]
    assert det["tests"] == 40 and det["interval_better"] >= 1 and det["interval_worse"] >= 1
    ensemble = frame.loc["ensemble"]
    assert ensemble["answer"] == "better in the mean, untested" and ensemble["ensembles"] == 1
    assert ensemble["better"] == ["dropout, MC dropout: ood AUROC by max. probability"]
    markdown = E.verdicts_markdown(frame.reset_index())
    assert "| MNIST | the deterministic base network | yes |" in markdown
