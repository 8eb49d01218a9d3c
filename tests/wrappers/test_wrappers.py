"""Gymnasium views of the market: registry, checker, seeding, strategy knobs, flat observation."""

import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import choicemarket  # noqa: F401  (registers the ids)
from choicemarket.baselines import MSGD, MSGDP, NoUpdate, act_all
from choicemarket.envs.market_v0 import raw_env
from choicemarket.registration import GYM_IDS
from choicemarket.wrappers import (
    FlatObservation,
    SingleLearner,
    StrategyActions,
    platform_strategy_env,
)

SMALL = dict(dataset="acs-income", n_learners=3, users_per_step=40, probe_size=30, max_steps=12)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("env_id", sorted(GYM_IDS))
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id, **SMALL)
    check_env(env.unwrapped)
    check_env(env)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)


def test_fresh_process_make(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        import gymnasium, pettingzoo
        for name in ("Platform-v0", "PlatformFlat-v0", "PlatformStrategy-v0"):
            env = gymnasium.make(
                "choicemarket:choicemarket/" + name, dataset="diabetes", max_steps=3, ego=1
            )
            obs, info = env.reset(seed=0)
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            assert env.unwrapped.market.config.max_steps == 3
        import choicemarket, choicemarket.wrappers, choicemarket.baselines
        env = pettingzoo.make("parallel", "choicemarket/market-v0", dataset="diabetes")
        obs, infos = env.reset(seed=0)
        aec = pettingzoo.make("aec", "choicemarket/market-v0", dataset="diabetes")
        aec.reset(seed=0)
        for name in ("torch", "stable_baselines3", "supersuit"):
            assert name not in sys.modules, name
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_make_kwargs_reach_market_and_wrappers():
    env = gym.make(
        "choicemarket/PlatformStrategy-v0",
        n_learners=4,
        max_steps=7,
        reward="share",
        ego=2,
        eta=0.02,
        p_max=1.0,
        peer_shares=True,
    )
    base = env.unwrapped
    assert base.market.config.n_learners == 4 and base.market.config.reward == "share"
    assert base.ego == 2 and base.agent == "learner_2"
    strategy = env.get_wrapper_attr("knobs")
    assert strategy.eta == 0.02 and strategy.p_max == 1.0
    assert env.observation_space.shape == (base.market_spec.n_params + 5 + 4,)
    with pytest.raises(ValueError, match="unknown market option"):
        gym.make("choicemarket/Platform-v0", no_such_option=1)
    with pytest.raises(ValueError, match="ego must be"):
        gym.make("choicemarket/Platform-v0", n_learners=2, ego=2)


def test_single_learner_reward_truncation_and_info():
    env = SingleLearner(ego=1, reward="share", **SMALL)
    obs, info = env.reset(seed=3)
    zero = env.market.action_layout.build()
    steps, done = 0, False
    while not done:
        obs, r, term, trunc, info = env.step(zero)
        steps += 1
        assert term is False and r == info["share"] == obs["share"][0]
        done = trunc
    assert steps == SMALL["max_steps"]
    with pytest.raises(RuntimeError):
        env.step(zero)
    shown = SingleLearner(render_mode="ansi", **SMALL)
    shown.reset(seed=0)
    assert "learner_1" in shown.render()
    with pytest.raises(ValueError, match="actions\\['learner_1'\\]"):
        env.reset(seed=0)
        env.step(np.zeros(3))


def _reference_thetas(seed, ego, market_kwargs, **msgdp):
    """MSGD-P for ``ego`` and MSGD for the others, seeded as ``simulate`` seeds them."""
    env = raw_env(**market_kwargs)
    spec = env.market_spec
    pols = {
        a: MSGDP(spec, k, **msgdp) if k == ego else MSGD(spec)
        for k, a in enumerate(env.possible_agents)
    }
    obs, _ = env.reset(seed=seed)
    for k, a in enumerate(env.possible_agents):
        pols[a].reset(int(np.random.SeedSequence([seed, k]).generate_state(1)[0]))
    thetas = []
    while env.agents:
        obs, *_ = env.step(act_all(pols, obs))
        thetas.append(env.state_arrays.theta[0].copy())
    return np.array(thetas)


def _knob_thetas(seed, ego, market_kwargs, knobs_at, **options):
    env = StrategyActions(SingleLearner(ego=ego, **market_kwargs), **options)
    env.reset(seed=seed)
    thetas, t, done = [], 0, False
    while not done:
        *_, trunc, _ = env.step(knobs_at(env.knobs, t))
        thetas.append(env.unwrapped.market.state_arrays.theta[0].copy())
        t, done = t + 1, trunc
    return np.array(thetas)


CENSUS = dict(dataset="acs-income", n_learners=3, users_per_step=60, max_steps=250)


@pytest.mark.parametrize(
    "ego, msgdp, knobs_at, options",
    [
        # offline probing by preference: probe at the first step only
        (0, dict(p=0.5), lambda k, t: k.encode(1.0, 0.5, t == 0, "preference"), {}),
        # constant knobs: probe the median of all learners every step
        (
            2,
            dict(p=1.5, scenario="majority_good", probe_every=1),
            lambda k, t: k.encode(1.0, 1.5, True, "all"),
            {},
        ),
        # a named peer, online probing every 50 steps, decaying step size
        (
            0,
            dict(p=0.25, scenario="market_leader", leader=2, probe_every=50, schedule="inv_sqrt"),
            lambda k, t: k.encode(1.0, 0.25, t % 50 == 0, 2),
            dict(schedule="inv_sqrt"),
        ),
    ],
)
def test_strategy_knobs_replay_msgdp_bit_for_bit(ego, msgdp, knobs_at, options):
    for seed in (0, 7):
        ref = _reference_thetas(seed, ego, CENSUS, **msgdp)
        got = _knob_thetas(seed, ego, CENSUS, knobs_at, **options)
        assert ref.shape == got.shape == (CENSUS["max_steps"], 3, 1, 16)
        assert np.array_equal(ref, got)
        assert not np.array_equal(ref[-1, ego], ref[0, ego])  # the ego did move


def test_strategy_knobs_decode_and_bad_input():
    env = StrategyActions(SingleLearner(ego=1, **SMALL))
    k = env.knobs
    assert len(k.targets) == SMALL["n_learners"] + 1
    mult, p, probe, target = k.decode(k.encode(4.0, 2.0, True, 2))
    assert (mult, p, probe, target) == (4.0, 2.0, True, ((2,), False))
    assert k.decode(k.encode(0.25, 0.0, False, 0))[3] == ((0,), False)
    assert k.decode(k.encode(target="all"))[3] == ((0, 1, 2), False)
    assert k.decode(k.encode(target="preference"))[3] == ((), True)
    assert k.decode(np.full(4, 5.0))[:3] == (4.0, 2.0, True)  # clipped to [-1, 1]
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([0, np.nan, 0, 0]))
    with pytest.raises(ValueError, match="target"):
        k.encode(target=1)  # the learner itself
    with pytest.raises(ValueError, match="p_max"):
        StrategyActions(SingleLearner(**SMALL), p_max=0)


def test_opponents_are_seeded_from_the_reset_seed():
    def episode(env, seed):
        env.reset(seed=seed)
        knobs = env.knobs.encode(1.0, 0.0, False)
        return np.array([env.step(knobs)[1] for _ in range(SMALL["max_steps"])])

    factory = lambda spec, k: MSGDP(spec, k, p=1.0, scenario="majority_good", probe_every=2)  # noqa: E731
    env = StrategyActions(SingleLearner(ego=0, opponents=factory, **SMALL))
    a, b, c = episode(env, 5), episode(env, 5), episode(env, 6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    env.reset()  # unseeded: continues, opponents get fresh seeds derived from the last seed
    seeds = [env.unwrapped.policy_seed(k) for k in range(3)]
    env.reset()
    assert seeds != [env.unwrapped.policy_seed(k) for k in range(3)]


def test_opponents_argument():
    env = SingleLearner(ego=1, opponents={"learner_0": NoUpdate, 2: None}, **SMALL)
    assert set(env.opponents) == {"learner_0", "learner_2"}
    assert isinstance(env.opponents["learner_2"], MSGD)
    with pytest.raises(ValueError, match="ego"):
        SingleLearner(ego=1, opponents={1: None}, **SMALL)
    with pytest.raises(ValueError, match="opponents must be"):
        SingleLearner(opponents=[1, 2], **SMALL)


def test_flat_observation_values_and_bounds():
    env = platform_strategy_env(peer_shares=True, **SMALL)
    obs, _ = env.reset(seed=2)
    base = env.unwrapped
    P = base.market_spec.n_params
    for t in range(1, 6):
        knobs = env.get_wrapper_attr("knobs").encode(2.0, 1.0, t == 1, "preference")
        obs, _, _, _, info = env.step(knobs)
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)
        raw = base.observations[base.agent]
        np.testing.assert_allclose(obs[:P], raw["params"])
        assert obs[P] == np.float32(info["share"])
        baseline = base.market.population.baseline_loss
        np.testing.assert_allclose(obs[P + 1], info["local_loss"] / baseline, rtol=1e-6)
        assert obs[P + 2] == 1.0 and obs[P + 3] > 0  # the probe response is held
        np.testing.assert_allclose(obs[P + 4], t / SMALL["max_steps"])
        np.testing.assert_allclose(obs[P + 5 :], base.market.state_arrays.share[0])
    with pytest.raises(ValueError, match="SingleLearner"):
        FlatObservation(gym.make("CartPole-v1"))


EXTENDED = {
    "logit-outside": dict(choice_rule="logit", loyalty_bonus=0.2, outside_threshold=0.6),
    "collective": dict(collective_fraction=0.2, collective_signal=[(0, 3.0)]),
    "entry-exit": dict(
        max_learners=4, entries=[(4, "fresh", None)], exit_share=0.3, exit_patience=2
    ),
}


@pytest.mark.parametrize("env_id", sorted(GYM_IDS))
@pytest.mark.parametrize("extension", list(EXTENDED.values()), ids=list(EXTENDED))
def test_gymnasium_views_of_every_market_variant(env_id, extension):
    market = dict(dataset="breast-cancer", n_learners=3, users_per_step=30, max_steps=12)
    env = gym.make(f"choicemarket:{env_id}", ego=1, **market, **extension)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(12):
        obs, reward, terminated, truncated, _ = env.step(
            rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
        )
        assert np.isfinite(reward) and env.observation_space.contains(obs)
        if terminated or truncated:
            break
    assert truncated or terminated


def test_ego_must_be_present_from_the_start():
    with pytest.raises(ValueError, match="present from the start"):
        SingleLearner(ego=3, dataset="breast-cancer", n_learners=3, max_learners=4)
