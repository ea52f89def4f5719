"""The figures draw from records of the study's settings, and survive empty and partial data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from recordmaker import make_record  # noqa: E402

from snnlib import plots  # noqa: E402
from snnlib import records as R  # noqa: E402


def study_records():
    records = [make_record("mnist", "none", s, test_acc=0.97 + 0.001 * s) for s in range(3)]
    records += [make_record("mnist", kind, s, site=site, test_acc=0.96) for s in range(3)
                for kind in ("dropout", "alpha") for site in ("current", "hidden")]
    records.append(make_record("mnist", "dropout", 9, status="running"))
    return records


def test_curve_pools_runs_per_epoch_with_sample_std():
    records = [make_record("mnist", "none", s, epochs=3, test_acc=0.9 + 0.02 * s) for s in range(3)]
    records.append(make_record("mnist", "none", 5, epochs=2, test_acc=0.5))
    epoch, mean, std, n = plots.curve(R.epochs_table(records), "test_acc")
    assert list(epoch) == [1, 2, 3] and list(n) == [4, 4, 3]
    assert mean[2] == pytest.approx(0.92) and std[2] == pytest.approx(0.02)
    assert plots.curve(R.epochs_table([]), "test_acc")[0].size == 0


@pytest.mark.parametrize("which", ["full", "partial", "empty"])
def test_figures_survive_any_amount_of_data(which):
    records = {"full": study_records(), "partial": study_records()[:4], "empty": []}[which]
    table = R.runs_table(records)
    for metric in ("train_loss", "test_acc"):
        for dataset in ("mnist", "cifar10"):
            plt.close(plots.plot_comparison(table, dataset, metric))
        plt.close(plots.plot_final(table, metric))
    fig, ax = plt.subplots()
    plots.plot_cells(ax, [("base", R.base_runs(table, "mnist"), {"color": "k"})], "test_acc")
    plt.close(fig)
    if records:
        plt.close(plots.plot_run(records[0]))
        assert plots.epoch_table(records[0]).count("\n") == len(records[0]["epochs"])


def test_comparison_draws_base_and_kind_with_their_seed_counts():
    fig = plots.plot_comparison(R.runs_table(study_records()), "mnist", "test_acc", kinds=["dropout"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["base (n=3)", "dropout (n=3)"]
    line = fig.axes[0].get_lines()[0]
    assert np.allclose(line.get_ydata(), 100 * 0.971)  # accuracies in percent, mean of the three seeds
    plt.close(fig)


def test_forest_colours_each_test_by_its_label_and_writes_waiting_without_data():
    from types import SimpleNamespace

    tests = [SimpleNamespace(difference=-0.01, ci_low=-0.02, ci_high=-0.005, label="yes"),
             SimpleNamespace(difference=0.02, ci_low=0.01, ci_high=0.03, label="contrary"),
             SimpleNamespace(difference=0.001, ci_low=-0.01, ci_high=0.012, label="not significant"),
             SimpleNamespace(difference=float("nan"), ci_low=float("nan"), ci_high=float("nan"), label="no data")]
    fig, ax = plt.subplots()
    plots.forest(ax, tests, 100.0, "points", ["a", "b", "c", "d"])
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_xdata()[0] != 0]
    colors = [line.get_color() for line in lines]
    assert colors == [plots.LABEL_COLORS["yes"], plots.LABEL_COLORS["contrary"], plots.LABEL_COLORS["not significant"]]
    assert list(lines[0].get_xdata()) == pytest.approx([-2.0, -0.5])  # the interval, in points
    assert [t.get_text() for t in ax.texts] == ["waiting for runs"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="one name per test"):
        plots.forest(ax, tests, names=["a"])
    plt.close(fig)


def test_forest_figure_and_verdict_heatmap_draw_the_study():
    from snnlib import claims as C

    result = C.evaluate_claims(study_records())
    fig = plots.forest_figure(result.tests)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()]
    assert len(titles) == len(plots.FOREST_PANELS) and titles[0].startswith("C1 · training loss")
    plt.close(fig)
    import pandas as pd

    matrix = pd.DataFrame([{"dataset": "mnist", "baseline": b, "role": "primary", "kind": "dropout",
                            "method": "MC dropout, 50 passes", "test_nll": "better", "test_ece": "worse",
                            "ood_auroc": "not significant", "mild_nll": "better", "mild_ece": "better",
                            "verdict": "mixed"} for b in ("deterministic", "temperature", "ensemble")])
    fig = plots.verdict_heatmap(matrix, datasets=("mnist",))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["+", "−", "·", "+", "+", "mixed"]
    plt.close(fig)
