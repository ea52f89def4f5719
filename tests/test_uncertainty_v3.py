"""Evaluation version 3 (the second round's block 5): the near-OOD set (patches shuffled: every image keeps its
pixel values, so its input spikes; the spike counter's AUROC: test_uncertainty_reruns.py), the temperature fits
of methods that average softmaxes (known answers), the version-3 evaluation of a tiny real run and of an ensemble
(version 2's numbers unchanged beside them), and the command's option."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch

from snnlib.experiment import data as D
from snnlib.experiment.config import RunConfig
from snnlib.experiment.run import load_trained, run
from snnlib.experiment.system import strict_json
from snnlib.uncertainty import command, metrics, scaled
from snnlib.uncertainty import evaluate as U
from snnlib.uncertainty import shift as S
from snnlib.uncertainty.predict import deterministic_logits, sample_passes

TINY = dict(dataset="mnist", epochs=1, train_subset=2000, test_subset=400, val_size=400)
SMALL = dict(shift_subset=80, angles=(90,))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tests share the machine with long runs: one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- the near-OOD set

def _patch(image: np.ndarray, index: int, side: int) -> np.ndarray:
    r, c = divmod(index, S.PATCH_GRID)
    return image[r * side:(r + 1) * side, c * side:(c + 1) * side]


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_patch_shuffle_keeps_every_pixel_value_and_so_every_input_spike(dataset, use_real_data):
    images, labels = D.subset(*D.load(dataset, "test"), 300)
    shuffled = S.patch_shuffle(images)
    assert shuffled.shape == images.shape and shuffled.dtype == np.uint8
    flat_a, flat_b = images.reshape(300, -1), shuffled.reshape(300, -1)
    assert np.array_equal(np.sort(flat_a, axis=1), np.sort(flat_b, axis=1))  # each image's multiset of values
    assert (flat_a != flat_b).any(axis=1).mean() > 0.95  # and the picture is another one
    a, b = D.encode(images, labels, 12), D.encode(shuffled, labels, 12)
    assert torch.equal((a.times != 255).sum(1), (b.times != 255).sum(1))  # input spikes per image
    assert torch.equal(torch.sort(a.times, 1).values, torch.sort(b.times, 1).values)  # and their times
    # output patch j is input patch perm[j], the channels of a pixel together
    side = images.shape[1] // S.PATCH_GRID
    perm = S.patch_permutations(300)
    for i in (0, 7, 299):
        for j in range(S.PATCH_GRID ** 2):
            assert np.array_equal(_patch(shuffled[i], j, side), _patch(images[i], perm[i, j], side))


def test_patch_shuffle_is_a_pure_function_of_the_image_and_the_seed():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    assert np.array_equal(S.patch_shuffle(images), S.patch_shuffle(images))
    assert np.array_equal(S.patch_shuffle(images)[:20], S.patch_shuffle(images[:20]))  # whatever the subset size
    assert not np.array_equal(S.patch_shuffle(images), S.patch_shuffle(images, seed=S.PATCH_SEED + 1))
    assert np.array_equal(S.patch_shuffle(images, grid=1), images)  # one patch: nothing moves
    perm = S.patch_permutations(50)
    assert (np.sort(perm, 1) == np.arange(16)).all()
    with pytest.raises(ValueError, match="multiples"):
        S.patch_shuffle(rng.integers(0, 256, (2, 30, 30), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        S.patch_shuffle(images.astype(np.float32))


def test_the_near_ood_set_is_in_version_3_only():
    for dataset, side in (("mnist", 7.0), ("cifar10", 8.0)):
        v2 = S.shift_specs(dataset, (90,))
        assert all(s.kind != S.NEAR_OOD for s in v2)
        v3 = S.shift_specs(dataset, (90,), near_ood=True)
        assert v3[:-1] == v2
        near = v3[-1]
        assert (near.name, near.kind, near.family, near.level, near.parameter) == (
            "near_ood", "near_ood", "patch_shuffle", 4, side)
        assert not near.labelled and near.describe()["source"] == dataset


def test_the_near_ood_images_are_the_test_images_shuffled(use_real_data):
    spec = S.shift_specs("mnist", (), near_ood=True)[-1]
    images, labels = S.shift_images(spec, 100)
    test_images, test_labels = D.subset(*D.load("mnist", "test"), 100)
    assert np.array_equal(images, S.patch_shuffle(test_images)) and np.array_equal(labels, test_labels)


# ---------------------------------------------------------------- the fits (known answers)

def _sampled(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from their own softmax: temperature 1 is the right one."""
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.normal(size=(n, 10))
    p = metrics.softmax(z)
    y = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1)
    return z, y


def test_the_nll_of_a_mean_of_scaled_softmaxes():
    z, y = _sampled(500)
    # one sample: temperature scaling's NLL
    assert scaled.mean_temperature_nll(z, y, 1.7) == pytest.approx(metrics.temperature_nll(z, y, 1.7), rel=1e-12)
    # several: the NLL of the mean of the scaled softmaxes, computed the plain way
    stack = np.stack([z, 0.5 * z, z[::-1]])
    mean = metrics.softmax(stack, 0.8).mean(0)
    assert scaled.mean_temperature_nll(stack, y, 0.8) == pytest.approx(metrics.nll(mean, y), rel=1e-12)
    assert np.allclose(np.exp(scaled.mean_log_probs(stack, 0.8)), mean)
    with pytest.raises(ValueError):
        scaled.mean_temperature_nll(stack, y[:-1], 1.0)
    with pytest.raises(ValueError):
        scaled.mean_log_probs(stack, 0.0)


def test_the_fit_finds_a_known_temperature():
    z, y = _sampled()
    for factor in (0.5, 3.0):  # logits scaled by a known factor: the fitted temperature undoes it
        assert scaled.fit_mean_temperature(factor * z, y) == pytest.approx(factor, rel=0.05)
    # one sample is temperature scaling's fit; identical copies are one sample
    t = scaled.fit_mean_temperature(3.0 * z, y)
    assert t == pytest.approx(metrics.fit_temperature(3.0 * z, y), rel=1e-4)
    assert scaled.fit_mean_temperature(np.stack([3.0 * z] * 4), y) == pytest.approx(t, rel=1e-6)
    # scaling every sample's logits by c scales the fitted temperature by c
    rng = np.random.default_rng(2)
    stack = z[None] + rng.normal(size=(5, *z.shape))
    t5 = scaled.fit_mean_temperature(stack, y)
    assert scaled.fit_mean_temperature(4.0 * stack, y) == pytest.approx(4.0 * t5, rel=1e-4)
    assert scaled.mean_temperature_nll(stack, y, t5) <= scaled.mean_temperature_nll(stack, y, 1.0)
    # a minimum beyond the bounds: the bound
    assert scaled.fit_mean_temperature(1000.0 * z, y) == pytest.approx(metrics.TEMPERATURE_BOUNDS[1], rel=1e-3)


def test_the_pass_counts_are_the_verdicts_rows():
    from snnlib.study import preregistration as P

    assert scaled.SCALED_PASSES == tuple(n for _, n in P.UNCERTAINTY_PRIMARY_ROWS)
    assert scaled.scaled_pass_counts(50) == [5, 50] and scaled.scaled_pass_counts(12) == [5]
    assert scaled.scaled_pass_counts(3) == [3]
    with pytest.raises(ValueError):
        scaled.scaled_pass_counts(0)


# ---------------------------------------------------------------- version 3 of a run and of an ensemble

@pytest.fixture(scope="module")
def runs(real_data_dir, tmp_path_factory):
    """Tiny finished MNIST runs with a validation split: dropout (seed 0) and two base runs (seeds 0, 1)."""
    root = tmp_path_factory.mktemp("v3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SNNLIB_DATA", str(real_data_dir))
        for name, extra in (("dropout", dict(variant="dropout", p=0.5)), ("base0", {}), ("base1", dict(seed=1))):
            run(RunConfig(**TINY, **extra), root / name, device="cpu", progress=False, log=lambda s: None)
    return root


def _same(a: dict, b: dict) -> bool:
    return strict_json(a) == strict_json(b)


def test_version_3_of_a_dropout_run(runs, use_real_data):
    v2 = U.evaluate_run(runs / "dropout", passes=6, **SMALL)
    v3 = U.evaluate_run(runs / "dropout", passes=6, **SMALL, version=3)
    assert v2["settings"]["uncertainty_version"] == 2 and "scaled_passes" not in v2["settings"]
    assert v3["settings"]["uncertainty_version"] == 3 and v3["settings"]["scaled_passes"] == [5]
    assert list(v3["sets"]) == [*v2["sets"], "near_ood"]
    assert v3["sets"]["near_ood"]["kind"] == "near_ood" and v3["sets"]["near_ood"]["samples"] == 80
    # version 2's methods keep every number on version 2's sets (the near-OOD set is only added)
    for name, entry in v2["methods"].items():
        for set_name, numbers in entry["results"].items():
            assert _same(v3["methods"][name]["results"][set_name], numbers), (name, set_name)
    assert set(v3["methods"]) == {*v2["methods"], "mc_dropout_temperature_5"}
    near = v3["methods"]["mc_dropout"]["results"]["near_ood"]
    assert "accuracy" not in near and set(near["auroc_vs_test"]) == {"max_prob", "entropy", "mutual_information"}
    # the temperature: fitted on the validation split's first 5 passes (the test set's mask seeds)
    config, model, _ = load_trained(runs / "dropout", "cpu")
    val = U.validation_set(config)
    val_logits = sample_passes(model, val, 5, 0, time_average=False).logits
    entry = v3["methods"]["mc_dropout_temperature_5"]
    t = scaled.fit_mean_temperature(val_logits, val.labels)
    assert entry["temperature"] == pytest.approx(t, rel=1e-9)
    assert entry["passes"] == 5 and entry["cost"]["forward_passes"] == 5 and entry["fitted_on"] == "validation"
    assert entry["validation_samples"] == 400
    assert entry["validation_nll_after"] <= entry["validation_nll_before"]
    assert entry["validation_nll_before"] == pytest.approx(scaled.mean_temperature_nll(val_logits, val.labels, 1.0))
    # its test numbers: the mean of the first 5 test passes' softmaxes at that temperature
    test = S.shifted_dataset(S.shift_specs("mnist", ())[0], config.t_enc, config.test_subset)
    probs = metrics.softmax(sample_passes(model, test, 5, 0, time_average=False).logits, t).mean(0)
    assert entry["results"]["test"]["nll"] == pytest.approx(metrics.nll(probs, test.labels), rel=1e-9)
    assert entry["results"]["test"]["accuracy"] == pytest.approx(metrics.accuracy(probs, test.labels))
    per_pass = v3["methods"]["mc_dropout"]["cost"]["synaptic_events_per_prediction"] / 6
    assert entry["cost"]["synaptic_events_per_prediction"] == pytest.approx(5 * per_pass)
    json.dumps(strict_json(v3), allow_nan=False)


def test_version_3_of_a_base_run_and_an_unknown_version(runs, use_real_data):
    result = U.evaluate_run(runs / "base0", passes=50, **SMALL, version=3)
    assert set(result["methods"]) == {"deterministic", "temperature"}
    assert result["not_evaluated"]["mc_dropout_temperature_5"] == "the run has no dropout"
    assert set(result["not_evaluated"]) >= {"mc_dropout_temperature_5", "mc_dropout_temperature_50"}
    assert "auroc_vs_test" in result["methods"]["temperature"]["results"]["near_ood"]
    with pytest.raises(ValueError, match="version"):
        U.evaluate_run(runs / "base0", passes=2, **SMALL, version=4)


def test_version_3_of_an_ensemble(runs, use_real_data):
    members = [runs / "base0", runs / "base1"]
    v2 = U.evaluate_ensemble(members, **SMALL, relative_to=runs)
    v3 = U.evaluate_ensemble(members, **SMALL, relative_to=runs, version=3)
    assert set(v3["methods"]) == {"ensemble", "ensemble_temperature"}
    for set_name, numbers in v2["methods"]["ensemble"]["results"].items():
        assert _same(v3["methods"]["ensemble"]["results"][set_name], numbers)
    entry = v3["methods"]["ensemble_temperature"]
    loaded = [load_trained(m, "cpu") for m in members]
    val = U.validation_set(loaded[0][0])
    val_logits = np.stack([deterministic_logits(model, val)[0].numpy() for _, model, _ in loaded])
    t = scaled.fit_mean_temperature(val_logits, val.labels)
    assert entry["temperature"] == pytest.approx(t, rel=1e-9) and entry["members"] == 2
    assert entry["validation_nll_after"] <= entry["validation_nll_before"]
    test = S.shifted_dataset(S.shift_specs("mnist", ())[0], 12, TINY["test_subset"])
    probs = metrics.softmax(np.stack([deterministic_logits(m, test)[0].numpy() for _, m, _ in loaded]), t).mean(0)
    assert entry["results"]["test"]["nll"] == pytest.approx(metrics.nll(probs, test.labels), rel=1e-9)
    assert entry["cost"] == {**entry["cost"], "forward_passes": 2,
                             "synaptic_events_per_prediction": v3["methods"]["ensemble"]["cost"][
                                 "synaptic_events_per_prediction"]}
    assert "auroc_vs_test" in entry["results"]["near_ood"]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_command_makes_version_3_and_keeps_version_2_apart(runs, use_real_data, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(runs / "dropout", folder)
    fast = ["--passes", "5", "--shift-subset", "40", "--angles", "90", "--threads", "1"]
    assert command.main(_parse([str(folder), *fast, "--evaluation-version", "3"])) == 0
    written = (folder / U.OUTPUT_FILE).read_bytes()
    saved = json.loads(written)
    assert saved["settings"]["uncertainty_version"] == 3 and "mc_dropout_temperature_5" in saved["methods"]
    assert saved[U.DIGEST_KEY] == U.evaluation_digest(saved) and str(tmp_path) not in written.decode()
    capsys.readouterr()
    assert command.main(_parse([str(folder), *fast, "--evaluation-version", "3"])) == 0
    assert "nothing to do" in capsys.readouterr().out and (folder / U.OUTPUT_FILE).read_bytes() == written
    # a version-2 request finds another evaluation there: refused in one line, the file untouched
    assert command.main(_parse([str(folder), *fast])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and (folder / U.OUTPUT_FILE).read_bytes() == written
    with pytest.raises(SystemExit):
        _parse([str(folder), "--evaluation-version", "4"])
