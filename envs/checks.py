"""Field checks shared by the market and participation configs: each raises ``ValueError``
naming the field and the allowed values, and normalises the value in place."""

from __future__ import annotations

import math
import numbers
from typing import Any


class UnknownOptionError(TypeError, ValueError):
    """An unexpected keyword argument: a ``TypeError``, as Python and Gymnasium raise for one,
    and a ``ValueError``, as every other bad option here."""


def is_real(v: Any) -> bool:
    """A finite real number (bools excluded)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def is_integer(v: Any) -> bool:
    """An integer (bools excluded)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def int_at_least(cfg: Any, name: str, low: int) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    object.__setattr__(cfg, name, int(v))


def unit(cfg: Any, name: str) -> None:
    v = getattr(cfg, name)
    if not (is_real(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")


def nonneg(cfg: Any, name: str) -> None:
    v = getattr(cfg, name)
    if not (is_real(v) and v >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


def one_of(cfg: Any, name: str, allowed: tuple[str, ...]) -> None:
    v = getattr(cfg, name)
    if v not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {v!r}")
