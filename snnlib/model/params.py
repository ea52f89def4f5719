"""Typed, validated parameters: one check per kind of value, one line per error.

Every entry point (the command line, the experiment notebook, grid files, the Python API)
builds a :class:`~snnlib.experiment.config.RunConfig`, and the configuration checks each of its
values here. A bad value raises :class:`ParameterError` (a ``ValueError``) whose message
names the parameter, says what it got and what is allowed, in one line; nothing is
written before the check. The rules are strict on purpose: a boolean is a boolean (the
string ``"false"`` is true in Python), an integer is not a float or a boolean, and a real
number is finite (an infinite learning rate trains to NaN and would be recorded).

The lowest layer with ``system`` and ``kernels``: it imports nothing from snnlib.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

MAX_SEED = 2**63 - 1  # torch seeds are 64-bit; the stream seeds are derived from this range


class ParameterError(ValueError):
    """A parameter of the wrong type or out of its range (one line, naming it)."""


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def integer(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` if it is an integer (not a bool, not a float) in ``[low, high]``."""
    allowed = _range_text(low, high)
    if not _is_int(value):
        raise ParameterError(f"{name} must be an integer{allowed}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ParameterError(f"{name} must be an integer{allowed}, got {value}")
    return int(value)  # type: ignore[arg-type]  # numpy integers become Python ones


def real(name: str, value: object, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` if it is a finite number (int or float, not a bool) in the range; ``low_open``
    and ``high_open`` exclude the ends."""
    lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
    hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
    allowed = f" in {lo or '(-inf'}, {hi or 'inf)'}" if lo or hi else ""
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ParameterError(f"{name} must be a finite number{allowed}, got {value!r}")
    v = float(value)  # type: ignore[arg-type]
    if low is not None and (v < low or (low_open and v == low)):
        raise ParameterError(f"{name} must be a finite number{allowed}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ParameterError(f"{name} must be a finite number{allowed}, got {value!r}")
    return value  # type: ignore[return-value]


def boolean(name: str, value: object) -> bool:
    """``value`` if it is True or False (not 1, not ``"false"``: see :func:`parse_boolean`)."""
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be true or false, got {value!r}")
    return value


def choice(name: str, value: object, allowed: Iterable[str], what: str | None = None) -> str:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(f"unknown {what or name} {value!r}; allowed: {', '.join(allowed)}")
    return value


def parse_boolean(name: str, value: object) -> bool:
    """A boolean from a real boolean or, strictly, from the text ``true``/``false`` (any case):
    papermill's ``-p flag false`` passes the string ``'false'``."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return boolean(name, value)


def _range_text(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def check_mapping(name: str, value: object) -> dict:
    """``value`` if it is a dict with text keys (a JSON object)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ParameterError(f"{name} must be a dict of named values, got {value!r}")
    return value
