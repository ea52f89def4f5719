"""``python -m snnlib bench``: the training-step benchmark, the scaling and the machine's limits, as a command."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from snnlib.bench.limits import limits
from snnlib.bench.stack import bench_stack
from snnlib.bench.step import bench_dataset, memory_probe, scaling
from snnlib.experiment import data as D
from snnlib.experiment.system import DEVICE_CHOICES, device_description, git_commit, resolve_device, write_json_atomic


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"], help="mnist and/or cifar10")
    p.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128, the study's)")
    p.add_argument("--variant", default="dropout", help="dropout kind of snnlib's network (default dropout)")
    p.add_argument("--p", type=float, default=0.5, help="dropout probability (default 0.5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions, the median is reported (default 5)")
    p.add_argument("--steps", type=int, default=10, help="training steps per repetition (default 10)")
    p.add_argument("--competitors", nargs="+", default=["snnlib", "dense", "snntorch", "spikingjelly"],
                   help="any of snnlib dense snntorch spikingjelly")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--scaling", action="store_true",
                   help="instead: snnlib's throughput as T, K and the hidden size vary (one at a time)")
    p.add_argument("--limits", action="store_true",
                   help="instead: this machine's memory bandwidth and matmul rate, and snnlib's training step "
                        "part by part (share of the step, achieved GB/s and GFLOP/s, fraction of the limit); "
                        "each time is the fastest of --repeats rounds of --steps single calls")
    p.add_argument("--stack", action="store_true",
                   help="instead: S runs of a study group trained as one stack against the same S runs one by one, "
                        "in one process, alternating (medians of --repeats rounds of --steps steps and one "
                        "evaluation batch), for each S of --sizes")
    p.add_argument("--sizes", nargs="+", type=int, default=[1, 4, 16, 64], help="stack sizes of --stack (default 1 4 16 64)")
    p.add_argument("--width", type=int, default=None,
                   help="--stack: networks per gather of eq 3 (default: 1 on a CPU, all on a GPU)")
    p.add_argument("--chunk", type=int, default=None,
                   help="--stack: networks computed together (default: the stacked trainer's, all on a GPU, "
                        "cache-sized chunks on a CPU)")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)  # internal: one fresh-process probe



def main(args: argparse.Namespace) -> int:
    allowed = {"snnlib", "dense", "snntorch", "spikingjelly"}
    bad = [c for c in args.competitors if c not in allowed]
    if bad:
        raise ValueError(f"unknown competitor {bad[0]!r}; allowed: {', '.join(sorted(allowed))}")
    for name in args.datasets:
        if name not in D.DATASETS:
            raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(D.DATASETS)}")
    for name in ("batch_size", "warmup", "repeats", "steps"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.datasets[0], args.memory_probe, args.batch_size, args.variant,
                                      args.p, max(args.steps, 5))))
        return 0
    if sum(bool(x) for x in (args.scaling, args.limits, args.stack)) > 1:
        raise ValueError("--scaling, --limits and --stack exclude each other")
    if args.stack and (not args.sizes or min(args.sizes) < 1 or min(args.width or 1, args.chunk or 1) < 1):
        raise ValueError("--sizes, --width and --chunk must be positive integers")
    device = resolve_device(args.device)
    print(f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
          f"batch {args.batch_size}, snnlib variant {args.variant} p={args.p}")
    began, load_before = time.perf_counter(), _load_average()
    extra = {}
    if args.limits:
        measured = limits(device, args)
        results, extra = measured["results"], {"machine": measured["machine"]}
    elif args.scaling:
        results = scaling(device, args)
    elif args.stack:
        results = [r for name in args.datasets for r in bench_stack(name, device, args)]
    else:
        results = [r for name in args.datasets for r in bench_dataset(name, device, args)]
    if args.json:
        commit, dirty = git_commit()
        record = {"config": {k: v for k, v in vars(args).items() if k not in ("func", "memory_probe")},
                  "device": str(device), "device_name": device_description(device),
                  "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                  "batch_size": args.batch_size, "git_commit": commit, "git_dirty": dirty,
                  "wall_time_s": time.perf_counter() - began,
                  "load_average": {"before": load_before, "after": _load_average()}, **extra, "results": results}
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, record)
    return 0



def _load_average() -> float | None:
    """The machine's 1-minute load average (other processes share the cores when it exceeds the
    threads used here), None where the system does not report it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
