"""The population holds the covariates once: its split is a view of the held dataset's rows,
and populations built later from the reordered dataset equal those built from a fresh load."""

import numpy as np
import pytest

from choicemarket.envs.data import load_dataset
from choicemarket.envs.market import population as P
from choicemarket.envs.market.config import MarketConfig

FIELDS = ("X_train", "T_train", "pref", "X_test", "T_test", "y_test")


def _config(**kw) -> MarketConfig:
    base = dict(
        dataset="gaussian-groups",
        dataset_options={"n_groups": 3, "n_users": 600, "n_features": 4, "seed": 11},
        n_learners=3,
        init="partition_erm",
    )
    return MarketConfig(**{**base, **kw})


@pytest.mark.parametrize("preferences", ["kmeans", "category", "market_leader"])
def test_later_populations_equal_fresh_builds(preferences):
    cfg = _config(preferences=preferences)
    P._HELD.clear()
    fresh = {}
    for seed in (3, 5):
        P._HELD.clear()
        fresh[seed] = P.build_population(cfg, seed)
    P._HELD.clear()
    first = P.build_population(cfg, 3)
    second = P.build_population(cfg, 5)  # from the dataset as the first population holds it
    for pop, seed in ((first, 3), (second, 5)):
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(pop, f), getattr(fresh[seed], f), err_msg=f)
        np.testing.assert_array_equal(pop.partition_theta, fresh[seed].partition_theta)
        np.testing.assert_array_equal(pop.baseline_theta, fresh[seed].baseline_theta)
        assert pop.baseline_loss == fresh[seed].baseline_loss


def test_split_is_a_view_of_the_held_dataset():
    cfg = _config(preferences="category")
    P._HELD.clear()
    pop = P.build_population(cfg, 7)
    held = P.dataset_for(cfg)
    assert np.shares_memory(pop.X_train, held.X) and np.shares_memory(pop.X_test, held.X)
    assert pop.dataset is held
    n_train = len(pop.X_train)
    np.testing.assert_array_equal(held.X[:n_train], pop.X_train)
    # the held rows are the loader's rows reordered: same users, labels and categories
    data = load_dataset(cfg.dataset, **cfg.dataset_options)
    origin = P._HELD[(cfg.dataset, tuple(sorted(cfg.dataset_options.items())))].origin
    np.testing.assert_array_equal(held.X, data.X[origin])
    np.testing.assert_array_equal(held.y, data.y[origin])
    np.testing.assert_array_equal(held.groups, data.groups[origin])
