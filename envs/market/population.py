"""The population of a market: train/test split, preferred learners and reference models.

Everything here is fixed for a run: it depends on the dataset, the config and a population
seed, never on the learners' actions.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass

import numpy as np

from ..data import load_dataset
from ..data.preprocess import partition_rows_in_place
from ..data.registry import Dataset
from . import population_cache
from .config import MarketConfig
from .losses import LossFamily, fit_erm, logits, loss_family, mean_gradient, quadratic_stats


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
    index of stored row i (``None``: the loader's order); ``digest``: its rows' hash in the
    loader's order (``population_cache.dataset_digest``), taken before any reordering."""

    data: Dataset
    origin: np.ndarray | None = None
    digest: str | None = None

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


PUBLISHED_STEPS = 4000
PUBLISHED_RATE = 0.01


def published_start(
    pop: Population,
    theta0: np.ndarray,
    l2: float,
    steps: int = PUBLISHED_STEPS,
    rate: float = PUBLISHED_RATE,
) -> np.ndarray:
    """The published experiments' start: from ``theta0`` (M, n, o, d), ``steps`` full-batch
    gradient steps on each learner's preference partition P_k,
    ``theta_k <- theta_k - rate (mean_{i in P_k} dl/dtheta(theta_k; x_i, T_i) + l2 theta_k)``.

    Every market and every learner move at once (an empty partition only decays by the l2
    term); markets with the same ``theta0`` (one seed swept over other settings) descend
    once. Returns a new array; ``theta0`` is left as it is.
    """
    theta0 = np.asarray(theta0, dtype=np.float64)
    M = theta0.shape[0]
    starts, where = np.unique(theta0.reshape(M, -1), axis=0, return_inverse=True)
    if len(starts) < M:
        unique = published_start(pop, starts.reshape(-1, *theta0.shape[1:]), l2, steps, rate)
        return unique[where.reshape(M)]
    n = theta0.shape[1]
    family = pop.family
    shrink = 1.0 - rate * l2
    out = np.empty_like(theta0)
    for k in range(n):  # the partitions are independent: each runs its own descent
        rows = np.flatnonzero(pop.pref == k)
        X, T = pop.X_train[rows], pop.T_train[rows]
        # (M, o, d): one matrix product per market, so market m's numbers do not depend on
        # how many markets descend together
        w = theta0[:, k].copy()
        for _ in range(steps):
            g = rate * mean_gradient(family, w, X, T) if len(X) else 0.0
            w *= shrink
            w -= g
        out[:, k] = w
    return out


def _cache_fields(config: MarketConfig, family: LossFamily, seed: int) -> dict:
    """What the cached arrays depend on besides the data and the code."""
    rule = config.preferences
    if not isinstance(rule, str):
        rule = hashlib.blake2b(np.asarray(rule, np.int64).tobytes(), digest_size=16).hexdigest()
    return {
        "dataset": config.dataset,
        "dataset_options": repr(sorted(config.dataset_options.items())),
        "loss": [family.name, family.normalise],
        "n_learners": config.n_learners,
        "preferences": rule,
        "leader_fraction": config.leader_fraction,
        "partition_fits": config.init == "partition_erm",
        "l2": config.l2,
        "test_fraction": config.test_fraction,
        "seed": seed,
    }


def build_population(config: MarketConfig, seed: int) -> Population:
    """Split, preferences and reference ERMs for ``config`` from ``seed``.

    The preferences and the ERMs are read from the population cache when it holds this
    setting (``population_cache``), else computed and stored there.
    """
    held = _held(config)
    data = dataset_for(config) if held is None else held.data
    if held is not None and held.digest is None:
        held.digest = population_cache.dataset_digest(data)  # still in the loader's order
    family = loss_family(data.task, data.extra)
    rng = np.random.default_rng(seed)
    N = data.n_users
    n_test = min(max(1, round(config.test_fraction * N)), N - 1)
    perm = rng.permutation(N)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    rows_train, rows_test = (train, test) if held is None else (held.rows(train), held.rows(test))
    o = family.n_outputs(data.n_classes)
    n, d = config.n_learners, data.n_features
    key = None
    if population_cache.cache_dir() is not None:
        digest = population_cache.dataset_digest(data) if held is None else held.digest
        key = population_cache.population_key(_cache_fields(config, family, seed), digest)
        shapes = {"pref": (len(train),), "baseline_theta": (o, d), "partition_theta": (n, o, d)}
        cached = population_cache.load(key, shapes)
    else:
        cached = None
    if cached is None:
        pref = assign_preferences(config, data, train, rng, rows_train)
    else:
        check_preferences(config, data)
        pref = cached["pref"].astype(np.int64)
    # one copy of the covariates, train users then test users; X_train and X_test are views
    order = np.concatenate([rows_train, rows_test])
    y_split = data.y[order]
    # the first population of a held dataset reorders the loaded covariates where they lie
    # (no population views them yet): no second full-size copy, so a lower peak memory
    in_place = held is not None and held.origin is None and partition_rows_in_place(data.X, train)
    X_split = data.X if in_place else data.X[order]
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
    if cached is not None:
        baseline, partition = cached["baseline_theta"], cached["partition_theta"]
    else:
        baseline = fit_erm(family, X_train, T_train, config.l2, o)
        if config.init == "partition_erm":
            partition = np.stack(
                [
                    fit_erm(family, X_train[pref == k], T_train[pref == k], config.l2, o)
                    for k in range(n)
                ]
            )
        else:
            partition = np.zeros((n, o, d))
        if key is not None:
            population_cache.store(
                key, {"pref": pref, "baseline_theta": baseline, "partition_theta": partition}
            )
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
