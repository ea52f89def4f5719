"""Runs and their records: the random streams (initial weights, sample order, masks), the
validation split, dropout-off training metrics, the kept weights, and reading old records."""

from __future__ import annotations

import json
import math

import pytest
import torch

from snnlib.experiment import config as CFG
from snnlib.experiment import run as RUN
from snnlib.experiment import training
from snnlib.experiment.config import RunConfig, RunError, config_difference
from snnlib.experiment.run import load_trained, run
from snnlib.experiment.system import write_json_atomic
from snnlib.experiment.training import initial_network

TINY = dict(dataset="mnist", epochs=2, train_subset=600, test_subset=300, batch_size=100)


def test_init_seed_shares_the_initial_weights_of_its_seed():
    own = initial_network(RunConfig(seed=3))
    control = initial_network(RunConfig(seed=103, init_seed=3))
    other = initial_network(RunConfig(seed=103))
    for a, b, c in zip(own.parameters(), control.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_stream_seeds_differ_between_streams_and_seeds():
    seeds = {CFG.stream_seed(s, stream) for s in range(5) for stream in ("order", "masks")}
    assert len(seeds) == 10
    assert CFG.stream_seed(2, "order") == CFG.stream_seed(2, "order")
    assert all(0 <= s < 2**63 for s in seeds)


def test_sample_order_does_not_depend_on_dropout(use_real_data, tmp_path, monkeypatch):
    """A base run and a dropout run of one seed see the same batches in the same order (the
    masks draw from another generator); another seed gives another order."""
    seen: dict[str, list] = {}
    real = RUN.train_epoch

    def spy(model, dataset, optimizer, batch_size, order=None, progress=None):
        seen.setdefault(current, []).append(order.get_state().clone())
        return real(model, dataset, optimizer, batch_size, order, progress)

    monkeypatch.setattr(RUN, "train_epoch", spy)
    configs = {"base": RunConfig(**TINY), "dropout": RunConfig(**TINY, variant="dropout", p=0.5),
               "seed1": RunConfig(**TINY, seed=1)}
    for current, config in configs.items():  # noqa: B007 - read by spy
        run(config, tmp_path / current, device="cpu", progress=False, log=lambda s: None)
    assert all(torch.equal(a, b) for a, b in zip(seen["base"], seen["dropout"], strict=True))
    assert not torch.equal(seen["base"][0], seen["seed1"][0])


@pytest.fixture(scope="module")
def finished(real_data_dir, tmp_path_factory):
    """One finished run with a validation split, shared by the tests below."""
    out = tmp_path_factory.mktemp("run") / "val"
    config = RunConfig(**TINY, variant="dropout", p=0.3, val_size=200, seed=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SNNLIB_DATA", str(real_data_dir))
        record = run(config, out, device="cpu", progress=False, log=lambda s: None)
    return config, out, record


def test_record_holds_dropout_off_training_and_validation_metrics(finished):
    config, out, record = finished
    assert record["record_version"] == RUN.RECORD_VERSION
    assert record["train_samples"] == 600 and record["val_samples"] == 200 and record["test_samples"] == 300
    assert record["train_eval_samples"] == 600  # fewer than TRAIN_EVAL_SAMPLES
    for entry in record["epochs"]:
        for key in ("train_eval_loss", "train_eval_acc", "val_loss", "val_acc"):
            assert math.isfinite(entry[key]), key
        # dropout on in training mode, off after the epoch: not the same numbers
        assert entry["train_eval_loss"] != entry["train_loss"]
    assert len(record["hidden_silencing_drop"]) == 128


def test_validation_split_is_the_end_of_the_training_data(use_real_data):
    config = RunConfig(**TINY, val_size=200)
    data = training.load_run_data(config, torch.device("cpu"))
    from snnlib.experiment import data as D

    images, labels = D.load("mnist", "train")
    assert torch.equal(data.val.labels, torch.from_numpy(labels[-200:].astype("int64")))
    assert torch.equal(data.train.labels, torch.from_numpy(labels[:600].astype("int64")))
    assert len(data.train_eval) == 600


def test_weights_reload_to_the_recorded_test_numbers(finished, use_real_data):
    config, out, record = finished
    assert not (out / "checkpoint.pt").exists() and (out / "weights.pt").exists()
    loaded_config, model, loaded_record = load_trained(out)
    assert loaded_config.to_dict() == config.to_dict() and loaded_record["weights_sha256"] == record["weights_sha256"]
    data = training.load_run_data(config, torch.device("cpu"))
    stats, _ = training.evaluate(model, data.test)
    assert stats.accuracy == record["epochs"][-1]["test_acc"]
    assert stats.loss == pytest.approx(record["epochs"][-1]["test_loss"], rel=1e-6)


def test_silencing_drop_matches_one_neuron_silenced_by_hand(finished, use_real_data):
    config, out, record = finished
    _, model, _ = load_trained(out)
    data = training.load_run_data(config, torch.device("cpu"))
    h = max(range(128), key=lambda i: abs(record["hidden_silencing_drop"][i]))
    full = training.evaluate(model, data.test)[0].accuracy
    with torch.no_grad():
        model.output.weight_events[:, h] = 0
    silenced = training.evaluate(model, data.test)[0].accuracy
    assert full - silenced == pytest.approx(record["hidden_silencing_drop"][h], abs=1e-9)


def test_weights_of_another_run_are_refused(finished, tmp_path):
    import shutil

    _, out, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    weights = torch.load(copy / "weights.pt", weights_only=True)
    weights["model"]["hidden.weight_events"] += 1
    torch.save(weights, copy / "weights.pt")
    with pytest.raises(RunError, match="does not belong"):
        load_trained(copy)
    (copy / "weights.pt").unlink()
    with pytest.raises(RunError, match="missing"):
        load_trained(copy)


def test_records_without_the_new_keys_are_the_same_configuration():
    """A record written before init_seed and val_size existed means their defaults."""
    config = RunConfig(seed=2)
    old = config.to_dict()
    del old["init_seed"], old["val_size"]
    assert config_difference(old, config) == []
    assert config_difference(old, RunConfig(seed=2, init_seed=7)) == ["init_seed"]
    assert config_difference({"dataset": "nope"}, config) == sorted(config.to_dict())


def test_records_are_strict_json(tmp_path):
    write_json_atomic(tmp_path / "r.json", {"loss": float("nan"), "x": [1.0, float("inf")]})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "x": [1.0, None]}


@pytest.mark.parametrize("kwargs, match", [
    (dict(val_size=60000), "val_size must be an integer in"),
    (dict(val_size=-1), "val_size must be an integer in"),
    (dict(val_size=10000, train_subset=50001), "train_subset"),
])
def test_bad_validation_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RunConfig(**kwargs)
