"""The paper's planting bound (Hardt et al.) and our first-order estimate, kept apart."""

import numpy as np
import pytest

from choicemarket.envs.market import collective, collective_theory
from choicemarket.envs.market.collective_theory import (
    critical_mass_logistic,
    estimate_planting_bound,
    first_order_success,
    planting_bound,
    planting_bound_mass,
)


def test_bound_formula_and_its_inverse():
    xi, delta = 0.05, 0.8
    a = np.array([0.0, 0.01, 0.04 / 1.04, 0.1, 0.3, 1.0])
    want = np.clip(1 - (1 - a[1:]) / a[1:] * delta * xi, 0, 1)
    np.testing.assert_allclose(planting_bound(a, xi, delta), np.r_[0.0, want])
    assert planting_bound(0.01, xi, delta) == 0.0  # vacuous below delta xi / (1 + delta xi)
    for s in (0.5, 0.9, 0.99):
        np.testing.assert_allclose(planting_bound(planting_bound_mass(s, xi, delta), xi, delta), s)
    assert np.all(np.diff(planting_bound(np.linspace(0.01, 1, 50), xi, delta)) >= 0)
    assert planting_bound(0.5, 0.0, 1.0) == 1.0  # a signal nobody carries: any alpha > 0
    with pytest.raises(ValueError, match="alpha"):
        planting_bound(1.5, xi, delta)
    with pytest.raises(ValueError, match="success"):
        planting_bound_mass(1.0, xi, delta)


def _carriers(seed=0, n=4000, share=0.1, rate=0.2):
    """Carriers all have x = (1, 0) and label 1 with probability ``rate``; the others have
    x = (0, z) with a label that depends on z."""
    rng = np.random.default_rng(seed)
    c = rng.random(n) < share
    z = rng.normal(size=n)
    X = np.stack([c.astype(float), np.where(c, 0.0, z)], axis=1)
    y = np.where(c, rng.random(n) < rate, rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(int)
    return X, y, c


@pytest.mark.parametrize("estimator", ["logistic", "knn"])
def test_estimates_recover_xi_and_delta(estimator):
    X, y, c = _carriers()
    rate = y[c].mean()
    k = int(c.sum())  # every carrier sits at distance 0 from the others, the rest >= 1
    b = estimate_planting_bound(X, y, [0], [1.0], 1, 2, estimator, k=k)
    assert b.xi == c.mean() and b.n_carriers == c.sum() and b.estimator == estimator
    np.testing.assert_allclose(b.delta, 1 - 2 * rate, atol=5e-3)  # l2 shrinks the logistic
    # label 0 is already the likelier one for the carriers: no suboptimality
    assert estimate_planting_bound(X, y, [0], [1.0], 0, 2, estimator, k=k).delta == 0.0
    assert b.mass(0.9) == planting_bound_mass(0.9, b.xi, b.delta)
    assert b.success(b.vacuous_below) == pytest.approx(0.0, abs=1e-12)


def test_estimator_errors():
    X, y, _ = _carriers(n=200)
    with pytest.raises(ValueError, match="estimator must be one of"):
        estimate_planting_bound(X, y, [0], [1.0], estimator="tree")
    with pytest.raises(ValueError, match="k must be"):
        estimate_planting_bound(X, y, [0], [1.0], estimator="knn", k=0)
    with pytest.raises(ValueError, match="label"):
        estimate_planting_bound(X, y, [0], [1.0], label=2)
    none = estimate_planting_bound(X, y, [0], [7.0])
    assert (none.xi, none.delta, none.n_carriers) == (0.0, 0.0, 0)


def _logistic_population(seed=1, n=3000):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    X[:, 2] = (rng.random(n) < 0.05) * 2.0  # a rare flag: the signal sets it to 2
    theta0 = np.array([1.0, -0.5, -0.8])
    return X[: n // 2], theta0, X[n // 2 :]


def test_first_order_success_meets_the_critical_mass():
    X, theta0, X_eval = _logistic_population()
    alpha_star = critical_mass_logistic(X, theta0, X_eval, [2], [2.0], 1, 0.1, 1e-4)
    assert 0 < alpha_star < 1
    s = first_order_success(
        [0.0, alpha_star * 0.5, alpha_star, 0.5], X, theta0, X_eval, [2], [2.0], 1, 1e-4
    )
    G = X_eval.copy()
    G[:, 2] = 2.0
    assert s[0] == np.mean(G @ theta0 > 0)  # alpha = 0: the unmodified model
    assert abs(s[2] - 0.9) <= 2 / len(X_eval)  # success 1 - delta at alpha*
    assert np.all(np.diff(s) >= 0) and s[-1] > 0.99


def test_critical_mass_keeps_its_home_and_value():
    assert collective.critical_mass_logistic is collective_theory.critical_mass_logistic
    X, theta0, X_eval = _logistic_population()
    # the closed form of the docstring, computed directly
    G = X_eval.copy()
    G[:, 2] = 2.0
    z0 = G @ theta0
    beta = -np.quantile(z0, 0.1) / 4.0
    s0 = 1 / (1 + np.exp(-(X @ theta0)))
    h = np.mean(s0 * (1 - s0) * (2.0 * X[:, 2]) ** 2) + 1e-4 * 4.0
    ratio = h * beta / (4.0 * np.mean(1 / (1 + np.exp(z0 + beta * 4.0))))
    got = critical_mass_logistic(X, theta0, X_eval, [2], [2.0], 1, 0.1, 1e-4)
    np.testing.assert_allclose(got, ratio / (1 + ratio), rtol=1e-12)


def test_census_flag_bound_and_estimate():
    """The rare census flag (column 14): the paper's bound needs alpha ~ 0.24 for success 0.9,
    our first-order estimate ~ 0.044, and the unmodified learner already labels about half of
    the signalled people y* = 1."""
    from choicemarket.envs.market_v0 import raw_env

    env = raw_env(dataset="acs-income", n_learners=1)
    env.reset(seed=0)
    pop = env.population
    values, counts = np.unique(pop.X_train[:, 14], return_counts=True)
    v = float(values[counts.argmin()])
    y = pop.T_train[:, 0].astype(int)
    bound = estimate_planting_bound(pop.X_train, y, [14], [v], 1, 2, "logistic")
    assert bound.xi == pytest.approx(0.0322, abs=5e-4)
    assert bound.delta > 0.99
    assert bound.mass(0.9) == pytest.approx(0.243, abs=2e-3)
    args = (pop.X_train, pop.baseline_theta, pop.X_test, [14], [v], 1)
    alpha_star = critical_mass_logistic(*args, 0.1, env.config.l2)
    assert alpha_star == pytest.approx(0.0441, abs=1e-3)
    at_zero = first_order_success(0.0, *args, env.config.l2)[0]
    assert 0.4 < at_zero < 0.55
