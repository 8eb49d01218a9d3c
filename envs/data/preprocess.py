"""Small preprocessing steps shared by the loaders."""

from __future__ import annotations

import numpy as np


def check_bool(option: str, value: bool) -> bool:
    """``value`` as a bool; anything but a boolean raises ValueError naming ``option``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{option} must be True or False, got {value!r}")
    return bool(value)


def standardise_columns(X: np.ndarray) -> np.ndarray:
    """Columns shifted and scaled to mean 0, std 1; constant columns become 0."""
    X = np.asarray(X, dtype=np.float64)
    constant = np.ptp(X, axis=0) == 0
    std = np.where(constant, 1.0, X.std(axis=0))
    Z = (X - X.mean(axis=0)) / std
    Z[:, constant] = 0.0
    return Z


def design_matrix(
    X: np.ndarray, names: tuple[str, ...], intercept: bool, standardise: bool = True
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(Standardised) ``X`` with an optional constant column ``intercept``, and its names."""
    Z = standardise_columns(X) if standardise else np.asarray(X, dtype=np.float64)
    if intercept:
        return np.hstack([Z, np.ones((Z.shape[0], 1))]), (*names, "intercept")
    return Z, tuple(names)


class MissingDataFile(FileNotFoundError, ValueError):
    """A data file the user must supply is not where the options say; the message names the
    path and how to obtain the file. A ``ValueError`` too, so bad options and missing files
    are reported alike (e.g. by the command line)."""
