"""Checks shared by the market and participation configs, actions and seeds: each raises
``ValueError`` naming the field and the allowed values, and normalises the value in place.

Bounds that keep every figure finite (observations are float32, whose largest value is about
3.4e38): every scale field lies within ``MAX_MAGNITUDE`` in absolute value, every count within
its own upper bound (``MAX_COUNT`` unless a field says otherwise), and seeds are integers
``>= 0``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_MAGNITUDE = 1e6  # the largest |value| of a scale field (update bounds, noise, costs, ...)
MAX_LEARNERS = 256  # learners (slots) of one market (a reset fits k-means and one ERM per learner)
MAX_COUNT = 10**9  # the largest value of a count field (steps, patience, group sizes, ...)
MAX_PARAM = 1e6  # learners' parameters are kept within [-MAX_PARAM, MAX_PARAM] per coordinate
LOSS_LIMIT = 1e30  # the largest loss a dataset may allow with parameters within MAX_PARAM
MEMORY_LIMIT = 8 * 2**30  # bytes of per-step arrays a configuration may need (estimated)


class UnknownOptionError(TypeError, ValueError):
    """An unexpected keyword argument: a ``TypeError``, as Python and Gymnasium raise for one,
    and a ``ValueError``, as every other bad option here."""


def as_float(v: Any) -> float | None:
    """``v`` as a finite Python float, or None when it is not a finite real number (bools,
    strings, arrays, NaN, inf and reals too large for a float are not)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    try:
        f = float(v)
    except (OverflowError, ValueError, TypeError):
        return None
    return f if math.isfinite(f) else None


def is_real(v: Any) -> bool:
    """A finite real number (bools excluded)."""
    return as_float(v) is not None


def is_integer(v: Any) -> bool:
    """An integer (bools excluded)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def int_at_least(cfg: Any, name: str, low: int, high: int = MAX_COUNT) -> None:
    """``low <= cfg.name <= high``, an integer (normalised to ``int``)."""
    v = getattr(cfg, name)
    if not is_integer(v) or not low <= v <= high:
        raise ValueError(f"{name} must be an integer >= {low} (at most {high}), got {brief(v)}")
    object.__setattr__(cfg, name, int(v))


def real_in(
    cfg: Any,
    name: str,
    low: float = -MAX_MAGNITUDE,
    high: float = MAX_MAGNITUDE,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    """``cfg.name`` a finite real number in the interval (normalised to ``float``)."""
    v = as_float(getattr(cfg, name))
    above = v is not None and (low < v if open_low else low <= v)
    ok = above and (v < high if open_high else v <= high)
    if not ok:
        got = brief(getattr(cfg, name))
        if open_low and low == 0 and not open_high:
            raise ValueError(f"{name} must be a finite number > 0 (at most {high:g}), got {got}")
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {got}")
    object.__setattr__(cfg, name, v)


def unit(cfg: Any, name: str) -> None:
    """A probability in [0, 1]."""
    real_in(cfg, name, 0.0, 1.0)


def nonneg(cfg: Any, name: str, high: float = MAX_MAGNITUDE) -> None:
    """A number in [0, high]."""
    real_in(cfg, name, 0.0, high)


def one_of(cfg: Any, name: str, allowed: tuple[str, ...]) -> None:
    """One of the names ``allowed`` (a ``str``; numpy strings are normalised)."""
    v = getattr(cfg, name)
    if not isinstance(v, str) or v not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {brief(v)}")
    object.__setattr__(cfg, name, str(v))


def is_sequence(v: Any) -> bool:
    """A list-like of values: a sequence or an array of at least one dimension, not a string."""
    if isinstance(v, (str, bytes)):
        return False
    if isinstance(v, np.ndarray) or hasattr(v, "__array__"):
        return np.ndim(v) >= 1
    return isinstance(v, Sequence)


def check_memory(need: int, sizes: str, lower: str) -> None:
    """Refuse, before anything is allocated, a configuration whose per-step arrays would need
    ``need`` > ``MEMORY_LIMIT`` bytes; the message gives the ``sizes`` and what to ``lower``."""
    if need > MEMORY_LIMIT:
        raise ValueError(
            f"this configuration needs about {need / 2**30:.1f} GiB for one step ({sizes}); "
            f"the limit is {MEMORY_LIMIT / 2**30:.0f} GiB: lower {lower}"
        )


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``None`` or an integer ``>= 0`` (a numpy seed), as ``int``; else ``ValueError``."""
    if seed is None:
        return None
    if not is_integer(seed) or seed < 0:
        raise ValueError(f"{name} must be None or an integer >= 0, got {brief(seed)}")
    return int(seed)


def numeric_array(action: Any, shape: tuple[int, ...], name: str = "action") -> np.ndarray:
    """``action`` as a float64 array of ``shape`` with finite entries (a new array), or a
    ``ValueError`` naming ``name``: wrong shape or type, NaN, inf, or a number too large for
    a float."""
    try:
        a = np.array(action, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(
            f"{name} must be a numeric array of shape {shape} with finite entries, "
            f"got {brief(action)}"
        ) from exc
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf; all entries must be finite")
    return a


def check_data_scale(X: np.ndarray, Y: np.ndarray, squared: bool, name: str) -> None:
    """Refuse data on which a model with parameters within ``MAX_PARAM`` could have a loss
    above ``LOSS_LIMIT`` (so every loss, observation and reward stays finite in float32).

    Worst case: ``|z| <= MAX_PARAM max_i ||x_i||_1``; squared loss ``(|z| + max |y|)^2`` per
    output, the classification losses at most ``2 |z| + log C``. ``Y``: the labels or
    targets (NaN entries, unrated outputs, are ignored)."""
    # in blocks of rows: no temporary the size of X (it would double the peak memory)
    blocks = range(0, len(X), 1024)
    rows = max((float(np.abs(X[i : i + 1024]).sum(1).max()) for i in blocks), default=0.0)
    ys = np.abs(np.asarray(Y, np.float64))
    y_max = float(np.nanmax(ys)) if ys.size and not np.isnan(ys).all() else 0.0
    z = MAX_PARAM * rows
    width = Y.shape[1] if np.ndim(Y) == 2 else 1
    with np.errstate(over="ignore"):  # an overflow is inf: refused below
        worst = float(np.float64(z + y_max) ** 2 * width) if squared else 2.0 * z + 10.0
    if not worst <= LOSS_LIMIT:
        raise ValueError(
            f"dataset {name!r} has values too large for the market (largest |x|_1 of a user "
            f"{rows:.3g}, largest |y| {y_max:.3g}): with parameters within +-{MAX_PARAM:g} a "
            f"loss could reach {worst:.3g}, above {LOSS_LIMIT:g}; rescale the data "
            "(dataset_options)"
        )


def brief(v: Any) -> str:
    """A short repr for error messages (huge numbers and arrays are cut)."""
    try:
        text = repr(v)
    except Exception:  # noqa: BLE001  (a repr that fails must not hide the real error)
        text = f"<{type(v).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."
