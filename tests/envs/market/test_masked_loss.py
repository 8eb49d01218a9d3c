"""The masked multi-output squared loss: targets, gradients, exact ERM, probing targets."""

from __future__ import annotations

import numpy as np
import pytest

from choicemarket.envs.market.losses import (
    MASKED_SQUARED,
    fit_erm,
    loss_family,
    masked_targets,
    mean_gradient,
    quadratic_risk,
    quadratic_stats,
)

N_ITEMS, D = 7, 3


def _ratings(rng: np.random.Generator, n: int, o: int = N_ITEMS, density=0.4) -> np.ndarray:
    R = np.round(2 * rng.uniform(0.5, 5.0, size=(n, o))) / 2
    R[rng.random((n, o)) > density] = np.nan
    R[np.isnan(R).all(1), 0] = 3.0  # every user rated something
    return R


@pytest.mark.parametrize("normalise", ["items", "rated"])
def test_targets_and_loss_match_the_definition(normalise):
    rng = np.random.default_rng(0)
    R = _ratings(rng, 30)
    family = loss_family("masked_regression", {"normalise": normalise})
    T = family.targets(R, N_ITEMS)
    assert T.shape == (30, 2 * N_ITEMS) and family.target_dim(N_ITEMS) == 2 * N_ITEMS
    assert family.n_outputs(N_ITEMS) == N_ITEMS and not family.is_classification
    z = rng.normal(size=(30, N_ITEMS)) + 3
    rated = ~np.isnan(R)
    sq = np.where(rated, (z - np.nan_to_num(R)) ** 2, 0.0).sum(1)
    expected = sq / N_ITEMS if normalise == "items" else sq / rated.sum(1)
    np.testing.assert_allclose(family.loss(z, T), expected, rtol=1e-12)


def test_items_normalisation_is_the_published_unit():
    """Sum over rated items divided by the number of items (200 in the paper)."""
    R = np.full((1, 200), np.nan)
    R[0, :10] = 4.0
    T = masked_targets(R, "items")
    assert MASKED_SQUARED.loss(np.zeros((1, 200)), T)[0] == pytest.approx(10 * 16 / 200)
    T = masked_targets(R, "rated")
    assert MASKED_SQUARED.loss(np.zeros((1, 200)), T)[0] == pytest.approx(16.0)


def test_bad_normalisation_names_the_option():
    with pytest.raises(ValueError, match="normalise must be one of"):
        masked_targets(np.ones((2, 3)), "mean")


@pytest.mark.parametrize("normalise", ["items", "rated"])
@pytest.mark.parametrize("layout", ["padded", "compact", "all"])
def test_mean_gradient_matches_finite_differences(normalise, layout):
    """Both gradient code paths (padded rows, gathered rows) and the unmasked one."""
    rng = np.random.default_rng(1)
    K, B = 3, 12
    family = loss_family("masked_regression", {"normalise": normalise})
    X = rng.normal(size=(K, B, D))
    T = np.stack([family.targets(_ratings(rng, B), N_ITEMS) for _ in range(K)])
    theta = rng.normal(size=(K, N_ITEMS, D))
    if layout == "padded":  # more rows than B in all: the padded path
        mask = (rng.random((K, B)) < 0.7).astype(float)
    elif layout == "compact":  # each position belongs to one learner, as in a market
        owner = rng.integers(K, size=B)
        mask = (owner[None, :] == np.arange(K)[:, None]).astype(float)
    else:
        mask = None
    g = mean_gradient(family, theta, X, T, mask)
    m = np.ones((K, B)) if mask is None else mask
    eps = 1e-6
    for k in range(K):

        def risk(th, k=k):
            z = X[k] @ th.T
            return (family.loss(z, T[k]) * m[k]).sum() / max(m[k].sum(), 1)

        fd = np.zeros((N_ITEMS, D))
        for idx in np.ndindex(N_ITEMS, D):
            e = np.zeros((N_ITEMS, D))
            e[idx] = eps
            fd[idx] = (risk(theta[k] + e) - risk(theta[k] - e)) / (2 * eps)
        np.testing.assert_allclose(g[k], fd, rtol=1e-6, atol=1e-9)


def test_gradient_paths_agree_and_empty_learner_is_zero():
    rng = np.random.default_rng(2)
    K, B = 4, 20
    X = rng.normal(size=(K, B, D))
    T = np.stack([masked_targets(_ratings(rng, B)) for _ in range(K)])
    theta = rng.normal(size=(K, N_ITEMS, D))
    owner = rng.integers(K - 1, size=B)  # learner K-1 gets nobody
    mask = (owner[None, :] == np.arange(K)[:, None]).astype(float)
    fast = mean_gradient(MASKED_SQUARED, theta, X, T, mask)
    z = X @ theta.swapaxes(-1, -2)
    r = MASKED_SQUARED.residual(z, T) * mask[..., None]
    slow = (r.swapaxes(-1, -2) @ X) / np.maximum(mask.sum(-1), 1)[:, None, None]
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(fast[K - 1], 0.0)


@pytest.mark.parametrize("normalise", ["items", "rated"])
def test_fit_erm_is_the_minimiser(normalise):
    """Ridge per output over the rated entries: stationary, and matches lstsq per output."""
    rng = np.random.default_rng(3)
    N, l2 = 300, 1e-2
    R = _ratings(rng, N)
    X = rng.normal(size=(N, D))
    family = loss_family("masked_regression", {"normalise": normalise})
    T = family.targets(R, N_ITEMS)
    theta = fit_erm(family, X, T, l2, N_ITEMS)
    g = mean_gradient(family, theta[None], X[None], T[None], np.ones((1, N)))[0]
    np.testing.assert_allclose(g + l2 * theta, 0.0, atol=1e-10)

    def objective(th):
        return family.loss(X @ th.T, T).mean() + 0.5 * l2 * (th**2).sum()

    best = objective(theta)
    for _ in range(5):
        assert objective(theta + 1e-3 * rng.normal(size=theta.shape)) > best
    w = T[:, N_ITEMS:]
    for j in range(N_ITEMS):  # weighted ridge of output j alone, by lstsq on an augmented system
        s = np.sqrt(w[:, j] / N)
        A = np.vstack([s[:, None] * X, np.sqrt(l2 / 2) * np.eye(D)])
        y = np.r_[s * np.nan_to_num(R[:, j]), np.zeros(D)]
        np.testing.assert_allclose(theta[j], np.linalg.lstsq(A, y, rcond=None)[0], atol=1e-9)


def test_fit_erm_with_an_unrated_output_and_no_l2():
    rng = np.random.default_rng(4)
    R = _ratings(rng, 50)
    R[:, 2] = np.nan
    theta = fit_erm(MASKED_SQUARED, rng.normal(size=(50, D)), masked_targets(R), 0.0, N_ITEMS)
    assert np.all(np.isfinite(theta))
    np.testing.assert_allclose(theta[2], 0.0, atol=1e-12)


def test_pseudo_targets_keep_the_probed_users_weights():
    rng = np.random.default_rng(5)
    T_train = masked_targets(_ratings(rng, 40), "rated")
    users = rng.integers(40, size=(2, 9))
    z = rng.normal(size=(2, 9, N_ITEMS))
    P = MASKED_SQUARED.pseudo_targets(z, True, T_train, users)
    np.testing.assert_array_equal(P[..., :N_ITEMS], z)
    np.testing.assert_array_equal(P[..., N_ITEMS:], T_train[users][..., N_ITEMS:])
    everything = MASKED_SQUARED.pseudo_targets(z, True)
    np.testing.assert_array_equal(everything[..., N_ITEMS:], 1.0 / N_ITEMS)


@pytest.mark.parametrize("normalise", ["items", "rated"])
def test_quadratic_risk_is_the_mean_loss(normalise):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, D))
    T = masked_targets(_ratings(rng, 200), normalise)
    theta = rng.normal(size=(2, 4, N_ITEMS, D))  # any leading axes
    direct = MASKED_SQUARED.loss(np.einsum("mkod,nd->mkno", theta, X), T).mean(-1)
    np.testing.assert_allclose(quadratic_risk(theta, quadratic_stats(X, T)), direct, rtol=1e-10)
