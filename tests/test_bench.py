"""The benchmark's dense reference is the same network, and the benchmark command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from snnlib.bench import DenseSRMNetwork
from snnlib.kernels import times_to_raster
from snnlib.network import NetworkConfig, SRMNetwork


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


def test_bench_rejects_an_unknown_competitor():
    proc = subprocess.run([sys.executable, "-m", "snnlib", "bench", "--competitors", "norse"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
