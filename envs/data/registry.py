"""Dataset records and the registry that maps dataset names to loaders.

A loader is a function ``loader(**options) -> Dataset``. Later loaders (folktables, MovieLens,
Amazon reviews) plug in with :func:`register_dataset`; the market looks datasets up by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Task = Literal["regression", "binary", "multiclass", "masked_regression"]
TASKS: tuple[str, ...] = ("regression", "binary", "multiclass", "masked_regression")


@dataclass(frozen=True)
class Dataset:
    """A population of users: covariates ``X`` (N, d) and labels ``y`` (N,).

    ``task`` picks the loss: ``regression`` (squared loss, float labels), ``binary`` (logistic,
    labels in {0, 1}) or ``multiclass`` (softmax cross-entropy, labels in 0..n_classes-1).
    ``groups`` (N,) is an optional integer category per user (used by ``preferences="category"``).
    ``masked_regression`` (masked multi-output squared loss): ``y`` is (N, o) with NaN where a
    user gave no value, ``n_classes`` is set to o, and ``extra["normalise"]`` (``"items"`` or
    ``"rated"``) picks the loss normalisation.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    task: Task
    n_classes: int = 1
    groups: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        X = np.ascontiguousarray(self.X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ValueError(f"dataset {self.name!r}: X must be a 2-D array with >= 2 rows")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"dataset {self.name!r}: X contains NaN or inf")
        if self.task not in TASKS:
            raise ValueError(f"dataset {self.name!r}: task must be one of {TASKS}")
        y = np.asarray(self.y)
        if self.task == "masked_regression":
            y = np.array(y, dtype=np.float64)
            if y.ndim != 2 or y.shape[0] != X.shape[0] or y.shape[1] < 1:
                raise ValueError(f"dataset {self.name!r}: y must have shape ({X.shape[0]}, o)")
            if np.isinf(y).any() or np.isnan(y).all():
                raise ValueError(f"dataset {self.name!r}: y must be finite or NaN (unrated)")
            y.flags.writeable = False
            object.__setattr__(self, "n_classes", y.shape[1])
        elif y.shape != (X.shape[0],):
            raise ValueError(f"dataset {self.name!r}: y must have shape ({X.shape[0]},)")
        if self.task == "regression":
            y = y.astype(np.float64)
            if not np.all(np.isfinite(y)):
                raise ValueError(f"dataset {self.name!r}: y contains NaN or inf")
        elif self.task != "masked_regression":
            n_classes = 2 if self.task == "binary" else self.n_classes
            if n_classes < 2 or y.min() < 0 or y.max() >= n_classes:
                raise ValueError(f"dataset {self.name!r}: labels must lie in 0..{n_classes - 1}")
            y = y.astype(np.int64)
            object.__setattr__(self, "n_classes", n_classes)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        if self.groups is not None:
            g = np.asarray(self.groups, dtype=np.int64)
            if g.shape != (X.shape[0],) or g.min() < 0:
                raise ValueError(f"dataset {self.name!r}: groups must be (N,) non-negative ints")
            object.__setattr__(self, "groups", g)

    @property
    def n_users(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]


_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(name: str, loader: Callable[..., Dataset], *, overwrite: bool = False):
    """Register ``loader`` under ``name`` (``loader(**options) -> Dataset``)."""
    if name in _LOADERS and not overwrite:
        raise ValueError(f"dataset {name!r} is already registered")
    _LOADERS[name] = loader
    return loader


def dataset_names() -> tuple[str, ...]:
    """Names of every registered dataset, sorted."""
    return tuple(sorted(_LOADERS))


def load_dataset(name: str, **options) -> Dataset:
    """Load dataset ``name`` with loader ``options``; unknown names or options raise ValueError."""
    if name not in _LOADERS:
        raise ValueError(f"dataset must be one of {dataset_names()}, got {name!r}")
    loader = _LOADERS[name]
    params = inspect.signature(loader).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise ValueError(
                f"dataset_options {unknown} not accepted by dataset {name!r}; "
                f"allowed: {sorted(params)}"
            )
    try:
        return loader(**options)
    except (TypeError, OverflowError) as exc:  # e.g. a float where the loader needs an int
        raise ValueError(
            f"dataset_options {sorted(options)} of dataset {name!r} are invalid: {exc}"
        ) from exc
