"""A run record (``metrics.json``): its version, its digest and the checks every reader makes of it (its form, and
each number against its meaning: accuracies are fractions, losses finite and non-negative, counts whole)."""

from __future__ import annotations

import math

from snnlib.experiment.config import RunConfig
from snnlib.experiment.system import json_digest

# 2: dropout-off training metrics, validation split, init_seed, weights file; 3: the record must carry its
# SHA-256 (``record_sha256``), so that a record whose digest was deleted cannot pass for an older one, and a
# finished record holds exactly its configuration's epochs. Version-2 records are sealed once into version 3
# by ``python -m snnlib seal`` (:func:`snnlib.study.seal.seal_results`); the analysis reads version 3 only.
RECORD_VERSION = 3


SEALED_VERSION = 3  # the first version that requires the digest


RECORD_STATUSES = ("running", "finished", "diverged")


SEAL_HINT = "seal its results folder once with `python -m snnlib seal RESULTS`"


# per-neuron lists of a finished record
NEURON_FIELDS = ("hidden_importance", "hidden_silencing_drop", "hidden_firing_rate", "hidden_mean_spike_step")


def record_digest(record: dict) -> str:
    """SHA-256 of a record's canonical strict JSON, without its own ``record_sha256`` (and the
    ``path`` that :func:`snnlib.study.records.load_records` adds): a record changed after it was
    written no longer matches the digest it carries."""
    return json_digest(record, ("record_sha256", "path"))



def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)



# What each number of a record means, as (low, high, whole): a value outside is refused with its name.
# Per epoch: accuracies are fractions, losses and rates finite and non-negative; per run: sample counts are
# whole numbers; per neuron: firing rates are fractions, an importance (an L1 norm) non-negative, the
# accuracy lost when a neuron is silenced a difference of two fractions.
_FRACTION, _NON_NEGATIVE, _COUNT = (0.0, 1.0, False), (0.0, math.inf, False), (0.0, math.inf, True)
EPOCH_MEANINGS = {"epoch": _COUNT, "train_acc": _FRACTION, "train_eval_acc": _FRACTION, "val_acc": _FRACTION,
                  "test_acc": _FRACTION, "train_loss": _NON_NEGATIVE, "train_eval_loss": _NON_NEGATIVE,
                  "val_loss": _NON_NEGATIVE, "test_loss": _NON_NEGATIVE, "train_hidden_spikes": _NON_NEGATIVE,
                  "test_hidden_spikes": _NON_NEGATIVE, "test_input_spikes": _NON_NEGATIVE,
                  "test_synaptic_events": _NON_NEGATIVE, "train_samples_per_s": _NON_NEGATIVE,
                  "wall_time_s": _NON_NEGATIVE}
RUN_MEANINGS = {"train_samples": _COUNT, "train_eval_samples": _COUNT, "val_samples": _COUNT,
                "test_samples": _COUNT, "wall_time_s": _NON_NEGATIVE, "peak_rss_mb": _NON_NEGATIVE}
NEURON_MEANINGS = {"hidden_importance": _NON_NEGATIVE, "hidden_firing_rate": _FRACTION,
                   "hidden_silencing_drop": (-1.0, 1.0, False), "hidden_mean_spike_step": _NON_NEGATIVE}


def meaning_problem(name: str, value: object, meaning: tuple[float, float, bool]) -> str | None:
    """Why ``value`` cannot be the number ``name`` (a fraction, a finite non-negative number, a count), or None."""
    low, high, whole = meaning
    if not _is_number(value) or not math.isfinite(value) or not low <= value <= high \
            or (whole and value != int(value)):
        what = "a whole number of at least 0" if whole else (f"a number in [{low:g}, {high:g}]" if math.isfinite(high)
                                                          else f"a finite number of at least {low:g}")
        return f"its {name} is {value!r}, which must be {what}"
    return None


def _values_problem(record: dict) -> str | None:
    """The first number of a record outside its meaning (:data:`EPOCH_MEANINGS` and the others), or None."""
    for i, entry in enumerate(record["epochs"], 1):
        for key, value in entry.items():
            if key in EPOCH_MEANINGS and value is not None:
                why = meaning_problem(key, value, EPOCH_MEANINGS[key])
                if why:
                    return f"epoch {i}: {why}"
    for key, meaning in RUN_MEANINGS.items():
        if record.get(key) is not None and (why := meaning_problem(key, record[key], meaning)):
            return why
    for key, meaning in NEURON_MEANINGS.items():
        for j, value in enumerate(record.get(key) or ()):
            if value is not None and (why := meaning_problem(f"{key}[{j}]", value, meaning)):
                return why
    return None


def _structure_problem(record: dict) -> str | None:
    """What is wrong with the form of a record whose digest checks out (None: nothing)."""
    status = record.get("status")
    if status not in RECORD_STATUSES:
        return f"its status {status!r} is not one of {', '.join(RECORD_STATUSES)}"
    try:
        config = RunConfig.from_dict(record["config"])
    except (ValueError, TypeError) as err:
        return f"its configuration is not valid ({err})"
    epochs = record.get("epochs")
    if not isinstance(epochs, list):
        return f"its epochs are not a list of epochs (got {type(epochs).__name__})"
    for i, entry in enumerate(epochs, 1):
        if not isinstance(entry, dict) or entry.get("epoch") != i or isinstance(entry.get("epoch"), bool):
            return f"its epoch entry {i} is not epoch {i}"
        bad = sorted(k for k, v in entry.items() if v is not None and not _is_number(v))
        if bad:
            return f"its epoch {i} holds values that are not numbers ({', '.join(bad)})"
    for key in NEURON_FIELDS:
        values = record.get(key)
        if values is not None and not (isinstance(values, list) and all(_is_number(v) for v in values)):
            return f"its {key} is not a list of numbers"
    if (why := _values_problem(record)) is not None:
        return why
    done, wanted = len(epochs), config.epochs
    if status == "finished" and done != wanted:
        return f"it is marked finished but holds {done} of the {wanted} epochs of its configuration"
    if status == "diverged" and not (record.get("diverged_at_epoch") == done and 1 <= done <= wanted):
        return f"it is marked diverged at epoch {record.get('diverged_at_epoch')} but holds {done} epochs"
    if status == "running" and done > wanted:
        return f"it holds {done} epochs, more than the {wanted} of its configuration"
    return None



def record_problem(record: object, sealed: bool = True) -> str | None:
    """Why ``record`` (a parsed ``metrics.json``) cannot be trusted, in words; None if it can.

    A record is trusted when it carries the SHA-256 of its contents (:func:`record_digest`) and it
    matches, and when it is a run record that agrees with its own configuration: a valid
    configuration, epochs numbered 1, 2, ... holding numbers, and a finished run holds exactly its
    configuration's epochs (a diverged one stops at ``diverged_at_epoch``). With ``sealed`` (every
    reader of the analysis) it must also be of version :data:`SEALED_VERSION` or later; ``train``
    and the seal step also take the version-2 records written with a digest.
    """
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        return "it is not a run record (no configuration)"
    version = record.get("record_version", 1)
    if not _is_number(version) or version != int(version):
        return f"its record_version {version!r} is not an integer"
    if version > RECORD_VERSION:
        return f"record version {version} is newer than this library reads ({RECORD_VERSION}); update snnlib"
    digest = record.get("record_sha256")
    if digest is None:
        if version >= SEALED_VERSION:
            return (f"it carries no SHA-256, which a record of version {version} must carry: it was changed "
                    f"after it was written")
        return f"it is not sealed (record version {version} without a SHA-256); {SEAL_HINT}"
    if digest != record_digest(record):
        return "it was changed after it was written (its SHA-256 differs)"
    if sealed and version < SEALED_VERSION:
        return f"it is not sealed (record version {version}); {SEAL_HINT}"
    return _structure_problem(record)
