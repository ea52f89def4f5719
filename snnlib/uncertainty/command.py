"""``python -m snnlib uncertainty``: evaluate finished runs or an ensemble, as a command."""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import sys
from pathlib import Path

import torch

from snnlib.experiment import data as D
from snnlib.experiment.config import RunError
from snnlib.experiment.run import load_trained
from snnlib.experiment.system import (
    FolderLocked,
    StorageError,
    folder_lock,
    resolve_device,
    write_json_atomic,
)
from snnlib.experiment.training import EVAL_BATCH
from snnlib.uncertainty.evaluate import (
    DEFAULT_ANGLES,
    DEFAULT_SHIFT_SUBSET,
    DIGEST_KEY,
    ENSEMBLE_PATTERN,
    OUTPUT_FILE,
    UNCERTAINTY_VERSION,
    VERSIONS,
    _ensemble_key,
    check_version,
    ensemble_settings,
    evaluate_ensemble,
    evaluate_run,
    evaluation_digest,
    sealed_evaluation,
    settings_dict,
)
from snnlib.uncertainty.predict import DEFAULT_PASSES


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``python -m snnlib uncertainty``."""
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished run folders (with weights.pt)")
    p.add_argument("--passes", type=int, default=DEFAULT_PASSES,
                   help=f"MC dropout passes N; the curve over n = 1..N comes from them (default {DEFAULT_PASSES})")
    p.add_argument("--mask-seed", type=int, default=0, help="seed of the test-time dropout masks (default 0)")
    p.add_argument("--shift-subset", type=int, default=DEFAULT_SHIFT_SUBSET,
                   help=f"test images per shift and OOD set (default {DEFAULT_SHIFT_SUBSET}; the test set "
                        "itself is the run's)")
    p.add_argument("--angles", type=int, nargs="+", default=list(DEFAULT_ANGLES),
                   help="rotations of the MNIST shift sets, degrees (default "
                        f"{' '.join(str(a) for a in DEFAULT_ANGLES)})")
    p.add_argument("--batch-size", type=int, default=EVAL_BATCH, help=f"evaluation batch (default {EVAL_BATCH})")
    p.add_argument("--device", default="auto", help="auto (CUDA if available; default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--ensemble", default=None, metavar="OUT.json",
                   help="also evaluate the RUN_DIRs as one deep ensemble and write it to OUT.json")
    p.add_argument("--evaluation-version", type=int, default=UNCERTAINTY_VERSION, choices=VERSIONS,
                   help=f"{UNCERTAINTY_VERSION} (default): the registered evaluation; 3: also the near-OOD set and "
                        "MC dropout and the ensemble temperature-scaled (snnlib.uncertainty.scaled)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an uncertainty.json (or OUT.json) computed with other settings "
                        "(default: refuse; one with the same settings is skipped)")



def _existing(path: Path, wanted: dict, overwrite: bool, kind: str) -> bool:
    """True if ``path`` holds this evaluation, intact (skip it); False if it is to be computed. Raises a
    one-line ``ValueError`` if ``path`` holds anything but an evaluation of ``kind`` (such a file is
    never replaced, not even with ``overwrite``), or another or a damaged evaluation without
    ``overwrite``."""
    if not path.exists() and not path.is_symlink():
        return False
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = None
    if path.is_symlink() or not isinstance(saved, dict) or saved.get("kind") != kind \
            or not isinstance(saved.get("methods"), dict):
        raise ValueError(f"{path} exists and is not an uncertainty evaluation of kind {kind!r} (never replaced); "
                         f"move it away or choose another file")
    if saved.get(DIGEST_KEY) != evaluation_digest(saved):
        if overwrite:
            return False
        raise ValueError(f"{path} was changed after it was written (or is not sealed); pass --overwrite to "
                         f"compute it again")
    if all(saved.get(k) == v for k, v in wanted.items()):
        return True
    if not overwrite:
        raise ValueError(f"{path} holds an evaluation with other settings or weights; "
                         f"pass --overwrite to replace it")
    return False



def _version(args: argparse.Namespace) -> int:
    """The evaluation version asked for (a namespace made without the option: the default)."""
    return getattr(args, "evaluation_version", UNCERTAINTY_VERSION)


def _check_args(args: argparse.Namespace) -> None:
    check_version(_version(args))
    if args.passes < 1:
        raise ValueError(f"--passes must be a positive integer, got {args.passes}")
    if args.mask_seed < 0:
        raise ValueError(f"--mask-seed must be >= 0, got {args.mask_seed}")
    if args.shift_subset is not None and not 1 <= args.shift_subset <= 10000:
        raise ValueError(f"--shift-subset must be in [1, 10000], got {args.shift_subset}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {args.threads}")
    for a in args.angles:
        if not 0 < a <= 360:
            raise ValueError(f"--angles must be in (0, 360] degrees, got {a}")
    if args.ensemble is not None and len(args.run_dirs) < 2:
        raise ValueError("--ensemble needs at least 2 RUN_DIRs")
    if args.ensemble is not None and not fnmatch.fnmatch(Path(args.ensemble).name, ENSEMBLE_PATTERN):
        raise ValueError(f"--ensemble must name a file {ENSEMBLE_PATTERN} (the name the analysis reads), "
                         f"got {args.ensemble}")



def _plan(args: argparse.Namespace) -> tuple[list[str], dict, bool]:
    """(the runs to evaluate, {run: what its file must hold}, whether the ensemble is to be computed);
    raises a one-line ``ValueError``, :class:`RunError` or ``DataError`` for bad input."""
    todo, wanted, configs = [], {}, []
    for d in args.run_dirs:
        config, _, record = load_trained(d, "cpu")  # refuses damaged, unsealed, unfinished runs, foreign weights
        configs.append(config)
        wanted[d] = {"settings": settings_dict(config.dataset, args.passes, args.mask_seed, args.shift_subset,
                                               args.angles, args.batch_size, _version(args)),
                     "weights_sha256": record["weights_sha256"], "record_sha256": record["record_sha256"]}
        if not _existing(Path(d) / OUTPUT_FILE, wanted[d], args.overwrite, "run"):
            todo.append(d)
    ensemble_todo = False
    if args.ensemble is not None:
        out = Path(args.ensemble)
        if out.is_dir():
            raise ValueError(f"--ensemble {out} is a folder; give a file name")
        if len({_ensemble_key(c) for c in configs}) != 1:
            raise ValueError("--ensemble runs must share dataset, test subset, t_enc and T")
        wanted["ensemble"] = {"settings": ensemble_settings(configs[0].dataset, args.shift_subset, args.angles,
                                                            args.batch_size, _version(args)),
                              "member_sha256": sorted(w["weights_sha256"] for w in wanted.values())}
        ensemble_todo = not _existing(out, wanted["ensemble"], args.overwrite, "ensemble")
    return todo, wanted, ensemble_todo



def _lock_folders(stack: contextlib.ExitStack, folders: list[Path]) -> None:
    """Locks each folder (once) for the rest of the command: a second command on one of them is refused."""
    for folder in dict.fromkeys(f.resolve() for f in folders):
        try:
            stack.enter_context(folder_lock(folder))
        except FolderLocked as err:
            raise RunError(str(err)) from err



def main(args: argparse.Namespace) -> int:
    """``python -m snnlib uncertainty``: writes ``RUN_DIR/uncertainty.json`` for every run (and the
    ensemble's file with ``--ensemble``). Everything is checked, and every folder written is locked,
    before anything is computed or written; bad input gives one line ``error: ...`` on stderr and
    status 2. A run whose file holds the same settings, weights and record is skipped, so rerunning
    does nothing."""
    with contextlib.ExitStack() as stack:
        try:
            _check_args(args)
            resolve_device(args.device)
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            if len({Path(d).resolve() for d in args.run_dirs}) != len(args.run_dirs):
                raise ValueError("a RUN_DIR is given twice")
            todo, _, ensemble_todo = _plan(args)
            folders = [Path(d) for d in todo]
            if ensemble_todo:
                Path(args.ensemble).parent.mkdir(parents=True, exist_ok=True)
                folders.append(Path(args.ensemble).parent)
            _lock_folders(stack, folders)
            todo, wanted, ensemble_todo = _plan(args)  # again under the locks: another command may have ended
        except (ValueError, RunError, D.DataError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except StorageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return _compute(args, todo, ensemble_todo)



def _compute(args: argparse.Namespace, todo: list[str], ensemble_todo: bool) -> int:
    try:
        for d in args.run_dirs:
            if d not in todo:
                print(f"{d}: {OUTPUT_FILE} is up to date, nothing to do")
                continue
            result = evaluate_run(d, args.passes, args.mask_seed, args.shift_subset, args.angles, args.device,
                                  args.batch_size, version=_version(args))
            write_json_atomic(Path(d) / OUTPUT_FILE, sealed_evaluation(result))
            m = result["methods"]
            line = ", ".join(f"{k} {v['results']['test'].get('accuracy', float('nan')):.4f}/"
                             f"{v['results']['test'].get('ece', float('nan')):.4f}" for k, v in m.items())
            print(f"{d}: test accuracy/ECE {line} ({result['wall_time_s']:.0f} s)")
        if args.ensemble is not None:
            if not ensemble_todo:
                print(f"{args.ensemble}: up to date, nothing to do")
            else:
                out = Path(args.ensemble)
                result = evaluate_ensemble(args.run_dirs, args.shift_subset, args.angles, args.device,
                                           args.batch_size, relative_to=out.parent, version=_version(args))
                write_json_atomic(out, sealed_evaluation(result))
                test = result["methods"]["ensemble"]["results"]["test"]
                print(f"{out}: ensemble of {len(args.run_dirs)}, test accuracy {test['accuracy']:.4f}, "
                      f"ECE {test['ece']:.4f}")
    except (ValueError, RunError, D.DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StorageError as err:  # a full or read-only disk: what was written before is kept
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
