"""The one MSGD/MSGD-P update: probers with different probe batch sizes, and the strategy
knobs computing MSGD-P's update through the same function."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from choicemarket import simulate
from choicemarket.baselines import MSGD, MSGDP, NoUpdate, Retrain, act_all
from choicemarket.baselines.msgd import msgd_update
from choicemarket.envs.market.losses import mean_gradient
from choicemarket.envs.market_v0 import raw_env

MARKET = dict(dataset="breast-cancer", n_learners=3, users_per_step=40, probe_size=30)


def test_probers_with_different_probe_batch_sizes():
    """Two MSGD-P learners with b_p 10 and 25 act together and in simulate, and each gets
    the update it gets alone."""
    env = raw_env(**MARKET)
    spec = env.market_spec

    def pols():
        return {
            "learner_0": MSGDP(spec, 0, p=0.5, probe_batch_size=10),
            "learner_1": MSGDP(spec, 1, p=0.5, probe_batch_size=25),
            "learner_2": MSGD(spec),
        }

    obs, _ = env.reset(seed=0)
    both = pols()
    for p in both.values():
        p.reset(7)  # no probe is held at the first step: nothing is drawn then
    obs, *_ = env.step(act_all(both, obs))  # first step: probe requests
    together = act_all(both, obs)
    for a in ("learner_0", "learner_1"):
        alone = pols()[a]
        alone.reset(7)
        np.testing.assert_array_equal(together[a], alone.act(obs[a]))
    h = simulate(
        MARKET, policies=lambda spec, k: pols()[f"learner_{k}"], seeds=[0, 1], max_steps=20
    )
    assert len(h.rows) == 2 * 3 * 2


def test_msgd_update_is_mix_of_own_and_probe_gradients():
    rng = np.random.default_rng(0)
    env = raw_env(**MARKET)
    family = env.market_spec.family
    theta = rng.normal(size=(2, 1, 30)).astype(np.float32)
    X = rng.normal(size=(2, 8, 30)).astype(np.float32)
    T = (rng.random((2, 8, 1)) < 0.5).astype(np.float32)
    mask = np.ones((2, 8), np.float32)
    PX, PT = X[1, :5], T[1, :5]
    probes = [(np.array([1]), PX[None], PT[None], np.array([0.5]))]
    u = msgd_update(family, theta, X, T, mask, probes, np.float32(0.1), -0.01)
    g = mean_gradient(family, theta, X, T, mask)
    h = mean_gradient(family, theta[1:], PX[None], PT[None])[0]
    np.testing.assert_allclose(u[0], -0.01 * (g[0] + 0.1 * theta[0]), rtol=1e-6)
    np.testing.assert_allclose(u[1], -0.01 * ((g[1] + 0.5 * h) / 1.5 + 0.1 * theta[1]), rtol=1e-5)


def test_own_probe_schedules_are_asked_every_step():
    """MSGD-P's schedule is known in advance; a subclass with its own rule is asked each step."""
    env = raw_env(**MARKET, max_steps=6)
    spec = env.market_spec

    class OddSteps(MSGDP):
        def probe_request(self, t):
            return t % 2 == 1, (), True

    pols = {
        "learner_0": OddSteps(spec, 0, p=0.5),
        "learner_1": MSGDP(spec, 1, p=0.5, probe_every=4),
        "learner_2": MSGD(spec),
    }
    obs, _ = env.reset(seed=0)
    asked = []
    while env.agents:
        actions = act_all(pols, obs)
        asked.append([bool(actions[a][spec.n_params] > 0) for a in ("learner_0", "learner_1")])
        obs, *_ = env.step(actions)
    assert [a for a, _ in asked] == [False, True, False, True, False, True]
    assert [b for _, b in asked] == [True, False, False, False, True, False]


@pytest.mark.parametrize("make", [MSGD, lambda s: MSGDP(s, 0), Retrain, NoUpdate])
def test_a_gymnasium_env_spec_is_refused_with_where_the_market_spec_is(make) -> None:
    env = gymnasium.make("choicemarket:choicemarket/Platform-v0", max_steps=3)
    with pytest.raises(TypeError, match="market_spec"):
        make(env.spec)
    make(env.unwrapped.market_spec)  # the market's own spec works
