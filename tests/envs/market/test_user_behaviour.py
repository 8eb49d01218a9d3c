"""User choice rules beyond the default: logit, multiplicative weights, user types and the
outside option. Distributions are checked against their formulas with binomial tolerances."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from choicemarket.baselines import MSGD, act_all
from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.market import choice as ch
from choicemarket.envs.market.losses import logits
from choicemarket.envs.market_v0 import parallel_env, raw_env
from choicemarket.experiments.runner import OUTSIDE_METRICS, simulate

SMALL = dict(max_steps=40, users_per_step=30, probe_size=20)
RULES = {
    "logit": dict(choice_rule="logit", temperature=0.2, loyalty_bonus=0.1),
    "multiplicative_weights": dict(choice_rule="multiplicative_weights", mw_rate=0.2),
    "user_types": dict(user_types={"loyal": 0.3, "quality": 0.4, "random": 0.1}),
    "outside": dict(outside_threshold=0.3, return_rate=0.2),
}


def batch_losses(core: MarketCore) -> np.ndarray:
    """(M, n, B) losses of the current batch at every learner."""
    s, pop = core.state, core.population
    return pop.family.loss(logits(s.theta, pop.X_train[s.batch]), pop.T_train[s.batch][:, None])


def assert_counts_match(choice: np.ndarray, prob: np.ndarray, z: float = 5.0) -> None:
    """Counts of each learner over independent users match the summed probabilities
    (prob (U, n), choice (U,)) within z binomial standard errors."""
    n = prob.shape[1]
    counts = np.bincount(choice, minlength=n)
    expected = prob.sum(0)
    se = np.sqrt((prob * (1 - prob)).sum(0)) + 1e-9
    assert np.all(np.abs(counts - expected) <= z * se + 1e-6), (counts, expected, se)


# ------------------------------------------------------------------ the rules' formulas


def test_logit_frequencies_match_softmax():
    """Fixed losses, 200,000 users: frequencies match exp((-l + b [k = pref]) / T)."""
    rng = np.random.default_rng(0)
    n, B = 4, 200_000
    L = np.broadcast_to(np.array([0.3, 0.5, 0.4, 1.0])[None, :, None], (1, n, B))
    pref = (np.arange(B) % 2 * 3)[None]  # half prefer learner 0, half learner 3
    u = rng.random((1, B))
    choice = ch.logit(u, L, pref, 0.25, 0.2)
    for p_label in (0, 3):
        who = pref[0] == p_label
        util = -np.array([0.3, 0.5, 0.4, 1.0]) + 0.2 * (np.arange(n) == p_label)
        p = np.exp(util / 0.25) / np.exp(util / 0.25).sum()
        assert_counts_match(choice[0, who], np.broadcast_to(p, (who.sum(), n)))


def test_logit_on_census_matches_formula():
    """acs-income, 8 markets x 2,000 users: learner counts match the summed logit probabilities
    of the users' actual losses."""
    cfg = MarketConfig(
        dataset="acs-income", users_per_step=2000, choice_rule="logit", temperature=0.1,
        loyalty_bonus=0.05, init="random", init_scale=0.3,
    )  # fmt: skip
    core = MarketCore(cfg, n_markets=8)
    s = core.reset(seed=3)
    L = batch_losses(core)
    p = ch.logit_probabilities(L, core.population.pref[s.batch], 0.1, 0.05)  # (M, n, B)
    assert_counts_match(s.choice.ravel(), p.transpose(0, 2, 1).reshape(-1, 5))
    assert (s.counts > 50).sum() >= 10  # the rule really spreads users


def test_logit_limits_on_census():
    """temperature -> 0 recovers argmin; a huge loyalty bonus recovers pure loyalty."""
    base = dict(dataset="acs-income", users_per_step=500, choice_rule="logit")
    core = MarketCore(MarketConfig(**base, temperature=1e-9))
    s = core.reset(seed=0)
    np.testing.assert_array_equal(s.choice, batch_losses(core).argmin(1))
    core = MarketCore(MarketConfig(**base, temperature=0.05, loyalty_bonus=1e3))
    s = core.reset(seed=0)
    np.testing.assert_array_equal(s.choice, core.population.pref[s.batch])


def test_inverse_cdf_skips_zero_weights():
    u = np.array([0.0, 0.2, 0.5, 0.999999])
    w = np.array([[0.0, 1.0, 0.0, 1.0]] * 4)
    np.testing.assert_array_equal(ch.inverse_cdf(u, w, 1), [1, 1, 3, 3])


def test_mw_sampling_matches_allocation():
    rng = np.random.default_rng(1)
    alpha = np.array([[[0.7, 0.2, 0.1], [0.05, 0.05, 0.9], [1 / 3, 1 / 3, 1 / 3]]])
    B = 90_000
    group = (np.arange(B) % 3)[None]
    choice = ch.multiplicative_weights(rng.random((1, B)), alpha, group)
    for j in range(3):
        who = group[0] == j
        assert_counts_match(choice[0, who], np.broadcast_to(alpha[0, j], (who.sum(), 3)))


def test_mw_update_formula():
    alpha = np.array([[[0.5, 0.5], [0.2, 0.8]]])
    risk = np.array([[[1.0, 3.0], [500.0, 900.0]]])
    present = np.array([[True, False]])
    ch.mw_update(alpha, risk, present, 0.1)
    w = np.array([0.5 * 0.9**1, 0.5 * 0.9**3])
    np.testing.assert_allclose(alpha[0, 0], w / w.sum())
    np.testing.assert_array_equal(alpha[0, 1], [0.2, 0.8])  # absent group keeps its allocation


def test_mw_update_survives_extreme_risks():
    """eps near 1 and risk gaps of 1000: no underflow to an all-zero (nan) allocation."""
    alpha = np.array([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]])
    risk = np.array([[[1000.0, 0.0, 0.0], [2000.0, 1000.0, 0.0]]])
    ch.mw_update(alpha, risk, np.array([[True, True]]), 0.99)
    np.testing.assert_array_equal(alpha, [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])


def test_group_batch_risk():
    L = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])  # (1, n=2, B=3)
    group = np.array([[0, 0, 2]])
    risk, present = ch.group_batch_risk(L, group, 3)
    np.testing.assert_allclose(risk[0, 0], [1.5, 4.5])
    np.testing.assert_allclose(risk[0, 2], [3.0, 6.0])
    np.testing.assert_array_equal(present, [[True, False, True]])


@pytest.mark.parametrize(
    "market",
    [
        dict(dataset="gaussian-groups", n_learners=3, preferences="category", mw_rate=0.1),
        dict(dataset="acs-income", mw_rate=0.5),
    ],
)
def test_mw_groups_concentrate_on_their_best_learner(market):
    """Frozen partition-ERM learners: each group's allocation goes to the learner with the
    lowest full risk on that group."""
    env = raw_env(**market, max_steps=150, choice_rule="multiplicative_weights")
    env.reset(seed=0)
    zero = {a: np.zeros(env.action_space(a).shape, np.float32) for a in env.agents}
    while env.agents:
        env.step(zero)
    core, pop = env.core, env.population
    risk = pop.family.loss(logits(core.state.theta[0], pop.X_train), pop.T_train[None])
    alpha = core.choice_rule.alpha[0]
    for j in range(env.market_spec.n_learners):
        best = risk[:, pop.pref == j].mean(1).argmin()
        assert alpha[j].argmax() == best
        assert alpha[j, best] > 0.95
    share = core.state.counts[0] / core.state.counts[0].sum()
    assert share.max() < 0.9  # segmented, not one learner for everybody


# ------------------------------------------------------------------ user types


def test_user_types_fixed_per_population_and_behave():
    cfg = MarketConfig(
        dataset="acs-income", users_per_step=3000, preference_weight=0.5,
        user_types={"loyal": 0.3, "quality": 0.2, "random": 0.2, "collective": 0.1},
    )  # fmt: skip
    core = MarketCore(cfg, n_markets=2)
    s = core.reset(seed=0)
    types = core.choice_rule.user_type
    N = len(types)
    for name, frac in cfg.user_types.items():
        assert abs((types == ch.TYPE_CODES[name]).sum() - frac * N) <= 1
    assert abs((types == ch.RULE).sum() - 0.2 * N) <= 4
    kind, pref = types[s.batch], core.population.pref[s.batch]
    best = batch_losses(core).argmin(1)
    np.testing.assert_array_equal(s.choice[kind == ch.LOYAL], pref[kind == ch.LOYAL])
    quality = (kind == ch.QUALITY) | (kind == ch.COLLECTIVE)
    np.testing.assert_array_equal(s.choice[quality], best[quality])
    rand = s.choice[kind == ch.RANDOM]
    assert_counts_match(rand, np.full((len(rand), 5), 0.2))
    rule = kind == ch.RULE  # the rest follow preference_or_loss with tau = 0.5
    loyal_or_best = (s.choice[rule] == pref[rule]) | (s.choice[rule] == best[rule])
    assert loyal_or_best.all()
    s2 = core.reset(seed=99)  # another episode, same population: same types
    np.testing.assert_array_equal(core.choice_rule.user_type, types)
    assert not np.array_equal(s2.batch, s.batch)


def test_empty_user_types_and_unreachable_threshold_keep_the_default_trajectory():
    """Features on but inactive draw no extra random numbers: same choices as the default."""
    traces = []
    for extra in ({}, {"user_types": {}}, {"outside_threshold": 1e9}):
        core = MarketCore(MarketConfig(dataset="acs-income", **extra), n_markets=2)
        s = core.reset(seed=5)
        trace = [s.choice.copy()]
        for _ in range(20):
            a = np.zeros((2, 5, core.spec.actions.size))
            a[..., core.spec.actions.n_params :] = -1.0
            a[..., :16] = 0.01
            trace.append(core.step(a).choice.copy())
        traces.append(trace)
    np.testing.assert_array_equal(traces[0], traces[1])
    np.testing.assert_array_equal(traces[0], traces[2])


# ------------------------------------------------------------------ outside option


def test_threshold_below_every_loss_everyone_leaves():
    env = raw_env(dataset="acs-income", outside_threshold=0.0, return_rate=0.5, max_steps=5)
    _, infos = env.reset(seed=0)
    s = env.state_arrays
    assert (s.choice == ch.UNSERVED).all() and s.counts.sum() == 0
    assert np.isnan(s.served_loss).all()
    i0 = infos["learner_0"]
    assert i0["unserved_fraction"] == 1.0 and i0["social_cost"] == 0.0
    n_left = len(np.unique(s.batch))
    assert i0["outside_fraction"] == pytest.approx(n_left / len(env.population.pref))
    X, T, mask = env.core.padded_users()
    assert mask.sum() == 0 and not X.any()


def test_threshold_above_every_loss_everyone_stays():
    env = raw_env(dataset="acs-income", outside_threshold=50.0, max_steps=30)
    env.reset(seed=0)
    zero = {a: np.zeros(env.action_space(a).shape, np.float32) for a in env.agents}
    while env.agents:
        _, _, _, _, infos = env.step(zero)
        assert infos["learner_0"]["unserved_fraction"] == 0.0
        assert infos["learner_0"]["outside_fraction"] == 0.0
        assert env.state_arrays.counts.sum() == 150


@pytest.mark.parametrize("r", [0.3, 0.7])
def test_return_times_are_geometric(r):
    """Users who leave at step 0 stay out G ~ Geometric(r) steps: P(G = k) = r (1 - r)^(k-1)."""
    cfg = MarketConfig(
        dataset="acs-income", users_per_step=4000, outside_threshold=0.0, return_rate=r
    )
    core = MarketCore(cfg, n_markets=5)
    s = core.reset(seed=1)
    rows = np.arange(5)[:, None]
    gone = core.outside.outside_until[rows, s.batch]  # step 0 + G (one value per user)
    gone = np.concatenate([np.unique(np.c_[s.batch[m], gone[m]], axis=0)[:, 1] for m in range(5)])
    U = len(gone)
    assert U > 15_000
    for k in range(1, 5):
        p = r * (1 - r) ** (k - 1)
        assert abs((gone == k).sum() - U * p) <= 5 * math.sqrt(U * p * (1 - p))
    assert abs(gone.mean() - 1 / r) <= 5 * math.sqrt((1 - r) / r**2 / U)


def test_departed_users_return_and_are_served_again():
    """Threshold 0: drawn users always leave; with r = 1 they are back the next step, so the
    population outside is exactly the last batch; with r = 0 nobody ever returns."""
    for r in (1.0, 0.0):
        core = MarketCore(MarketConfig(dataset="acs-income", outside_threshold=0.0, return_rate=r))
        core.reset(seed=0)
        seen = set(core.state.batch[0].tolist())
        a = np.zeros((1, 5, core.spec.actions.size))
        a[..., core.spec.actions.n_params :] = -1.0
        for _ in range(10):
            s = core.step(a)
            seen |= set(s.batch[0].tolist())
        m = core.outside.metrics(core)
        N = len(core.population.pref)
        expected = len(set(s.batch[0].tolist())) if r == 1.0 else len(seen)
        assert m["outside_fraction"][0] == pytest.approx(expected / N)


def test_users_leave_iff_every_loss_is_above_the_threshold():
    core = MarketCore(
        MarketConfig(dataset="acs-income", users_per_step=2000, outside_threshold=0.4),
        n_markets=2,
    )
    s = core.reset(seed=4)  # nobody is outside yet: leaving is the only way to be unserved
    leave = batch_losses(core).min(1) > 0.4
    assert 0 < leave.sum() < leave.size
    np.testing.assert_array_equal(s.choice < 0, leave)


def test_outside_metrics_by_group_and_padded_users():
    env = raw_env(dataset="acs-income", outside_threshold=0.35, return_rate=0.1, max_steps=20)
    env.reset(seed=2)
    zero = {a: np.zeros(env.action_space(a).shape, np.float32) for a in env.agents}
    for _ in range(10):
        _, _, _, _, infos = env.step(zero)
    s, pop, beh = env.state_arrays, env.population, env.core.outside
    unserved = s.choice[0] < 0
    assert 0 < unserved.sum() < 150
    i0 = infos["learner_0"]
    assert i0["unserved_fraction"] == pytest.approx(unserved.mean())
    assert s.counts.sum() == (~unserved).sum()
    outside = beh.outside_until[0] > s.step
    for k, a in enumerate(env.possible_agents):
        group = pop.pref == k
        assert infos[a]["group_outside"] == pytest.approx(outside[group].mean())
        drawn = pop.pref[s.batch[0]] == k
        if drawn.any():
            assert infos[a]["group_unserved"] == pytest.approx(unserved[drawn].mean())
    X, T, mask = env.core.padded_users()
    np.testing.assert_array_equal(mask[0].sum(-1), s.counts[0])
    assert not mask[0][:, unserved].any()
    served = s.served_loss[0][~unserved]
    L = batch_losses(env.core)[0]
    np.testing.assert_allclose(served, L[s.choice[0][~unserved], np.flatnonzero(~unserved)])
    np.testing.assert_allclose(i0["social_cost"], served.sum() / 150)


def test_runner_records_outside_metrics(tmp_path):
    h = simulate(
        dataset="acs-income", outside_threshold=0.35, max_steps=20, eval_every=10,
        out=tmp_path / "h.csv",
    )  # fmt: skip
    assert all(m in h.rows[-1] for m in OUTSIDE_METRICS)
    header = (tmp_path / "h.csv").read_text().splitlines()[0]
    assert "unserved_fraction" in header
    plain = simulate(dataset="acs-income", max_steps=10)
    assert not any(m in plain.rows[-1] for m in OUTSIDE_METRICS)


# ------------------------------------------------------------------ API and determinism


@pytest.mark.parametrize("rule", list(RULES))
def test_parallel_api_with_rule(rule):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parallel_api_test(parallel_env(**SMALL, **RULES[rule]), num_cycles=40)


@pytest.mark.parametrize("rule", list(RULES))
def test_determinism_over_many_steps(rule):
    """Two runs with MSGD from the same seed agree exactly for 150 steps."""
    runs = []
    for _ in range(2):
        env = parallel_env(**{**SMALL, **RULES[rule], "max_steps": 150})
        pols = {a: MSGD(env.market_spec, eta=0.05) for a in env.possible_agents}
        obs, infos = env.reset(seed=11)
        trace = [infos, env.state_arrays.choice.copy()]
        while env.agents:
            obs, rew, _, _, infos = env.step(act_all(pols, obs))
            trace.append((rew, infos, env.state_arrays.choice.copy()))
        runs.append(trace)
    np.testing.assert_equal(runs[0], runs[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(choice_rule="softmax"), "choice_rule"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature=math.inf), "temperature"),
        (dict(loyalty_bonus=math.nan), "loyalty_bonus"),
        (dict(mw_rate=0.0), "mw_rate"),
        (dict(mw_rate=1.0), "mw_rate"),
        (dict(user_types=["loyal"]), "user_types"),
        (dict(user_types={"lazy": 0.5}), "user_types"),
        (dict(user_types={"loyal": 1.5}), "user_types"),
        (dict(user_types={"loyal": 0.6, "random": 0.6}), "sum to at most 1"),
        (dict(outside_threshold=-0.1), "outside_threshold"),
        (dict(outside_threshold="high"), "outside_threshold"),
        (dict(return_rate=1.5), "return_rate"),
    ],
)
def test_bad_behaviour_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MarketConfig(**kwargs)
