"""The population's logistic ERMs are fitted by Newton's method: the L-BFGS fit's optimum to
the test tolerance, without L-BFGS."""

import numpy as np
import pytest
from scipy import optimize

from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.losses import LOSSES, fit_erm
from choicemarket.envs.market.population import _kmeans, dataset_for

FAMILY = LOSSES["binary"]


def _objective(w, X, q, l2):
    z = X @ w
    return float((np.logaddexp(0.0, z) - q * z).mean() + 0.5 * l2 * w @ w)


def _lbfgs(X, q, l2):
    """The reference fit: L-BFGS to tight tolerance (the fit the population used before)."""

    def f(w):
        z = X @ w
        grad = X.T @ (1.0 / (1.0 + np.exp(-z)) - q) / len(X) + l2 * w
        return _objective(w, X, q, l2), grad

    opts = {"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-14}
    return optimize.minimize(f, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B", options=opts).x


@pytest.fixture(scope="module")
def census():
    data = dataset_for(MarketConfig(dataset="acs-income"))
    pref = _kmeans(data.X, 5, np.random.default_rng(0))
    return data.X, data.y.astype(float), pref


@pytest.mark.parametrize("k", [-1, 0, 1, 2, 3, 4])
def test_newton_reaches_the_lbfgs_optimum(census, monkeypatch, k):
    X, y, pref = census
    rows = np.arange(len(y)) if k < 0 else np.flatnonzero(pref == k)
    X, q = X[rows], y[rows]
    ref = {l2: _lbfgs(X, q, l2) for l2 in (1e-4, 1e-9)}

    def refuse(*args, **kwargs):
        raise AssertionError("a logistic ERM that converges needs no L-BFGS")

    monkeypatch.setattr(optimize, "minimize", refuse)  # losses imports it on first use
    for l2, w_ref in ref.items():
        w = fit_erm(FAMILY, X, q[:, None], l2, 1)[0]
        # never worse than L-BFGS, and within its stopping tolerance of the same value (with
        # l2 = 1e-9 a near-flat direction leaves L-BFGS ~1e-9 above the optimum)
        f, f_ref = _objective(w, X, q, l2), _objective(w_ref, X, q, l2)
        assert f_ref - 1e-8 <= f <= f_ref + 1e-12
        grad = X.T @ (1.0 / (1.0 + np.exp(-X @ w)) - q) / len(X) + l2 * w
        assert np.abs(grad).max() <= 1e-10
        if l2 == 1e-4:  # well conditioned: the same parameters
            np.testing.assert_allclose(w, w_ref, atol=1e-5)
        # the same predictions on (nearly) every user
        assert np.mean((X @ w > 0) != (X @ w_ref > 0)) <= 1e-3


def test_separable_users_fall_back_to_lbfgs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    q = (X[:, 0] > 0).astype(float)  # separable: without l2 no minimiser exists
    w = fit_erm(FAMILY, X, q[:, None], 0.0, 1)[0]
    assert np.all(np.isfinite(w))
    assert np.all((X @ w > 0) == (q > 0))


def test_soft_targets_and_tiny_sets():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    q = rng.random(40)
    w = fit_erm(FAMILY, X, q[:, None], 1e-3, 1)[0]
    np.testing.assert_allclose(w, _lbfgs(X, q, 1e-3), atol=1e-6)
    one = fit_erm(FAMILY, X[:1], q[:1, None], 1e-2, 1)[0]
    np.testing.assert_allclose(one, _lbfgs(X[:1], q[:1], 1e-2), atol=1e-6)
