"""Stacked runs (issue 36): S networks of one dataset and seed trained as one computation
(:mod:`snnlib.model.stack`, :mod:`snnlib.experiment.stack`) give each run its single run's numbers.

The single-run path is the reference. On the CPU every check is exact: the logits, spikes and gradients of
each network of a stack are those of its own forward pass, and each stacked record equals its single run's
record in every per-epoch and per-neuron number (and its weights file byte for byte), for every dropout kind
at every site with both masks, on MNIST and CIFAR-10 (small real subsets, two epochs). A stack resumes from
its checkpoints (and a single run from a stacked run's), runs of other budgets and learning rates share a
stack, and the runner's ``--stack`` trains a group through one notebook execution. On CUDA (skipped without
a GPU) the stacked records agree with single CUDA runs to rounding.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from snnlib.experiment import data as D
from snnlib.experiment import stack as stack_module
from snnlib.experiment.config import RunConfig, RunError
from snnlib.experiment.run import run, timing_free
from snnlib.experiment.stack import group_configs, run_group, run_stack, stack_key, stacked_losses
from snnlib.model import functional as SF
from snnlib.model.network import NetworkConfig, SRMNetwork
from snnlib.model.stack import check_stackable, stacked_forward

KINDS = ("dropout", "dropout2d", "feature", "feature_alpha", "alpha")
SITES = ("current", "hidden", "input")
# every kind at every site with both masks, and the base network
DROPOUTS = [{"variant": "none", "p": 0.0}] + [
    {"variant": kind, "p": 0.5, "site": site, "time_consistent": consistent}
    for kind in KINDS for site in SITES for consistent in (False, True)]
NEURON_FIELDS = ("hidden_importance", "hidden_silencing_drop", "hidden_firing_rate", "hidden_mean_spike_step")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread, as the study's runs (and much faster than two on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cached_data(use_real_data, monkeypatch):
    """The encoded splits read once per test, not once per run (reading CIFAR-10's checks 3 s of SHA-256)."""
    import functools

    monkeypatch.setattr(D, "encoded", functools.cache(D.encoded))


def quiet(line: str) -> None:
    pass


def same_record(a: dict, b: dict) -> bool:
    """Every per-epoch number (times excluded), every per-neuron number and the configuration equal."""
    return (a["status"] == b["status"] == "finished" and a["config"] == b["config"]
            and timing_free(a)["epochs"] == timing_free(b)["epochs"]
            and all(a[k] == b[k] for k in NEURON_FIELDS))


def network(dataset: str, dropout: dict) -> SRMNetwork:
    torch.manual_seed(0)
    return SRMNetwork(NetworkConfig(in_features=784 if dataset == "mnist" else 3072, dropout=dropout["variant"],
                                    p=dropout["p"], site=dropout.get("site", "current"),
                                    time_consistent=dropout.get("time_consistent", False)))


# ---------------------------------------------------------------- the forward pass


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("wide", [False, True])
def test_each_network_of_a_stack_has_its_own_numbers(use_real_data, dataset, training, wide):
    """Logits, hidden spikes and both weight gradients of each network equal its own forward pass bit for bit,
    every kind at every site with both masks, one network's table per gather (the CPU's) or all at once."""
    times, order, labels = D.encoded(dataset, "test", 12).batch(torch.arange(32))
    single = [network(dataset, d).train(training) for d in DROPOUTS]
    stacked = [network(dataset, d).train(training) for d in DROPOUTS]
    for net in stacked:
        net.dropout.generator = torch.Generator().manual_seed(7)  # each network its own stream
    outputs = []
    for net in single:
        torch.manual_seed(7)  # a single run's masks: the global generator, seeded the same
        out = net(times, order)
        if training:
            F.cross_entropy(out.logits, labels).backward()
        outputs.append(out)
    out = stacked_forward(stacked, times, order, width=len(stacked) if wide else 1)
    if training:
        torch.autograd.backward([F.cross_entropy(logits, labels) for logits in out.logits.unbind(1)])
    assert out.input_spikes == outputs[0].input_spikes
    for s, (ref, net_a, net_b) in enumerate(zip(outputs, single, stacked, strict=True)):
        assert torch.equal(ref.logits, out.logits[:, s]), DROPOUTS[s]
        assert torch.equal(ref.hidden_spikes, out.hidden_spikes[:, :, s]), DROPOUTS[s]
        if training:
            for name in ("hidden", "output"):
                assert torch.equal(getattr(net_a, name).weight_events.grad,
                                   getattr(net_b, name).weight_events.grad), (DROPOUTS[s], name)


def test_stacked_event_current_is_each_tables_event_current():
    torch.manual_seed(1)
    times = torch.randint(0, 14, (6, 40)).to(torch.uint8)
    times[:, :4] = 255
    events = SF.events_from_times(times, 24)
    weights = [torch.randn(4, 40, 8, requires_grad=True) for _ in range(3)]
    for width in (1, 2, 3):
        current = SF.stacked_event_current(events, weights, [0, 3, 6, 9], width)
        assert current.shape == (24, 6, 3, 8)
        upstream = torch.randn_like(current)
        grads = torch.autograd.grad((current * upstream).sum(), weights)
        for s, w in enumerate(weights):
            alone = SF.event_current(events, w, [0, 3, 6, 9])
            assert torch.equal(current[:, :, s], alone)
            assert torch.equal(grads[s], torch.autograd.grad((alone * upstream[:, :, s]).sum(), w)[0])
    with pytest.raises(ValueError, match="shape"):
        SF.stacked_event_current(events, [weights[0], torch.randn(4, 40, 9)], [0, 3, 6, 9])


def test_the_batched_loss_of_a_gpu_agrees_with_the_per_network_losses():
    """On the CPU each network's loss is computed as its single run does (exactly); the GPU's batched form,
    one launch for all, agrees to rounding."""
    torch.manual_seed(2)
    logits, labels = torch.randn(64, 5, 10) * 4, torch.randint(0, 10, (64,))
    for reduction in ("mean", "sum"):
        exact = stacked_losses(logits, labels, reduction)
        assert torch.equal(exact, torch.stack([F.cross_entropy(logits[:, s], labels, reduction=reduction)
                                               for s in range(5)]))
        torch.testing.assert_close(stacked_losses(logits, labels, reduction, batched=True), exact)


def test_the_gpu_form_of_the_evaluation_agrees_to_rounding(use_real_data):
    """Without ``exact`` (a GPU's default) the evaluation's readout is one batched product for all networks:
    the same sums in another order, so the same logits to rounding, checked here on the CPU."""
    times, order, _ = D.encoded("mnist", "test", 12).batch(torch.arange(64))
    nets = [network("mnist", d).eval() for d in DROPOUTS[:7]]
    with torch.no_grad():
        exact = stacked_forward(nets, times, order, exact=True)
        batched = stacked_forward(nets, times, order, width=len(nets), exact=False)
    torch.testing.assert_close(batched.logits, exact.logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(batched.hidden_spikes, exact.hidden_spikes)


def test_only_networks_that_differ_in_their_dropout_stack():
    check_stackable([SRMNetwork(NetworkConfig(in_features=20, dropout="alpha", p=0.5, site="input")),
                     SRMNetwork(NetworkConfig(in_features=20))])
    with pytest.raises(ValueError, match="differs from the first in tau"):
        check_stackable([SRMNetwork(NetworkConfig(in_features=20)), SRMNetwork(NetworkConfig(in_features=20, tau=3.0))])
    with pytest.raises(ValueError, match="mode"):
        check_stackable([SRMNetwork(NetworkConfig(in_features=20)), SRMNetwork(NetworkConfig(in_features=20)).eval()])


# ---------------------------------------------------------------- whole runs

SMALL = {"seed": 3, "epochs": 2, "train_subset": 96, "test_subset": 50, "val_size": 50, "batch_size": 48}


def configs_for(dataset: str) -> list[RunConfig]:
    """Every kind at every site with both masks, and a run of another budget, learning rate and init seed."""
    configs = [RunConfig(dataset=dataset, **SMALL, **d) for d in DROPOUTS]
    configs.append(RunConfig(dataset=dataset, **{**SMALL, "epochs": 3}, variant="dropout", p=0.3, lr=3e-3,
                             init_seed=5, weight_decay=1e-4))
    return configs


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_stacked_records_are_the_single_runs_records(cached_data, tmp_path, dataset):
    configs = configs_for(dataset)
    single = [run(c, tmp_path / "single" / str(i), device="cpu", progress=False, log=quiet)
              for i, c in enumerate(configs)]
    stacked = run_stack(configs, [tmp_path / "stack" / str(i) for i in range(len(configs))], device="cpu",
                        progress=False, log=quiet)
    for config, a, b in zip(configs, single, stacked, strict=True):
        assert same_record(a, b), (config.variant, config.site, config.time_consistent)
        assert a["weights_sha256"] == b["weights_sha256"]  # the kept weights, byte for byte
        assert b["stacked_runs"] == len(configs) and "stacked_runs" not in a
    # the compare command says so too
    proc = subprocess.run([sys.executable, "-m", "snnlib", "compare", str(tmp_path / "single"), str(tmp_path / "stack")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(configs)} of {len(configs)} rerun records reproduce" in proc.stdout
    assert "'identical': " in proc.stdout and "differs" not in proc.stdout


def test_an_interrupted_stack_resumes_to_the_single_runs_records(cached_data, tmp_path, monkeypatch):
    """Stopped after epoch 1 of every run and epoch 2 of the first: one run is finished by a single run (from
    the stack's checkpoint), the others by the stack again (runs at different epochs join when it is theirs)."""
    configs = [RunConfig(dataset="mnist", **{**SMALL, "epochs": 3}, **d) for d in
               ({"variant": "none", "p": 0.0}, {"variant": "dropout", "p": 0.5},
                {"variant": "alpha", "p": 0.5, "site": "hidden", "time_consistent": True},
                {"variant": "dropout", "p": 0.5, "site": "input"})]
    reference = [run(c, tmp_path / "single" / str(i), device="cpu", progress=False, log=quiet)
                 for i, c in enumerate(configs)]
    outs = [tmp_path / "stack" / str(i) for i in range(len(configs))]
    real_end_epoch, calls = stack_module.end_epoch, []

    def stop_after(*args, **kwargs):
        if len(calls) == len(configs) + 1:
            raise KeyboardInterrupt
        calls.append(1)
        return real_end_epoch(*args, **kwargs)

    monkeypatch.setattr(stack_module, "end_epoch", stop_after)
    with pytest.raises(KeyboardInterrupt):
        run_stack(configs, outs, device="cpu", progress=False, log=quiet)
    monkeypatch.setattr(stack_module, "end_epoch", real_end_epoch)
    assert [len(json.loads((o / "metrics.json").read_text())["epochs"]) for o in outs] == [2, 1, 1, 1]
    lines = []
    resumed = run(configs[2], outs[2], device="cpu", progress=False, log=lines.append)  # a single run resumes it
    assert "resuming after epoch 1" in lines[0]
    records = run_stack(configs, outs, device="cpu", progress=False, log=lines.append)
    assert any("already finished" in line for line in lines)
    assert records[2] == resumed
    for config, a, b in zip(configs, reference, records, strict=True):
        assert same_record(a, b), (config.variant, config.site)


def test_group_configs_groups_by_dataset_seed_and_sizes():
    configs = [RunConfig(dataset=d, seed=s, variant=v, p=0.0 if v == "none" else 0.5, lr=lr)
               for d in ("mnist", "cifar10") for s in (0, 1) for v in ("none", "dropout") for lr in (1e-3, 3e-3)]
    configs.append(RunConfig(dataset="mnist", seed=0, network={"tau": 3.0}))  # another network: its own stack
    configs.append(RunConfig(dataset="mnist", seed=0, init_seed=4, epochs=5, variant="alpha", p=0.5, site="input"))
    groups = group_configs(configs)
    assert groups == [[0, 1, 2, 3, 17], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16]]
    assert group_configs(configs, size=3)[:2] == [[0, 1, 2], [3, 17]]
    assert stack_key(configs[0]) == stack_key(configs[17]) != stack_key(configs[4])


def test_a_stack_refuses_runs_that_do_not_share_their_batches(tmp_path):
    with pytest.raises(RunError, match="must share"):
        run_stack([RunConfig(seed=0), RunConfig(seed=1)], [tmp_path / "a", tmp_path / "b"], device="cpu")
    with pytest.raises(RunError, match="same folder"):
        run_stack([RunConfig(), RunConfig(variant="dropout", p=0.5)], [tmp_path / "a", tmp_path / "a"], device="cpu")
    with pytest.raises(ValueError, match="group entry 1"):
        run_group([{"config": {}}], device="cpu")
    with pytest.raises(ValueError, match="unexpected keyword"):
        run_group([{"config": {"colour": 1}, "out_dir": str(tmp_path / "a")}], device="cpu")
    assert not (tmp_path / "a").exists()


def test_the_runner_trains_a_stack_in_one_notebook_execution(real_data_dir, tmp_path):
    """``--stack``: one notebook per group; each run's record is its single run's, and a rerun skips them."""
    grid = {"name": "tiny", "base": {"dataset": "mnist", "epochs": 1, "train_subset": 64, "test_subset": 40,
                                     "batch_size": 32},
            "axes": {"seed": [0, 1]},
            "runs": [{"variant": "none", "p": 0.0}, {"variant": "dropout", "p": 0.5, "site": "hidden"},
                     {"variant": "alpha", "p": 0.5, "site": "input", "time_consistent": True}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(grid))
    env = {**dict(__import__("os").environ), "SNNLIB_DATA": str(real_data_dir)}
    command = [sys.executable, "-m", "snnlib.experiment.runner", str(path), "--results", str(tmp_path / "results"),
               "--device", "cpu", "--threads", "1", "--stack"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 to run in 2 notebook executions (--stack)" in proc.stdout
    assert proc.stdout.count(" done ") == 6
    from snnlib.experiment.grid import expand_grid

    for spec in expand_grid(grid):
        folder = tmp_path / "results" / "tiny" / spec.rel
        stacked = json.loads((folder / "metrics.json").read_text())
        assert stacked["stacked_runs"] == 3 and (folder / "experiment.ipynb").exists()
        single = run(RunConfig(**spec.kwargs), tmp_path / "single" / spec.rel, device="cpu", progress=False, log=quiet)
        assert same_record(single, stacked), spec.rel
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count(" skipped ") == 6


# ---------------------------------------------------------------- CUDA


@cuda
def test_stacked_records_on_cuda_agree_with_single_cuda_runs(use_real_data, tmp_path):
    configs = [RunConfig(dataset=d, **SMALL, **x) for d in ("mnist", "cifar10") for x in
               ({"variant": "none", "p": 0.0}, {"variant": "dropout", "p": 0.5},
                {"variant": "alpha", "p": 0.5, "site": "hidden"},
                {"variant": "dropout2d", "p": 0.5, "site": "input", "time_consistent": True})]
    for dataset in ("mnist", "cifar10"):
        group = [c for c in configs if c.dataset == dataset]
        single = [run(c, tmp_path / "single" / dataset / str(i), device="cuda", progress=False, log=quiet)
                  for i, c in enumerate(group)]
        stacked = run_stack(group, [tmp_path / "stack" / dataset / str(i) for i in range(len(group))], device="cuda",
                            progress=False, log=quiet)
        for a, b in zip(single, stacked, strict=True):
            assert b["device"].startswith("cuda") and b["status"] == "finished"
            for ea, eb in zip(a["epochs"], b["epochs"], strict=True):
                for key in ("train_loss", "train_eval_loss", "test_loss", "val_loss"):
                    assert eb[key] == pytest.approx(ea[key], rel=2e-3, abs=2e-3), key
                for key in ("train_acc", "train_eval_acc", "test_acc", "val_acc"):
                    assert abs(eb[key] - ea[key]) <= 0.03, key


@cuda
def test_a_stack_on_cuda_keeps_every_tensor_there(use_real_data):
    device = torch.device("cuda")
    times, order, labels = D.encoded("cifar10", "test", 12, device).batch(torch.arange(16, device=device))
    nets = [network("cifar10", d).to(device) for d in DROPOUTS]
    for net in nets:
        net.dropout.generator = torch.Generator(device=device).manual_seed(3)
    out = stacked_forward(nets, times, order, width=len(nets))
    torch.autograd.backward([F.cross_entropy(logits, labels) for logits in out.logits.unbind(1)])
    assert out.logits.device.type == "cuda" and out.hidden_spikes.device.type == "cuda"
    assert all(p.grad.device.type == "cuda" for net in nets for p in net.parameters())
    cpu = [network("cifar10", d) for d in DROPOUTS]
    for net in cpu:
        net.eval()
    for net in nets:
        net.eval()
    with torch.no_grad():
        on_cpu = stacked_forward(cpu, times.cpu(), order.cpu()).logits
        on_gpu = stacked_forward(nets, times, order, width=len(nets)).logits
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-3, atol=1e-3)
