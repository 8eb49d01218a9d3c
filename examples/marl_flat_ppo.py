"""One PPO iteration on the market's flat multi-agent view, with SuperSuit + Stable-Baselines3
or with RLlib; every learner shares one policy.

    python examples/marl_flat_ppo.py sb3     # the rl extra (stable-baselines3, supersuit)
    python examples/marl_flat_ppo.py rllib   # the rllib extra, in an environment of its own

Prints the spaces, the steps sampled and the mean episode
return (the sum over an episode of a learner's reward, minus its mean loss per step).
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket.envs import market_v0

MARKET = dict(dataset="acs-income", n_learners=5, max_steps=100, observation="flat")


def describe() -> None:
    env = market_v0.parallel_env(**MARKET)
    env.reset(seed=0)
    print(
        f"market: {MARKET['dataset']}, {MARKET['n_learners']} learners, episodes of "
        f"{MARKET['max_steps']} steps; observation Box{env.observation_space('learner_0').shape}, "
        f"state Box{env.state_space.shape}, action Box{env.action_space('learner_0').shape}"
    )


def run_sb3(seed: int) -> None:
    import supersuit as ss
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    torch.set_num_threads(1)  # a small MLP: more threads only add synchronisation
    env = market_v0.parallel_env(**MARKET)
    venv = ss.pettingzoo_env_to_vec_env_v1(env)
    venv = ss.concat_vec_envs_v1(venv, 2, num_cpus=0, base_class="stable_baselines3")
    venv = VecMonitor(venv)  # episode returns in model.ep_info_buffer
    model = PPO("MlpPolicy", venv, n_steps=MARKET["max_steps"], batch_size=250, n_epochs=5)
    torch.manual_seed(seed)  # SuperSuit's vector env has no seed(): SB3 cannot seed it
    model.learn(MARKET["max_steps"] * venv.num_envs)
    returns = [info["r"] for info in model.ep_info_buffer]
    print(
        f"SuperSuit + SB3 PPO: {venv.num_envs} learner slots (2 markets x 5), "
        f"{model.num_timesteps} learner-steps, "
        f"mean episode return {np.mean(returns) if returns else float('nan'):.2f} "
        f"over {len(returns)} episodes"
    )
    venv.close()


def run_rllib(seed: int) -> None:
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    register_env(
        "choicemarket_flat", lambda _: ParallelPettingZooEnv(market_v0.parallel_env(**MARKET))
    )
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    config = (
        PPOConfig()
        .environment("choicemarket_flat")
        .env_runners(num_env_runners=0)
        # the default model; a batch of one episode per market, as for SB3 above
        .training(
            train_batch_size_per_learner=MARKET["max_steps"] * 2, minibatch_size=50, num_epochs=5
        )
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda *a, **k: "shared")
        .debugging(seed=seed)
    )
    algo = config.build_algo()
    result = algo.train()
    runners = result["env_runners"]
    agent_steps = sum(runners["num_agent_steps_sampled_lifetime"].values())
    per_learner = runners["episode_return_mean"] / MARKET["n_learners"]  # RLlib sums agents
    print(
        f"RLlib PPO (default model): {runners['num_env_steps_sampled']} market steps "
        f"({agent_steps:.0f} learner-steps), "
        f"mean episode return {per_learner:.2f} per learner over "
        f"{runners['num_episodes']} episodes"
    )
    algo.stop()
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=["sb3", "rllib"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    describe()
    (run_sb3 if args.library == "sb3" else run_rllib)(args.seed)


if __name__ == "__main__":
    main()
