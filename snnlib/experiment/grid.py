"""Grid files: the study's experiments as JSON, checked, expanded into configurations and their run folders."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from snnlib.experiment.config import RunConfig, config_difference
from snnlib.experiment.run import divergence, record_problem

CONFIG_FIELDS = tuple(f.name for f in fields(RunConfig))


CONFIG_DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}


LAYOUT_KEYS = ("dataset", "variant", "p", "time_consistent", "site", "seed")


TOP_KEYS = ("name", "description", "base", "axes", "runs")


# states of a configuration that the runner reports as failed without running it
SETTLED_FAILURES = ("diverged", "invalid", "foreign", "damaged", "unsealed")


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")



class GridError(ValueError):
    """The grid file cannot be used (reported in one line, exit status 2)."""


@dataclass
class RunSpec:
    """One configuration of a grid."""

    index: int  # 1-based position in the grid
    kwargs: dict  # RunConfig keyword arguments
    rel: str  # folder relative to RESULTS/<name>/
    config: dict | None = None  # RunConfig.to_dict(), when the configuration is valid
    error: str | None = None  # why it is invalid



def _check_keys(d: dict, where: str, allow_network_dict: bool = True) -> None:
    for key, value in d.items():
        name, dot, sub = key.partition(".")
        if name not in CONFIG_FIELDS or (dot and (name != "network" or not sub)):
            raise GridError(f"{where}: unknown field {key!r}; allowed: {', '.join(CONFIG_FIELDS)} "
                            "and network.NAME")
        if key == "network":
            if not allow_network_dict:
                raise GridError(f"{where}: use network.NAME as an axis, not network")
            if not isinstance(value, dict):
                raise GridError(f"{where}: network must be an object of NetworkConfig overrides")



def _flatten(d: dict) -> dict:
    """``{"network": {"tau": 4}}`` -> ``{"network.tau": 4}``; other keys unchanged."""
    flat = {}
    for key, value in d.items():
        if key == "network":
            flat.update({f"network.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat



def _unflatten(flat: dict) -> dict:
    kwargs, network = {}, {}
    for key, value in flat.items():
        if key.startswith("network."):
            network[key[len("network."):]] = value
        else:
            kwargs[key] = value
    if network:
        kwargs["network"] = network
    return kwargs



def check_grid(grid: object, source: str = "grid") -> dict:
    """Validates the structure of a grid (not the values of its configurations); returns it."""
    if not isinstance(grid, dict):
        raise GridError(f"{source}: a grid must be a JSON object with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(grid) - set(TOP_KEYS))
    if unknown:
        raise GridError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(TOP_KEYS)}")
    name = grid.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GridError(f"{source}: 'name' must be a folder name of letters, digits and _.- (got {name!r})")
    base = grid.get("base", {})
    if not isinstance(base, dict):
        raise GridError(f"{source}: 'base' must be an object of RunConfig fields")
    _check_keys(base, f"{source}: base")
    axes = grid.get("axes", {})
    if not isinstance(axes, dict):
        raise GridError(f"{source}: 'axes' must be an object mapping fields to lists of values")
    _check_keys(axes, f"{source}: axes", allow_network_dict=False)
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{source}: axis {key!r} must be a non-empty list of values")
    runs = grid.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise GridError(f"{source}: 'runs' must be a list of objects (overrides of RunConfig fields)")
    for i, run in enumerate(runs, 1):
        _check_keys(run, f"{source}: runs[{i}]")
        clash = sorted(set(_flatten(run)) & set(axes))
        if clash:
            raise GridError(f"{source}: runs[{i}] sets {', '.join(clash)}, which is an axis")
    return grid



def _no_key_twice(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key given twice (plain JSON keeps the last one silently)."""
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise GridError(f"key {key!r} is given twice in one object; give each key once")
        obj[key] = value
    return obj



def load_grid(path: str | Path) -> dict:
    """Reads and checks a grid file; raises :class:`GridError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise GridError(f"cannot read grid file {path}: {err.strerror or err}") from err
    try:
        grid = json.loads(text, object_pairs_hook=_no_key_twice)
    except GridError as err:
        raise GridError(f"{path}: {err}") from err
    except ValueError as err:
        raise GridError(f"{path} is not valid JSON: {err}") from err
    return check_grid(grid, str(path))



def _fmt(value: object) -> str:
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value).removesuffix(".0")  # exact: distinct numbers never share a folder
    elif value is None:
        text = "none"
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "-", text)



def run_folder(kwargs: dict, varied: dict | None = None) -> str:
    """``<dataset>/<variant>_p<p>_<step|consistent>_<site>[_<key><value>...]/seed<seed>``."""
    f = {**CONFIG_DEFAULTS, **kwargs}
    p = f["p"]
    p = float(p) if isinstance(p, int | float) and not isinstance(p, bool) else p
    mask = {True: "consistent", False: "step"}.get(f["time_consistent"], _fmt(f["time_consistent"]))
    name = f"{_fmt(f['variant'])}_p{_fmt(p)}_{mask}_{_fmt(f['site'])}"
    for key in sorted(varied or {}):
        name += f"_{key}{_fmt(varied[key])}"
    return f"{_fmt(f['dataset'])}/{name}/seed{_fmt(f['seed'])}"



def expand_grid(grid: dict) -> list[RunSpec]:
    """The grid's configurations in execution order (invalid ones carry ``error``)."""
    axes = grid.get("axes") or {}
    axis_keys = list(axes)
    runs = grid.get("runs") or [{}]
    base = _flatten(grid.get("base") or {})
    specs: list[RunSpec] = []
    by_folder: dict[str, RunSpec] = {}
    by_config: dict[str, RunSpec] = {}
    index = 0
    for combo in itertools.product(*(axes[k] for k in axis_keys)):
        for run in runs:
            index += 1
            run_flat = _flatten(run)
            flat = {**base, **dict(zip(axis_keys, combo, strict=True)), **run_flat}
            varied = {k: flat[k] for k in (*axis_keys, *run_flat) if k not in LAYOUT_KEYS}
            kwargs = _unflatten(flat)
            spec = RunSpec(index=index, kwargs=kwargs, rel=run_folder(kwargs, varied))
            try:
                spec.config = RunConfig(**kwargs).to_dict()
            except (TypeError, ValueError) as err:
                spec.error = str(err)
            other = by_folder.get(spec.rel)
            if other is not None:
                if other.kwargs == spec.kwargs or (other.config is not None and other.config == spec.config):
                    continue  # the same configuration twice: run it once
                raise GridError(f"configurations {other.index} and {spec.index} differ but both map to folder "
                                f"{spec.rel}: {other.kwargs} vs {spec.kwargs}")
            key = None if spec.config is None else json.dumps(spec.config, sort_keys=True)
            if key in by_config:
                continue  # the same configuration spelled another way: run once, in the first one's folder
            by_folder[spec.rel] = spec
            if key is not None:
                by_config[key] = spec
            specs.append(spec)
    return specs



def run_state(spec: RunSpec, grid_root: Path) -> tuple[str, dict | None, str]:
    """(state, record, detail): state is new, partial, finished, diverged (its training loss became NaN or
    infinite: settled, reported as a failure), foreign (another run's folder), damaged (a record of this
    configuration that fails its checks: edited, or short of epochs), unsealed (a version-2 record without
    a digest) or invalid. Damaged and unsealed folders are reported as failures, never trained over."""
    if spec.error is not None:
        return "invalid", None, f"invalid configuration: {spec.error}"
    path = grid_root / spec.rel / "metrics.json"
    if not path.exists():
        return "new", None, ""
    try:
        record = json.loads(path.read_text())
        saved = record["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return "foreign", None, f"{path} is not a run record; move it away"
    diff = config_difference(saved, RunConfig.from_dict(spec.config))
    if diff:
        return "foreign", None, (f"{path.parent} holds a run with a different configuration "
                                 f"(differs in: {', '.join(diff)}); move it away")
    problem = record_problem(record, sealed=False)
    if problem is not None:
        if "not sealed" in problem:
            return "unsealed", None, f"{path}: {problem}"
        return "damaged", None, f"{path} cannot be used: {problem}; move it away to run it again"
    if record.get("status") == "finished":
        return "finished", record, ""
    if record.get("status") == "diverged":
        return "diverged", record, f"{divergence(record)}; move {path.parent} away to run it again"
    return "partial", record, f"{len(record.get('epochs', []))}/{spec.config['epochs']} epochs"
