"""The figures draw from records of the study's settings, and survive empty and partial data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from recordmaker import make_record  # noqa: E402

from snnlib.study import plots  # noqa: E402
from snnlib.study import records as R  # noqa: E402
from snnlib.study import verdict_plots as VP  # noqa: E402


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
    VP.forest(ax, tests, 100.0, "points", ["a", "b", "c", "d"])
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_xdata()[0] != 0]
    colors = [line.get_color() for line in lines]
    assert colors == [VP.LABEL_COLORS["yes"], VP.LABEL_COLORS["contrary"], VP.LABEL_COLORS["not significant"]]
    assert list(lines[0].get_xdata()) == pytest.approx([-2.0, -0.5])  # the interval, in points
    assert [t.get_text() for t in ax.texts] == ["waiting for runs"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="one name per test"):
        VP.forest(ax, tests, names=["a"])
    plt.close(fig)


def test_forest_figure_and_verdict_heatmap_draw_the_study():
    from snnlib.study import claims as C

    result = C.evaluate_claims(study_records())
    fig = VP.forest_figure(result.tests)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()]
    assert len(titles) == len(VP.FOREST_PANELS) and titles[0].startswith("C1 · training loss")
    plt.close(fig)
    import pandas as pd

    matrix = pd.DataFrame([{"dataset": "mnist", "baseline": b, "role": "primary", "kind": "dropout",
                            "method": "MC dropout, 50 passes", "test_nll": "better", "test_ece": "worse",
                            "ood_auroc": "not significant", "mild_nll": "better", "mild_ece": "better",
                            "verdict": "mixed"} for b in ("deterministic", "temperature", "ensemble")])
    fig = VP.verdict_heatmap(matrix, datasets=("mnist",))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["+", "−", "·", "+", "+", "mixed"]
    plt.close(fig)


# ---------------------------------------------------------------- the analysis chapters' figures

@pytest.mark.parametrize("which", ["full", "partial", "empty"])
def test_chapter_figures_survive_any_amount_of_data(which):
    from snnlib.study import claims as C
    from snnlib.study import questions as F

    records = {"full": study_records(), "partial": study_records()[:4], "empty": []}[which]
    table = R.runs_table(records)
    for site in ("current", "hidden", "input"):
        plt.close(plots.plot_site_curves(table, "mnist", site))
    plt.close(plots.plot_rate_mask(table))
    for tests in (F.mask_tests(table), F.rate_tests(table), F.budget_tests(table), []):
        plt.close(VP.plot_secondary_tests(tests, lambda t: t.dataset))
    plt.close(VP.plot_c3_tests(C.evaluate_claims(table).tests))
    plt.close(plots.plot_agreement(table))
    plt.close(plots.plot_site_differences(table))
    plt.close(plots.plot_site_differences(F.generalization_gap(table), "gap"))


def test_site_curves_draw_one_column_per_operation_and_say_what_waits():
    fig = plots.plot_site_curves(R.runs_table(study_records()), "mnist", "hidden")
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["dropout\n(n=3)", "dropout2d = feature\ndropout\n(n=0)", "feature alpha dropout\n(n=0)",
                      "alpha dropout\n(n=3)"]
    assert len(fig.axes) == 3 * 4  # three metrics, four operations on the hidden spikes
    assert [t.get_text() for t in fig.axes[1].texts] == ["waiting\nfor runs"]
    assert fig.axes[0].get_yscale() == "linear"  # the losses of these records are all 0.1: no log scale
    plt.close(fig)
    records = [make_record("mnist", "none", s, train_loss=0.001) for s in range(2)]
    records += [make_record("mnist", "dropout", s, site="hidden", train_loss=0.1) for s in range(2)]
    fig = plots.plot_site_curves(R.runs_table(records), "mnist", "hidden", kinds=["dropout"])
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "linear", "linear"]  # spans 100x; the others 1x
    plt.close(fig)
    fig = plots.plot_site_curves(R.runs_table(study_records()), "mnist", "input")
    assert len(fig.axes) == 3 * 3 and fig.axes[0].get_title().replace("\n", " ").startswith(
        "dropout = dropout2d = feature dropout")
    plt.close(fig)


def test_secondary_tests_show_only_tests_with_data_and_colour_significance():
    from types import SimpleNamespace

    def test(label, p, difference=0.01):
        return SimpleNamespace(metric="test_acc", label=label, difference=difference, ci_low=difference - 0.005,
                               ci_high=difference + 0.005, p=p)

    tests = [test("higher", 0.5), test("not significant", 0.3, 0.0), test("no data", 0.1, float("nan"))]
    fig = VP.plot_secondary_tests(tests, lambda t: f"p = {t.p}")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["p = 0.5", "p = 0.3"]
    intervals = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_xdata()[0] != 0]
    assert [line.get_color() for line in intervals] == [VP.SIGNIFICANT_COLOR, VP.LABEL_COLORS["not significant"]]
    assert list(intervals[0].get_xdata()) == pytest.approx([0.5, 1.5])  # percentage points
    plt.close(fig)


def test_c3_tests_and_agreement_figures_draw_the_groups():
    from matplotlib.collections import PathCollection

    from snnlib.study import claims as C

    rng = np.random.default_rng(0)
    records = []
    for s in range(10):
        base = rng.random(16).tolist()
        records += [make_record("mnist", "none", s, importance=base, silencing=base),
                    make_record("mnist", "none", 100 + s, init_seed=s, importance=base, silencing=base)]
        records += [make_record("mnist", kind, s, importance=rng.random(16).tolist(), silencing=base)
                    for kind in ("dropout", "dropout2d", "feature_alpha", "alpha")]
    table = R.runs_table(records)
    fig = VP.plot_c3_tests(C.evaluate_claims(table).tests)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "MNIST · dropout", "MNIST · dropout2d = feature dropout", "MNIST · feature alpha dropout",
        "MNIST · alpha dropout"]  # CIFAR-10 waits: left out
    plt.close(fig)
    fig = plots.plot_agreement(table, datasets=("mnist",))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[-2:] == ["control (no dropout)", "another seed (chance)"] and len(labels) == 6
    points = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    control = points[4]  # the control's points: every seed keeps its base run's top 10
    assert list(control.get_offsets()[:, 0]) == pytest.approx([10.0] * 10)
    plt.close(fig)


def test_site_differences_subtract_the_base_and_clip_a_far_point_at_the_edge():
    records = [make_record("mnist", "none", s, test_acc=0.97 + 0.001 * s) for s in range(3)]
    records += [make_record("mnist", "dropout", s, test_acc=0.975) for s in range(3)]
    records += [make_record("mnist", "alpha", s, site="hidden", test_acc=0.965) for s in range(3)]
    records += [make_record("mnist", "feature_alpha", s, test_acc=0.70) for s in range(3)]
    fig = plots.plot_site_differences(R.runs_table(records), datasets=("mnist",))
    ax = fig.axes[0]
    points = {line.get_marker(): line.get_xdata()[0] for line in ax.get_lines() if line.get_marker() in "os<"}
    assert points["o"] == pytest.approx(0.4) and points["s"] == pytest.approx(-0.6)  # points, against 97.1
    assert points["<"] == pytest.approx(ax.get_xlim()[0], abs=0.5)  # -27.1 points: at the edge
    assert [t.get_text() for t in ax.texts] == ["-27.1"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["on the synaptic current", "on the hidden spikes", "base network ± 1 std"]
    plt.close(fig)
