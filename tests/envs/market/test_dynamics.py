"""The paper's dynamics on exact instances: overspecialization under MSGD, the MSGD-P fixed
point in closed form, and the probing effect on the real census market."""

import numpy as np
import pytest

from choicemarket import simulate
from choicemarket.baselines import MSGD, MSGDP, act_all
from choicemarket.envs.market_v0 import raw_env
from choicemarket.experiments.demo import worst_start_learner

A, B, W = 1.0, -1.0, 0.6


def test_two_slopes_msgd_stays_at_specialists(two_slopes):
    """tau = 0.7 from partition ERM: learners stay at slopes a and b; learner 0's global risk
    is (1-w)(a-b)^2 and the baseline's w(1-w)(a-b)^2 (within 5%)."""
    env = raw_env(**two_slopes, preference_weight=0.7, max_steps=3000, eval_every=3000)
    policies = {a: MSGD(env.market_spec, eta=0.01) for a in env.possible_agents}
    obs, infos = env.reset(seed=3)
    while env.agents:
        obs, _, _, _, infos = env.step(act_all(policies, obs))
    theta = env.state_arrays.theta[0, :, 0, 0]
    np.testing.assert_allclose(theta, [A, B], atol=1e-6)
    risk0 = infos["learner_0"]["global_loss"]
    risk1 = infos["learner_1"]["global_loss"]
    base = infos["learner_0"]["baseline_loss"]
    d2 = (A - B) ** 2
    assert risk0 == pytest.approx((1 - W) * d2, rel=0.05)
    assert risk1 == pytest.approx(W * d2, rel=0.05)
    assert base == pytest.approx(W * (1 - W) * d2, rel=0.05)
    # the overspecialization gap: learner 0 is (1/w) times worse than the pooled model
    assert infos["learner_0"]["gap"] == pytest.approx((1 - W) ** 2 * d2, rel=0.1)
    assert env.population.baseline_theta[0, 0] == pytest.approx(W * A + (1 - W) * B, abs=0.02)


@pytest.mark.parametrize("p", [0.25, 1.0, 4.0])
def test_two_slopes_msgdp_preference_aware_fixed_point(two_slopes, p):
    """Learner 0 probes by preference (offline, step 0) with weight p while learner 1 runs MSGD.

    Learner 0 keeps only its own group, so E[g] = 2 c1 (theta - a) with c1 = E[x^2 | group 0];
    the probe set (x_j, y~_j) gives E[h] = 2 (c2 theta - c3), c2 = mean x_j^2, c3 = mean x_j y~_j.
    With lambda = 0 the stationary point of (g + p h)/(1 + p) is
    theta* = (a c1 + p c3) / (c1 + p c2), which tends to the pooled least squares as p grows.
    """
    env = raw_env(**two_slopes, preference_weight=0.7, max_steps=8000, eval_every=8000)
    spec = env.market_spec
    policies = {
        "learner_0": MSGDP(spec, 0, p=p, scenario="preference_aware", eta=0.01),
        "learner_1": MSGD(spec, eta=0.01),
    }
    obs, _ = env.reset(seed=11)
    for k, a in enumerate(env.possible_agents):
        policies[a].reset(100 + k)
    trace = []
    while env.agents:
        obs, *_ = env.step(act_all(policies, obs))
        trace.append(env.state_arrays.theta[0, :, 0, 0].copy())
    trace = np.array(trace)
    s, pop = env.state_arrays, env.population
    x = pop.X_train[pop.pref == 0, 0]
    c1 = np.mean(x**2)
    px, py = s.probe_X[0, 0, :, 0], s.probe_T[0, 0, :, 0]
    c2, c3 = np.mean(px**2), np.mean(px * py)
    # preference routing queried learner 0 itself (slope a) and learner 1 (slope b)
    np.testing.assert_allclose(py, np.where(pop.pref[s.probe_users[0, 0]] == 0, A, B) * px)
    expected = (A * c1 + p * c3) / (c1 + p * c2)
    assert trace[4000:, 0].mean() == pytest.approx(expected, abs=5e-3)
    np.testing.assert_allclose(trace[-1, 1], B, atol=1e-6)  # learner 1 keeps its specialist
    assert abs(expected - A) > 0.1  # probing moved learner 0 measurably off its specialist


def test_census_probing_shrinks_gap():
    """acs-income, tau = 0.7, partition-ERM start: the most overspecialized learner has a large
    accuracy gap without probing, and preference-aware probing shrinks it monotonically in p."""
    market = dict(dataset="acs-income", preference_weight=0.7, max_steps=3000, eval_every=3000)
    prober = worst_start_learner(market)
    gaps = []
    for p in (0.0, 0.2, 0.8):

        def factory(spec, k, p=p):
            return MSGDP(spec, k, p=p) if k == prober else MSGD(spec)

        h = simulate(market, policies=factory, seeds=[0, 1])
        gaps.append(h.summary("accuracy_gap")[f"learner_{prober}"][0])
    assert gaps[0] > 0.10  # at least 10 accuracy points below the baseline
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.05
