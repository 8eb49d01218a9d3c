"""Markets on ratings populations: choice by masked loss, MSGD and MSGD-P steps, probing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from choicemarket import simulate
from choicemarket.baselines import MSGD, MSGDP, act_all
from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.market.losses import mean_gradient
from choicemarket.envs.market_v0 import parallel_env

SMALL = {"n_users": 900, "n_items": 24, "n_groups": 3, "mf_iterations": 8}
MARKET = dict(
    dataset="synthetic-ratings",
    dataset_options=SMALL,
    n_learners=3,
    users_per_step=20,
    probe_size=60,
    l2=1e-3,
    test_fraction=0.1,
)
N_ITEMS = SMALL["n_items"]


def _naive_loss(theta: np.ndarray, X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Masked loss of every learner (n, o, d) on every user (B, d): (n, B)."""
    z = np.einsum("nod,bd->nbo", theta, X)
    return ((z - T[None, :, :N_ITEMS]) ** 2 * T[None, :, N_ITEMS:]).sum(-1)


def test_spec_and_observations():
    env = parallel_env(**MARKET, max_steps=5)
    spec = env.market_spec
    assert spec.task == "masked_regression"
    assert (spec.n_outputs, spec.target_dim, spec.n_features) == (N_ITEMS, 2 * N_ITEMS, 5)
    obs, _ = env.reset(seed=0)
    o = obs["learner_0"]
    assert o["targets"].shape == (20, 2 * N_ITEMS) and o["params"].shape == (N_ITEMS * 5,)
    assert env.observation_space("learner_0").contains(o)
    assert np.isnan(env.state_arrays.global_accuracy).all()


def test_parallel_api():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parallel_api_test(parallel_env(**MARKET, max_steps=30), num_cycles=30)


def test_choice_served_loss_and_global_risk_follow_the_masked_loss():
    core = MarketCore(MarketConfig(**MARKET, preference_weight=0.0, init="random"))
    s = core.reset(seed=1)
    pop = core.population
    L = _naive_loss(s.theta[0], s.batch_X[0], s.batch_T[0])
    np.testing.assert_array_equal(s.choice[0], L.argmin(0))
    np.testing.assert_allclose(s.served_loss[0], L.min(0), rtol=1e-12)
    expected = _naive_loss(s.theta[0], pop.X_test, pop.T_test).mean(1)
    np.testing.assert_allclose(s.global_loss[0], expected, rtol=1e-9)  # sufficient statistics
    core.state.theta[0] = pop.baseline_theta
    core.evaluate()
    np.testing.assert_allclose(core.state.global_loss[0], pop.baseline_loss, rtol=1e-9)
    # the baseline is the exact regularised ERM on all training users
    g = mean_gradient(
        pop.family,
        pop.baseline_theta[None],
        pop.X_train[None],
        pop.T_train[None],
        np.ones((1, len(pop.X_train))),
    )[0]
    np.testing.assert_allclose(g + MARKET["l2"] * pop.baseline_theta, 0.0, atol=1e-10)


def test_msgd_step_is_the_mean_masked_gradient():
    env = parallel_env(**MARKET, max_steps=5)
    pols = {a: MSGD(env.market_spec, eta=5.0, schedule="inv_sqrt") for a in env.possible_agents}
    obs, _ = env.reset(seed=2)
    s = env.state_arrays
    theta, X, T, choice = s.theta[0].copy(), s.batch_X[0], s.batch_T[0], s.choice[0]
    env.step(act_all(pols, obs))
    for k in range(3):
        users = choice == k
        z = X[users] @ theta[k].T  # (n_k, o)
        r = 2 * (z - T[users, :N_ITEMS]) * T[users, N_ITEMS:]
        g = r.T @ X[users] / max(users.sum(), 1)
        expected = theta[k] - 5.0 * (g + MARKET["l2"] * theta[k])
        np.testing.assert_allclose(s.theta[0, k], expected, atol=1e-6)  # float32 actions


def test_preference_aware_probe_uses_the_probed_users_rated_items():
    env = parallel_env(**MARKET, max_steps=5)
    spec = env.market_spec
    policies = {a: MSGD(spec) for a in env.possible_agents}
    policies["learner_1"] = MSGDP(spec, 1, p=1.0, probe_batch_size=30, seed=0)
    obs, _ = env.reset(seed=3)
    theta = env.state_arrays.theta[0].copy()
    obs, *_ = env.step(act_all(policies, obs))
    s, pop = env.state_arrays, env.population
    users = s.probe_users[0, 1]
    peer = s.probe_peer[0, 1]
    np.testing.assert_array_equal(peer, pop.pref[users])
    z = np.einsum("bd,bod->bo", pop.X_train[users], theta[peer])
    np.testing.assert_allclose(s.probe_T[0, 1, :, :N_ITEMS], z, rtol=1e-12)
    np.testing.assert_array_equal(s.probe_T[0, 1, :, N_ITEMS:], pop.T_train[users, N_ITEMS:])
    assert obs["learner_1"]["probe_mask"].all()


def test_rated_normalisation_reaches_the_market():
    items = MarketCore(MarketConfig(**MARKET))
    rated = MarketCore(
        MarketConfig(**{**MARKET, "dataset_options": {**SMALL, "normalise": "rated"}})
    )
    assert items.spec.family.normalise == "items" and rated.spec.family.normalise == "rated"
    a, b = items.reset(seed=0), rated.reset(seed=0)
    pop = rated.population
    n_rated = (pop.T_train[:, N_ITEMS:] > 0).sum(1)
    np.testing.assert_allclose(pop.T_train[:, N_ITEMS:].sum(1), 1.0)
    assert n_rated.mean() < N_ITEMS / 2
    # same draws, same users: per-rated losses are larger than per-item ones
    np.testing.assert_array_equal(a.batch, b.batch)
    assert b.served_loss.mean() > a.served_loss.mean()


def test_bad_dataset_option_is_a_value_error():
    with pytest.raises(ValueError, match="normalise"):
        MarketCore(MarketConfig(**{**MARKET, "dataset_options": {"normalise": "mean"}}))


def test_probing_lowers_the_probers_global_loss():
    """MSGD-P (preference aware, p = 1) against MSGD for the same learner and seeds."""
    cfg = dict(MARKET, max_steps=600, eval_every=600, users_per_step=50, probe_size=300)

    def run(p):
        def factory(spec, k):
            if k == 1 and p > 0:
                return MSGDP(spec, k, p=p, eta=5.0, schedule="inv_sqrt", probe_batch_size=100)
            return MSGD(spec, eta=5.0, schedule="inv_sqrt")

        return simulate(cfg, policies=factory, seeds=range(2)).summary("global_loss")

    plain, probing = run(0.0), run(1.0)
    assert probing["learner_1"][0] < plain["learner_1"][0] - 0.02
