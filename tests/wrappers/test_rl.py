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
    assert raw.action_space.shape == (raw.markets[0].action_layout.size,)
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
