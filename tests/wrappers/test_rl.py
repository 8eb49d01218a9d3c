"""Stable-Baselines3 on the single-agent views and the shared-policy VecEnv (the rl extra)."""

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
torch = pytest.importorskip("torch")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402

import choicemarket  # noqa: E402, F401  (registers the ids)
from choicemarket.registration import GYM_IDS  # noqa: E402
from choicemarket.wrappers import MarketVecEnv, shared_policy_vec_env  # noqa: E402

TWO_SLOPES = dict(
    dataset="two-slopes",
    dataset_options={"a": 1.0, "b": -1.0, "w": 0.6},
    n_learners=2,
    preferences="category",
    l2=0.0,
    users_per_step=50,
    max_steps=40,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("env_id", sorted(GYM_IDS))
def test_sb3_check_env(env_id):
    check_env(gym.make(env_id, dataset="acs-income", users_per_step=40, max_steps=10))


def _ppo_parameters(seed: int, shared: bool) -> np.ndarray:
    kw = dict(TWO_SLOPES, max_steps=16)
    if shared:
        env = shared_policy_vec_env(**kw)
    else:
        env = gym.make("choicemarket/PlatformStrategy-v0", **kw)
    model = PPO("MlpPolicy", env, seed=seed, n_steps=32, batch_size=32, n_epochs=2, device="cpu")
    model.learn(96)
    return torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().numpy()


@pytest.mark.parametrize("shared", [False, True])
def test_ppo_seed_reproducible(shared):
    a, b, c = (_ppo_parameters(s, shared) for s in (0, 0, 1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_vec_env_seed_truncation_and_terminal_observation():
    venv = MarketVecEnv(n_markets=2, **dict(TWO_SLOPES, max_steps=5))
    assert venv.num_envs == 4
    knobs = np.tile(venv.knobs[0].encode(2.0, 1.0, True, "preference"), (4, 1))

    def run():
        venv.seed(3)
        obs = [venv.reset()]
        for _ in range(5):
            o, r, dones, infos = venv.step(knobs)
            obs.append(o)
        return np.array(obs), r, dones, infos

    obs, rewards, dones, infos = run()
    assert dones.all()
    for info in infos:
        assert info["TimeLimit.truncated"] is True
        assert venv.observation_space.contains(info["terminal_observation"])
    # after the end the markets restarted: progress is back to 0, the terminal one was 1
    assert np.all(obs[-1][:, -1] == 0.0)
    assert all(info["terminal_observation"][-1] == 1.0 for info in infos)
    assert not np.array_equal(obs[1][:2], obs[1][2:])  # markets get different seeds
    again = run()[0]
    assert np.array_equal(obs, again)
    raw = MarketVecEnv(strategy=False, **dict(TWO_SLOPES, max_steps=5))
    assert raw.action_space.shape == (raw.action_layout.size,)
    raw.reset()
    raw.step(np.zeros((2, raw.action_space.shape[0]), np.float32))
    with pytest.raises(ValueError, match="n_markets"):
        MarketVecEnv(n_markets=0, **TWO_SLOPES)


def test_ppo_improves_the_ego_return():
    """A short PPO run on the two-slopes ego (global risk, raw parameter steps) beats its
    untrained policy's return on held-out seeds."""
    kw = dict(TWO_SLOPES, reward="global", max_update=0.2)
    env = gym.make("choicemarket/PlatformFlat-v0", **kw)
    evaluation = gym.make("choicemarket/PlatformFlat-v0", **kw)

    def mean_return(model) -> float:
        returns = []
        for seed in range(100, 103):
            obs, _ = evaluation.reset(seed=seed)
            total, done = 0.0, False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, r, term, trunc, _ = evaluation.step(action)
                total, done = total + r, term or trunc
            returns.append(total)
        return float(np.mean(returns))

    model = PPO(
        "MlpPolicy", env, seed=1, n_steps=200, batch_size=50, n_epochs=5, learning_rate=3e-3
    )
    before = mean_return(model)
    model.learn(1000)
    after = mean_return(model)
    assert after > before + 10.0, (before, after)  # about -60 -> -39 (MSGD's return is -64)


# ------------------------------------------------------------------ multi-agent libraries

FLAT = dict(dataset="acs-income", n_learners=3, users_per_step=30, probe_size=12, max_steps=12)


def test_supersuit_on_the_flat_view():
    """SuperSuit's flatten and vector-env conversions work on ``observation="flat"`` (they
    fail on the Dict), and SB3's PPO runs an iteration on the concatenated vector env."""
    ss = pytest.importorskip("supersuit")
    from choicemarket.envs import market_v0, participation_v0

    with pytest.raises(AttributeError, match="low"):
        ss.flatten_v0(market_v0.parallel_env(**FLAT))
    flat = ss.flatten_v0(market_v0.parallel_env(observation="flat", **FLAT))
    obs, _ = flat.reset(seed=0)
    assert all(flat.observation_space(a).contains(o) for a, o in obs.items())
    for env in (
        market_v0.parallel_env(observation="flat", **FLAT),
        participation_v0.parallel_env(observation="flat", max_steps=12),
    ):
        venv = ss.concat_vec_envs_v1(
            ss.pettingzoo_env_to_vec_env_v1(env), 2, num_cpus=0, base_class="stable_baselines3"
        )
        assert venv.num_envs == 2 * len(env.possible_agents)
        model = PPO("MlpPolicy", venv, n_steps=12, batch_size=24, n_epochs=1)
        model.learn(12 * venv.num_envs)
        assert model.num_timesteps == 12 * venv.num_envs
        venv.close()


def test_rllib_ppo_default_settings_on_the_flat_view():
    """One iteration of RLlib's PPO with its default model on the flat view, one policy shared
    by every learner. ray[rllib] pins an older Gymnasium, so it has its own extra (rllib)."""
    try:
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    except ImportError as err:
        pytest.skip(f"ray[rllib] is not installed (the rllib extra): {err}")
    import ray
    from ray.tune.registry import register_env

    from choicemarket.envs import market_v0

    kw = dict(FLAT, observation="flat", max_steps=20)
    register_env("choicemarket_flat", lambda _: ParallelPettingZooEnv(market_v0.parallel_env(**kw)))
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        config = (
            PPOConfig()
            .environment("choicemarket_flat")
            .env_runners(num_env_runners=0)
            .training(train_batch_size_per_learner=120, minibatch_size=60, num_epochs=1)
            .multi_agent(policies={"shared"}, policy_mapping_fn=lambda *a, **k: "shared")
        )
        algo = config.build_algo()
        result = algo.train()
        algo.stop()
    finally:
        ray.shutdown()
    runners = result["env_runners"]
    assert runners["num_env_steps_sampled"] >= 120
    assert np.isfinite(runners["episode_return_mean"])


def test_torchrl_pettingzoo_wrapper_and_gym_env():
    """TorchRL's PettingZooWrapper on both flat views and GymEnv on every Gymnasium id."""
    pytest.importorskip("torchrl")
    from torchrl.envs.libs.gym import GymEnv
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper
    from torchrl.envs.utils import check_env_specs

    from choicemarket.envs import market_v0, participation_v0

    for env in (
        market_v0.parallel_env(observation="flat", **FLAT),
        participation_v0.parallel_env(observation="flat", max_steps=12),
    ):
        wrapped = PettingZooWrapper(env)
        check_env_specs(wrapped, seed=0)
        rollout = wrapped.rollout(4)
        group = next(iter(wrapped.group_map))
        n = len(wrapped.group_map[group])
        assert rollout[group, "observation"].shape == (
            4,
            n,
            env.observation_space("learner_0").shape[0],
        )
    for env_id in sorted(GYM_IDS):
        env = GymEnv(env_id, **FLAT)
        check_env_specs(env, seed=0)
        assert env.rollout(4)["next", "reward"].shape == (4, 1)
