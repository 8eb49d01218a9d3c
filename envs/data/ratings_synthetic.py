"""``synthetic-ratings``: a low-rank ratings population shaped like the MovieLens market.

A stand-in for MovieLens (which may not be redistributed), generated deterministically from
``seed``. Users belong to ``n_groups`` taste groups; user u of group g has latent tastes
``a_u = m_g + s e_u`` (rank ``rank``), item i has tastes ``v_i`` and a bias ``c_i``, and

    rating_ui = clip(round_half(3.5 + c_i + b_u + a_u^T v_i + noise), 0.5, 5)

on the half-star scale 0.5, 1, ..., 5. Which ratings are observed follows a popularity model:
``P(u rated i) = min(1, activity_u * popularity_i)`` with log-normal activity and Zipf-like
popularity, scaled to a mean density ``density``. A user left with no observed rating is
given its most likely item. Covariates are then built exactly as for MovieLens: a
rank-``rank`` biased factorisation of the *observed* ratings (see :mod:`.ratings`), so the
learners never see the latent tastes. ``groups`` holds each user's taste group
(``preferences="category"``). ``s`` = 0.5, ``m_g`` ~ N(0, ``group_separation``^2 I), item
biases ~ N(0, 0.4^2), user biases ~ N(0, 0.3^2), noise ~ N(0, ``noise``^2).
"""

from __future__ import annotations

import math

import numpy as np

from .ratings import check_factorisation, check_int, ratings_dataset
from .registry import Dataset, register_dataset


def load_synthetic_ratings(
    n_users: int = 20000,
    n_items: int = 200,
    rank: int = 5,
    n_groups: int = 5,
    density: float = 0.19,
    group_separation: float = 1.0,
    noise: float = 0.6,
    normalise: str = "items",
    intercept: bool = False,
    mf_reg: float = 0.02,
    mf_iterations: int = 20,
    seed: int = 0,
) -> Dataset:
    """Synthetic low-rank ratings (users x ``n_items``), masked multi-output targets."""
    n_users = check_int("n_users", n_users, 2)
    n_items = check_int("n_items", n_items, 1)
    rank, normalise, mf_reg, mf_iterations, seed = check_factorisation(
        rank, normalise, mf_reg, mf_iterations, seed
    )
    n_groups = check_int("n_groups", n_groups, 1)
    if n_groups > n_users:
        raise ValueError(f"n_groups must be <= n_users ({n_users}), got {n_groups!r}")
    for option, value, low, high in (
        ("density", density, 0.0, 1.0),
        ("group_separation", group_separation, 0.0, math.inf),
        ("noise", noise, 0.0, math.inf),
    ):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and low <= value <= high) or (
            option == "density" and value == 0
        ):
            interval = "(0, 1]" if option == "density" else "a finite number >= 0"
            raise ValueError(f"{option} must be in {interval}, got {value!r}")
    rng = np.random.default_rng(seed)
    groups = np.arange(n_users) % n_groups
    rng.shuffle(groups)
    centres = group_separation * rng.standard_normal((n_groups, rank))
    tastes = centres[groups] + 0.5 * rng.standard_normal((n_users, rank))
    items = rng.standard_normal((n_items, rank)) / math.sqrt(rank)
    item_bias = 0.4 * rng.standard_normal(n_items)
    user_bias = 0.3 * rng.standard_normal(n_users)
    score = 3.5 + item_bias + user_bias[:, None] + tastes @ items.T
    score += noise * rng.standard_normal((n_users, n_items))
    R = np.clip(np.round(2.0 * score) / 2.0, 0.5, 5.0)

    popularity = 1.0 / (1.0 + np.arange(n_items)) ** 0.5
    popularity = popularity[rng.permutation(n_items)]
    activity = rng.lognormal(0.0, 0.8, n_users)
    prob = activity[:, None] * popularity[None, :]
    prob *= density / prob.mean()
    observed = rng.random((n_users, n_items)) < np.minimum(prob, 1.0)
    empty = ~observed.any(1)
    observed[empty, prob[empty].argmax(1)] = True
    R = np.where(observed, R, np.nan)

    return ratings_dataset(
        "synthetic-ratings",
        R,
        rank,
        normalise,
        intercept,
        mf_reg,
        mf_iterations,
        seed,
        description=(
            f"Synthetic rank-{rank} ratings: {n_users} users in {n_groups} taste groups x "
            f"{n_items} items, half-star scale 0.5-5, density {observed.mean():.3f}; covariates "
            "from a biased matrix factorisation of the observed ratings."
        ),
        item_ids=np.arange(n_items),
        groups=groups,
        extra={"density": float(observed.mean())},
    )


register_dataset("synthetic-ratings", load_synthetic_ratings)
