"""The population of a market: train/test split, preferred learners and reference models.

Everything here is fixed for a run: it depends on the dataset, the config and a population
seed, never on the learners' actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..data import load_dataset
from ..data.registry import Dataset
from .config import MarketConfig
from .losses import LossFamily, fit_erm, logits, loss_family, quadratic_stats


@dataclass(frozen=True)
class Population:
    """Arrays of one population. ``pref`` is each training user's preferred learner."""

    dataset: Dataset
    family: LossFamily
    X_train: np.ndarray  # (N, d)
    T_train: np.ndarray  # (N, t) targets
    pref: np.ndarray  # (N,) int
    X_test: np.ndarray
    T_test: np.ndarray
    y_test: np.ndarray
    baseline_theta: np.ndarray  # (o, d) regularised ERM on all training users
    partition_theta: np.ndarray  # (n, o, d) regularised ERM on each preference partition
    baseline_loss: float  # on the test users
    baseline_accuracy: float  # nan for regression
    test_stats: tuple | None = None  # masked loss: quadratic_stats of the test users


@lru_cache(maxsize=16)
def _cached_dataset(name: str, options: tuple) -> Dataset:
    return load_dataset(name, **dict(options))


def dataset_for(config: MarketConfig) -> Dataset:
    """Load (once per process) the dataset a config names."""
    options = tuple(sorted(config.dataset_options.items()))
    try:
        hash(options)
    except TypeError:
        return load_dataset(config.dataset, **config.dataset_options)
    return _cached_dataset(config.dataset, options)


def check_preferences(config: MarketConfig, data: Dataset) -> None:
    """Raise ``ValueError`` if ``config.preferences`` cannot be applied to ``data``."""
    rule = config.preferences
    if not isinstance(rule, str):
        if len(rule) != data.n_users:
            raise ValueError(
                f"preferences given as labels must have one entry per dataset user "
                f"({data.n_users}), got {len(rule)}"
            )
    elif rule == "category":
        if data.groups is None:
            raise ValueError(
                f"preferences='category' needs a dataset with categories; {data.name!r} has none"
            )
        n_groups = int(data.groups.max()) + 1
        if n_groups > config.n_learners:
            raise ValueError(
                f"preferences='category' needs n_learners >= {n_groups} "
                f"(the categories of {data.name!r}), got {config.n_learners}"
            )


def assign_preferences(
    config: MarketConfig, data: Dataset, train: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Preferred learner of each training user (indices ``train`` into the dataset)."""
    check_preferences(config, data)
    n = config.n_learners
    rule = config.preferences
    X = data.X[train]
    if not isinstance(rule, str):
        return np.asarray(rule, dtype=np.int64)[train]
    if rule == "category":
        return data.groups[train].copy()
    if rule == "kmeans":
        return _kmeans(X, n, rng)
    pref = np.empty(len(train), dtype=np.int64)
    order = rng.permutation(len(train))
    n_fixed = round(config.leader_fraction * len(train))
    fixed, rest = order[:n_fixed], order[n_fixed:]
    n_front = 1 if rule == "market_leader" else math.ceil(n / 2)
    pref[fixed] = np.arange(n_fixed) % n_front
    if n > n_front:
        pref[rest] = n_front + _kmeans(X[rest], n - n_front, rng)
    else:
        pref[rest] = np.arange(len(rest)) % n_front
    return pref


def _kmeans(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    if k == 1 or len(X) < k:
        return np.arange(len(X)) % k
    seed = int(rng.integers(2**31 - 1))
    from sklearn.cluster import KMeans  # imported when needed: scikit-learn is large

    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(X).astype(np.int64)


def build_population(config: MarketConfig, seed: int) -> Population:
    """Split, preferences and reference ERMs for ``config`` from ``seed``."""
    data = dataset_for(config)
    family = loss_family(data.task, data.extra)
    rng = np.random.default_rng(seed)
    N = data.n_users
    n_test = min(max(1, round(config.test_fraction * N)), N - 1)
    perm = rng.permutation(N)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    pref = assign_preferences(config, data, train, rng)
    o = family.n_outputs(data.n_classes)
    T = family.targets(data.y, data.n_classes)
    X_train, T_train = data.X[train], T[train]
    baseline = fit_erm(family, X_train, T_train, config.l2, o)
    if config.init == "partition_erm":
        partition = np.stack(
            [
                fit_erm(family, X_train[pref == k], T_train[pref == k], config.l2, o)
                for k in range(config.n_learners)
            ]
        )
    else:
        partition = np.zeros((config.n_learners, o, data.n_features))
    z = logits(baseline[None], data.X[test])[0]
    loss = float(family.loss(z, T[test]).mean())
    acc = (
        float((family.predict(z) == data.y[test]).mean()) if family.is_classification else math.nan
    )
    return Population(
        dataset=data,
        family=family,
        X_train=X_train,
        T_train=T_train,
        pref=pref,
        X_test=data.X[test],
        T_test=T[test],
        y_test=data.y[test],
        baseline_theta=baseline,
        partition_theta=partition,
        baseline_loss=loss,
        baseline_accuracy=acc,
        test_stats=(
            quadratic_stats(data.X[test], T[test]) if family.name == "masked_squared" else None
        ),
    )
