"""Vectorised environments: ``gymnasium.make_vec`` of the single-learner ids and the
shared-policy Stable-Baselines3 ``VecEnv``."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import choicemarket  # noqa: F401  (registers the ids)
from choicemarket.baselines import MSGDP, NoUpdate
from choicemarket.registration import GYM_IDS
from choicemarket.wrappers.vector_env import PlatformVectorEnv

MARKET = dict(dataset="breast-cancer", n_learners=3, users_per_step=30, max_steps=8)
VARIANTS = {
    "logit-outside": dict(choice_rule="logit", loyalty_bonus=0.2, outside_threshold=0.6),
    "collective": dict(collective_fraction=0.2, collective_signal=[(0, 3.0)]),
    "entry-exit": dict(
        max_learners=4, entries=[(4, "fresh", None)], exit_share=0.3, exit_patience=2
    ),
    "msgdp": dict(opponents=lambda spec, k: MSGDP(spec, k, p=0.5, probe_every=3)),
    "population-per-seed": dict(population_seed=None),
    "other-policies": dict(  # a policy acting on observation dicts, beside MSGD-P
        opponents=lambda spec, k: NoUpdate(spec) if k == 0 else MSGDP(spec, k, p=0.3)
    ),
}


def same(x, y, path="out"):
    """Exact equality of nested outputs: dtypes and shapes too, NaN equal to NaN."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and set(x) == set(y), (path, sorted(x), sorted(y))
        for k in x:
            same(x[k], y[k], f"{path}[{k!r}]")
    elif isinstance(x, np.ndarray):
        assert isinstance(y, np.ndarray), path
        assert (x.dtype, x.shape) == (y.dtype, y.shape), (path, x, y)
        if x.dtype == object:
            for i, (a, b) in enumerate(zip(x.ravel(), y.ravel())):
                same(a, b, f"{path}[{i}]")
        else:
            assert np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"), (path, x, y)
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), path
        for i, (a, b) in enumerate(zip(x, y)):
            same(a, b, f"{path}[{i}]")
    elif isinstance(x, float) and x != x:
        assert y != y, (path, x, y)
    else:
        assert x == y, (path, x, y)


def _pair(env_id: str, M: int, **kw):
    mk = dict(num_envs=M, **kw)
    vec = gym.make_vec(f"choicemarket:{env_id}", vectorization_mode="vector_entry_point", **mk)
    sync = gym.make_vec(f"choicemarket:{env_id}", vectorization_mode="sync", **mk)
    return vec, sync


def _actions(env, rng, M):
    space = env.single_action_space
    return rng.uniform(space.low, space.high, (M, *space.shape)).astype(np.float32)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "env_id, variant",
    [(i, "plain") for i in sorted(GYM_IDS)]
    + [
        (i, v)
        for i in ("choicemarket/Platform-v0", "choicemarket/PlatformStrategy-v0")
        for v in VARIANTS
    ],
)
def test_equal_to_independent_environments(env_id, variant):
    """Observations, rewards, terminations, truncations and infos equal those of M single
    environments with the same seeds, through autoresets, an ego that leaves its market and
    a partial reset."""
    M = 4
    vec, sync = _pair(env_id, M, ego=1, **MARKET, **VARIANTS.get(variant, {}))
    assert isinstance(vec.unwrapped, PlatformVectorEnv)
    same(vec.reset(seed=[3, 9, 4, 11]), sync.reset(seed=[3, 9, 4, 11]))
    rng = np.random.default_rng(0)
    ends = 0
    for t in range(22):
        if t == 15:
            mask = np.array([True, False, True, False])
            same(
                vec.reset(options={"reset_mask": mask}),
                sync.reset(options={"reset_mask": mask.copy()}),
            )
        actions = _actions(vec, rng, M)
        out = vec.step(actions)
        same(out, sync.step(actions), f"step {t}")
        assert vec.observation_space.contains(out[0])
        ends += int(out[2].sum() + out[3].sum())
    assert ends >= M  # every market finished an episode at least once
    same(vec.reset(seed=21), sync.reset(seed=21))  # an integer seed: seed + m
    actions = _actions(vec, rng, M)
    same(vec.step(actions), sync.step(actions))


def test_ego_leaving_restarts_its_market_alone():
    kw = dict(ego=2, **MARKET, **VARIANTS["entry-exit"])
    vec, sync = _pair("choicemarket/Platform-v0", 3, **kw)
    vec.reset(seed=0)
    sync.reset(seed=0)
    rng = np.random.default_rng(1)
    staggered = False
    for _ in range(12):
        a = 0.1 * _actions(vec, rng, 3)
        out = vec.step(a)
        same(out, sync.step(a))
        steps = vec.unwrapped._dict_obs["step"][:, 0]
        staggered |= len(set(steps.tolist())) > 1
    assert staggered  # markets at different steps of their episodes, still equal


def test_make_vec_api_and_spaces():
    for env_id in sorted(GYM_IDS):
        vec = gym.make_vec(f"choicemarket:{env_id}", num_envs=3, **MARKET)
        base = vec.unwrapped
        assert isinstance(base, PlatformVectorEnv) and vec.num_envs == 3
        assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        single = gym.make(f"choicemarket:{env_id}", **MARKET)
        assert vec.single_observation_space == single.observation_space
        assert vec.single_action_space == single.action_space
        obs, info = vec.reset(seed=1)
        assert vec.observation_space.contains(obs)
        obs, reward, term, trunc, info = vec.step(vec.action_space.sample())
        assert vec.observation_space.contains(obs)
        assert reward.shape == (3,) and reward.dtype == np.float64
        assert term.dtype == trunc.dtype == np.bool_
        assert info["_share"].all() and info["share"].shape == (3,)


def test_same_seed_same_run_and_unseeded_resets_continue():
    def run(seed):
        vec = gym.make_vec("choicemarket:choicemarket/PlatformStrategy-v0", num_envs=3, **MARKET)
        out = [vec.reset(seed=seed)[0]]
        rng = np.random.default_rng(5)
        for _ in range(2 * MARKET["max_steps"] + 3):
            out.append(vec.step(_actions(vec, rng, 3))[:2])
        out.append(vec.reset()[0])  # unseeded: continues every market's generator
        return out

    a, b, c = run(7), run(7), run(8)
    same(a, b)
    with pytest.raises(AssertionError):
        same(a, c)


def test_bad_input_changes_nothing():
    vec, sync = _pair("choicemarket/Platform-v0", 2, **MARKET)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros(vec.action_space.shape, np.float32))
    vec.reset(seed=4)
    sync.reset(seed=4)
    good = np.zeros(vec.action_space.shape, np.float32)
    bad_shape = np.zeros((3, vec.single_action_space.shape[0]), np.float32)
    nan = good.copy()
    nan[1, 0] = np.nan
    for bad, match in ((bad_shape, "shape"), (nan, r"actions\[1\].*NaN"), ("x", "numeric")):
        with pytest.raises(ValueError, match=match):
            vec.step(bad)
    same(vec.step(good), sync.step(good))  # the rejected steps changed nothing
    with pytest.raises(ValueError, match="num_envs"):
        PlatformVectorEnv(0, **MARKET)
    with pytest.raises(ValueError, match="mode"):
        PlatformVectorEnv(2, mode="pixels", **MARKET)
    with pytest.raises(ValueError, match="seed"):
        vec.reset(seed=[1])
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.zeros(2, bool)})
    with pytest.raises(ValueError, match="ego"):
        gym.make_vec("choicemarket:choicemarket/Platform-v0", num_envs=2, ego=5, **MARKET)


# --------------------------------------------------------------------- the SB3 VecEnv
def _vec(n_markets=2, **kw):
    pytest.importorskip("stable_baselines3")  # the rl extra
    from choicemarket.wrappers import MarketVecEnv

    return MarketVecEnv(n_markets=n_markets, **dict(MARKET, **kw))


def _sb3_run(venv, seed, steps, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    venv.seed(seed)
    out = [venv.reset()]
    for _ in range(steps):
        out.append(venv.step(rng.uniform(-1, 1, (venv.num_envs, *venv.action_space.shape))))
    return out


def test_shared_policy_markets_step_as_they_would_alone():
    """M markets in one core give each market the trajectory it has alone with its seed."""
    M, n, T = 3, MARKET["n_learners"], MARKET["max_steps"] + 3
    together = _sb3_run(_vec(M), 10, T)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, (M * n, 4)) for _ in range(T)]
    for m in range(M):
        alone = _vec(1)
        alone.seed(10 + m)
        rows = slice(m * n, (m + 1) * n)
        assert np.array_equal(alone.reset(), together[0][rows])
        for t in range(T):
            obs, rewards, dones, infos = alone.step(actions[t][rows])
            o2, r2, d2, i2 = together[t + 1]
            assert np.array_equal(obs, o2[rows]) and np.array_equal(rewards, r2[rows])
            assert np.array_equal(dones, d2[rows])
            for a, b in zip(infos, i2[rows]):
                same(a, b)


def test_shared_policy_same_seed_same_run():
    a, b, c = (_sb3_run(_vec(2), s, 12) for s in (4, 4, 5))
    same(a, b)
    assert not np.array_equal(a[3][0], c[3][0])


@pytest.mark.parametrize("strategy", [True, False])
@pytest.mark.parametrize("variant", ["plain", "collective", "entry-exit", "logit-outside"])
def test_shared_policy_vec_env_checks(strategy, variant):
    """What SB3 expects of a VecEnv: spaces, dtypes, info dicts, finite values, truncation
    with terminal observations, autoreset; learners entering and leaving."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import VecCheckNan

    extra = {k: v for k, v in VARIANTS.get(variant, {}).items() if k != "opponents"}
    venv = VecCheckNan(_vec(2, strategy=strategy, **extra), raise_exception=True)
    base = venv.unwrapped
    N = venv.num_envs
    assert N == 2 * base.n_learners
    venv.seed(5)
    obs = venv.reset()
    assert obs.shape == (N, *venv.observation_space.shape) and obs.dtype == np.float32
    rng = np.random.default_rng(3)
    space = venv.action_space
    ends = entries = exits = 0
    for t in range(2 * MARKET["max_steps"]):
        acts = rng.uniform(space.low, space.high, (N, *space.shape)).astype(np.float32)
        obs, rewards, dones, infos = venv.step(acts)
        assert all(venv.observation_space.contains(o) for o in obs)
        assert rewards.dtype == np.float32 and dones.dtype == np.bool_ and len(infos) == N
        for i in np.flatnonzero(dones):
            info = infos[i]
            assert venv.observation_space.contains(info["terminal_observation"])
            if not info["TimeLimit.truncated"]:
                exits += 1  # left: zeros from now on, unless the market restarts now
                assert not info["active"]
                assert (t + 1) % MARKET["max_steps"] == 0 or not obs[i].any()
            elif (t + 1) % MARKET["max_steps"]:
                entries += 1
                assert info["active"] and not info["terminal_observation"].any()
        for i, info in enumerate(infos):
            if not info["active"] and not dones[i]:
                assert rewards[i] == 0.0 and not obs[i].any() and set(info) == {"active"}
        if (t + 1) % MARKET["max_steps"] == 0:
            assert dones.all() and all(
                info["TimeLimit.truncated"] or not info["active"] for info in infos
            )
            ends += 1
    assert ends == 2
    if variant == "entry-exit":
        assert entries > 0 and exits > 0


def test_shared_policy_bad_actions_change_nothing():
    venv, twin = _vec(2), _vec(2)
    for v in (venv, twin):
        v.seed(1)
        v.reset()
    good = np.zeros((venv.num_envs, 4))
    for bad, match in ((good[:2], "shape"), (np.full_like(good, np.nan), "NaN"), ("x", "numeric")):
        with pytest.raises(ValueError, match=match):
            venv.step(bad)
    same(list(venv.step(good)), list(twin.step(good)))
    with pytest.raises(ValueError, match="population_seed"):
        _vec(2, population_seed=None)


def test_huge_integers_in_vector_actions_are_a_clean_error():
    venv = gym.make_vec(
        "choicemarket:choicemarket/PlatformStrategy-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        max_steps=5,
    )
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        venv.step([[10**400] * venv.single_action_space.shape[0]] * 2)
