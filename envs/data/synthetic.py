"""Synthetic populations: the main paper's two-slopes instance and Gaussian groups."""

from __future__ import annotations

import math

import numpy as np

from .preprocess import check_bool, design_buffer
from .registry import Dataset, register_dataset

BLOCK = 1024  # rows of the Gaussian-groups covariates generated at once


def load_two_slopes(
    a: float = 1.0, b: float = -1.0, w: float = 0.6, n_users: int = 20000, seed: int = 0
) -> Dataset:
    """Appendix C, Example 1: x ~ Uniform with mean 0, variance 1 (1-D, no intercept).

    A fraction ``w`` of users have ``y = a x`` (group 0, prefers learner 0), the rest
    ``y = b x`` (group 1). Least squares on everyone: slope ``w a + (1-w) b``, risk
    ``w(1-w)(a-b)^2``; specialist ``a`` has risk ``(1-w)(a-b)^2``, specialist ``b`` ``w(a-b)^2``.
    """
    for name, v in (("a", a), ("b", b)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not 0.0 < w < 1.0:
        raise ValueError(f"w must be in (0, 1), got {w!r}")
    if n_users < 4:
        raise ValueError(f"n_users must be an integer >= 4, got {n_users!r}")
    rng = np.random.default_rng(seed)
    n0 = round(w * n_users)
    groups = np.r_[np.zeros(n0, np.int64), np.ones(n_users - n0, np.int64)]
    x = rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), size=n_users)
    y = np.where(groups == 0, a * x, b * x)
    return Dataset(
        name="two-slopes",
        X=x[:, None],
        y=y,
        task="regression",
        groups=groups,
        feature_names=("x",),
        description=f"Two-slopes instance (a={a}, b={b}, w={w}) of Narang et al., Appendix C.",
        extra={"a": a, "b": b, "w": w},
    )


def load_gaussian_groups(
    n_groups: int = 3,
    n_users: int = 6000,
    n_features: int = 5,
    separation: float = 2.0,
    label_noise: float = 0.5,
    intercept: bool = True,
    seed: int = 0,
) -> Dataset:
    """Binary classification with group structure: group g has centre ``mu_g`` and its own
    rule ``y = 1[w_g . (x - mu_g) + noise > 0]``, so one linear model cannot fit every group
    and a group's specialist is poor elsewhere. ``groups`` holds each user's group."""
    if n_groups < 1:
        raise ValueError(f"n_groups must be an integer >= 1, got {n_groups!r}")
    if n_users < 2 * n_groups:
        raise ValueError(f"n_users must be an integer >= 2 * n_groups, got {n_users!r}")
    if n_features < 1:
        raise ValueError(f"n_features must be an integer >= 1, got {n_features!r}")
    if not separation >= 0:
        raise ValueError(f"separation must be >= 0, got {separation!r}")
    if not label_noise >= 0:
        raise ValueError(f"label_noise must be >= 0, got {label_noise!r}")
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, n_features)) * separation
    rules = rng.normal(size=(n_groups, n_features))
    rules /= np.linalg.norm(rules, axis=1, keepdims=True)
    groups = np.arange(n_users) % n_groups
    names = tuple(f"x{j}" for j in range(n_features))
    X, F, names = design_buffer(n_users, names, check_bool("intercept", intercept))
    score = np.empty(n_users)
    # filled in blocks of rows, so no temporary is the size of X; the normal draws come in the
    # same order as one (n_users, n_features) draw, so the population does not depend on BLOCK
    for start in range(0, n_users, BLOCK):
        rows = slice(start, min(start + BLOCK, n_users))
        c = centres[groups[rows]]
        F[rows] = c + rng.normal(size=(len(c), n_features))
        score[rows] = np.einsum("nd,nd->n", F[rows] - c, rules[groups[rows]])
    y = (score + label_noise * rng.normal(size=n_users) > 0).astype(np.int64)
    return Dataset(
        name="gaussian-groups",
        X=X,
        y=y,
        task="binary",
        groups=groups,
        feature_names=names,
        description=f"{n_groups} Gaussian groups with group-specific linear labelling rules.",
    )


register_dataset("two-slopes", load_two_slopes)
register_dataset("gaussian-groups", load_gaussian_groups)
