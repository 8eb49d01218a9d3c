"""PPO trains one platform of the census market against MSGD incumbents, then meets the baselines.

The ego is the learner with the worst starting test accuracy on ``acs-income`` (5 learners,
tau = 0.7, partition-ERM start). It acts through the strategy knobs of
``choicemarket/PlatformStrategy-v0`` (step-size multiplier, probing weight, probe now, whom to
probe) and sees the flat observation; every other learner runs MSGD. PPO is trained once per
reward: ``global`` (minus the test risk) and ``share`` (market share of the batch). Then the
trained policy, MSGD, MSGD-P (by preference, the market leader, the majority; p = 0.8, offline
probing; and the majority with the largest step size and weight the knobs reach: p = 2, 4 eta)
and a learner that never updates play the same held-out seeds, and the script prints
per policy the mean reward per step, the final test accuracy gap to the all-users ERM and the
final share (mean +- s.e. over seeds).

    python examples/train_ppo_platform.py            # the defaults: under 5 minutes on 2 cores
    python examples/train_ppo_platform.py --timesteps 100000 --steps 1000

Needs the ``rl`` extra (stable-baselines3, torch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from choicemarket.baselines import MSGD, MSGDP, NoUpdate
from choicemarket.envs.market_v0 import raw_env
from choicemarket.experiments.runner import mean_se
from choicemarket.wrappers import SingleLearner, platform_strategy_env

MARKET = dict(dataset="acs-income", n_learners=5, preference_weight=0.7)


def pick_learners() -> tuple[int, int]:
    """(worst, best) learner by starting test accuracy."""
    _, infos = raw_env(**MARKET).reset(seed=0)
    acc = [info["global_accuracy"] for info in infos.values()]
    return int(np.argmin(acc)), int(np.argmax(acc))


def run_episode(env, policy, seed: int) -> tuple[float, float, float]:
    """(mean reward per step, final accuracy gap in points, final share) of one episode.
    ``policy`` needs ``act(obs)`` and may have ``reset(seed)`` (it gets the ego's seed)."""
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset(env.unwrapped.policy_seed(env.unwrapped.ego))
    act = policy.act
    total, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, info = env.step(act(obs))
        total, steps, done = total + r, steps + 1, term or trunc
    return total / steps, 100.0 * info["accuracy_gap"], info["share"]


class Trained:
    """A trained Stable-Baselines3 model as a policy (deterministic actions); records the
    knobs it chose, decoded."""

    def __init__(self, model: PPO, knobs) -> None:
        self.model, self.knobs, self.chosen = model, knobs, []

    def act(self, obs: np.ndarray) -> np.ndarray:
        action = self.model.predict(obs, deterministic=True)[0]
        self.chosen.append(self.knobs.decode(action))
        return action

    def describe(self) -> str:
        mult = np.array([c[0] for c in self.chosen])
        p = np.array([c[1] for c in self.chosen])
        probes = [c[3] for c in self.chosen if c[2]]
        whom = {
            ((), True): "by preference",
            (tuple(range(self.knobs.spec.n_learners)), False): "all",
        }
        names = [whom.get(t, f"learner_{t[0][0]}") for t in probes]
        common = max(set(names), key=names.count) if names else "-"
        return (
            f"PPO's knobs: step multiplier {mult.mean():.2f} (first step {mult[0]:.2f}), "
            f"p {p.mean():.2f}, probes on {len(probes) / len(self.chosen):.1%} of steps "
            f"(mostly {common})"
        )


def evaluate(env, policy, seeds: list[int]) -> list[tuple[float, float]]:
    rows = np.array([run_episode(env, policy, s) for s in seeds])
    return [mean_se(rows[:, j]) for j in range(3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="episode length (max_steps)")
    parser.add_argument("--timesteps", type=int, default=24000, help="PPO steps per reward")
    parser.add_argument("--eval-seeds", type=int, default=8)
    parser.add_argument("--rewards", default="global,share")
    parser.add_argument("--seed", type=int, default=0, help="PPO seed")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is fastest
    ego, leader = pick_learners()
    seeds = list(range(10_000, 10_000 + args.eval_seeds))  # never used in training
    print(
        f"acs-income, 5 learners, tau = 0.7: ego learner_{ego} (worst starting accuracy), "
        f"market leader learner_{leader}; episodes of {args.steps} steps; PPO {args.timesteps} "
        f"steps per reward; {len(seeds)} held-out seeds."
    )
    for reward in args.rewards.split(","):
        market = dict(MARKET, max_steps=args.steps, reward=reward, eval_every=args.steps)
        start = time.perf_counter()
        venv = VecNormalize(
            DummyVecEnv([lambda m=market: platform_strategy_env(ego=ego, **m)]),
            norm_obs=False,
            norm_reward=True,
            gamma=0.995,
        )
        model = PPO(
            "MlpPolicy",
            venv,
            seed=args.seed,
            n_steps=1024,
            batch_size=128,
            n_epochs=5,
            gamma=0.995,
            learning_rate=1e-3,
            ent_coef=0.0,
            device="cpu",
        )
        model.learn(args.timesteps)
        train_s = time.perf_counter() - start
        results = {}
        env = platform_strategy_env(ego=ego, **market)
        trained = Trained(model, env.get_wrapper_attr("knobs"))
        results["PPO (strategy knobs)"] = evaluate(env, trained, seeds)
        base = SingleLearner(ego=ego, **market)
        spec = base.market_spec
        baselines = {
            "MSGD": MSGD(spec),
            "MSGD-P preference p=0.8": MSGDP(spec, ego, p=0.8),
            "MSGD-P leader p=0.8": MSGDP(spec, ego, p=0.8, scenario="market_leader", leader=leader),
            "MSGD-P majority p=0.8": MSGDP(spec, ego, p=0.8, scenario="majority_good"),
            # the largest step size and weight the knobs allow: is PPO more than a fast MSGD-P?
            "MSGD-P majority p=2 4eta": MSGDP(spec, ego, p=2.0, scenario="majority_good", eta=0.04),
            "no update": NoUpdate(spec),
        }
        for name, policy in baselines.items():
            results[name] = evaluate(base, policy, seeds)
        print(f"\nreward = {reward!r} (PPO trained in {train_s:.0f} s)")
        print(f"{'policy':<26}{'reward/step':>20}{'acc. gap (points)':>22}{'share':>18}")
        for name, cols in results.items():
            cells = "".join(
                f"{format(m, '.4f') + ' +- ' + format(se, '.4f'):>20}"
                if j != 1
                else f"{format(m, '.2f') + ' +- ' + format(se, '.2f'):>22}"
                for j, (m, se) in enumerate(cols)
            )
            print(f"{name:<26}{cells}")
        print(trained.describe())


if __name__ == "__main__":
    main()
