"""The second round's analyses (snnlib.study.robustness, the addendum of 2026-12-06): the best-validation epoch,
the choice of a learning rate per kind, the budget artefact's reading, every verdict under each choice."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from recordmaker import make_record, reseal

from snnlib.study import claims as C
from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study import robustness as RB


def _at(record: dict, **config: object) -> dict:
    record["config"] = {**record["config"], **config}
    return reseal(record)


def test_a_run_is_read_at_its_first_best_validation_epoch():
    record = make_record("mnist", "dropout", seed=0, epochs=3)
    for epoch, (val, test) in enumerate(((0.90, 0.80), (0.95, 0.85), (0.95, 0.70)), 1):
        record["epochs"][epoch - 1].update(val_acc=val, test_acc=test)
    table = RB.at_best_epoch([reseal(record)])
    assert table.loc[0, "best_epoch"] == 2 and table.loc[0, "test_acc"] == 0.85
    assert R.runs_table([record]).loc[0, "test_acc"] == 0.70  # the registered reading: the last epoch


def _rate_runs(dataset: str, kind: str, rate: float, val: float, seeds=P.LR_SEEDS) -> list[dict]:
    return [_at(make_record(dataset, kind, seed=s, val_acc=val + 0.001 * s), lr=rate) for s in seeds]


def test_a_kind_takes_the_rate_of_its_best_mean_validation_accuracy_once_every_rate_has_its_seeds():
    records = [*_rate_runs("mnist", "dropout", 3e-4, 0.95), *_rate_runs("mnist", "dropout", 1e-3, 0.96),
               *_rate_runs("mnist", "dropout", 3e-3, 0.97), *_rate_runs("mnist", "none", 3e-4, 0.99),
               *_rate_runs("mnist", "none", 1e-3, 0.95), *_rate_runs("mnist", "none", 3e-3, 0.94, seeds=(0, 1))]
    table = R.runs_table(records)
    rates = RB.chosen_rates(table)
    assert rates == {("mnist", "dropout"): 3e-3}  # the base network lacks three seeds at 3e-3: no choice yet
    frame = RB.rate_table(table)
    row = frame[(frame["kind"] == "dropout") & (frame["lr"] == 3e-3)].iloc[0]
    assert row["n"] == 5 and row["val_acc_mean"] == pytest.approx(0.972) and row["chosen"]
    assert "**97.20 ± 0.16 (5)**" in RB.rate_markdown(table)


def _condition(verdict: str, labels: tuple[str, ...]) -> RB.BudgetCondition:
    tests = [C.Test("C2", "primary", "f", "cifar10", "alpha", "hidden", "test_acc", -1, "one_sample", 0, 3, 0.0,
                    0.0, 0.0, 0.01, 0.25, label=label) for label in labels]
    return RB.BudgetCondition("x", 20, 1e-3, verdict, tests, 6, 0, {"feature_alpha": 0.1, "alpha": 0.1})


def test_the_budget_artefact_is_read_by_the_addendums_rule():
    headline = _condition("reproduced", ("yes",))
    survives = [headline, *(_condition("reproduced", ("yes", "yes")) for _ in range(3))]
    assert RB.budget_reading(survives) == "survives"
    artefact = [headline, _condition("reproduced", ("yes",)), _condition("mixed", ("yes", "contrary")),
                _condition("reproduced", ("yes",))]
    assert RB.budget_reading(artefact) == "a budget artefact"
    undecided = [headline, _condition("partly reproduced", ("yes", "not significant")),
                 *(_condition("reproduced", ("yes",)) for _ in range(2))]
    assert RB.budget_reading(undecided) == "undecided"
    waiting = [headline, _condition("not enough data", ("no data",)), *(_condition("reproduced", ("yes",)),) * 2]
    assert RB.budget_reading(waiting) == "not enough data"


def _c2_runs(accuracy: float, epochs: int = 60, lr: float = 1e-3) -> list[dict]:
    return [_at(make_record("cifar10", kind, seed=s, site="hidden", epochs=epochs, test_acc=accuracy + 0.001 * s,
                            train_eval_acc=accuracy), lr=lr)
            for kind in P.BUDGET_KINDS for s in P.BUDGET_SEEDS]


def test_each_budget_condition_tests_c2_on_its_own_runs_with_holm_over_its_four_tests():
    records = [*_c2_runs(0.10, 60), *_c2_runs(0.101, 20, 3e-4), *_c2_runs(0.45, 20, 3e-3)]
    conditions = RB.budget_conditions(R.runs_table(records))
    by_name = {c.name: c for c in conditions}
    assert by_name["60 epochs"].verdict == "reproduced" and by_name["60 epochs"].left_chance == 0
    assert by_name["lr 3e-3"].verdict == "contrary" and by_name["lr 3e-3"].left_chance == 6
    assert all(len(c.tests) == 4 for c in conditions)
    assert by_name["lr 3e-4"].test_acc["alpha"] == pytest.approx(0.102)
    assert conditions[0].verdict == "not enough data"  # the headline's 20-epoch runs are not among these
    assert RB.budget_reading(conditions) == "a budget artefact"
    assert "| lr 3e-3 | 45.1% | 45.1% | 6 of 6 | contrary |" in RB.budget_markdown(conditions)


def test_a_choice_changes_the_cut_off_the_seeds_and_the_p_value_of_the_tests():
    records = [make_record("mnist", "alpha", seed=s, site="input", test_acc=0.22 + 0.002 * s, train_eval_acc=0.22)
               for s in P.FIVE]
    table = R.runs_table(records)

    def test_of(choice: C.Choice) -> C.Test:
        return next(t for t in C.evaluate_claims(table, choice).tests if (t.claim, t.kind, t.site, t.metric, t.role) ==
                    ("C2", "alpha", "input", "test_acc", "primary") and t.dataset == "mnist")

    registered, at_25 = test_of(C.PRE_REGISTERED), test_of(C.Choice(cutoff=0.25))
    assert registered.difference > 0 > at_25.difference and registered.base_mean == P.FAIL_ACCURACY
    permutation = test_of(C.Choice(p_value="permutation"))
    assert permutation.p == permutation.p_check >= 2 / 2 ** 5  # sign flips of five seeds cannot go lower
    fewer = test_of(C.Choice(seeds=(0, 1, 2)))
    assert fewer.n_variant == 3 and not fewer.missing


def test_the_robustness_table_keeps_the_headline_in_its_first_column_and_marks_what_a_choice_cannot_read():
    records = [make_record(d, k, seed=s, test_acc=0.9 - 0.01 * (k != "none"), train_loss=0.1 + 0.01 * (k != "none"))
               for d in P.DATASETS for k in ("none", "dropout", "dropout2d") for s in P.TEN]
    frame = RB.robustness(records)
    headline = C.evaluate_claims(records)
    for row in frame.to_dict("records"):
        assert row["pre-registered"] == headline.verdict(row["claim"], row["site"], row["dataset"], row["reading"])
        if row["claim"] != "C1":
            assert row["base seeds 0-24"] == "not enough data"  # the choice concerns C1 alone
    c1 = frame[(frame["claim"] == "C1") & (frame["site"] == "current")]
    assert set(c1["pre-registered"]) == {"reproduced"} and set(c1["longer budget"]) == {"not enough data"}
    text = RB.robustness_markdown(frame)
    assert "| C1 | current, MNIST | **R** |" in text and "10: longer budget" in text
    assert "best-validation epoch: 2 of 2" in RB.held_sentence(frame)  # C1 at the current, both datasets


def test_mc_dropout_accuracy_stands_in_for_the_test_accuracy_of_evaluated_runs_only():
    records = [make_record("mnist", "alpha", seed=0), make_record("mnist", "dropout", seed=0),
               make_record("mnist", "none", seed=0)]
    evaluation = {"config": records[0]["config"], "kind": "run", "path": "e", "sets": {"test": {"kind": "test"}},
                  "methods": {"mc_dropout": {"cost": {"forward_passes": 50},
                                             "results": {"test": {"accuracy": 0.5}}}}}
    table = RB.with_mc_accuracy(R.runs_table(records), [evaluation])
    assert table["test_acc"].iloc[0] == 0.5 and math.isnan(table["test_acc"].iloc[1])
    assert table["test_acc"].iloc[2] == 0.97  # the base network has no dropout to sample
    assert isinstance(table, pd.DataFrame)


def test_the_verdicts_in_plain_words_give_the_tests_numbers():
    from snnlib.study import plain

    records = [make_record(d, k, seed=s, test_acc=0.90 - 0.02 * (k == "dropout") + 0.001 * s,
                           train_loss=0.1 + 0.05 * (k != "none") + 0.001 * s)
               for d in P.DATASETS for k in ("none", "dropout", "dropout2d") for s in P.TEN]
    result = C.evaluate_claims(records)
    lines = plain.plain_verdicts(result)
    current = next(line for line in lines if line.startswith("- **C1 on the synaptic current"))
    assert "dropout lowered the test accuracy by 2.00 points (significant) and the training loss rose " \
           "(significant)" in current
    assert "dropout2d left the test accuracy unchanged (not significant)" in current
    assert current.count("→ *") == 2 and len(lines) == len([v for v in result.verdicts if v.dataset == "both"])
    c1 = plain.summary(result)[0]
    assert "changed the test accuracy by -2.00 to" in c1


def test_the_budget_comparisons_are_read_at_the_last_and_at_the_best_validation_epoch():
    records = []
    for kind, peak, end in (("none", 0.46, 0.41), ("dropout", 0.45, 0.44), ("dropout2d", 0.47, 0.46)):
        for seed in P.BUDGET_SEEDS:
            r = make_record("cifar10", kind, seed=seed, epochs=60)
            for i, entry in enumerate(r["epochs"]):
                acc = (peak if i == 9 else end) + 0.001 * seed
                entry.update(val_acc=acc, test_acc=acc)
            records.append(reseal(r))
    text = RB.budget_at_best_epoch(records)
    assert "| dropout | test accuracy | +3.00 [+2.77, +3.23] | higher | -1.00 [-1.23, -0.77] | lower |" in text


def test_the_learning_rate_column_reads_each_kind_at_its_chosen_rate_once_every_kind_has_one():
    """Dropout and dropout2d beat the base network at lr 1e-3 (C1 contrary there) but are chosen at lr 3e-3 by
    their validation accuracy, where they fall below it: the column must read the chosen rates' runs."""
    def runs(rate: float, kind: str) -> list[dict]:
        best = rate == (3e-3 if kind in ("dropout", "dropout2d") else 1e-3)
        test = {("dropout", 1e-3): 0.95, ("dropout2d", 1e-3): 0.95, ("dropout", 3e-3): 0.85,
                ("dropout2d", 3e-3): 0.85}.get((kind, rate), 0.90)
        return [_at(make_record(d, kind, seed=s, val_acc=(0.96 if best else 0.92) + 0.001 * s,
                                test_acc=test + 0.002 * s, train_loss=0.1 + 0.05 * (kind != "none") + 0.001 * s),
                    lr=rate)
                for d in P.DATASETS for s in P.LR_SEEDS]
    rates = (3e-4, 1e-3, 3e-3)
    everything = [r for kind in P.LR_KINDS for rate in rates for r in runs(rate, kind)]
    # runs on the input spikes at lr 1e-3, which is the chosen rate of neither dropout nor dropout2d here but of
    # feature alpha and alpha dropout: the column must not pair them with the base network at its chosen rate
    everything += [_at(make_record(d, kind, seed=s, site="input", test_acc=0.5 + 0.002 * s), lr=1e-3)
                   for d in P.DATASETS for kind in ("dropout", "feature_alpha", "alpha") for s in P.LR_SEEDS]
    column = "each kind at its own learning rate"
    waiting = RB.robustness([r for r in everything if not (r["config"]["variant"] == "alpha"
                                                           and r["config"]["lr"] == 3e-3)])
    assert set(waiting[column]) == {"not enough data"}  # alpha lacks a rate: the whole column waits
    frame = RB.robustness(everything)
    current = frame[frame["site"] == "current"]  # block 2 ran at the paper's site only
    assert set(frame[frame["site"] != "current"][column]) == {"not enough data"}  # rates chosen at the current
    assert set(current[current["claim"] == "C1"][column]) == {"reproduced"}
    assert set(current[current["claim"] == "C2"][column]) == {"contrary"}  # 90% is far above any cut-off
    rates = RB.chosen_rates(R.runs_table(everything))
    assert {kind for (_, kind), rate in rates.items() if rate == 3e-3} == {"dropout", "dropout2d"}


def _block2_records() -> list[dict]:
    """Block 2 complete: the base network best at 3e-3 (80.2% test there), every kind at 1e-3 (80.2%)."""
    def runs(dataset: str, kind: str, rate: float, val: float, test: float) -> list[dict]:
        return [_at(make_record(dataset, kind, seed=s, val_acc=val, test_acc=test + 0.001 * s), lr=rate)
                for s in P.LR_SEEDS]
    records = []
    for dataset in P.DATASETS:
        for kind in P.LR_KINDS:
            best = 3e-3 if kind == "none" else 1e-3
            records += [r for rate in P.LR_RATES for r in runs(dataset, kind, rate, 0.95 if rate == best else 0.9,
                                                               0.80 if rate == best else 0.70)]
    return records


def test_the_test_accuracy_at_each_kinds_own_rate_is_set_against_the_base_network_at_its_own_rate():
    records = _block2_records()
    table = R.runs_table(records)
    frame = RB.rate_test_table(table)
    dropout = frame[(frame["dataset"] == "mnist") & (frame["kind"] == "dropout")].iloc[0]
    assert dropout["lr"] == 1e-3 and dropout["test_acc"] == pytest.approx(0.802)
    assert dropout["vs_base_points"] == pytest.approx(0.0)  # both at their own rate: 80.2% each
    base = frame[(frame["dataset"] == "mnist") & (frame["kind"] == "none")].iloc[0]
    assert base["lr"] == 3e-3 and base["test_acc_study_lr"] == pytest.approx(0.702)
    sentence = RB.rate_test_sentence(table)
    assert "base (no dropout) 80.20% at 0.003, 70.20% at 0.001; dropout 80.20% at 0.001 (+0.00)" in sentence
    assert RB.rate_test_sentence(R.runs_table(records[:-1])).startswith("The test accuracies")  # alpha lacks a seed
    answer = RB.rate_answer_sentence(table)
    assert "change the test accuracy by +0.00, +0.00, +0.00 and +0.00 points on MNIST" in answer
    assert " at 0.001." not in answer  # no kind gains from its own rate (all chose 1e-3): no gain clause
    assert RB.rate_answer_sentence(R.runs_table(records[:-1])) == ""


def test_the_answer_carries_block_2_only_when_given_the_runs_table():
    from snnlib.study import answer as A

    paper = [make_record(d, k, seed=s) for d in P.DATASETS for k in ("none", "dropout") for s in P.TEN]
    assert A.answer_sentences(paper) == A.answer_sentences(paper, table=R.runs_table(paper))  # no block 2 runs
    records = paper + _block2_records()
    sentences = A.answer_sentences(records, table=R.runs_table(records))
    assert len(sentences) == len(A.answer_sentences(records)) + 1
    # after the alpha kinds
    assert sentences[4].startswith("Exploratory, with every kind on the synaptic current at the learning rate")
