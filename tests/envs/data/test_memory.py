"""Building a large population holds the covariates about once: no full-size temporaries."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.data import load_dataset
from choicemarket.envs.data.preprocess import design_matrix, partition_rows_in_place


def _traced_peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _gaussian_groups_reference(n_groups, n_users, n_features, separation, label_noise, seed):
    """The straightforward (full-size temporaries) formula the loader must reproduce."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, n_features)) * separation
    rules = rng.normal(size=(n_groups, n_features))
    rules /= np.linalg.norm(rules, axis=1, keepdims=True)
    groups = np.arange(n_users) % n_groups
    X = centres[groups] + rng.normal(size=(n_users, n_features))
    score = np.einsum("nd,nd->n", X - centres[groups], rules[groups])
    y = (score + label_noise * rng.normal(size=n_users) > 0).astype(np.int64)
    return X, y


@pytest.mark.parametrize("intercept", [True, False])
def test_gaussian_groups_values_do_not_depend_on_blocks(intercept):
    data = load_dataset(
        "gaussian-groups", n_groups=4, n_users=5003, n_features=7, seed=3, intercept=intercept
    )
    X, y = _gaussian_groups_reference(4, 5003, 7, 2.0, 0.5, 3)
    np.testing.assert_array_equal(data.X[:, :7], X)
    np.testing.assert_array_equal(data.y, y)
    assert data.X.shape == (5003, 8 if intercept else 7)
    if intercept:
        assert (data.X[:, 7] == 1.0).all() and data.feature_names[-1] == "intercept"


def test_gaussian_groups_peak_memory_is_about_one_copy():
    """Before: about 3.5 copies of X (its parts, the sum, the centred copy, the hstack)."""
    data, peak = _traced_peak(
        lambda: load_dataset("gaussian-groups", n_groups=9, n_users=20000, n_features=100)
    )
    assert peak < 1.3 * data.X.nbytes


def test_design_matrix_unchanged():
    X = np.arange(12.0).reshape(4, 3) ** 2
    M, names = design_matrix(X, ("a", "b", "c"), True)
    assert names == ("a", "b", "c", "intercept") and (M[:, 3] == 1.0).all()
    np.testing.assert_allclose(M[:, :3].mean(0), 0.0, atol=1e-12)
    M, names = design_matrix(X, ("a", "b", "c"), False, standardise=False)
    np.testing.assert_array_equal(M, X)


def test_partition_rows_in_place():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 6))
    first = np.sort(rng.choice(5000, size=4700, replace=False))
    rest = np.setdiff1d(np.arange(5000), first)
    expected = X[np.concatenate([first, rest])]
    X.flags.writeable = False
    assert partition_rows_in_place(X, first, block=128)
    np.testing.assert_array_equal(X, expected)
    assert not X.flags.writeable  # the flag is restored
    view = np.arange(20.0).reshape(10, 2)[::2]
    assert not partition_rows_in_place(view, np.array([1, 2]))  # not owned: caller copies
    with pytest.raises(ValueError, match="increasing"):
        partition_rows_in_place(np.zeros((4, 2)), np.array([2, 1]))


def test_market_population_build_holds_the_covariates_once(monkeypatch):
    """Loading, checking the data's scale, splitting and the logistic ERM of a fresh market:
    before, the split copy, |X| in the scale check and the Newton Hessian's X^T diag(s) each
    made a temporary the size of X (peak about 2 copies)."""
    monkeypatch.setenv("CHOICEMARKET_CACHE_DIR", "off")
    options = {"n_groups": 3, "n_users": 12001, "n_features": 150, "seed": 11}
    cfg = MarketConfig(
        dataset="gaussian-groups",
        dataset_options=options,
        n_learners=3,
        preferences="category",
        init="random",  # (partition ERMs would copy each partition's rows: 1/3 of X each)
        max_steps=2,
    )

    def build():
        core = MarketCore(cfg)
        core.reset(seed=0)
        return core

    core, peak = _traced_peak(build)
    nbytes = 12001 * 151 * 8
    assert peak < 1.45 * nbytes
    pop = core.population
    assert pop.X_train.base is pop.X_test.base or pop.X_train.base is pop.X_test.base.base
    # the rows are those of the loader, train users then test users
    reference = load_dataset("gaussian-groups", **options)
    rows = np.r_[pop.X_train, pop.X_test]
    np.testing.assert_array_equal(np.sort(rows[:, 0]), np.sort(reference.X[:, 0]))
