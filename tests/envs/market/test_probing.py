"""Probe requests: who is queried, how answers are aggregated, noise, labels and costs."""

import numpy as np
import pytest
from scipy.special import expit

from choicemarket.envs.market.losses import logits
from choicemarket.envs.market_v0 import raw_env

MARKET = dict(dataset="acs-income", n_learners=5, init="partition_erm", max_steps=20)


def _request(env, agent_index, **probe):
    """Step with no updates, agent ``agent_index`` sending ``probe``; returns theta before."""
    layout = env.action_layout
    theta = env.state_arrays.theta[0].copy()
    actions = {a: layout.build() for a in env.agents}
    actions[env.possible_agents[agent_index]] = layout.build(probe=True, **probe)
    obs, rewards, _, _, infos = env.step(actions)
    return theta, obs, rewards, infos


def _peer_logits(env, theta, k):
    s = env.state_arrays
    return logits(theta, s.probe_X[0, k])[:, :, 0]  # (n, N_probe)


def test_single_peer_hard_labels_come_from_that_peer():
    env = raw_env(**MARKET)
    env.reset(seed=0)
    theta, obs, _, infos = _request(env, 2, peers=[0])
    z = _peer_logits(env, theta, 2)[0]
    np.testing.assert_array_equal(env.state_arrays.probe_T[0, 2, :, 0], (z > 0).astype(float))
    np.testing.assert_array_equal(obs["learner_2"]["probe_mask"], 1.0)
    assert obs["learner_1"]["probe_mask"].sum() == 0  # only the requester gets a response
    assert infos["learner_2"]["probe_queries"] == env.config.probe_size


def test_median_of_named_peers_soft_labels():
    """Several peers: the coordinatewise median of their logits, soft label = sigmoid(median)."""
    env = raw_env(**MARKET, probe_labels="soft")
    env.reset(seed=1)
    theta, obs, _, infos = _request(env, 1, peers=[0, 1, 3, 4])
    z = _peer_logits(env, theta, 1)[[0, 1, 3, 4]]
    expected = expit(np.median(z, axis=0))
    np.testing.assert_allclose(env.state_arrays.probe_T[0, 1, :, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(obs["learner_1"]["probe_targets"][:, 0], expected, rtol=1e-6)
    assert infos["learner_1"]["probe_queries"] == 4 * env.config.probe_size


def test_preference_routing_queries_each_users_preferred_learner():
    env = raw_env(**MARKET, probe_size=500)
    env.reset(seed=2)
    theta, *_ = _request(env, 3, route_by_preference=True)
    s, pop = env.state_arrays, env.population
    peer = pop.pref[s.probe_users[0, 3]]
    np.testing.assert_array_equal(s.probe_peer[0, 3], peer)
    z = _peer_logits(env, theta, 3)[peer, np.arange(500)]
    np.testing.assert_array_equal(s.probe_T[0, 3, :, 0], (z > 0).astype(float))
    np.testing.assert_array_equal(s.probe_X[0, 3], pop.X_train[s.probe_users[0, 3]])


@pytest.mark.parametrize("kappa", [0.0, 0.3, 1.0])
def test_kappa_noise_reroutes_that_fraction_to_other_learners(kappa):
    env = raw_env(**MARKET, probe_size=4000, probe_noise=kappa)
    env.reset(seed=3)
    _request(env, 0, route_by_preference=True)
    s, pop = env.state_arrays, env.population
    intended = pop.pref[s.probe_users[0, 0]]
    rerouted = (s.probe_peer[0, 0] != intended).mean()
    assert rerouted == pytest.approx(kappa, abs=0.03)
    # rerouted queries are spread evenly over the n - 1 other learners
    if kappa == 1.0:
        counts = np.bincount((s.probe_peer[0, 0] - intended) % 5, minlength=5)
        assert counts[0] == 0 and counts[1:].min() > 0.2 * 4000


def test_online_probe_uses_current_models_and_replaces_the_response():
    env = raw_env(**MARKET)
    env.reset(seed=4)
    layout = env.action_layout
    rng = np.random.default_rng(0)
    _request(env, 4, peers=[1])
    first = env.state_arrays.probe_X[0, 4].copy()
    for _ in range(5):  # move every learner
        updates = rng.normal(scale=0.1, size=(5, layout.n_params))
        env.step({a: layout.build(u) for a, u in zip(env.agents, updates)})
    np.testing.assert_array_equal(env.state_arrays.probe_X[0, 4], first)  # kept until asked
    theta, *_ = _request(env, 4, peers=[1])
    z = _peer_logits(env, theta, 4)[1]
    assert not np.array_equal(env.state_arrays.probe_X[0, 4], first)
    np.testing.assert_array_equal(env.state_arrays.probe_T[0, 4, :, 0], (z > 0).astype(float))


def test_probe_flag_without_peers_makes_no_query_and_costs_nothing():
    env = raw_env(**MARKET, probe_cost=0.01, reward="share")
    env.reset(seed=5)
    layout = env.action_layout
    a = layout.build()
    a[layout.probe_index] = 1.0  # probe on, but no peer named and no routing
    actions = {ag: layout.build() for ag in env.agents}
    actions["learner_0"] = a
    _, rewards, _, _, infos = env.step(actions)
    assert infos["learner_0"]["probe_queries"] == 0
    assert rewards["learner_0"] == pytest.approx(infos["learner_0"]["share"])
    assert not env.state_arrays.probe_valid[0, 0]


def test_multiclass_median_of_logits_is_coordinatewise():
    env = raw_env(dataset="digits", n_learners=3, max_steps=5, probe_labels="soft")
    env.reset(seed=0)
    theta, *_ = _request(env, 0, peers=[0, 1, 2])
    s = env.state_arrays
    z = logits(theta, s.probe_X[0, 0])  # (3, N, 10)
    med = np.median(z, axis=0)
    soft = np.exp(med - med.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    np.testing.assert_allclose(s.probe_T[0, 0], soft, rtol=1e-10)


def test_forty_learners_all_probing_all_peers_is_exact_and_bounded_in_memory():
    """Every one of 40 learners asks the median of all 40 (200 outputs each): each answer is
    the coordinatewise median of the peers' logits, and no array over all requests, peers,
    points and outputs is formed (that one would take 256 MB)."""
    import tracemalloc

    from choicemarket.envs import MarketConfig, MarketCore

    n = 40
    core = MarketCore(MarketConfig.from_kwargs(dataset="synthetic-ratings", n_learners=n))
    core.reset(seed=0)
    layout = core.spec.actions
    every = layout.build(probe=True, peers=list(range(n)))
    actions = np.tile(every, (1, n, 1)).astype(np.float64)
    theta = core.state.theta[0].copy()
    tracemalloc.start()
    core.step(actions)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    s, o = core.state, core.spec.n_outputs
    assert s.probe_valid.all() and (s.probe_queries == n * core.spec.probe_size).all()
    for k in (0, 17, 39):
        z = logits(theta, s.probe_X[0, k])  # (n, N_probe, o)
        np.testing.assert_allclose(s.probe_T[0, k, :, :o], np.median(z, axis=0), rtol=1e-12)
    assert peak < 150 * 2**20
