"""Command line: ``python -m snnlib {train,fetch,summary,compare,claims,report,uncertainty,bench,seal} ...``.

Bad input exits with status 2 and one line naming the problem; nothing saved is touched. A
full disk, a read-only folder or a run that diverged exit with status 1 and one line. A file that
a reader skips (an edited, unsealed or duplicated record or evaluation) is named in one line
``warning: ...`` on stderr. No command writes its output over a file that another command wrote
for the analysis (``--json`` must be a new file that is not named like one).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import warnings
from pathlib import Path

from snnlib.experiment.data import DATASETS
from snnlib.experiment.system import DEVICE_CHOICES
from snnlib.model.dropout import KINDS
from snnlib.model.network import SITES, NetworkConfig

NET_DEFAULTS = NetworkConfig()


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one configuration and write DIR/metrics.json",
                       description="Train the SRM network once and write OUT/metrics.json "
                       "(resumable: run the same command again after an interruption).")
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--variant", default="none", help=f"dropout kind, one of: {', '.join(KINDS)}")
    p.add_argument("--p", type=float, default=0.0, help="dropout probability in [0, 1) (default 0)")
    p.add_argument("--time-consistent", action="store_true",
                   help="draw one dropout mask per sample and keep it for all T steps "
                        "(default: a fresh mask at every step, as in the paper)")
    p.add_argument("--site", default="current",
                   help=f"where dropout acts, one of: {', '.join(SITES)} (default current: the "
                        "hidden layer's synaptic current, as in the paper)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the sample order and the dropout masks, and of the initial weights "
                        "unless --init-seed is given (default 0)")
    p.add_argument("--init-seed", type=int, default=None,
                   help="seed of the initial weights (default: --seed); a run with --init-seed S and another "
                        "--seed shares its initial weights with the runs of seed S")
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--train-subset", type=int, default=None, help="use the first N training samples")
    p.add_argument("--test-subset", type=int, default=None, help="use the first N test samples")
    p.add_argument("--val-size", type=int, default=0,
                   help="hold out the last N training samples as a validation set, never trained on (default 0; "
                        "every grid of the study uses 5000: pass it to reproduce a study record)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, cosine schedule (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    p.add_argument("--t-enc", type=int, default=12,
                   help="input coding window: a pixel x fires at round((1 - x) * t_enc) (default 12)")
    p.add_argument("--T", type=int, default=NET_DEFAULTS.T, help=f"simulation steps (default {NET_DEFAULTS.T})")
    p.add_argument("--K", type=int, default=NET_DEFAULTS.K, help=f"sub-synapses per connection (default {NET_DEFAULTS.K})")
    p.add_argument("--delay-spread", type=int, default=NET_DEFAULTS.delay_spread,
                   help=f"steps between the K delays 0, s, 2s, ... (default {NET_DEFAULTS.delay_spread})")
    p.add_argument("--tau", type=float, default=NET_DEFAULTS.tau, help=f"kernel time constant (default {NET_DEFAULTS.tau})")
    p.add_argument("--threshold", type=float, default=NET_DEFAULTS.threshold,
                   help=f"firing threshold (default {NET_DEFAULTS.threshold})")
    p.add_argument("--hidden", type=int, default=NET_DEFAULTS.hidden, help="hidden neurons (default 128)")
    p.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto: CUDA if available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--out", required=True, help="run folder (created; holds metrics.json and checkpoint.pt)")


def _train(args: argparse.Namespace) -> int:
    import torch

    from snnlib.experiment.config import RunConfig
    from snnlib.experiment.run import divergence, run

    if args.threads is not None:
        if args.threads <= 0:
            raise ValueError(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    network = {}
    for name in ("T", "K", "delay_spread", "tau", "threshold", "hidden"):
        value = getattr(args, name)
        if value != getattr(NET_DEFAULTS, name):
            network[name] = value
    config = RunConfig(
        dataset=args.dataset, variant=args.variant, p=args.p, time_consistent=args.time_consistent,
        site=args.site, seed=args.seed, init_seed=args.init_seed, epochs=args.epochs,
        train_subset=args.train_subset, test_subset=args.test_subset, val_size=args.val_size,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, t_enc=args.t_enc, network=network,
    )
    record = run(config, args.out, device=args.device, progress=not args.no_progress)
    if record["status"] != "finished":
        print(f"error: the run {divergence(record)}; {args.out}/metrics.json says so", file=sys.stderr)
        return 1
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from snnlib.experiment.data import fetch, load

    for name in args.datasets:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
        root = fetch(name)
        for split in ("train", "test"):
            images, _ = load(name, split)
            print(f"{name} {split}: {images.shape} verified in {root}")
    return 0


def _results_folder(path: str, label: str = "results") -> Path:
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"no {label} folder {root}")
    return root


# Files that the analysis reads or that runs keep: no command writes its own output under these names.
ANALYSIS_FILES = ("metrics.json", "uncertainty.json", "ensemble*.json", "weights.pt", "checkpoint.pt",
                  "experiment.ipynb", "*.tmp", ".lock")


def _refuse_existing(path: str | None) -> None:
    if not path:
        return
    if any(fnmatch.fnmatch(Path(path).name, name) for name in ANALYSIS_FILES):
        raise ValueError(f"{path} is named like a file the analysis reads or a run keeps ({', '.join(ANALYSIS_FILES)}); "
                         f"choose another name")
    if Path(path).exists() or Path(path).is_symlink():
        raise ValueError(f"{path} exists; remove it or choose another file")


def _grids_folder(path: str | None) -> Path:
    from snnlib.study.design import DEFAULT_GRIDS

    grids = DEFAULT_GRIDS if path is None else Path(path)
    if not grids.is_dir():
        raise ValueError(f"no grids folder {grids}; pass --grids DIR (the folder of the study's grid files)")
    if not any(grids.glob("*.json")):
        raise ValueError(f"no grid files in {grids}; pass --grids DIR (the folder of the study's grid files)")
    return grids


def _summary(args: argparse.Namespace) -> int:
    from snnlib.study.design import KEPT_APART
    from snnlib.study.records import format_summary, load_records, runs_table, summary

    # a whole results folder: its reruns kept apart (reproducibility/) are not its configurations
    table = runs_table(load_records(_results_folder(args.results), apart=KEPT_APART))
    metrics = ("test_acc", "train_loss", "train_eval_loss", "test_loss")
    rows = summary(table, metrics)
    print(format_summary(rows, metrics))
    print(f"\n{int(rows['n'].sum()) if len(rows) else 0} finished runs in {len(rows)} configurations "
          f"(a row pools the seeds of one configuration, nothing else)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from snnlib.study.report import study_report

    grids = _grids_folder(args.grids)
    readme = None
    if args.readme:
        readme = Path(args.readme)
        if any(fnmatch.fnmatch(readme.name, name) for name in ANALYSIS_FILES):
            raise ValueError(f"--readme {readme} is a file the analysis reads or a run keeps; name the README")
        if not readme.resolve().is_file():
            raise ValueError(f"no README {readme}; --readme must name an existing file with the report markers")
    report = study_report(_results_folder(args.results), grids)
    if readme is not None:
        from snnlib.experiment.system import replace_text
        from snnlib.study.report import with_report

        try:
            text = with_report(readme.read_text(encoding="utf-8"), report)
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read README {readme}: {err}") from err
        replace_text(readme, text)  # a symbolic link's file, keeping its mode; a read-only file is refused
        print(f"wrote the report into {readme}")
    else:
        print(report, end="")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from snnlib.experiment.system import git_commit, write_json_atomic
    from snnlib.study.design import KEPT_APART
    from snnlib.study.progress import REPRODUCED, compare_records
    from snnlib.study.records import scan_records

    reference, rerun = _results_folder(args.reference, "reference results"), _results_folder(args.rerun, "rerun results")
    _refuse_existing(args.json)
    expected = None
    if args.grid:
        from snnlib.experiment.grid import expand_grid, load_grid

        expected = [spec.rel for spec in expand_grid(load_grid(args.grid))]
    old, new = scan_records(reference, apart=KEPT_APART), scan_records(rerun, apart=KEPT_APART)
    (old, old_refused), (new, new_refused) = (old.records, old.refused), (new.records, new.refused)
    if not new and not new_refused:
        raise ValueError(f"no run records under {rerun}")
    rows = compare_records(old, new, new_refused, expected, old_refused)
    for row in rows:
        times = ""
        if row["reference_wall_time_s"] is not None and row["rerun_wall_time_s"] is not None:
            times = f"  wall {row['reference_wall_time_s']:.0f} s -> {row['rerun_wall_time_s']:.0f} s"
        detail = f" (importances within {row['importance_difference']:.1e})" if row["verdict"] == "reproduced" else ""
        why = f" ({row['why']})" if row.get("why") else ""
        print(f"{row['path']}: {row['verdict']}{detail}{why}{times}")
    verdicts = [row["verdict"] for row in rows]
    good = sum(v in REPRODUCED for v in verdicts)
    counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    print(f"{good} of {len(rows)} rerun records reproduce the reference: {counts}")
    if args.json:
        commit, dirty = git_commit()
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(args.json), {
            "command": "compare", "reference": args.reference, "rerun": args.rerun, "git_commit": commit,
            "git_dirty": dirty, "summary": counts, "reproduced": good, "runs": len(rows), "rows": rows})
    return 0 if good == len(rows) else 1


def _claims(args: argparse.Namespace) -> int:
    from snnlib.experiment.system import git_commit, write_json_atomic
    from snnlib.study.claims import evaluate_claims, verdict_table
    from snnlib.study.design import study_design
    from snnlib.study.records import scan_line, scan_records, warn_scan

    root = _results_folder(args.results)
    _refuse_existing(args.json)
    scan = scan_records(root, study_design(_grids_folder(args.grids)))
    warn_scan(root, scan)
    records = scan.records
    if not records:
        raise ValueError(f"no run records of the design under {root}")
    claims = evaluate_claims(records)
    print(verdict_table(claims))
    print(f"\n{scan_line(scan).replace('**', '').replace('`', '')}")
    if args.json:
        commit, dirty = git_commit()
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(args.json), {"command": "claims", "results": args.results, "git_commit": commit,
                                            "git_dirty": dirty, "records": len(records), **claims.to_json()})
    return 0


def _seal(args: argparse.Namespace) -> int:
    from snnlib.study.seal import seal_results

    root = _results_folder(args.results)
    done, refused = seal_results(root, check=args.check)
    for line in refused:
        print(f"refused {line}", file=sys.stderr)
    what = "to seal" if args.check else "sealed"
    print(f"{done} files {what}, {len(refused)} refused; the rest were sealed already")
    return 2 if refused else 0


def _bench(args: argparse.Namespace) -> int:
    from snnlib.bench.command import main as bench_main

    return bench_main(args)


def _uncertainty(args: argparse.Namespace) -> int:
    from snnlib.uncertainty.command import main as uncertainty_main

    return uncertainty_main(args)


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line ``error: ...`` on stderr and exit status 2, like every other error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="python -m snnlib",
        description="SRM spiking network and the dropout family (Lyu and Yin reproduction).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrors)
    _add_train(sub)
    f = sub.add_parser("fetch", help="download, verify and cache the datasets",
                       description="Fetch and verify real MNIST / CIFAR-10 into the data folder "
                                   "($SNNLIB_DATA or data/).")
    f.add_argument("datasets", nargs="*", default=list(DATASETS), help=f"any of: {', '.join(DATASETS)}")
    summary = sub.add_parser("summary", help="the final-accuracy table of a results folder (markdown)",
                             description="Print mean and standard deviation over seeds of the last epoch's "
                                         "test accuracy, training loss (dropout on and off) and test loss for every "
                                         "configuration under RESULTS (finished runs).")
    summary.add_argument("results", help="a results folder, e.g. results/paper")
    compare = sub.add_parser("compare", help="check a rerun of a grid against the records it should reproduce",
                             description="Compare every run record under RERUN with the record at the same "
                                         "place under REFERENCE: configuration and every per-epoch and "
                                         "per-neuron number (times excluded). A rerun that is missing (every "
                                         "reference record's, or with --grid every run of the grid) or whose "
                                         "record is damaged counts as a difference. Exit status 1 if any differs.")
    compare.add_argument("reference", help="the records to reproduce, e.g. results/paper")
    compare.add_argument("rerun", help="the rerun's records, e.g. the --results folder of the runner plus /paper")
    compare.add_argument("--grid", help="the grid file the rerun ran (its runs must all be there); default: every "
                                        "reference record must have its rerun")
    compare.add_argument("--json", help="also write the comparison to this JSON file (must not exist)")
    claims = sub.add_parser("claims", help="the verdict on each of the paper's claims, from the records under RESULTS",
                            description="Test the paper's claims C1-C3 on the run records under RESULTS that the design "
                                        "plans (the grid files of --grids: a record counts in its planned folder with "
                                        "its planned configuration; others are ignored or, for a copy of a planned "
                                        "run, an error) and print the verdict table; the rules are in "
                                        "snnlib.study.preregistration.")
    claims.add_argument("results", help="a results folder, e.g. results")
    claims.add_argument("--grids", help="the folder of the grid files, the design whose records count (default: "
                                        "the project's grids/)")
    claims.add_argument("--json", help="also write every test, cell and verdict to this JSON file (must not exist)")
    report = sub.add_parser("report", help="the study's results as Markdown (the README's Results section)",
                            description="Print progress per grid, the final numbers of every kind at every site, the "
                                        "verdict table, the key tests, the uncertainty tables and the compute, from "
                                        "the records under RESULTS.")
    report.add_argument("results", help="a results folder, e.g. results")
    report.add_argument("--grids", help="the folder of the grid files, the design whose records count (default: "
                                        "the project's grids/)")
    report.add_argument("--readme", help="replace the report block of this README (between its report markers) "
                                         "instead of printing")
    seal = sub.add_parser("seal", help="seal the run records and evaluations of a results folder once (version 3)",
                          description="Give every version-2 run record and every uncertainty evaluation under "
                                      "RESULTS the SHA-256 of its contents and of the records it was made from, after "
                                      "checking each against its committed version in git (or, for a record git does "
                                      "not track, against the SHA-256 it carries); refuses, one line each, any that "
                                      "differ. Sealed files are left as they are. See snnlib.study.seal.seal_results.")
    seal.add_argument("results", help="a results folder, e.g. results")
    seal.add_argument("--check", action="store_true", help="say what would be sealed or refused, write nothing")
    from snnlib.bench.command import add_arguments as add_bench_arguments
    from snnlib.uncertainty.command import add_arguments as add_uncertainty_arguments

    add_bench_arguments(sub.add_parser("bench", help="training throughput: snnlib vs dense vs snnTorch",
                                       description="Measure training samples/s and peak memory of "
                                                   "snnlib, a dense reference and snnTorch, side by side."))
    add_uncertainty_arguments(sub.add_parser(
        "uncertainty", help="predictive uncertainty of finished runs: MC dropout, temperature scaling, ensembles",
        description="Evaluate finished runs (RUN_DIR/uncertainty.json) on the test set and on shifted and "
                    "out-of-distribution data: deterministic, temperature-scaled, MC dropout and single-pass "
                    "predictions, and optionally the ensemble of the runs."))
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """A warning as one line ``warning: ...`` (a skipped file), without Python's source lines."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    shown = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        return _run(args)
    finally:
        warnings.formatwarning = shown


def _run(args: argparse.Namespace) -> int:
    from snnlib.experiment.config import RunError
    from snnlib.experiment.data import DataError
    from snnlib.experiment.system import StorageError

    try:
        commands = {"train": _train, "fetch": _fetch, "bench": _bench, "summary": _summary, "compare": _compare,
                    "claims": _claims, "report": _report, "uncertainty": _uncertainty, "seal": _seal}
        return commands[args.command](args)
    except (ValueError, RunError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (StorageError, MemoryError) as err:  # the machine, not the input: exit 1
        print(f"error: {err or 'out of memory'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
