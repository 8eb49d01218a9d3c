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


def design_buffer(
    n: int, names: tuple[str, ...], intercept: bool
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(M, F, names)``: an uninitialised float64 design matrix ``M`` (n, d [+ 1]) whose last
    column is the constant 1.0 ``intercept`` when asked for, the view ``F = M[:, :d]`` a loader
    fills with the features in place (no second full-size copy), and the column names."""
    d = len(names)
    M = np.empty((n, d + 1 if intercept else d))
    if intercept:
        M[:, d] = 1.0
        return M, M[:, :d], (*names, "intercept")
    return M, M, tuple(names)


def design_matrix(
    X: np.ndarray, names: tuple[str, ...], intercept: bool, standardise: bool = True
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(Standardised) ``X`` with an optional constant column ``intercept``, and its names."""
    Z = standardise_columns(X) if standardise else np.asarray(X, dtype=np.float64)
    if not intercept:
        return Z, tuple(names)
    M, F, names = design_buffer(Z.shape[0], tuple(names), True)
    F[...] = Z
    return M, names


def partition_rows_in_place(X: np.ndarray, first: np.ndarray, block: int = 1024) -> bool:
    """Stable partition of the rows of ``X`` in place: the rows ``first`` (increasing indices)
    in order, then the others in order, i.e. ``X <- X[concat(first, rest)]`` with temporaries
    of ``block`` rows and of the ``rest`` rows only, never a copy of ``X``.

    Returns False (and leaves ``X`` as it is) when ``X`` is not a C-contiguous array owning its
    memory (a view of another array), so the caller copies instead.
    """
    if not (X.flags.c_contiguous and X.flags.owndata and X.base is None):
        return False
    if np.any(np.diff(first) <= 0):
        raise ValueError("first must hold increasing row indices")
    writeable = X.flags.writeable
    X.flags.writeable = True  # allowed: X owns its memory
    keep = np.zeros(len(X), dtype=bool)
    keep[first] = True
    rest = X[~keep]  # saved before the front rows overwrite them
    # first[j] >= j, so the rows a block reads are never ones an earlier block wrote
    for start in range(0, len(first), block):
        stop = min(start + block, len(first))
        X[start:stop] = X[first[start:stop]]
    X[len(first) :] = rest
    X.flags.writeable = writeable
    return True


class MissingDataFile(FileNotFoundError, ValueError):
    """A data file the user must supply is not where the options say; the message names the
    path and how to obtain the file. A ``ValueError`` too, so bad options and missing files
    are reported alike (e.g. by the command line)."""
