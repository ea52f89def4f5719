"""Sealing a folder of older records and evaluations once (``python -m snnlib seal RESULTS``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from snnlib.experiment.run import record_problem

# Fields that say when, where and how fast a file was made, not what it holds: an evaluation computed again
# (same settings and weights) differs in them only.
_PROVENANCE = ("wall_time_s", "train_samples_per_s", "git_commit", "git_dirty", "device", "device_name",
               "peak_rss_mb", "torch_version", "python_version")



def _numbers(obj: object) -> object:
    """``obj`` without its provenance fields (:data:`_PROVENANCE`) at any depth."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if k not in _PROVENANCE}
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    return obj



class _History:
    """The committed versions of files in the git repository that holds a folder (none outside one)."""

    def __init__(self, folder: Path):
        self.top: Path | None = None
        self.tracked: set[str] = set()
        top = self._git(folder, "rev-parse", "--show-toplevel")
        if top is None:
            return
        self.top = Path(top.decode().strip())
        listed = self._git(self.top, "ls-files", "-z", "--", folder.resolve().relative_to(self.top).as_posix())
        self.tracked = {p for p in (listed or b"").decode().split("\0") if p}

    @staticmethod
    def _git(cwd: Path, *args: str) -> bytes | None:
        import subprocess

        try:
            proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout if proc.returncode == 0 else None

    def versions(self, path: Path) -> list[tuple[str, object]] | None:
        """(commit, parsed JSON) of ``path`` in each commit that changed it since it was last added,
        newest first; None when git does not track it (or a version is not JSON)."""
        if self.top is None:
            return None
        rel = path.resolve().relative_to(self.top).as_posix()
        if rel not in self.tracked:
            return None
        log = self._git(self.top, "log", "--format=@%H", "--name-status", "--no-renames", "--", rel)
        commits: list[str] = []
        commit = ""
        for line in (log or b"").decode().splitlines():
            if line.startswith("@"):
                commit = line[1:]
            elif line.strip():
                commits.append(commit)
                if line.split("\t")[0] == "A":
                    break
        versions = []
        for commit in commits:
            shown = self._git(self.top, "show", f"{commit}:{rel}")
            try:
                versions.append((commit, json.loads(shown or b"")))
            except ValueError:
                return None
        return versions or None



def _against_history(content: dict, versions: list[tuple[str, object]] | None, label: str) -> tuple[str | None, str]:
    """(why ``content`` is refused, or None; what it was checked against) by its committed versions: it must
    be the latest committed version, and every version since the file was added must hold its numbers."""
    if versions is None:
        return (f"it carries no SHA-256 and git holds no version of it to check it against; {label}",
                "nothing")
    latest_commit, latest = versions[0]
    if content != latest:
        return (f"it differs from its version in commit {latest_commit[:10]}: it was changed after it was "
                f"committed (git diff shows how; restore it with git checkout, or move it away)", "")
    added_commit, added = versions[-1]
    for commit, version in reversed(versions[:-1]):
        if _numbers(version) != _numbers(added):
            return (f"its numbers were changed in commit {commit[:10]} after it was added in commit "
                    f"{added_commit[:10]}; numbers never change once written (check that commit, restore the "
                    f"file as it was added, or move it away)", "")
    return None, f"commit {added_commit}"



def _sealed_record(path: Path, record: object, history: _History) -> tuple[dict | None, str | None]:
    """(the sealed record to write, or None when it is sealed already; why it is refused, or None)."""
    from snnlib.experiment.run import RECORD_VERSION, record_digest

    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        return None, "it is not a run record (no configuration)"
    version = record.get("record_version", 1)
    problem = record_problem(record, sealed=True)
    if problem is None:
        return None, None
    if isinstance(version, int) and version >= RECORD_VERSION or not isinstance(version, int):
        return None, problem  # a damaged version-3 record (or a newer or nonsensical version)
    versions = history.versions(path)
    if "record_sha256" in record:
        if record["record_sha256"] != record_digest(record):
            return None, "it was changed after it was written (its SHA-256 differs)"
        checked = "its SHA-256"
        if versions is not None:
            why, checked = _against_history(record, versions, "")
            if why:
                return None, why
    else:
        why, checked = _against_history(record, versions, "train it again with this library")
        if why:
            return None, why
    sealed = {k: v for k, v in record.items() if k != "record_sha256"}
    sealed["record_version"] = RECORD_VERSION
    sealed["sealed"] = {"from_version": version, "checked_against": checked}
    sealed["record_sha256"] = record_digest(sealed)
    problem = record_problem(sealed, sealed=True)
    return (None, problem) if problem else (sealed, None)



def _sealed_evaluation(path: Path, evaluation: object, history: _History,
                       record_at) -> tuple[dict | None, str | None]:
    """(the sealed evaluation to write, or None when it is sealed already; why it is refused, or None).
    ``record_at(folder)`` is the sealed record in ``folder``, or why there is none."""
    from snnlib.uncertainty.evaluate import DIGEST_KEY, evaluation_digest, evaluation_problem, link_evaluation

    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("methods"), dict):
        return None, "it is not an uncertainty evaluation"
    if DIGEST_KEY in evaluation:
        return None, evaluation_problem(evaluation, path, record_at)
    why, checked = _against_history(evaluation, history.versions(path),
                                    "run `python -m snnlib uncertainty` on its runs again with --overwrite")
    if why:
        return None, why
    linked, why = link_evaluation(evaluation, path, record_at)
    if why:
        return None, why
    linked["sealed"] = {"checked_against": checked}
    linked[DIGEST_KEY] = evaluation_digest(linked)
    why = evaluation_problem(linked, path, record_at)
    return (None, why) if why else (linked, None)



def seal_results(root: str | Path, check: bool = False,
                 log: Callable[[str], None] = print) -> tuple[int, list[str]]:
    """Seals every run record and uncertainty evaluation under ``root`` once (``python -m snnlib seal``);
    returns (files sealed, or to seal with ``check``; one line per file refused).

    A record of version 2 becomes version 3 with the SHA-256 of its contents (``record_sha256``) and a
    ``sealed`` note of what it was checked against:

    - a record that git tracks must be its last committed version, and every committed version since
      the file was added must hold the same numbers (a record committed with edited numbers is refused);
    - a record git does not track (written by a library that already sealed records, but as version 2)
      must carry a SHA-256 that checks out;
    - and either must agree with its configuration (a finished record holds exactly its epochs).

    An evaluation (``uncertainty.json``, ``ensemble*.json``) without a digest must likewise be its last
    committed version (only times may differ between its committed versions), and made from the sealed
    records it names: the run's record beside it, or each member's (same weights, same configuration). It
    gets the SHA-256 of each such record and of its own contents. Sealed files are left as they are, so
    the step can be run again (for records that arrive later); a folder that another process is writing
    is left for a later run. Nothing refused is changed: fix or move it away and run the step again.
    """
    root = Path(root)
    history = _History(root)
    refused: list[str] = []
    done = 0
    sealed_records: dict[Path, dict | str] = {}
    for path in sorted(root.glob("**/metrics.json")):
        state, value = _seal_file(path, lambda p, content: _sealed_record(p, content, history), check, log)
        if state == "refused":
            refused.append(f"{path}: {value}")
            value = f"its record is refused ({value})"
        sealed_records[path.parent.resolve()] = value
        done += state == "sealed"

    def record_at(folder: Path) -> dict | str:
        return sealed_records.get(folder.resolve(), "there is no run record there")

    for path in sorted({*root.glob("**/uncertainty.json"), *root.glob("**/ensemble*.json")}):
        state, value = _seal_file(path, lambda p, content: _sealed_evaluation(p, content, history, record_at),
                                  check, log)
        if state == "refused":
            refused.append(f"{path}: {value}")
        done += state == "sealed"
    return done, refused



def _seal_file(path: Path, seal: Callable[[Path, object], tuple[dict | None, str | None]], check: bool,
               log: Callable[[str], None]) -> tuple[str, dict | str]:
    """Seals one file under its folder's lock: (``sealed``, the sealed content), (``already``, the content),
    (``refused``, why) or (``left``, why: another process holds the folder)."""
    from snnlib.experiment.system import FolderLocked, folder_lock, write_json_atomic

    try:
        with folder_lock(path.parent):
            try:
                content = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                return "refused", f"it is not readable JSON ({err})"
            sealed, why = seal(path, content)
            if why:
                return "refused", why
            if sealed is None:
                return "already", content
            log(f"{'would seal' if check else 'sealed'} {path}")
            if not check:
                write_json_atomic(path, sealed)
            return "sealed", sealed
    except FolderLocked:
        log(f"left {path}: another process is writing its folder; run the step again when it ends")
        return "left", "its record is being written by another process"
