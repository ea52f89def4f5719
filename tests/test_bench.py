"""The benchmark's dense reference is the same network, the benchmark command runs, and ``bench --limits``
counts the bytes and flops of each part of the training step as the functions really move and compute them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from snnlib.bench import limits
from snnlib.bench.step import DenseSRMNetwork
from snnlib.model import functional as SF
from snnlib.model.kernels import times_to_raster
from snnlib.model.network import NetworkConfig, SRMNetwork


@pytest.mark.parametrize("delay_spread", [1, 3])
def test_dense_time_stepped_reference_gives_the_same_logits_and_gradients(delay_spread):
    """Eq 1-3 computed step by step (two-state kernel recurrence) equal snnlib's event path."""
    torch.manual_seed(0)
    model = SRMNetwork(NetworkConfig(in_features=50, hidden=20, delay_spread=delay_spread))
    dense = DenseSRMNetwork(model)
    times = torch.randint(0, 14, (6, 50)).to(torch.uint8)
    times[:, :5] = 255  # silent inputs
    model.eval()
    dense.eval()
    ours = model(times).logits
    theirs = dense(times_to_raster(times, model.config.T))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    g_ours = torch.autograd.grad(ours.square().sum(), model.hidden.weight_events)[0]
    g_theirs = torch.autograd.grad(theirs.square().sum(), model.hidden.weight_events)[0]
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-3, atol=1e-4)


def test_bench_command_prints_a_ratio_and_writes_json(real_data_dir, tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "SNNLIB_DATA": str(real_data_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "snnlib", "bench", "--datasets", "mnist", "--competitors", "snnlib", "dense",
         "--batch-size", "16", "--warmup", "0", "--repeats", "1", "--steps", "1", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "snnlib is" in proc.stdout and "x faster" in proc.stdout
    record = json.loads(out.read_text())
    assert {r["competitor"] for r in record["results"]} == {"snnlib", "dense"}
    assert all(r["samples_per_s"] > 0 and r["peak_mb"] >= 0 for r in record["results"])


def test_bench_stack_compares_stacked_and_single_runs_and_writes_json(real_data_dir, tmp_path):
    """``bench --stack``: both arms train the same networks (same weights after timing), a row per size with
    the ratios and the operations counted per step."""
    out = tmp_path / "stack.json"
    env = {**os.environ, "SNNLIB_DATA": str(real_data_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "snnlib", "bench", "--stack", "--datasets", "mnist", "--sizes", "1", "3", "--device",
         "cpu", "--threads", "1", "--batch-size", "32", "--warmup", "1", "--repeats", "2", "--steps", "1",
         "--json", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "mnist S=3" in proc.stdout and "same weights: True" in proc.stdout
    record = json.loads(out.read_text())
    assert [r["runs"] for r in record["results"]] == [1, 3]
    for row in record["results"]:
        assert row["identical_weights"] and row["train_ratio"] > 0 and row["epoch_ratio"] > 0
        assert len(row["train_ms"]["single"]) == len(row["train_ms"]["stacked"]) == 2
    three = record["results"][1]["operations"]
    assert three["stacked_step"] < three["single_step"] and three["stacked_step_gpu_form"] < three["single_step"]


def test_bench_rejects_an_unknown_competitor():
    proc = subprocess.run([sys.executable, "-m", "snnlib", "bench", "--competitors", "norse"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- bench --limits: the counting, checked


def counted_matmul_flops(fn) -> int:
    """The flops torch's FLOP counter sees (matrix products only) while ``fn`` runs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def small_batch(silent_share: float = 0.6, N: int = 5, I: int = 30, T: int = 12, seed: int = 0):
    """First-spike times of a small batch: some inputs silent, the rest at random steps (some past T)."""
    g = torch.Generator().manual_seed(seed)
    times = torch.randint(0, T + 2, (N, I), generator=g).to(torch.uint8)
    times[torch.rand(N, I, generator=g) < silent_share] = 255
    return times


def test_work_formulas_by_hand():
    w = limits.kernel_product_work(3, 4)
    assert (w.bytes, w.flops, w.matmul_flops) == (4 * (9 + 2 * 12), 2 * 9 * 4, 2 * 9 * 4)
    w = limits.gate_forward_work(3, 4)  # X = 12
    assert (w.bytes, w.flops, w.matmul_flops) == (4 * (36 + 9), 2 * 3 * 12 + 36, 72)
    assert limits.gate_backward_work(3, 4) == limits.Work(4 * 4 * 12, 7 * 12)
    assert limits.mask_work(10) == limits.Work(40, 10)
    assert limits.dropout_apply_work(12, 6) == limits.Work(4 * (24 + 6), 24)
    assert limits.dropout_apply_work(12, 6, alpha=True).flops == 72
    assert limits.adam_work(100) == limits.Work(2800, 1200)
    # N=2, T=3, K=2, I=5, H=4, E=7 events in 3 bags per sample
    assert limits.gather_forward_work(2, 3, 2, 5, 4, 7, 3) == limits.Work(
        4 * (2 * 5 * 4 + 7 + 6 + 24), 2 * 7 * 4, cache_bytes=4 * (2 * 7 * 4 + 2 * (7 + 6) + 24))
    assert limits.gather_backward_work(2, 3, 2, 5, 4, 7) == limits.Work(
        4 * (6 * 4 + 7 + 5 + 2 * 5 * 4), 2 * 7 * 4, cache_bytes=4 * (2 * 7 * 4 + 2 * (7 + 5) + 2 * 5 * 4))
    assert limits.kernel_product_work(3, 4).touched == limits.kernel_product_work(3, 4).bytes
    assert limits.events_work(2, 5, 3, 7, 4) == limits.Work(2 * 5 * 5 + 4 * (14 + 8 + 5), 0)
    w = limits.output_forward_work(2, 3, 2, 4, 1, [0, 1])
    assert w.matmul_flops == 2 * 6 * 4 * 2 + 2 * 9 * 2 and w.flops == w.matmul_flops + (3 + 2) * 2 + 6
    w = limits.Work(1, 2, 3) + limits.Work(10, 20, 30, cache_bytes=40)
    assert (w.bytes, w.flops, w.matmul_flops, w.touched) == (11, 22, 33, 41)


@pytest.mark.parametrize("silent_share", [0.6, 0.1])  # compacted event lists, and silent inputs kept as events
def test_counted_bytes_and_flops_match_the_tensors(silent_share):
    """The formulas against what the functions really take and make, on small shapes: the gathered
    elements, index lists and outputs for eq 3, and torch's FLOP counter for every matrix product."""
    N, I, T, K, H, O = 5, 30, 12, 3, 6, 4
    torch.manual_seed(0)
    model = SRMNetwork(NetworkConfig(in_features=I, hidden=H, out_features=O, T=T, K=K, delay_spread=2))
    times = small_batch(silent_share, N, I, T)
    events = SF.events_from_times(times, T)
    E, bags = events.fwd_index.numel(), events.bags_per_sample
    assert bool(events.n_silent) == (silent_share < 0.25)
    w = model.hidden.weight_events
    current = SF.event_current(events, w, model.hidden.delays_list)

    forward = limits.gather_forward_work(N, T, K, I, H, E, bags)
    index_bytes = 4 * (events.fwd_index.numel() + events.fwd_offsets.numel())
    rows_read = K * min(E, I) * H  # E >= I here: the whole table
    assert E >= I and forward.bytes == 4 * (w.numel() + current.numel()) + index_bytes
    assert forward.flops == K * E * H == rows_read * E / min(E, I)
    # loaded and stored: every gathered row (one per event and delay), the lists once per delay
    assert forward.cache_bytes == 4 * (K * E * H + current.numel()) + K * index_bytes
    # the gather's adds: one per gathered element; a dense product of the raster would do 2 T N I K H
    assert forward.matmul_flops == 0
    assert counted_matmul_flops(lambda: SF.event_current(events, w, model.hidden.delays_list)) == 0
    backward = limits.gather_backward_work(N, T, K, I, H, E)
    assert backward.bytes == 4 * (min(K * E, T * N) * H + events.bwd_index.numel() + events.bwd_offsets.numel()
                                  + w.numel())
    assert backward.flops == forward.flops
    assert backward.cache_bytes == 4 * (K * E * H + K * (events.bwd_index.numel() + events.bwd_offsets.numel())
                                        + w.numel())
    assert limits.events_work(N, I, T, E, bags).bytes == times.numel() + 4 * times.numel() + 4 * (
        events.fwd_index.numel() + events.bwd_index.numel() + events.fwd_offsets.numel()
        + events.bwd_offsets.numel())

    kernel = model.hidden.kernel(T)
    z = current.detach().requires_grad_(True)
    v = SF.psp(z, kernel)
    assert counted_matmul_flops(lambda: SF.psp(z, kernel)) == limits.kernel_product_work(T, N * H).matmul_flops
    g = torch.randn_like(v)
    assert counted_matmul_flops(lambda: torch.autograd.grad(v, z, g, retain_graph=True)) == \
        limits.kernel_product_work(T, N * H).matmul_flops
    assert limits.kernel_product_work(T, N * H).bytes == 4 * (kernel.numel() + z.numel() + v.numel())

    u = v.detach().requires_grad_(True)
    assert counted_matmul_flops(lambda: SF.first_spikes(u, 1.0)) == limits.gate_forward_work(T, N * H).matmul_flops
    s = SF.first_spikes(u, 1.0)
    assert counted_matmul_flops(lambda: torch.autograd.grad(s, u, g, retain_graph=True)) == 0
    assert limits.gate_backward_work(T, N * H).matmul_flops == 0

    h = s.detach().requires_grad_(True)
    logits = model.output_potential(h).amax(0)
    assert counted_matmul_flops(lambda: model.output_potential(h).amax(0)) == \
        limits.output_forward_work(N, T, K, H, O, model.output.delays_list).matmul_flops
    grad = torch.randn_like(logits)
    assert counted_matmul_flops(lambda: torch.autograd.grad(logits, [h, model.output.weight_events], grad,
                                                            retain_graph=True)) == \
        limits.output_backward_work(N, T, K, H, O).matmul_flops


def test_limit_table_arithmetic():
    machine = {"bandwidth_gb_s": 10.0, "cache_bandwidth_gb_s": 40.0, "matmul_gflop_s": 100.0}
    result = {"step_s": 0.01, "batch_size": 100, "parts": [
        {"part": "memory-bound", "s": 0.002, "bytes": 10e6, "cache_bytes": 20e6, "flops": 1e6},  # 1 ms, 0.01 ms
        {"part": "compute-bound", "s": 0.004, "bytes": 1e6, "flops": 200e6},  # 0.1 ms of memory, 2 ms of compute
    ]}
    memory, compute = limits.limit_table(result, machine)
    assert memory["share"] == pytest.approx(0.2) and compute["share"] == pytest.approx(0.4)
    assert memory["gb_s"] == pytest.approx(5.0) and compute["gflop_s"] == pytest.approx(50.0)
    assert memory["bound_by"] == "memory" and compute["bound_by"] == "compute"
    assert memory["bound_s"] == pytest.approx(1e-3) and memory["fraction_of_limit"] == pytest.approx(0.5)
    assert compute["fraction_of_limit"] == pytest.approx(0.5)
    assert memory["fraction_of_cache_limit"] == pytest.approx(0.25)  # 20 MB at 40 GB/s: 0.5 ms of 2 ms
    assert memory["bytes_per_sample"] == pytest.approx(1e5) and compute["flops_per_sample"] == pytest.approx(2e6)


def test_machine_limits_are_positive():
    machine = limits.machine_limits(torch.device("cpu"), copy_mb=8, cache_mb=1, matmul_n=(64, 128), repeats=1)
    assert machine["bandwidth_gb_s"] == max(machine["copy_gb_s"], machine["add_gb_s"]) > 0
    assert machine["cache_bandwidth_gb_s"] > 0
    assert machine["matmul_gflop_s"] == max(machine["matmul_gflop_s_by_n"].values()) > 0
    assert set(machine["matmul_gflop_s_by_n"]) == {"64", "128"}
    assert machine["threads"] == torch.get_num_threads()


@pytest.mark.parametrize("variant", ["dropout", "none"])
def test_step_parts_cover_the_step(real_data_dir, monkeypatch, variant):
    monkeypatch.setenv("SNNLIB_DATA", str(real_data_dir))
    result = limits.step_parts("mnist", torch.device("cpu"), 16, variant, 0.5 if variant != "none" else 0.0,
                               rounds=1, calls=1, warmup=0)
    names = [r["part"] for r in result["parts"]]
    assert names[:3] == ["event lists", "eq 3 gather, forward", "eq 3 gather, backward"]
    assert ("dropout mask" in names) == (variant != "none")
    assert names[-1] == "Adam step" and len(names) == (13 if variant != "none" else 10)
    assert all(r["s"] > 0 and r["bytes"] > 0 for r in result["parts"])
    assert result["parts_s"] == pytest.approx(sum(r["s"] for r in result["parts"]))
    assert result["rest_s"] == pytest.approx(result["step_s"] - result["parts_s"])
    assert 50 < result["input_spikes_per_sample"] < 300  # MNIST: about 150 bright pixels


def test_bench_limits_command_writes_json(real_data_dir, tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "SNNLIB_DATA": str(real_data_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "snnlib", "bench", "--limits", "--datasets", "mnist", "--batch-size", "16",
         "--warmup", "0", "--repeats", "1", "--steps", "1", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "machine: memory" in proc.stdout and "eq 3 gather, forward" in proc.stdout
    record = json.loads(out.read_text())
    assert record["threads"] == 1 and record["machine"]["threads"] == 1 and record["config"]["limits"]
    assert {"git_commit", "device", "device_name", "wall_time_s", "load_average"} <= set(record)
    (result,) = record["results"]
    assert result["dataset"] == "mnist" and result["batch_size"] == 16
    assert {"share", "gb_s", "gflop_s", "fraction_of_limit", "fraction_of_cache_limit", "bound_by"} <= \
        set(result["parts"][0])


def test_bench_limits_and_scaling_exclude_each_other():
    proc = subprocess.run([sys.executable, "-m", "snnlib", "bench", "--limits", "--scaling"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "exclude each other" in proc.stderr
