"""Participation dynamics (Dean et al. 2024): ``choicemarket/participation-v0``, its batched
core, the exact-retraining and gradient baselines, the learner-splitting experiment and
least-squares groups on the embedded census people."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test

from choicemarket.baselines import ExactRetraining, GradientStep
from choicemarket.baselines.participation import retrain_arrays, updates_for
from choicemarket.envs import ParticipationConfig, ParticipationCore
from choicemarket.envs.data.acs import load_acs_income
from choicemarket.envs.participation_v0 import env as aec_env
from choicemarket.envs.participation_v0 import parallel_env
from choicemarket.experiments.participation_experiments import run_to_equilibrium, splitting_curve

OPTIMA = np.array([[0.0, 1.0], [1.0, 1.0], [0.6, 0.0]])
SYMMETRIC = ((0.5, 0.5), (0.5, 0.5), (0.5, 0.5))
# the three perturbed starts of the authors' synthetic figure (rows: sub-populations), and the
# segmentation each one reached there (sub-population -> learner)
PERTURBED = {
    ((0.496, 0.504), (0.511, 0.489), (0.498, 0.502)): (1, 0, 1),
    ((0.501, 0.499), (0.491, 0.509), (0.494, 0.506)): (0, 1, 1),
    ((0.486, 0.514), (0.505, 0.495), (0.503, 0.497)): (1, 1, 0),
}
CENSUS = dict(risk="least_squares", group_by="race", eps=0.999, init_perturbation=0.01)


def play(env, policy_cls=ExactRetraining, seed=0, **kw):
    """Run one episode with the same scripted policy for every learner; total risk per step."""
    obs, _ = env.reset(seed=seed)
    policies = {a: policy_cls(env.market_spec, **kw) for a in env.possible_agents}
    totals = []
    while env.agents:
        obs, _, _, _, infos = env.step({a: policies[a].act(o) for a, o in obs.items()})
        totals.append(next(iter(infos.values()))["total_risk"])
    return np.array(totals)


# ------------------------------------------------------------------ Dean et al.'s synthetic example


def test_symmetric_start_stays_at_pooled_optimum():
    """alpha = 1/2 everywhere is an equilibrium: both learners stay at the pooled optimum (the
    mean of the optima) for 500 rounds of exact retraining with eps = 0.1."""
    env = parallel_env(init_allocation=SYMMETRIC, max_steps=500, eps=0.1)
    totals = play(env)
    s = env.state_arrays
    assert np.array_equal(s.alpha[0], np.full((3, 2), 0.5))
    np.testing.assert_allclose(s.theta[0], np.tile(OPTIMA.mean(0), (2, 1)), atol=1e-6)
    np.testing.assert_allclose(totals, 1 + np.mean(((OPTIMA - OPTIMA.mean(0)) ** 2).sum(1)))


@pytest.mark.parametrize("start", list(PERTURBED))
def test_perturbed_start_segments(start):
    """A slightly perturbed start segments: every sub-population ends with > 0.99 of its mass
    on one learner, each learner sits at the mean of its sub-populations' optima, the split is
    the one the authors report for that start, and the total risk never increases."""
    env = parallel_env(init_allocation=start, max_steps=500, eps=0.1)
    totals = play(env)
    s = env.state_arrays
    alpha, theta = s.alpha[0], s.theta[0]
    assert (alpha.max(1) > 0.99).all()
    owner = alpha.argmax(1)
    assert tuple(owner) == PERTURBED[start]
    for i in range(2):
        np.testing.assert_allclose(theta[i], OPTIMA[owner == i].mean(0), atol=1e-5)
    assert np.diff(totals).max() <= 1e-12
    pooled = 1 + np.mean(((OPTIMA - OPTIMA.mean(0)) ** 2).sum(1))
    assert totals[-1] < pooled - 0.15


def test_random_perturbed_starts_segment_batched():
    """Forty random perturbed starts stepped as forty markets of one core all segment, each
    learner at the mean of its sub-populations' optima, with non-increasing total risk."""
    cfg = ParticipationConfig(init_allocation="perturbed", init_perturbation=0.05)
    core = ParticipationCore(cfg, n_markets=40)
    core.reset(seed=3)
    masses = core.population.masses
    totals = np.array(
        [core.step(updates_for(core.spec, core.state)).total_risk(masses) for _ in range(500)]
    )
    alpha, theta = core.state.alpha, core.state.theta
    assert (alpha.max(-1) > 0.99).all()
    assert np.diff(totals, axis=0).max() <= 1e-12
    owner = alpha.argmax(-1)  # (M, J)
    for m in range(40):
        for i in range(2):
            if (owner[m] == i).any():
                np.testing.assert_allclose(theta[m, i], OPTIMA[owner[m] == i].mean(0), atol=1e-5)
    assert len({tuple(o) for o in owner}) > 2  # different starts, different segmentations


def test_gradient_learners_segment_too():
    """One gradient step per round (eta = 0.5) also segments the perturbed start and reaches
    the same learners' parameters as exact retraining."""
    start = next(iter(PERTURBED))
    env = parallel_env(init_allocation=start, max_steps=500)
    play(env, GradientStep, eta=0.5)
    s = env.state_arrays
    owner = s.alpha[0].argmax(1)
    assert (s.alpha[0].max(1) > 0.99).all()
    for i in range(2):
        np.testing.assert_allclose(s.theta[0, i], OPTIMA[owner == i].mean(0), atol=1e-4)


def test_markets_in_one_core_match_the_environment():
    """Market m of a batched core follows the same trajectory as the environment."""
    start = next(iter(PERTURBED))
    env = parallel_env(init_allocation=start, max_steps=50)
    play(env)
    core = ParticipationCore(env.config, n_markets=3)
    core.reset(seed=0)
    for _ in range(50):
        core.step(updates_for(core.spec, core.state))
    for m in range(3):
        np.testing.assert_allclose(core.state.alpha[m], env.state_arrays.alpha[0], atol=1e-6)
        np.testing.assert_allclose(core.state.theta[m], env.state_arrays.theta[0], atol=1e-6)


# ------------------------------------------------------------------ adding learners


def split_config() -> ParticipationConfig:
    """The authors' competition set-up: 50 sub-populations with optima N(0, I_8), 2 learners,
    allocations 1 + 1e-4 U[0, 1) renormalised, exact retraining, eps = 0.1."""
    return ParticipationConfig(optima=None, n_subpops=50, dim=8, init_perturbation=1e-4)


def test_splitting_lowers_equilibrium_risk():
    """Splitting the learner that carries the most risk into two and running to equilibrium
    again lowers the equilibrium total risk at every split, from 2 to 12 learners."""
    curve = splitting_curve(split_config(), n_max=12, seed=0, split="largest_risk")
    assert list(curve.n_learners) == list(range(2, 13))
    assert curve.segmented.all()
    assert (np.diff(curve.risk) < -1e-3).all()
    assert curve.risk[-1] < 0.65 * curve.risk[0]


def test_splitting_never_raises_risk_sequential():
    """The authors' order (split learner 0, 1, 2, ...) never raises the equilibrium risk
    (splitting keeps the total risk and the dynamics never increase it)."""
    curve = splitting_curve(split_config(), n_max=10, seed=1, split="sequential")
    assert np.diff(curve.risk).max() <= 1e-9
    assert curve.risk[-1] < curve.risk[0] - 1.0


def test_split_learner_keeps_total_risk():
    core = ParticipationCore(split_config())
    core.reset(seed=0)
    run_to_equilibrium(core)
    masses = core.population.masses
    before = core.state.total_risk(masses).copy()
    core.split_learner(0, scale=1e-3)
    assert core.n_learners == 3 and core.state.theta.shape == (1, 3, 8)
    np.testing.assert_allclose(core.state.alpha.sum(-1), 1.0)
    np.testing.assert_allclose(core.state.total_risk(masses), before, rtol=1e-12)
    with pytest.raises(ValueError, match="k must be a learner index"):
        core.split_learner(3)


# ------------------------------------------------------------------ census least squares


def test_census_least_squares_groups_segment():
    """Least-squares risks on the embedded census people grouped by race (groups under 100
    people merged): two exact-retraining learners segment the groups, the total risk never
    increases and ends below the pooled fit's, every risk stays finite, and each learner's
    parameters are the ordinary least-squares fit on the real rows of the groups it holds."""
    env = parallel_env(n_learners=2, max_steps=600, **CENSUS)
    totals = play(env)
    s, pop = env.state_arrays, env.population
    assert pop.names[-1] == "race=other" and pop.n_groups == 7
    assert pop.names[:2] == ("race=White", "race=Black")
    assert np.isfinite(s.risks).all() and np.isfinite(totals).all()
    assert np.diff(totals).max() <= 1e-12
    assert (s.alpha[0].max(1) > 0.99).all()
    owner = s.alpha[0].argmax(1)
    assert set(owner) == {0, 1}
    data = load_acs_income(intercept=True, group_by="race")
    y = data.y.astype(float)
    codes = np.where(np.isin(data.groups, [3, 4, 6]), -1, data.groups)
    group_codes = [0, 1, 2, 5, 7, 8, -1]
    pooled = np.linalg.lstsq(data.X, y, rcond=None)[0]
    assert totals[-1] < np.mean((data.X @ pooled - y) ** 2) - 3e-3
    for i in range(2):
        rows = np.isin(codes, [group_codes[j] for j in np.flatnonzero(owner == i)])
        fit = np.linalg.lstsq(data.X[rows], y[rows], rcond=None)[0]
        np.testing.assert_allclose(s.theta[0, i], fit, atol=1e-4)


def test_census_puma_groups_three_learners():
    """Grouped by area (20 PUMAs), three learners: every area ends on one learner and every
    learner ends with a lower local risk than the pooled model gives the whole population."""
    core = ParticipationCore(
        ParticipationConfig(n_learners=3, **dict(CENSUS, group_by="puma")), n_markets=1
    )
    core.reset(seed=0)
    totals = run_to_equilibrium(core, max_steps=3000)
    s, masses = core.state, core.population.masses
    assert (s.alpha[0].max(1) > 0.99).all()
    assert np.diff(totals[:, 0]).max() <= 1e-12
    assert totals[-1, 0] < totals[0, 0] - 0.01
    assert np.isfinite(s.local_risk(masses)).all()


def test_retrain_arrays_least_squares_matches_weighted_fit():
    """Exact retraining on arbitrary weights is the weighted least-squares fit."""
    core = ParticipationCore(ParticipationConfig(**CENSUS))
    pop = core.population
    w = np.random.default_rng(0).random((2, pop.n_groups)) * pop.masses
    theta = retrain_arrays(core.spec, w, np.zeros((2, pop.dim)))
    for i in range(2):
        A = np.einsum("j,jde->de", w[i], pop.A)
        np.testing.assert_allclose(A @ theta[i], w[i] @ pop.b, atol=1e-10)


# ------------------------------------------------------------------ API, determinism, errors


def test_parallel_api():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parallel_api_test(parallel_env(max_steps=40), num_cycles=60)
        parallel_api_test(parallel_env(max_steps=30, n_learners=3, **CENSUS), num_cycles=40)


def test_aec_api():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        api_test(aec_env(max_steps=40), num_cycles=60)


def test_parallel_seed_test():
    parallel_seed_test(lambda: parallel_env(max_steps=40, init_params="random"))


def random_walk(seed: int, steps: int = 300):
    """Observations of an episode driven by actions from a policy's own seeded generator."""
    env = parallel_env(
        optima=None, n_subpops=10, dim=3, n_learners=3, max_steps=steps, init_params="random"
    )
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    trace = []
    while env.agents:
        acts = {a: rng.normal(0, 0.1, 3).astype(np.float32) for a in env.agents}
        obs, rewards, *_ = env.step(acts)
        trace.append((obs, rewards))
    return trace


def test_same_seed_same_trajectory():
    a, b, c = random_walk(5), random_walk(5), random_walk(6)
    assert len(a) == 300
    for (oa, ra), (ob, rb) in zip(a, b):
        assert ra == rb
        for agent in oa:
            for key in oa[agent]:
                assert np.array_equal(oa[agent][key], ob[agent][key])
    assert not np.array_equal(a[-1][0]["learner_0"]["masses"], c[-1][0]["learner_0"]["masses"])


def test_observations_and_rewards():
    env = parallel_env(max_steps=5, reward="local")
    obs, infos = env.reset(seed=0)
    space = env.observation_space("learner_0")
    for o in obs.values():
        assert space.contains(o)
    acts = {a: np.full(2, 0.3, np.float32) for a in env.agents}
    obs, rewards, term, trunc, infos = env.step(acts)
    s, masses = env.state_arrays, env.population.masses
    for k, a in enumerate(env.possible_agents):
        w = masses * s.alpha[0, :, k]
        np.testing.assert_allclose(obs[a]["masses"], w, rtol=1e-6)
        local = (w * s.risks[0, :, k]).sum() / w.sum()
        assert rewards[a] == pytest.approx(-local)
        assert obs[a]["risk"][0] == pytest.approx(local, rel=1e-6)
        assert infos[a]["global_risk"] == pytest.approx((masses * s.risks[0, :, k]).sum())
        assert space.contains(obs[a])
    for reward, key in (("global", "global_risk"), ("total", "total_risk")):
        env = parallel_env(max_steps=5, reward=reward)
        env.reset(seed=0)
        _, rewards, _, _, infos = env.step(acts)
        assert all(rewards[a] == -infos[a][key] for a in rewards)
    env = parallel_env(max_steps=5, reward="share")
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step(acts)
    assert sum(rewards.values()) == pytest.approx(1.0)


def test_clip_truncation_and_render():
    env = parallel_env(max_steps=3, max_update=0.5, render_mode="ansi")
    env.reset(seed=0)
    env.step({a: np.array([9.0, -9.0], np.float32) for a in env.agents})
    np.testing.assert_allclose(env.state_arrays.theta[0], [[0.5, -0.5], [0.5, -0.5]])
    assert "total risk" in env.render() and "group_2" in env.render()
    for _ in range(2):
        _, _, _, trunc, _ = env.step({a: np.zeros(2, np.float32) for a in env.agents})
    assert all(trunc.values()) and env.agents == []


def test_registry_fresh_interpreter(tmp_path):
    code = (
        "import choicemarket, pettingzoo\n"
        "p = pettingzoo.make('parallel', 'choicemarket/participation-v0', max_steps=5)\n"
        "assert p.config.max_steps == 5 and p.possible_agents == ['learner_0', 'learner_1']\n"
        "a = pettingzoo.make('aec', 'choicemarket/participation-v0', n_learners=3)\n"
        "a.reset(seed=0)\n"
        "print('OK', type(p).__name__)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "OK raw_env"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(eps=1.0), "eps must be a number in"),
        (dict(eps=0.0), "eps must be a number in"),
        (dict(optima=((0, 1), (1,))), "rows of equal length"),
        (dict(optima="abc"), "optima must be a sequence"),
        (dict(masses=(1.0, 2.0)), "masses must have one entry per sub-population"),
        (dict(masses=(1.0, 0.0, 1.0)), "masses must be numbers > 0"),
        (dict(init_allocation=((0.5, 0.5),)), "init_allocation must have one row"),
        (dict(init_allocation=((0.5, 0.5, 0.0),) * 3), "n_learners"),
        (dict(init_allocation="even"), "init_allocation must be one of"),
        (dict(reward="profit"), "reward must be one of"),
        (dict(max_update=float("inf")), "max_update must be a finite"),
        (dict(n_learners=0), "n_learners must be an integer"),
        (dict(risk="hinge"), "risk must be one of"),
        (dict(noise_var=-1.0), "noise_var must be"),
        (dict(colour="red"), "unknown participation option"),
        (dict(risk="least_squares", group_by="state"), "group_by must be None or one of"),
        (dict(risk="least_squares", dataset="diabetes", group_by=None), "has no groups"),
        (dict(risk="least_squares", dataset="digits", group_by=None), "has no groups"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        parallel_env(**kwargs)


def test_bad_actions():
    env = parallel_env(max_steps=5)
    env.reset(seed=0)
    good = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="must be finite"):
        env.step({"learner_0": np.array([np.nan, 0.0]), "learner_1": good})
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        env.step({"learner_0": np.zeros(3), "learner_1": good})
    with pytest.raises(ValueError, match="missing"):
        env.step({"learner_0": good})
    with pytest.raises(ValueError, match="must be a dict"):
        env.step([good, good])
    with pytest.raises(ValueError, match="eta must be"):
        GradientStep(env.market_spec, eta=-1.0)


def test_census_group_by_option():
    """The census loaders' ``group_by``: race codes and area indices on the real rows."""
    plain = load_acs_income()
    race = load_acs_income(group_by="race")
    puma = load_acs_income(region="ma", group_by="puma")
    assert plain.groups is None
    assert np.array_equal(race.X, plain.X) and np.array_equal(race.y, plain.y)
    assert np.bincount(race.groups).tolist() == [12497, 6030, 637, 4, 61, 1796, 19, 790, 617]
    assert race.extra["group_names"][0] == "White"
    assert puma.groups.min() == 0 and puma.groups.max() == 4  # 5 PUMAs around Boston
    with pytest.raises(ValueError, match="group_by must be None or one of"):
        load_acs_income(group_by="state")


def test_splitting_curve_arguments():
    cfg = ParticipationConfig()
    with pytest.raises(ValueError, match="split must be one of"):
        splitting_curve(cfg, 3, split="random")
    with pytest.raises(ValueError, match="n_max must be an integer"):
        splitting_curve(cfg, 1)
    with pytest.raises(ValueError, match="rule must be one of"):
        run_to_equilibrium(ParticipationCore(cfg), rule="newton")
