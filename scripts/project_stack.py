"""The whole study's time with stacked runs (issue 36): measured ratios on 2 CPU cores, a PROJECTION on one GPU.

Inputs, all committed: the study's finished records (``results/**/metrics.json``: dataset, configuration, epochs,
recorded single-run wall time), the stacked-run benchmark (``results/bench/stack.json``: per dataset and stack
size S, the epoch ratio of S stacked runs against S single runs on one CPU thread, and the operations a
training step and an evaluation batch dispatch, in the GPU's form), the H200 measurements of a single run's
training step (``results/bench/h200/*_cuda.json``) and the bytes a step moves (``results/bench/limits.json``).

Groups: the runs of one grid that share a stack key (:func:`snnlib.experiment.stack.stack_key`: dataset, seed,
data and network sizes), as ``python -m snnlib.experiment.runner GRID --stack`` stacks them; also, for the GPU,
all runs of a stack key across the grids (what one grid file listing them would stack).

* CPU, 2 cores: each group's recorded hours divided by the measured epoch ratio at its size (interpolated in
  log S between the measured sizes, 1 beyond them; per-step alpha dropout on the input, whose dense input
  layer is its own, keeps ratio 1), two runners side by side: half the total. Reported in record hours and
  scaled to today's code (the 317 first-design runs: 38.5 h recorded, 20.9 h with today's code; DESIGN.md 6).
* GPU (projection, nothing here ran on a GPU): a single run's step on the H200 waits on its launches, so a
  step of a stack of S takes max(operations(S) x t_op, S x bytes / bandwidth, its dense flops / rate), with
  t_op = the H200's measured single step over the operations of that step; operations(S) is linear in S
  (fitted to the counts at the measured sizes). An epoch is its training steps and 50 evaluation batches of
  500; each notebook execution adds ``--start`` seconds (kernel start, data loading, end-of-run measures).

Usage: python scripts/project_stack.py [--json results/bench/stack_projection.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
from pathlib import Path

import numpy as np
import torch

from snnlib.bench.stack import EPOCH_EVAL_BATCHES, EPOCH_TRAIN, count_operations, single_step
from snnlib.experiment import data as D
from snnlib.experiment.config import RunConfig
from snnlib.experiment.stack import stack_key
from snnlib.experiment.system import git_commit, write_json_atomic
from snnlib.model.network import NetworkConfig, SRMNetwork

ROOT = Path(__file__).resolve().parent.parent
RECORDED_FIRST_DESIGN_H, TODAY_FIRST_DESIGN_H = 38.5, 20.9  # DESIGN.md section 6
H200_BANDWIDTH = 4.8e12  # bytes/s, the H200's peak HBM bandwidth
H200_FP32 = 60e12  # flop/s, about the H200's float32 rate without tensor cores


def records() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "results").glob("*/*/*/seed*/metrics.json")):
        record = json.loads(path.read_text())
        if record.get("status") == "finished":
            found.append((path.relative_to(ROOT / "results").parts[0], record))
    return found


def dense_input(config: RunConfig) -> bool:
    return config.variant == "alpha" and config.site == "input" and not config.time_consistent


def interpolate_ratio(rows: list[dict], size: int) -> float:
    """The measured epoch ratio at ``size`` (log-linear between measured sizes; 1 beyond them: no
    measurement, no gain claimed)."""
    sizes = [r["runs"] for r in rows]
    ratios = [r["epoch_ratio"] for r in rows]
    if size < min(sizes) or size > max(sizes):
        return 1.0
    return float(np.interp(math.log(size), np.log(sizes), ratios))


def operations_fit(rows: list[dict], key: str) -> tuple[float, float]:
    """(shared, per run) operations of ``key``, least squares over the measured sizes."""
    sizes = np.array([r["runs"] for r in rows], dtype=float)
    counts = np.array([r["operations"][key] for r in rows], dtype=float)
    per_run, shared = np.polyfit(sizes, counts, 1)
    return float(shared), float(per_run)


def single_dropout_operations(dataset: str) -> int:
    """Operations of one training step of the H200 benchmark's network (dropout p = 0.5 on the current)."""
    times, order, labels = D.encoded(dataset, "test", 12).batch(torch.arange(128))
    torch.manual_seed(0)
    net = SRMNetwork(NetworkConfig(in_features=times.shape[1], dropout="dropout", p=0.5))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    single_step([net], [optimizer], times, order, labels)  # the kernels' caches filled
    return count_operations(lambda: single_step([net], [optimizer], times, order, labels))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="results/bench/stack.json")
    parser.add_argument("--json", default=None)
    parser.add_argument("--start", type=float, default=15.0, help="seconds per notebook execution (default 15)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = json.loads((ROOT / args.bench).read_text())
    limits = {r["dataset"]: r for r in json.loads((ROOT / "results/bench/limits.json").read_text())["results"]}
    rows = {d: sorted((r for r in bench["results"] if r["dataset"] == d), key=lambda r: r["runs"]) for d in EPOCH_TRAIN}
    found = records()
    gpu_model = {}
    for d in EPOCH_TRAIN:
        h200 = json.loads((ROOT / f"results/bench/h200/{d}_cuda.json").read_text())
        step_s = 128 / next(r["samples_per_s"] for r in h200["results"] if r["competitor"] == "snnlib")
        ops = single_dropout_operations(d)
        parts = limits[d]["parts"]
        forward = sum(p["bytes"] for p in parts if "backward" not in p["part"] and p["part"] != "Adam step")
        gpu_model[d] = {"h200_single_step_s": step_s, "single_step_operations": ops, "t_op_s": step_s / ops,
                        "step_ops": operations_fit(rows[d], "stacked_step_gpu_form"),
                        "eval_ops": operations_fit(rows[d], "stacked_eval_gpu_form"),
                        "step_bytes": sum(p["bytes"] for p in parts),
                        "step_bytes_gathered": sum(p["cache_bytes"] for p in parts),
                        "eval_bytes": forward * 500 / 128}

    def gpu_parts(groups: list[list[RunConfig]]) -> dict:
        """Minutes: the computing of the stacks of two or more runs, of the runs alone (other seeds), the
        notebook starts; the total; notebooks and the largest stack."""
        stacks = sum(gpu_group_s(g[0].dataset, g) - args.start for g in groups if len(g) > 1) / 60
        alone = sum(gpu_group_s(g[0].dataset, g) - args.start for g in groups if len(g) == 1) / 60
        starts = len(groups) * args.start / 60
        return {"stacks_min": stacks, "runs_alone_min": alone, "starts_min": starts,
                "total_min": stacks + alone + starts, "notebooks": len(groups),
                "runs_alone": sum(len(g) == 1 for g in groups), "largest_stack": max(len(g) for g in groups)}

    def gpu_group_s(dataset: str, configs: list[RunConfig]) -> float:
        m, S = gpu_model[dataset], len(configs)
        epochs = max(c.epochs for c in configs)
        dense_flops = sum(3 * 2 * 24 * 128 * c.network_config().in_features * 4 * 128 for c in configs if dense_input(c))
        step = max((m["step_ops"][0] + m["step_ops"][1] * S) * m["t_op_s"], S * m["step_bytes"] / H200_BANDWIDTH,
                   dense_flops / H200_FP32)
        evaluation = max((m["eval_ops"][0] + m["eval_ops"][1] * S) * m["t_op_s"], S * m["eval_bytes"] / H200_BANDWIDTH)
        return epochs * (math.ceil(EPOCH_TRAIN[dataset] / 128) * step + EPOCH_EVAL_BATCHES * evaluation) + args.start

    by_grid: dict[tuple, list] = collections.defaultdict(list)
    across: dict[str, list] = collections.defaultdict(list)
    for grid, record in found:
        config = RunConfig.from_dict(record["config"])
        by_grid[(grid, stack_key(config))].append((config, record["wall_time_s"]))
        across[stack_key(config)].append((config, record["wall_time_s"]))
    recorded_s = sum(r["wall_time_s"] for _, r in found)
    cpu_s = 0.0
    for runs in by_grid.values():
        dataset, size = runs[0][0].dataset, len(runs)
        for config, seconds in runs:
            cpu_s += seconds / (1.0 if dense_input(config) else interpolate_ratio(rows[dataset], size))
    today = TODAY_FIRST_DESIGN_H / RECORDED_FIRST_DESIGN_H
    single_gpu_s = sum(gpu_group_s(c.dataset, [c]) for _, r in found for c in [RunConfig.from_dict(r["config"])])
    result = {
        "runs": len(found), "recorded_single_run_h": recorded_s / 3600,
        "cpu": {"single_run_h": recorded_s / 3600, "stacked_h": cpu_s / 3600,
                "two_cores_wall_h_recorded_code": cpu_s / 3600 / 2,
                "today_code_factor": today, "two_cores_wall_h_single_today": recorded_s * today / 3600 / 2,
                "two_cores_wall_h_stacked_today": cpu_s * today / 3600 / 2},
        "gpu_projection": {"model": gpu_model, "bandwidth_B_s": H200_BANDWIDTH, "fp32_flop_s": H200_FP32,
                           "seconds_per_notebook": args.start,
                           "single_runs_min": single_gpu_s / 60,
                           "stacked_per_grid": gpu_parts([[c for c, _ in runs] for runs in by_grid.values()]),
                           "stacked_across_grids": gpu_parts([[c for c, _ in runs] for runs in across.values()])},
        "bench": args.bench, "git_commit": git_commit()[0],
    }
    cpu, gpu = result["cpu"], result["gpu_projection"]
    print(f"{len(found)} finished runs, {recorded_s / 3600:.1f} h of recorded single-run time")
    print(f"CPU (measured ratios): stacked {cpu['stacked_h']:.1f} h of single-thread time; on 2 cores "
          f"{cpu['two_cores_wall_h_single_today']:.1f} h single -> {cpu['two_cores_wall_h_stacked_today']:.1f} h "
          f"stacked (today's code)")
    print(f"GPU (projection): single runs {gpu['single_runs_min']:.0f} min")
    for name in ("stacked_per_grid", "stacked_across_grids"):
        part = gpu[name]
        print(f"  {name}: {part['total_min']:.0f} min = stacks {part['stacks_min']:.1f} + runs alone "
              f"{part['runs_alone_min']:.1f} ({part['runs_alone']}) + notebook starts {part['starts_min']:.1f} "
              f"({part['notebooks']} notebooks, largest stack {part['largest_stack']})")
    if args.json:
        write_json_atomic(ROOT / args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
