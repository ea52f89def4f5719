"""The study's answer (snnlib.study.answer): the effects of every kind at every site against the base network,
their labels, the figure, the sentences and the claims' lines, on synthetic records whose answer is known, and on
the committed records, where every number of the sentences must equal what the records give when computed here
from the run records and evaluations directly."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from recordmaker import make_record

matplotlib.use("Agg")

from snnlib.study import answer as A  # noqa: E402 - after the backend is chosen
from snnlib.study import claims as C  # noqa: E402
from snnlib.study import preregistration as P  # noqa: E402
from snnlib.study import records as R  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

# synthetic mean test accuracies (%) of each operation at each site: the base network at 90 on MNIST and 40 on
# CIFAR-10, zeroing kinds a point up or down or the same, the alpha kinds far down
SHIFTS = {("current", "dropout"): +1.0, ("current", "dropout2d"): 0.0, ("current", "feature_alpha"): -20.0,
          ("current", "alpha"): -2.0, ("hidden", "dropout"): -1.0, ("hidden", "dropout2d"): +0.5,
          ("hidden", "feature_alpha"): -30.0, ("hidden", "alpha"): -5.0, ("input", "dropout"): +3.0,
          ("input", "feature_alpha"): -25.0, ("input", "alpha"): -10.0}
BASE = {"mnist": 90.0, "cifar10": 40.0}
SCALE = {"mnist": 0.9, "cifar10": 1.0}  # MNIST's changes a little smaller: no two cells alike


def _spread(seed: int) -> float:
    """A small spread over seeds, the same for every cell, its mean 0 over seeds 0-9, 0-4 and 0-2."""
    return (0.1, -0.1, 0.0, 0.1, -0.1)[seed % 5]


def _shift(dataset: str, site: str, kind: str) -> float:
    return SHIFTS[(site, kind)] * SCALE[dataset]


def synthetic_records(missing: tuple[tuple[str, str, str], ...] = ()) -> list[dict]:
    """Every planned run (p = 0.5, a new mask every step, 20 epochs) of both datasets, its test accuracy
    ``BASE`` plus :func:`_shift` (+- 0.1 by seed); the C3 control runs and importances left at the maker's defaults.
    ``missing``: (dataset, site, kind) cells left out."""
    records = []
    for dataset, base in BASE.items():
        for seed in P.planned_seeds(dataset, "none"):
            acc = (base + _spread(seed)) / 100
            records.append(make_record(dataset, "none", seed, test_acc=acc, train_eval_acc=acc))
        for site, kind in SHIFTS:
            if (dataset, site, kind) in missing:
                continue
            for seed in P.planned_seeds(dataset, kind, site):
                acc = (base + _shift(dataset, site, kind) + _spread(seed)) / 100
                records.append(make_record(dataset, kind, seed, site=site, test_acc=acc, train_eval_acc=acc,
                                           train_loss=0.2))
    return records


@pytest.fixture(scope="module")
def synthetic_claims() -> C.Claims:
    return C.evaluate_claims(synthetic_records())


def test_effect_label():
    assert A.effect_label(0.5, 0.01) == "helps"
    assert A.effect_label(-0.5, 0.01) == "hurts"
    assert A.effect_label(0.5, 0.2) == "no clear difference"
    assert A.effect_label(0.0, 0.0) == "no clear difference"
    assert A.effect_label(0.5, 0.01, complete=False) == "no data"
    assert A.effect_label(math.nan, math.nan) == "no data"


def test_kinds_label_names_the_kinds_that_are_one_operation():
    assert A.kinds_label("current", "dropout2d") == "dropout2d = feature dropout"
    assert A.kinds_label("input", "dropout") == "dropout = dropout2d = feature dropout"
    assert A.kinds_label("hidden", "alpha") == "alpha dropout"


def test_effects_one_row_per_operation_with_the_differences_and_labels(synthetic_claims):
    frame = A.effects(synthetic_claims)
    assert list(frame.columns) == list(A.EFFECT_COLUMNS)
    assert len(frame) == 2 * len(SHIFTS)  # feature dropout is never a row of its own
    assert set(frame["kind"]) == {"dropout", "dropout2d", "feature_alpha", "alpha"}
    assert not ((frame["site"] == "input") & (frame["kind"] == "dropout2d")).any()
    for r in frame.itertuples():
        shift = _shift(r.dataset, r.site, r.kind)
        assert r.difference == pytest.approx(shift, abs=1e-9)
        assert r.base_accuracy == pytest.approx(BASE[r.dataset])
        assert r.ci_low < r.difference < r.ci_high or r.difference == 0
        assert r.label == ("helps" if shift > 0 else "hurts" if shift < 0 else "no clear difference")
        assert (r.n_base, r.n_variant) == (10, len(P.planned_seeds(r.dataset, r.kind, r.site)))
    # the same frame from the records or their table
    assert A.effects(R.runs_table(synthetic_records())).equals(frame)


def test_effects_are_the_welch_tests_of_the_claims(synthetic_claims):
    """Each row is C1's primary test where the kind is C1's, else C2's secondary test (Welch, test accuracy)."""
    for dataset, site, kind, test in A.effect_tests(synthetic_claims):
        assert (test.test, test.metric, test.dataset, test.site) == ("welch", "test_acc", dataset, site)
        assert P.operation(site, test.kind) == P.operation(site, kind)
        assert (test.claim, test.role) == (("C1", "primary") if kind in P.C1_KINDS else ("C2", "secondary"))


def test_missing_runs_are_no_data_and_said_so():
    claims = C.evaluate_claims(synthetic_records(missing=(("cifar10", "input", "alpha"),
                                                          ("mnist", "hidden", "dropout2d"))))
    frame = A.effects(claims)
    chosen = frame.set_index(["dataset", "site", "kind"])["label"]
    assert chosen[("cifar10", "input", "alpha")] == "no data"
    assert chosen[("mnist", "hidden", "dropout2d")] == "no data"
    assert "in 2 of 4 places and hurt in 1" in A.zeroing_sentence(frame, "mnist")  # the missing cell not counted
    assert "hurt in 11 of 11 places" in A.alpha_sentence(frame)
    fig = A.plot_effects(frame)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("waiting for runs") == 2
    matplotlib.pyplot.close(fig)


def test_sentences_say_where_each_kind_helps_and_hurts(synthetic_claims):
    frame = A.effects(synthetic_claims)
    base = A.base_sentence(frame)
    assert "90.00% on MNIST and 40.00% on CIFAR-10 (mean of 10 runs)" in base
    mnist = A.zeroing_sentence(frame, "mnist")
    assert mnist.startswith("On MNIST, dropout, dropout2d and feature dropout")
    assert "help in 3 of 5 places and hurt in 1 (no clear difference in 1)" in mnist
    assert "at best +2.70 points (dropout on the input spikes)" in mnist
    assert "at worst −0.90 (dropout on the hidden spikes)" in mnist
    assert A.zeroing_sentence(frame, "cifar10", first=False).startswith("On CIFAR-10, they help")
    alpha = A.alpha_sentence(frame)
    assert "hurt in 12 of 12 places, by 1.80 to 30.00 points, down to 10.00% (chance: 10%)" in alpha
    assert "with feature alpha dropout on the hidden spikes of CIFAR-10" in alpha
    sentences = A.answer_sentences(synthetic_claims)  # no evaluations: no uncertainty sentences
    assert sentences == [base, mnist, A.zeroing_sentence(frame, "cifar10", first=False), alpha]
    assert A.answer_list(synthetic_claims) == "\n".join(f"- {s}" for s in sentences)


def test_uncertainty_sentences_from_a_verdict_matrix_and_values():
    rows = []
    for dataset in P.DATASETS:
        for baseline in P.UNCERTAINTY_BASELINES:
            for kind, verdict in zip(P.UNCERTAINTY_KINDS, ("better", "worse", "mixed", "better"), strict=True):
                verdict = verdict if baseline == "deterministic" else ("worse" if kind == "dropout2d" else "mixed")
                for passes in (P.MATCHED_PASSES, P.FULL_PASSES):
                    rows.append({"dataset": dataset, "baseline": baseline, "role": "primary", "kind": kind,
                                 "method": f"MC dropout, {passes} passes", "verdict": verdict})
    matrix = pd.DataFrame(rows)
    sentence = A.mc_verdict_sentence(matrix)
    assert "better than a single base network for 4 of 8 dropout networks" in sentence
    assert "never better than temperature scaling (worse for 2)" in sentence
    assert "never better than an ensemble of 5 base networks (worse for 2)" in sentence
    waiting = A.mc_verdict_sentence(matrix.assign(verdict="not enough data"))
    assert "against a single base network: not enough data yet" in waiting
    values = []
    for dataset in P.DATASETS:
        for seed in P.TEN:
            values.append({"dataset": dataset, "variant": "none", "method": "deterministic", "passes": 1,
                           "seed": seed, "members": None, "epochs": 20, "p": 0.0, "mask": "step",
                           "site": "current", "test_nll": 0.3, "test_accuracy": 0.9})
            values.append({**values[-1], "method": "temperature", "test_nll": 0.25})
            for kind, nll in zip(P.UNCERTAINTY_KINDS, (0.2, 0.22, 0.4, 0.21), strict=True):
                values.append({**values[-1], "variant": kind, "p": 0.5, "method": "mc_dropout",
                               "passes": P.FULL_PASSES, "test_nll": nll})
        for members in P.ENSEMBLES:
            values.append({**values[-1], "variant": "none", "p": 0.0, "method": "ensemble", "passes": 5,
                           "seed": math.nan, "members": members, "test_nll": 0.15})
    sentence = A.nll_sentence(pd.DataFrame(values))
    assert "MNIST 0.200 (dropout) against 0.300, 0.250, 0.150; CIFAR-10 0.200 (dropout)" in sentence


def test_claims_lines_one_per_claim_in_plain_words(synthetic_claims):
    lines = A.claims_lines(synthetic_claims)
    assert [line[:6] for line in lines] == ["**C1**", "**C2**", "**C3**"]
    for claim, line in zip(("C1", "C2", "C3"), lines, strict=True):
        overall = C.combine([t.label for t in synthetic_claims.primary(claim)])
        assert f"**{A.VERDICT_WORDS[overall]}**" in line
        assert C.CLAIM_TEXT[claim] in line
    # C1: the training loss is higher everywhere (0.2 against 0.1); per dataset the test accuracy is higher in 3
    # tests (significantly the other way), lower in 1 (as claimed) and the same in 1
    assert "training loss (dropout on) 10 of 10; test accuracy 2 of 10 (6 significantly the other way)" in lines[0]


def test_figure_and_png(synthetic_claims, tmp_path):
    frame = A.effects(synthetic_claims)
    fig = A.plot_effects(frame)
    assert len(fig.axes) == 2 and fig.axes[0].get_title().startswith("MNIST (base 90.0%)")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "dropout2d = feature\ndropout" in labels and labels.count("") == 3  # the sites' heading rows
    headings = [t.get_text() for t in fig.texts]
    assert all(A.SITE_HEADINGS[s] in headings for s in P.SITES)
    matplotlib.pyplot.close(fig)
    path = A.write_effects_png(synthetic_claims, tmp_path / "figures" / A.ANSWER_PNG)
    assert path.read_bytes().startswith(b"\x89PNG")
    markdown = A.answer_markdown(synthetic_claims, figure="results/figures/answer.png")
    assert markdown.startswith("**The answer.**\n\n- Without dropout")
    assert "](results/figures/answer.png)" in markdown and "**The paper's three claims:**" in markdown


# ---------------------------------------------------------------- the committed records

def _numbers(text: str) -> list[str]:
    return re.findall(r"[+−-]?\d+(?:\.\d+)?", text)


@pytest.fixture(scope="module")
def committed():
    if not any(RESULTS.glob("*/*/*/seed*/metrics.json")):
        pytest.skip("no committed records")
    from snnlib.study import evaluations as E

    records = R.load_study(RESULTS)
    evaluations = E.load_study_evaluations(RESULTS)
    claims = C.evaluate_claims(records)
    return records, evaluations, claims, A.answer_sentences(claims, evaluations)


def _mean_test_acc(table: pd.DataFrame, dataset: str, kind: str, site: str) -> float:
    runs = R.base_runs(table, dataset) if kind == "none" else R.cell_runs(table, dataset, kind, site=site)
    planned = P.planned_seeds(dataset, kind, site)
    values = [v for s, v in zip(runs["seed"], runs["test_acc"], strict=True) if s in planned]
    assert len(values) == len(planned)
    return 100 * float(np.mean(values))


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def test_committed_sentences_equal_the_records(committed):
    """Every accuracy and difference the sentences state, computed here from the run records (the planned seeds'
    mean test accuracy of each cell, minus the base network's)."""
    records, _, claims, sentences = committed
    table = R.runs_table(records)
    base = {d: _mean_test_acc(table, d, "none", "current") for d in P.DATASETS}
    assert f"{base['mnist']:.2f}% on MNIST and {base['cifar10']:.2f}% on CIFAR-10" in sentences[0]
    change = {(d, s, k): _mean_test_acc(table, d, P.operation(s, k), s) - base[d]
              for d in P.DATASETS for s in P.SITES for k in P.distinct(s, A.EFFECT_KINDS)}
    labels = {(r.dataset, r.site, r.kind): r.label for r in A.effects(claims).itertuples()}
    for i, dataset in enumerate(P.DATASETS):
        zeroing = {key: v for key, v in change.items() if key[0] == dataset and key[2] in A.ZEROING_KINDS}
        helps = {k: v for k, v in zeroing.items() if labels[k] == "helps"}
        hurts = {k: v for k, v in zeroing.items() if labels[k] == "hurts"}
        sentence = sentences[1 + i]
        assert f"help in {len(helps)} of {len(zeroing)} places and hurt in {len(hurts)}" in sentence
        if helps:
            (_, site, kind), best = max(helps.items(), key=lambda item: item[1])
            assert f"at best {_signed(best)} points ({R.KIND_NAMES[kind]} on {A.SITE_WORDS[site]})" in sentence
        if hurts:
            (_, site, kind), worst = min(hurts.items(), key=lambda item: item[1])
            assert f"at worst {_signed(worst)} ({R.KIND_NAMES[kind]} on {A.SITE_WORDS[site]})" in sentence
    alpha = {key: v for key, v in change.items() if key[2] in A.ALPHA_KINDS and labels[key] == "hurts"}
    (dataset, site, kind), worst = min(alpha.items(), key=lambda item: item[1])
    accuracy = _mean_test_acc(table, dataset, P.operation(site, kind), site)
    assert (f"by {-max(alpha.values()):.2f} to {-worst:.2f} points, down to {accuracy:.2f}% (chance: 10%) with "
            f"{R.KIND_NAMES[kind]} on {A.SITE_WORDS[site]} of {R.DATASET_NAMES[dataset]}") in sentences[3]


def _nll(evaluations: list[dict], dataset: str, kind: str, method: str) -> float:
    """The mean test NLL of ``method`` over the planned seeds 0-9 of the paper's cell, from the evaluation files."""
    values = [ev["methods"][method]["results"]["test"]["nll"] for ev in evaluations
              if ev.get("kind") != "ensemble" and ev["config"]["dataset"] == dataset
              and ev["config"]["variant"] == kind and ev["config"]["seed"] in P.TEN
              and ev["config"]["site"] == "current" and ev["config"]["epochs"] == 20
              and (kind == "none" or (ev["config"]["p"] == 0.5 and not ev["config"]["time_consistent"]))]
    assert len(values) == len(P.TEN)
    return float(np.mean(values))


def test_committed_uncertainty_sentences_equal_the_evaluations(committed):
    """The test NLL of the best MC dropout (50 passes) and of the single base network, from the evaluation files;
    the counts of the verdict from the pre-registered matrix."""
    _, evaluations, _, sentences = committed
    if len(sentences) < 6:
        pytest.skip("no committed uncertainty evaluations")
    for dataset in P.DATASETS:
        mc = {k: _nll(evaluations, dataset, k, "mc_dropout") for k in P.UNCERTAINTY_KINDS}
        best = min(mc, key=mc.get)
        single = _nll(evaluations, dataset, "none", "deterministic")
        temperature = _nll(evaluations, dataset, "none", "temperature")
        assert (f"{R.DATASET_NAMES[dataset]} {mc[best]:.3f} ({R.KIND_NAMES[best]}) against {single:.3f}, "
                f"{temperature:.3f}, ") in sentences[5]
    from snnlib.study import uncertainty_verdict as UV

    matrix = UV.verdict_matrix(UV.verdict_tests(UV.method_values(evaluations)))
    full = matrix[(matrix["role"] == "primary") & (matrix["method"] == f"MC dropout, {P.FULL_PASSES} passes")]
    single = full[full["baseline"] == "deterministic"]
    better = int((single["verdict"] == "better").sum())
    assert f"better than a single base network for {better} of {len(single)} dropout networks" in sentences[4] \
        or (better == 0 and "never better than a single base network" in sentences[4])
    assert 5 <= len(sentences) <= 8 and all(_numbers(s) for s in sentences)


def test_pass_curves_titles_do_not_run_into_each_other(committed):
    """The uncertainty chapter's figure of MC dropout against its passes (snnlib.study.plots.plot_pass_curves): the
    metric names the columns and the dataset the rows, and no title overlaps another (they did: 'test ECE (15
    bins)MNIST: ood AUROC ...')."""
    from snnlib.study import evaluations as E
    from snnlib.study import plots

    _, evaluations, _, _ = committed
    if not evaluations:
        pytest.skip("no committed uncertainty evaluations")
    fig = plots.plot_pass_curves(evaluations, E.evaluations_table(evaluations))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    assert [t.get_text() for t in titles] == [name for *_, name in plots.PASS_PANELS]
    boxes = [t.get_window_extent(renderer) for t in titles]
    assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert [ax.get_ylabel() for ax in fig.axes[::len(plots.PASS_PANELS)]] == ["MNIST", "CIFAR-10"]
    matplotlib.pyplot.close(fig)
