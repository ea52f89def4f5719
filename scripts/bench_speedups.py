"""The third edition's speed-ups that change no number, each measured as a ratio against the code it
replaces, side by side (README, Performance). One thread, as the study's runs.

* the input-site event lists: the dataset's order filtered by the dropout mask (network.kept_order)
  against a stable sort of every batch, in one process, alternating, on CIFAR-10 and MNIST batches;
* the encoded splits: read from the checked cache (data.encoded) against encoding them again, in one
  process;
* glibc's allocator settings (system.ALLOCATOR_ENV): training steps of per-step alpha dropout on
  CIFAR-10's input spikes in two child processes, one with the settings and one without, alternating
  (glibc reads them at start, so they cannot share a process).

Usage: python scripts/bench_speedups.py [--json results/bench/speedups.json] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from snnlib.experiment import data as D
from snnlib.experiment.system import ALLOCATOR_ENV, device_description, git_commit, strict_json, write_json_atomic
from snnlib.model import functional as SF
from snnlib.model.dropout import keep_mask
from snnlib.model.kernels import NO_SPIKE
from snnlib.model.network import kept_order

ALPHA_STEPS = """
import sys, time, torch
torch.set_num_threads(1)
from snnlib.experiment import data as D
from snnlib.model.network import NetworkConfig, SRMNetwork
times, order, labels = D.encoded("cifar10", "test", 12).head(128).batch(torch.arange(128))
torch.manual_seed(0)
net = SRMNetwork(NetworkConfig(in_features=3072, dropout="alpha", p=0.5, site="input"))
opt = torch.optim.Adam(net.parameters(), 1e-3)
spent = []
for i in range(int(sys.argv[1])):
    start = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(net(times, order).logits, labels)
    opt.zero_grad(); loss.backward(); opt.step()
    spent.append(time.perf_counter() - start)
print(sorted(spent[2:])[len(spent[2:]) // 2])
"""


def event_lists(name: str, repeats: int) -> dict:
    times, order, _ = D.encoded(name, "test", 12).batch(torch.arange(128))
    sorted_s, filtered_s = [], []
    for i in range(repeats + 5):
        keep = keep_mask(tuple(times.shape), 0.5).bool()
        kept = times.masked_fill(~keep, NO_SPIKE)
        start = time.perf_counter()
        a = SF.events_from_times(kept, 24)
        middle = time.perf_counter()
        b = SF.events_from_times(kept, 24, kept_order(order, keep))
        end = time.perf_counter()
        assert torch.equal(a.fwd_index, b.fwd_index) and torch.equal(a.fwd_offsets, b.fwd_offsets)
        if i >= 5:
            sorted_s.append(middle - start)
            filtered_s.append(end - middle)
    return {"sort_ms": 1e3 * statistics.median(sorted_s), "kept_order_ms": 1e3 * statistics.median(filtered_s),
            "ratio": statistics.median(sorted_s) / statistics.median(filtered_s), "batches": repeats}


def encoding(name: str) -> dict:
    images, labels = D.load(name, "train")
    D.encoded(name, "train", 12)  # the cache exists
    start = time.perf_counter()
    D.encode(images, labels, 12)
    middle = time.perf_counter()
    D.encoded(name, "train", 12)
    end = time.perf_counter()
    return {"encode_s": middle - start, "cached_s": end - middle, "ratio": (middle - start) / (end - middle)}


def allocator(repeats: int, steps: int = 10) -> dict:
    plain = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    plain["OMP_NUM_THREADS"] = "1"
    tuned = {**plain, **ALLOCATOR_ENV}
    default_s, tuned_s = [], []
    for _ in range(repeats):
        for env, out in ((plain, default_s), (tuned, tuned_s)):
            run = subprocess.run([sys.executable, "-c", ALPHA_STEPS, str(steps)], env=env, capture_output=True,
                                 text=True, check=True)
            out.append(float(run.stdout.strip()))
    ratios = [a / b for a, b in zip(default_s, tuned_s, strict=True)]
    return {"default_step_ms": 1e3 * statistics.median(default_s), "allocator_step_ms": 1e3 * statistics.median(tuned_s),
            "ratio_median_of_pairs": statistics.median(ratios), "pairs": repeats, "steps_per_process": steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here (with the commit, device and wall time)")
    parser.add_argument("--repeats", type=int, default=50, help="timed batches per measurement (default 50)")
    parser.add_argument("--pairs", type=int, default=3, help="process pairs for the allocator (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    result = {"event_lists": {name: event_lists(name, args.repeats) for name in ("mnist", "cifar10")},
              "encoded_splits": {name: encoding(name) for name in ("mnist", "cifar10")},
              "allocator": allocator(args.pairs)}
    print(json.dumps(result, indent=1))
    if args.json:
        commit, dirty = git_commit()
        write_json_atomic(args.json, strict_json({"command": "scripts/bench_speedups.py", **result,
                                                  "git_commit": commit, "git_dirty": dirty, "threads": 1,
                                                  "device_name": device_description(torch.device("cpu")),
                                                  "wall_time_s": time.time() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
