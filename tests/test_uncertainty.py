"""Uncertainty: metrics against hand-computed cases and references computed another way, the
test-time dropout passes (deterministic given the seed, equal to the network's own training
forward), the single-pass estimate, temperature scaling, the evaluation of a run and of an
ensemble, and the command (resumable, one-line errors). The shift sets: test_shift.py."""

from __future__ import annotations

import argparse
import json
import math
import shutil

import numpy as np
import pytest
import torch

from snnlib.experiment import data as D
from snnlib.experiment.config import RunConfig
from snnlib.experiment.run import run, write_record
from snnlib.experiment.system import save_torch_atomic, strict_json
from snnlib.model.network import SRMNetwork
from snnlib.uncertainty import command, metrics, predict
from snnlib.uncertainty import evaluate as U

TINY = dict(dataset="mnist", epochs=2, train_subset=2000, test_subset=500, val_size=500)
FAST = ["--passes", "3", "--shift-subset", "100", "--angles", "90", "180", "--threads", "1"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tests share the machine with long runs: one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- metrics by hand

PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
LABELS = np.array([0, 1, 1, 0])


def test_accuracy_nll_brier_by_hand():
    assert metrics.accuracy(PROBS, LABELS) == 0.5
    assert metrics.nll(PROBS, LABELS) == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.2)) / 4)
    # per sample: 0.01 + 0.01, 0.36 + 0.36, 0.09 + 0.09, 0.64 + 0.64
    assert metrics.brier_score(PROBS, LABELS) == pytest.approx(2.2 / 4)
    # torch tensors are accepted too
    assert metrics.accuracy(torch.tensor(PROBS), torch.tensor(LABELS)) == 0.5


def test_nll_of_a_zero_probability_is_finite():
    assert math.isfinite(metrics.nll(np.array([[1.0, 0.0]]), np.array([1])))


def test_ece_by_hand():
    # 10 bins; confidences 0.95, 0.65, 0.75, 0.85 in four bins, correct, wrong, correct, wrong
    probs = np.array([[0.95, 0.05], [0.35, 0.65], [0.75, 0.25], [0.15, 0.85]])
    labels = np.array([0, 0, 0, 0])
    assert metrics.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx((0.05 + 0.65 + 0.25 + 0.85) / 4)
    # two samples in one bin (0.91 right, 0.93 wrong) and one alone (0.75 right)
    probs = np.array([[0.91, 0.09], [0.07, 0.93], [0.75, 0.25]])
    labels = np.array([0, 0, 0])
    want = 2 / 3 * abs(0.5 - 0.92) + 1 / 3 * abs(1 - 0.75)
    assert metrics.expected_calibration_error(probs, labels, n_bins=15) == pytest.approx(want)
    # perfectly confident and right: 0
    assert metrics.expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def _ece_loop(probs, labels, n_bins):
    """Guo et al.'s definition, written as the explicit loop over bins of their code."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs((pred[inside] == labels[inside]).mean() - conf[inside].mean())
    return ece


@pytest.mark.parametrize("n_bins", [1, 5, 15, 40])
def test_ece_and_reliability_diagram_match_the_loop_over_bins(n_bins):
    rng = np.random.default_rng(n_bins)
    logits = rng.normal(size=(3000, 10)) * rng.uniform(0.1, 5.0, size=(3000, 1))
    probs, labels = metrics.softmax(logits), rng.integers(0, 10, 3000)
    expected = _ece_loop(probs, labels, n_bins)
    assert metrics.expected_calibration_error(probs, labels, n_bins) == pytest.approx(expected, abs=1e-12)
    diagram = metrics.reliability_diagram(probs, labels, n_bins)
    assert sum(diagram["count"]) == 3000 and len(diagram["confidence"]) == n_bins
    conf = probs.max(1)
    for b in range(n_bins):
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        inside = (conf > edges[b]) & (conf <= edges[b + 1])
        assert diagram["count"][b] == inside.sum()
        if inside.any():
            assert diagram["confidence"][b] == pytest.approx(conf[inside].mean())
            assert diagram["accuracy"][b] == pytest.approx((probs.argmax(1)[inside] == labels[inside]).mean())
        else:
            assert math.isnan(diagram["confidence"][b])


def test_accuracy_coverage_by_hand():
    probs = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])  # confidences .6 .9 .8 .7
    labels = np.array([0, 0, 0, 1])  # right, right, wrong, right
    out = metrics.accuracy_coverage(probs, labels, coverages=(0.25, 0.5, 0.75, 1.0))
    assert out["accuracy"] == pytest.approx([1.0, 0.5, 2 / 3, 0.75])
    assert out["mean_accuracy"] == pytest.approx((1 + 0.5 + 2 / 3 + 0.75) / 4)


def test_entropy_and_mutual_information_by_hand():
    assert metrics.predictive_entropy(np.array([[0.25] * 4, [1.0, 0, 0, 0]])) == pytest.approx([math.log(4), 0.0])
    assert metrics.predictive_entropy(np.array([[0.5, 0.5]]))[0] == pytest.approx(math.log(2))
    # two confident samples that disagree: entropy of the mean log 2, mean entropy 0
    samples = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert metrics.mutual_information(samples) == pytest.approx([math.log(2)])
    # samples that agree carry no mutual information
    assert metrics.mutual_information(np.array([[[0.3, 0.7]], [[0.3, 0.7]]])) == pytest.approx([0.0])
    # weights: a sample of weight 0 does not count
    samples = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]])
    assert metrics.mutual_information(samples, np.array([[1.0], [0.0], [1.0]])) == pytest.approx([0.0])
    # three samples, p = (.9, .1), (.5, .5), (.1, .9): mean (.5, .5)
    samples = np.array([[[0.9, 0.1]], [[0.5, 0.5]], [[0.1, 0.9]]])
    h = lambda p: -p * math.log(p) - (1 - p) * math.log(1 - p)  # noqa: E731
    assert metrics.mutual_information(samples)[0] == pytest.approx(math.log(2) - (2 * h(0.9) + h(0.5)) / 3)


def _auroc_pairs(a, b):
    """Brute force: every (in, out) pair, out above in counts 1, a tie 1/2."""
    return sum((y > x) + 0.5 * (y == x) for x in a for y in b) / (len(a) * len(b))


@pytest.mark.parametrize("seed", range(4))
def test_auroc_matches_the_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=rng.integers(1, 40)).astype(float)  # few values: many ties
    b = rng.integers(2, 8, size=rng.integers(1, 40)).astype(float)
    assert metrics.auroc(a, b) == pytest.approx(_auroc_pairs(a, b), abs=1e-12)


def test_auroc_extremes_and_ranks():
    assert metrics.auroc([0.1, 0.2], [0.3, 0.9]) == 1.0
    assert metrics.auroc([0.3, 0.9], [0.1, 0.2]) == 0.0
    assert metrics.auroc([0.5, 0.5], [0.5]) == 0.5
    from scipy.stats import rankdata

    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    assert np.array_equal(metrics.average_ranks(x), rankdata(x))
    with pytest.raises(ValueError):
        metrics.auroc([], [1.0])


# ---------------------------------------------------------------- temperature scaling

def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 10)) * 3.0
    true_t = 2.5
    labels = np.array([rng.choice(10, p=p) for p in metrics.softmax(logits, true_t)])
    fitted = metrics.fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_t, rel=0.05)
    assert metrics.temperature_nll(logits, labels, fitted) <= metrics.temperature_nll(logits, labels, 1.0)
    # the labels of already calibrated logits give T near 1
    labels1 = np.array([rng.choice(10, p=p) for p in metrics.softmax(logits)])
    assert metrics.fit_temperature(logits, labels1) == pytest.approx(1.0, rel=0.05)


def test_temperature_nll_is_the_nll_of_the_scaled_softmax():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(50, 4)) * 10, rng.integers(0, 4, 50)
    assert metrics.temperature_nll(logits, labels, 3.0) == pytest.approx(metrics.nll(metrics.softmax(logits, 3.0), labels))


# ---------------------------------------------------------------- the single-pass estimate

def test_time_average_by_hand():
    # sample 0: outputs silent for two steps, then (1, 0) and (0.5, 2); sample 1: silent throughout
    u = torch.zeros(4, 2, 2, dtype=torch.float64)
    u[2, 0] = torch.tensor([1.0, 0.0])
    u[3, 0] = torch.tensor([0.5, 2.0])
    sm = lambda *z: np.exp(z) / np.exp(z).sum()  # noqa: E731
    probs, mi = predict.time_average_probs(u, 1.0, "running_max")
    assert probs[0] == pytest.approx((sm(1.0, 0.0) + sm(1.0, 2.0)) / 2)  # steps 2 and 3 only
    assert probs[1] == pytest.approx([0.5, 0.5])
    samples = np.stack([sm(1.0, 0.0), sm(1.0, 2.0)])[:, None]
    assert mi[0] == pytest.approx(metrics.mutual_information(samples)[0])
    probs, _ = predict.time_average_probs(u, 2.0, "potential")
    assert probs[0] == pytest.approx((sm(2.0, 0.0) + sm(1.0, 4.0)) / 2)
    with pytest.raises(ValueError):
        predict.time_average_probs(u, 1.0, "mean")


def test_running_max_ends_at_the_network_logits():
    """The last step of the running-max readout is the pass's own prediction."""
    model = _tiny_network()
    times, order = _random_times(64)
    model.eval()
    with torch.no_grad():
        spikes, _ = model.hidden_spikes(times, order)
        u = model.output_potential(spikes)
        logits = model(times, order).logits
    last = torch.cummax(u, 0).values.clamp(min=0)[-1] * model.config.readout_scale
    assert torch.allclose(last, logits, atol=1e-6)


# ---------------------------------------------------------------- test-time dropout passes

def _tiny_network(**overrides) -> SRMNetwork:
    torch.manual_seed(1)
    config = dict(in_features=60, hidden=32, init_gain=3.0, dropout="dropout", p=0.5)
    return SRMNetwork(**{**config, **overrides}).eval()


def _random_times(n: int, features: int = 60, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    times = torch.randint(0, 16, (n, features), generator=g).to(torch.uint8)
    times[torch.rand(n, features, generator=g) < 0.5] = 255  # silent inputs
    return times, torch.sort(times, dim=1, stable=True).indices.int()


def _dataset(n: int = 130, features: int = 60) -> D.EncodedDataset:
    times, order = _random_times(n, features)
    return D.EncodedDataset(times, order.to(torch.int16), torch.arange(n) % 10)


@pytest.mark.parametrize("overrides", [
    dict(site="current"), dict(site="current", time_consistent=True), dict(site="current", dropout="alpha"),
    dict(site="current", dropout="dropout2d"), dict(site="hidden"), dict(site="hidden", dropout="feature_alpha"),
    dict(site="input"), dict(site="input", dropout="alpha"),
])
def test_passes_are_the_networks_own_training_forward(overrides):
    """Each pass gives the logits of model.train(); model(x) after the same seeding."""
    model = _tiny_network(**overrides)
    times, order = _random_times(40)
    seeds = [11, 12, 13]
    got = [model.config.readout_scale * u.amax(0) for u, _ in predict._stochastic_potentials(model, times, order, seeds)]
    assert not model.training  # restored to eval mode
    for seed, logits in zip(seeds, got, strict=True):
        model.train()
        torch.manual_seed(seed)
        with torch.no_grad():
            want = model(times, order).logits
        model.eval()
        assert torch.allclose(logits, want, atol=1e-5)
    assert not torch.allclose(got[0], got[1])  # the masks differ between passes


@pytest.mark.parametrize("overrides", [dict(dropout="none", p=0.0), dict(dropout="dropout", p=0.0)])
def test_mc_dropout_without_dropout_is_the_deterministic_prediction(overrides):
    model = _tiny_network(**overrides)
    data = _dataset()
    det, det_events = predict.deterministic_logits(model, data, batch_size=50)
    passes = predict.sample_passes(model, data, 4, mask_seed=3, batch_size=50)
    for k in range(4):
        assert torch.allclose(passes.logits[k], det, atol=1e-6)
        assert torch.equal(passes.events[k], det_events)
    assert np.allclose(predict.mc_dropout(model, data, 4, 3, 50).mean(0), metrics.softmax(det))
    assert np.allclose(metrics.mutual_information(passes.probs()), 0.0, atol=1e-12)


def test_test_time_masks_are_deterministic_given_the_seed():
    model = _tiny_network()
    data = _dataset()
    state = torch.get_rng_state()
    a = predict.sample_passes(model, data, 5, mask_seed=7, batch_size=50)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is untouched
    torch.manual_seed(123)  # whatever the global state, the same masks
    b = predict.sample_passes(model, data, 5, mask_seed=7, batch_size=50)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.events, b.events)
    for readout in predict.TIME_READOUTS:
        assert np.array_equal(a.time_probs[readout], b.time_probs[readout])
    other = predict.sample_passes(model, data, 5, mask_seed=8, batch_size=50)
    assert not torch.equal(a.logits, other.logits)
    # pass k is the same pass whatever N: the curve over N comes from one set of passes
    fewer = predict.sample_passes(model, data, 2, mask_seed=7, batch_size=50)
    assert torch.equal(fewer.logits, a.logits[:2])
    # the single-pass estimate comes from pass 0
    probs, _ = predict.single_pass(model, data, mask_seed=7, batch_size=50)
    assert np.array_equal(probs, a.time_probs["running_max"])
    assert not model.training


def test_passes_count_synaptic_events_as_the_records_do():
    model = _tiny_network(dropout="none", p=0.0)
    times, order = _random_times(20)
    model.eval()
    with torch.no_grad():
        out = model(times, order)
    c = model.config
    want = out.input_spikes * c.K * c.hidden + float(out.hidden_spikes.sum()) * c.K * c.out_features
    _, events = predict.deterministic_logits(model, D.EncodedDataset(times, order.to(torch.int16), torch.zeros(20).long()))
    assert float(events.sum()) == pytest.approx(want)


# ---------------------------------------------------------------- a finished run, the command

@pytest.fixture(scope="module")
def runs(real_data_dir, tmp_path_factory):
    """Two tiny finished MNIST runs with a validation split: dropout and base, seed 0."""
    root = tmp_path_factory.mktemp("uncertainty")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SNNLIB_DATA", str(real_data_dir))
        for name, extra in (("dropout", dict(variant="dropout", p=0.5)), ("base", {})):
            run(RunConfig(**TINY, **extra), root / name, device="cpu", progress=False, log=lambda s: None)
    return root


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


def test_evaluate_run_records_every_method(runs, use_real_data, monkeypatch):
    seen = []
    real_fit = metrics.fit_temperature

    def spy(logits, labels, *args, **kwargs):
        seen.append((np.asarray(logits).copy(), metrics._np(labels).copy()))
        return real_fit(logits, labels, *args, **kwargs)

    monkeypatch.setattr(U, "fit_temperature", spy)
    result = U.evaluate_run(runs / "dropout", passes=4, mask_seed=0, shift_subset=60, angles=(90,))
    methods = result["methods"]
    assert set(methods) == {"deterministic", "temperature", "mc_dropout", "single_pass_running_max",
                            "single_pass_potential"}
    assert set(result["sets"]) == {"test", "rotate90", "ood_cifar10"}
    test = methods["deterministic"]["results"]["test"]
    assert test["samples"] == 500 and test["accuracy"] == pytest.approx(result["record_test_acc"])
    assert methods["deterministic"]["cost"]["synaptic_events_per_prediction"] == pytest.approx(
        result["record_test_synaptic_events"])
    # temperature: fitted on the validation split alone (the last 500 training samples)
    assert len(seen) == 1
    _, val_labels = D.split_validation(*D.load("mnist", "train"), 500)[1]
    assert np.array_equal(seen[0][1], val_labels)
    assert methods["temperature"]["validation_samples"] == 500
    assert methods["temperature"]["validation_nll_after"] <= methods["temperature"]["validation_nll_before"]
    mc = methods["mc_dropout"]
    assert mc["cost"]["forward_passes"] == 4 and mc["passes"] == 4
    assert mc["curve"]["test"]["n"] == [1, 2, 3, 4]
    assert mc["curve"]["test"]["accuracy"][-1] == pytest.approx(mc["results"]["test"]["accuracy"])
    assert mc["curve"]["test"]["mean_mutual_information"][0] == 0.0
    assert set(mc["curve"]["ood_cifar10"]["auroc_vs_test"]) == {"max_prob", "entropy", "mutual_information"}
    assert "accuracy" not in mc["results"]["ood_cifar10"]  # OOD labels mean nothing
    assert set(mc["results"]["rotate90"]["auroc_vs_test"]) == {"max_prob", "entropy", "mutual_information"}
    assert mc["cost"]["synaptic_events_per_prediction"] > 3 * methods["deterministic"]["cost"][
        "synaptic_events_per_prediction"]
    assert result["settings"]["passes"] == 4 and result["settings"]["mask_seed"] == 0
    json.dumps(strict_json(result), allow_nan=False)  # JSON-able


def test_evaluation_is_deterministic_given_the_mask_seed(runs, use_real_data):
    kwargs = dict(passes=3, shift_subset=40, angles=(180,))
    a = U.evaluate_run(runs / "dropout", mask_seed=5, **kwargs)["methods"]
    b = U.evaluate_run(runs / "dropout", mask_seed=5, **kwargs)["methods"]
    c = U.evaluate_run(runs / "dropout", mask_seed=6, **kwargs)["methods"]
    for m in a:  # (strict_json: an empty bin's NaN reads null, which compares equal)
        assert strict_json(a[m]["results"]) == strict_json(b[m]["results"])
    assert strict_json(a["deterministic"]["results"]) == strict_json(c["deterministic"]["results"])
    assert a["mc_dropout"]["results"]["test"]["nll"] != c["mc_dropout"]["results"]["test"]["nll"]


def test_base_run_gets_no_sampling_methods(runs, use_real_data):
    result = U.evaluate_run(runs / "base", passes=3, shift_subset=30, angles=(90,))
    assert set(result["methods"]) == {"deterministic", "temperature"} and not result["has_dropout"]
    assert set(result["not_evaluated"]) == {"mc_dropout", "single_pass_running_max", "single_pass_potential"}


def test_no_validation_split_no_temperature(runs, use_real_data, tmp_path):
    """Temperature scaling is never fitted on the test set: without a validation split it is left out."""
    folder = tmp_path / "no_val"
    shutil.copytree(runs / "base", folder)
    record = json.loads((folder / "metrics.json").read_text())
    record["config"]["val_size"] = 0
    saved = torch.load(folder / "weights.pt", weights_only=True)  # the weights name their configuration too
    saved["config"]["val_size"] = 0
    record["weights_sha256"] = save_torch_atomic(folder / "weights.pt", saved)
    write_record(folder / "metrics.json", record)  # sealed again: the record was changed on purpose
    result = U.evaluate_run(folder, passes=2, shift_subset=20, angles=(90,))
    assert set(result["methods"]) == {"deterministic"} and "temperature" in result["not_evaluated"]


def test_command_is_resumable(runs, use_real_data, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(runs / "dropout", folder)
    assert command.main(_parse([str(folder), *FAST])) == 0
    written = (folder / U.OUTPUT_FILE).read_bytes()
    record = json.loads(written)
    assert record["settings"]["passes"] == 3 and record["methods"]["mc_dropout"]["mask_seed"] == 0
    assert str(tmp_path) not in written.decode()  # no path of this machine in the record
    capsys.readouterr()
    assert command.main(_parse([str(folder), *FAST])) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (folder / U.OUTPUT_FILE).read_bytes() == written
    # other settings: refused, file untouched; replaced with --overwrite
    assert command.main(_parse([str(folder), *FAST, "--mask-seed", "1"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--overwrite" in err
    assert (folder / U.OUTPUT_FILE).read_bytes() == written
    assert command.main(_parse([str(folder), *FAST, "--mask-seed", "1", "--overwrite"])) == 0
    assert json.loads((folder / U.OUTPUT_FILE).read_text())["settings"]["mask_seed"] == 1


def test_command_ensemble(runs, use_real_data, tmp_path, capsys):
    members = [tmp_path / "a", tmp_path / "b"]
    shutil.copytree(runs / "dropout", members[0])
    shutil.copytree(runs / "base", members[1])
    out = tmp_path / "ensembles" / "ensemble_ab.json"
    argv = [str(m) for m in members] + [*FAST, "--ensemble", str(out)]
    assert command.main(_parse(argv)) == 0
    record = json.loads(out.read_text())
    assert [m["path"] for m in record["members"]] == ["../a", "../b"]
    ens = record["methods"]["ensemble"]
    assert ens["cost"]["forward_passes"] == 2
    assert set(ens["results"]["ood_cifar10"]["auroc_vs_test"]) == {"max_prob", "entropy", "mutual_information"}
    first = [json.loads((m / U.OUTPUT_FILE).read_text()) for m in members]
    events = sum(f["methods"]["deterministic"]["cost"]["synaptic_events_per_prediction"] for f in first)
    assert ens["cost"]["synaptic_events_per_prediction"] == pytest.approx(events)
    before = out.read_bytes()
    capsys.readouterr()
    assert command.main(_parse(argv)) == 0
    assert out.read_bytes() == before and capsys.readouterr().out.count("nothing to do") == 3


def _one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert command.main(_parse(argv)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    return captured.err


def test_command_refuses_bad_input_in_one_line(runs, use_real_data, tmp_path, capsys):
    good = tmp_path / "good"
    shutil.copytree(runs / "dropout", good)
    no_weights = tmp_path / "no_weights"
    shutil.copytree(runs / "dropout", no_weights)
    (no_weights / "weights.pt").unlink()
    running = tmp_path / "running"
    shutil.copytree(runs / "dropout", running)
    record = json.loads((running / "metrics.json").read_text())
    write_record(running / "metrics.json", {**record, "status": "running"})
    assert "missing" in _one_line_error(capsys, [str(no_weights), *FAST])
    assert "not finished" in _one_line_error(capsys, [str(running), *FAST])
    assert "no readable run record" in _one_line_error(capsys, [str(tmp_path / "absent"), *FAST])
    assert "--passes" in _one_line_error(capsys, [str(good), *FAST, "--passes", "0"])
    assert "--shift-subset" in _one_line_error(capsys, [str(good), *FAST, "--shift-subset", "0"])
    assert "--ensemble" in _one_line_error(capsys, [str(good), *FAST, "--ensemble", str(tmp_path / "e.json")])
    assert "twice" in _one_line_error(capsys, [str(good), str(good), *FAST])
    # a bad run among good ones: nothing is computed or written for any of them
    assert "missing" in _one_line_error(capsys, [str(good), str(no_weights), *FAST])
    assert not any((d / U.OUTPUT_FILE).exists() for d in (good, no_weights, running))
    assert not (tmp_path / "e.json").exists()


@pytest.mark.slow
def test_cifar10_run_end_to_end(real_data_dir, tmp_path, capsys):
    """A tiny CIFAR-10 dropout run through the command: noise, blur and OOD sets."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SNNLIB_DATA", str(real_data_dir))
        run(RunConfig(**{**TINY, "dataset": "cifar10"}, variant="dropout2d", p=0.5), tmp_path / "c",
            device="cpu", progress=False, log=lambda s: None)
        assert command.main(_parse([str(tmp_path / "c"), *FAST])) == 0
    record = json.loads((tmp_path / "c" / U.OUTPUT_FILE).read_text())
    assert set(record["sets"]) == {"test", *(f"noise{i}" for i in range(1, 6)), *(f"blur{i}" for i in range(1, 6)),
                                   "ood_mnist"}
    assert record["sets"]["blur5"]["parameter"] == 1.0
    assert "single_pass_running_max" in record["methods"]


def test_curve_points_and_rounding_keep_the_record_small():
    assert metrics.curve_points(4) == [1, 2, 3, 4]
    points = metrics.curve_points(50)
    assert points[-1] == 50 and points[:3] == [1, 2, 3] and len(points) < 20
    assert metrics.curve_points(7) == [1, 2, 3, 4, 5, 6, 7]
    value = metrics.rounded({"x": [0.123456789123, 12345.678901], "n": 3, "nan": float("nan")})
    assert value["x"] == [0.1234568, 12345.68] and value["n"] == 3 and math.isnan(value["nan"])


def test_a_full_disk_is_one_line_and_exit_1(runs, use_real_data, tmp_path, monkeypatch, capsys):
    from snnlib.experiment.system import StorageError

    folder = tmp_path / "run"
    shutil.copytree(runs / "base", folder)

    def full(path, obj):
        raise StorageError(28, f"cannot write {path}: no space left on the device")

    monkeypatch.setattr(command, "write_json_atomic", full)
    assert command.main(_parse([str(folder), *FAST])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write") and "no space left" in err[0]
    assert not (folder / U.OUTPUT_FILE).exists()
