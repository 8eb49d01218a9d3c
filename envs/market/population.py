"""The population of a market: train/test split, preferred learners and reference models.

Everything here is fixed for a run: it depends on the dataset, the config and a population
seed, never on the learners' actions.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

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


@dataclass
class _Held:
    """A loaded dataset kept for reuse, rows in storage order: ``origin[i]`` is the loader's
    index of stored row i (``None``: the loader's order)."""

    data: Dataset
    origin: np.ndarray | None = None

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Storage rows of the loader's rows ``index``."""
        if self.origin is None:
            return index
        where = np.empty_like(self.origin)
        where[self.origin] = np.arange(len(where))
        return where[index]


_HELD: dict[tuple, _Held] = {}


def _held(config: MarketConfig) -> _Held | None:
    """The held dataset of ``config`` (loaded on first use); None for unhashable options."""
    options = tuple(sorted(config.dataset_options.items()))
    try:
        hash(options)
    except TypeError:
        return None
    key = (config.dataset, options)
    held = _HELD.get(key)
    if held is None:
        if len(_HELD) >= 16:
            _HELD.pop(next(iter(_HELD)))
        held = _HELD[key] = _Held(load_dataset(config.dataset, **config.dataset_options))
    return held


def dataset_for(config: MarketConfig) -> Dataset:
    """Load (once per process) the dataset a config names.

    Once a population is built from it, its rows are held in that population's order (train
    users, then test users; the population's arrays are views of them, so the covariates are
    held once): use it for what does not depend on row order (sizes, task, categories).
    """
    held = _held(config)
    if held is None:
        return load_dataset(config.dataset, **config.dataset_options)
    return held.data


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
    config: MarketConfig,
    data: Dataset,
    train: np.ndarray,
    rng: np.random.Generator,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Preferred learner of each training user (indices ``train`` into the dataset as loaded;
    ``rows``: the same users' rows of ``data`` when its rows are held in another order)."""
    check_preferences(config, data)
    n = config.n_learners
    rule = config.preferences
    rows = train if rows is None else rows
    if not isinstance(rule, str):
        return np.asarray(rule, dtype=np.int64)[train]
    if rule == "category":
        return data.groups[rows].copy()
    X = data.X[rows]
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


def _reordered(data: Dataset, order: np.ndarray, X: np.ndarray, y: np.ndarray) -> Dataset:
    """``data`` with its rows in ``order`` (``X``, ``y`` already reordered). The rows were
    validated when loaded, so they are not checked again (which would cost a pass and a
    temporary the size of ``X``)."""
    out = copy.copy(data)
    y.flags.writeable = data.y.flags.writeable
    object.__setattr__(out, "X", X)
    object.__setattr__(out, "y", y)
    if data.groups is not None:
        object.__setattr__(out, "groups", data.groups[order])
    return out


def build_population(config: MarketConfig, seed: int) -> Population:
    """Split, preferences and reference ERMs for ``config`` from ``seed``."""
    held = _held(config)
    data = dataset_for(config) if held is None else held.data
    family = loss_family(data.task, data.extra)
    rng = np.random.default_rng(seed)
    N = data.n_users
    n_test = min(max(1, round(config.test_fraction * N)), N - 1)
    perm = rng.permutation(N)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    rows_train, rows_test = (train, test) if held is None else (held.rows(train), held.rows(test))
    pref = assign_preferences(config, data, train, rng, rows_train)
    o = family.n_outputs(data.n_classes)
    # one copy of the covariates, train users then test users; X_train and X_test are views
    order = np.concatenate([rows_train, rows_test])
    X_split, y_split = data.X[order], data.y[order]
    T_split = family.targets(y_split, data.n_classes)
    n_train = len(train)
    X_train, X_test, T_train, T_test = (
        X_split[:n_train],
        X_split[n_train:],
        T_split[:n_train],
        T_split[n_train:],
    )
    y_test = y_split[n_train:]
    if held is not None:  # hold the dataset in this order: no second copy of the covariates
        held.data = data = _reordered(data, order, X_split, y_split)
        held.origin = order if held.origin is None else held.origin[order]
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
    z = logits(baseline[None], X_test)[0]
    loss = float(family.loss(z, T_test).mean())
    acc = float((family.predict(z) == y_test).mean()) if family.is_classification else math.nan
    return Population(
        dataset=data,
        family=family,
        X_train=X_train,
        T_train=T_train,
        pref=pref,
        X_test=X_test,
        T_test=T_test,
        y_test=y_test,
        baseline_theta=baseline,
        partition_theta=partition,
        baseline_loss=loss,
        baseline_accuracy=acc,
        test_stats=(quadratic_stats(X_test, T_test) if family.name == "masked_squared" else None),
    )
