"""Building blocks: losses and gradients, regularised ERM, action layout, the batched core."""

import numpy as np
import pytest

from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.market.losses import LOSSES, fit_erm, logits, mean_gradient
from choicemarket.envs.market_v0 import raw_env


def _problem(family_name, rng, n=40, d=4, classes=3):
    family = LOSSES[family_name]
    X = rng.normal(size=(n, d))
    if family_name == "regression":
        y = rng.normal(size=n)
        k = 1
    elif family_name == "binary":
        y = rng.integers(2, size=n)
        k = 2
    else:
        y = rng.integers(classes, size=n)
        k = classes
    return family, X, family.targets(y, k), family.n_outputs(k)


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_mean_gradient_matches_finite_differences(task):
    rng = np.random.default_rng(0)
    family, X, T, o = _problem(task, rng)
    theta = rng.normal(size=(o, X.shape[1]))
    mask = (rng.random(len(X)) < 0.6).astype(float)

    def risk(th):
        z = X @ th.T
        return (family.loss(z, T) * mask).sum() / mask.sum()

    g = mean_gradient(family, theta[None], X[None], T[None], mask[None])[0]
    eps = 1e-6
    fd = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        e = np.zeros_like(theta)
        e[idx] = eps
        fd[idx] = (risk(theta + e) - risk(theta - e)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)


def test_mean_gradient_is_zero_without_users():
    rng = np.random.default_rng(1)
    family, X, T, o = _problem("binary", rng)
    g = mean_gradient(family, np.ones((1, o, X.shape[1])), X[None], T[None], np.zeros((1, len(X))))
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_fit_erm_is_stationary(task):
    """The regularised ERM has zero gradient of mean loss + (l2/2)||theta||^2."""
    rng = np.random.default_rng(2)
    family, X, T, o = _problem(task, rng, n=200)
    l2 = 1e-2
    theta = fit_erm(family, X, T, l2, o)
    g = mean_gradient(family, theta[None], X[None], T[None], np.ones((1, len(X))))[0]
    np.testing.assert_allclose(g + l2 * theta, 0.0, atol=1e-6)


def test_logits_shape_over_markets_and_learners():
    theta = np.arange(2 * 3 * 1 * 4, dtype=float).reshape(2, 3, 1, 4)
    X = np.ones((2, 5, 4))
    z = logits(theta, X)
    assert z.shape == (2, 3, 5, 1)
    np.testing.assert_array_equal(z[1, 2, :, 0], theta[1, 2, 0].sum())


def test_action_layout_build_parse_round_trip():
    env = raw_env(dataset="digits", n_learners=4, max_steps=3)
    layout = env.action_layout
    assert layout.size == 10 * 65 + 4 + 2
    update = np.linspace(-2, 2, layout.n_params)
    a = layout.build(update, probe=True, peers=[1, 3])
    parsed_update, request = layout.parse(a)
    np.testing.assert_allclose(parsed_update, np.clip(update, -1, 1), atol=1e-7)
    assert request.probe and request.peers == (1, 3) and not request.route_by_preference
    _, request = layout.parse(layout.build(probe=True, route_by_preference=True))
    assert request.route_by_preference and request.peers == ()
    _, request = layout.parse(layout.build(update))
    assert not request.probe
    assert env.action_space("learner_0").contains(a)


def test_core_markets_are_independent():
    """Market 1 follows the same trajectory whatever market 0's learners do."""
    cfg = MarketConfig(dataset="acs-income", max_steps=50)
    runs = []
    for scale in (0.0, 0.5):
        core = MarketCore(cfg, n_markets=3)
        core.reset(seed=7)
        rng = np.random.default_rng(0)
        trace = []
        for _ in range(30):
            actions = np.zeros((3, 5, core.spec.actions.size))
            actions[..., core.spec.actions.n_params :] = -1.0
            actions[0, :, : core.spec.actions.n_params] = scale * rng.normal(size=(5, 16))
            s = core.step(actions)
            trace.append((s.choice[1].copy(), s.theta[1].copy(), s.choice[0].copy()))
        runs.append(trace)
    for (c_a, th_a, _), (c_b, th_b, _) in zip(*runs):
        np.testing.assert_array_equal(c_a, c_b)
        np.testing.assert_array_equal(th_a, th_b)
    assert any(not np.array_equal(a[2], b[2]) for a, b in zip(*runs))  # market 0 did change


def test_core_state_shapes_and_counts():
    core = MarketCore(MarketConfig(dataset="breast-cancer", n_learners=3), n_markets=4)
    s = core.reset(seed=0)
    assert s.theta.shape == (4, 3, 1, 31)
    assert s.batch.shape == s.choice.shape == (4, 150)
    np.testing.assert_array_equal(s.counts.sum(1), 150)
    np.testing.assert_allclose(s.share.sum(1), 1.0)
    X, T, mask = core.padded_users()
    assert X.shape == (4, 3, 150, 31) and T.shape == (4, 3, 150, 1)
    np.testing.assert_array_equal(mask.sum(-1), s.counts)
    np.testing.assert_array_equal(mask.sum(1), 1.0)  # each user at exactly one learner


def test_local_loss_is_mean_served_loss():
    env = raw_env(dataset="acs-income", max_steps=5)
    env.reset(seed=0)
    s, pop = env.state_arrays, env.population
    z = logits(s.theta[0], pop.X_train[s.batch[0]])
    L = pop.family.loss(z, pop.T_train[s.batch[0]][None])
    for k in range(5):
        mine = s.choice[0] == k
        assert s.local_loss[0, k] == pytest.approx(L[k, mine].mean())


def test_choice_rule_loss_or_uniform_with_zero_uniform_weight_is_argmin():
    env = raw_env(dataset="acs-income", choice_rule="loss_or_uniform", uniform_weight=0.0)
    env.reset(seed=0)
    s, pop = env.state_arrays, env.population
    z = logits(s.theta[0], pop.X_train[s.batch[0]])
    L = pop.family.loss(z, pop.T_train[s.batch[0]][None])
    np.testing.assert_array_equal(s.choice[0], L.argmin(0))


def test_pure_loyalty_sends_everyone_to_preferred_learner():
    env = raw_env(dataset="acs-income", preference_weight=1.0)
    env.reset(seed=0)
    s, pop = env.state_arrays, env.population
    np.testing.assert_array_equal(s.choice[0], pop.pref[s.batch[0]])


@pytest.mark.parametrize("rule", ["market_leader", "majority_good"])
def test_preference_rules_shares(rule):
    env = raw_env(dataset="acs-income", preferences=rule, init="zeros")
    env.reset(seed=0)
    share = np.bincount(env.population.pref, minlength=5) / len(env.population.pref)
    if rule == "market_leader":
        assert share[0] >= 0.8
    else:  # 80% split evenly over the first ceil(5/2) = 3 learners
        assert share[:3].sum() >= 0.8
        np.testing.assert_allclose(share[:3], 0.8 / 3, atol=0.01)


def test_partition_erm_start_is_each_partitions_erm():
    env = raw_env(dataset="gaussian-groups", n_learners=3, preferences="category")
    env.reset(seed=0)
    pop = env.population
    for k in range(3):
        theta = fit_erm(pop.family, pop.X_train[pop.pref == k], pop.T_train[pop.pref == k], 1e-4, 1)
        np.testing.assert_allclose(env.state_arrays.theta[0, k], theta, atol=1e-6)


def test_social_cost_is_mean_served_loss():
    env = raw_env(dataset="acs-income", max_steps=5)
    _, infos = env.reset(seed=0)
    s = env.state_arrays
    assert infos["learner_0"]["social_cost"] == pytest.approx(s.served_loss[0].mean())
    assert len({i["social_cost"] for i in infos.values()}) == 1


def test_infos_follow_a_fresh_reset():
    """Global figures in infos belong to the current episode, also right after a re-reset."""
    env = raw_env(dataset="acs-income", init="random", init_scale=1.0, max_steps=5)
    for seed in (0, 1, 2):
        _, infos = env.reset(seed=seed)
        s, pop = env.state_arrays, env.population
        z = logits(s.theta[0], pop.X_test)
        expected = pop.family.loss(z, pop.T_test[None]).mean(-1)
        got = [infos[a]["global_loss"] for a in env.possible_agents]
        np.testing.assert_allclose(got, expected)
