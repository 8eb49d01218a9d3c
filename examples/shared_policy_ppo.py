"""All learners of the census market share one PPO policy (parameter sharing).

``choicemarket.wrappers.shared_policy_vec_env`` makes every learner of ``--markets`` markets
one entry of a Stable-Baselines3 ``VecEnv`` (all markets advance in one call of the batched
core): each learner sees its own flat observation, acts
through the strategy knobs (step-size multiplier, probing weight, probe now, whom to probe) and
is rewarded with its own ``reward`` (default ``global``: minus its test risk). After training,
the shared policy runs every learner on held-out seeds, next to everyone playing MSGD and
everyone playing MSGD-P (by preference, p = 0.8); the script prints each learner's final test
accuracy gap to the all-users ERM and the social cost (mean loss users get), mean +- s.e.

    python examples/shared_policy_ppo.py
    python examples/shared_policy_ppo.py --timesteps 200000 --markets 4

Needs the ``rl`` extra (stable-baselines3, torch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from stable_baselines3 import PPO

from choicemarket import simulate
from choicemarket.baselines import MSGDP
from choicemarket.experiments.runner import mean_se
from choicemarket.wrappers import MarketVecEnv, shared_policy_vec_env

MARKET = dict(dataset="acs-income", n_learners=5, preference_weight=0.7)


def run_shared(model: PPO, market: dict, seeds: list[int]) -> np.ndarray:
    """(seeds, n_learners + 1): final accuracy gaps in points, then the mean social cost."""
    venv = MarketVecEnv(**market)
    rows = []
    for seed in seeds:
        venv.seed(seed)
        obs = venv.reset()
        done, social = False, []
        while not done:
            obs, _, dones, infos = venv.step(model.predict(obs, deterministic=True)[0])
            social.append(infos[0]["social_cost"])
            done = bool(dones[0])
        rows.append([100 * i["accuracy_gap"] for i in infos] + [np.mean(social)])
    return np.array(rows)


def run_scripted(factory, market: dict, seeds: list[int]) -> np.ndarray:
    """The same table for scripted policies (social cost averaged over evaluation points)."""
    h = simulate(dict(market, eval_every=1), policies=factory, seeds=seeds)
    n = market["n_learners"]
    rows = []
    for seed in seeds:
        final = [r for r in h.final() if r["seed"] == seed]
        social = [r["social_cost"] for r in h.rows if r["seed"] == seed and r["learner"] == 0]
        gaps = [100 * r["accuracy_gap"] for r in sorted(final, key=lambda r: r["learner"])]
        rows.append(gaps[:n] + [np.mean(social[1:])])
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="episode length (max_steps)")
    parser.add_argument("--timesteps", type=int, default=150000, help="PPO steps (all learners)")
    parser.add_argument("--markets", type=int, default=2)
    parser.add_argument("--reward", default="global")
    parser.add_argument("--eval-seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny networks: more threads only synchronise on few cores
    market = dict(MARKET, max_steps=args.steps, reward=args.reward)
    start = time.perf_counter()
    venv = shared_policy_vec_env(n_markets=args.markets, **market)
    model = PPO(
        "MlpPolicy",
        venv,
        seed=args.seed,
        n_steps=256,
        batch_size=256,
        n_epochs=5,
        gamma=0.995,
        learning_rate=1e-3,
        device="cpu",
    )
    model.learn(args.timesteps)
    print(
        f"acs-income, 5 learners, tau = 0.7, episodes of {args.steps} steps, reward "
        f"{args.reward!r}; one PPO policy for all learners, {args.timesteps} learner-steps "
        f"over {args.markets} markets ({time.perf_counter() - start:.0f} s)."
    )
    seeds = list(range(10_000, 10_000 + args.eval_seeds))
    n = MARKET["n_learners"]
    tables = {
        "shared PPO": run_shared(model, market, seeds),
        "all MSGD": run_scripted(None, market, seeds),
        "all MSGD-P pref. p=0.8": run_scripted(
            lambda spec, k: MSGDP(spec, k, p=0.8), market, seeds
        ),
    }
    header = "".join(f"{'L' + str(k) + ' gap':>14}" for k in range(n))
    print(f"{'policies':<24}{header}{'social cost':>18}")
    for name, rows in tables.items():
        cells = []
        for j in range(n + 1):
            m, se = mean_se(rows[:, j])
            cells.append(f"{m:.2f}+-{se:.2f}" if j < n else f"{m:.4f}+-{se:.4f}")
        print(f"{name:<24}" + "".join(f"{c:>14}" for c in cells[:n]) + f"{cells[n]:>18}")


if __name__ == "__main__":
    main()
