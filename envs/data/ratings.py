"""Shared pieces of the ratings populations: biased matrix factorisation and the dataset record.

User covariates come from a rank-r factorisation of the observed ratings
``r_ui ~ mu + b_u + c_i + p_u^T q_i``, fitted by alternating least squares on the observed
entries only, with the L2 weight counted once per observed rating (the objective of the
Surprise library's ``SVD(biased=True)``, which the published experiments used):

    min sum_{(u,i) observed} [(r_ui - mu - b_u - c_i - p_u^T q_i)^2
                              + reg (b_u^2 + c_i^2 + |p_u|^2 + |q_i|^2)].

Surprise minimises it by stochastic gradient descent (20 epochs, learning rate 0.005,
``reg = 0.02``, factors initialised N(0, 0.1^2)); here each half-step solves the per-user (per-item)
ridge problems exactly, vectorised over users. Both reach a stationary point of the same
objective, but not the same one: factorisations are only determined up to rotation, and SGD
stopped after 20 epochs is not converged. So the covariates play the same role as the paper's
but are not numerically the same; results in the paper's units are comparable only in
distribution.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .preprocess import check_bool
from .registry import Dataset

# how the masked squared loss of a ratings market averages (see the market's losses.py)
NORMALISATIONS: tuple[str, ...] = ("items", "rated")


def factorise(
    R: np.ndarray,
    rank: int = 5,
    reg: float = 0.02,
    iterations: int = 20,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Biased rank-``rank`` ALS of ratings ``R`` (N, o), NaN where unobserved.

    Returns user factors ``P`` (N, rank) and item factors ``Q`` (o, rank). Users (items)
    with no observed rating get zero factors.
    """
    rated = ~np.isnan(R)
    M = rated.astype(np.float64)
    Y = np.where(rated, R, 0.0)
    N, o = R.shape
    mu = Y.sum() / max(M.sum(), 1.0)
    rng = np.random.default_rng(seed)
    P = 0.1 * rng.standard_normal((N, rank))
    Q = 0.1 * rng.standard_normal((o, rank))
    b_user = np.zeros(N)
    b_item = np.zeros(o)
    n_user = M.sum(1)
    n_item = M.sum(0)
    for _ in range(iterations):
        # users: solve for [p_u, b_u] with items' [q_i, 1] as regressors
        F = np.hstack([Q, np.ones((o, 1))])
        target = (Y - (mu + b_item)[None, :]) * M
        P_ext = _ridge_rows(M, target, F, reg * n_user)
        P, b_user = P_ext[:, :rank], P_ext[:, rank]
        G = np.hstack([P, np.ones((N, 1))])
        target = (Y - (mu + b_user)[:, None]) * M
        Q_ext = _ridge_rows(M.T, target.T, G, reg * n_item)
        Q, b_item = Q_ext[:, :rank], Q_ext[:, rank]
    return P, Q


def _ridge_rows(M: np.ndarray, target: np.ndarray, F: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """For each row u: ``argmin_w sum_j M_uj (target_uj - F_j w)^2 + reg_u |w|^2`` (batched)."""
    k = F.shape[1]
    outer = (F[:, :, None] * F[:, None, :]).reshape(len(F), k * k)
    A = (M @ outer).reshape(-1, k, k) + (np.maximum(reg, 1e-12))[:, None, None] * np.eye(k)
    b = target @ F
    return np.linalg.solve(A, b[..., None])[..., 0]


def check_int(option: str, value: object, low: int) -> int:
    """``value`` as an int >= ``low``; anything else raises ValueError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{option} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_normalise(value: object) -> str:
    if value not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {value!r}")
    return str(value)


def check_factorisation(
    rank: object, normalise: object, mf_reg: object, mf_iterations: object, seed: object
) -> tuple[int, str, float, int, int]:
    """The options every ratings loader shares, validated: ``(rank, normalise, mf_reg,
    mf_iterations, seed)``; a bad one raises ValueError naming it."""
    ok = isinstance(mf_reg, (int, float)) and not isinstance(mf_reg, bool)
    if not (ok and math.isfinite(mf_reg) and mf_reg >= 0):
        raise ValueError(f"mf_reg must be a finite number >= 0, got {mf_reg!r}")
    return (
        check_int("rank", rank, 1),
        check_normalise(normalise),
        float(mf_reg),
        check_int("mf_iterations", mf_iterations, 1),
        check_int("seed", seed, 0),
    )


def ratings_dataset(
    name: str,
    R: np.ndarray,
    rank: int,
    normalise: str,
    intercept: bool,
    mf_reg: float,
    mf_iterations: int,
    seed: int,
    description: str,
    item_ids: np.ndarray,
    groups: np.ndarray | None = None,
    extra: dict | None = None,
) -> Dataset:
    """A ``masked_regression`` dataset: covariates from :func:`factorise`, targets ``R``."""
    intercept = check_bool("intercept", intercept)
    P, _ = factorise(R, rank, mf_reg, mf_iterations, seed)
    names = tuple(f"factor{j}" for j in range(rank))
    if intercept:
        P, names = np.hstack([P, np.ones((len(P), 1))]), (*names, "intercept")
    info = {"normalise": normalise, "item_ids": item_ids, "n_ratings": int((~np.isnan(R)).sum())}
    info.update(extra or {})
    return Dataset(
        name=name,
        X=P,
        y=R,
        task="masked_regression",
        groups=groups,
        feature_names=names,
        description=description,
        extra=info,
    )
