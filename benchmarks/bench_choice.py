"""Steps per second of ``MarketCore`` under each user choice behaviour.

Census market (acs-income, n = 5, B = 150, d = 16), learners take a fixed small update each
step (no policy, no API layer), so the figures isolate the arrive-and-choose step. For M = 1
and M markets; each figure is the median (and best) of ``--repeats`` runs of ``--steps`` steps.

    python benchmarks/bench_choice.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from choicemarket.envs import MarketConfig, MarketCore

BEHAVIOURS = {
    "default (preference_or_loss)": {},
    "logit": dict(choice_rule="logit", temperature=0.05, loyalty_bonus=0.05),
    "multiplicative_weights": dict(choice_rule="multiplicative_weights"),
    "user_types": dict(user_types={"loyal": 0.3, "quality": 0.6, "random": 0.1}),
    "outside option": dict(outside_threshold=0.6, return_rate=0.05),
}


def time_core(behaviour: dict, steps: int, n_markets: int) -> float:
    core = MarketCore(MarketConfig(dataset="acs-income", **behaviour), n_markets=n_markets)
    core.reset(seed=0)
    layout = core.spec.actions
    actions = np.zeros((n_markets, core.spec.n_learners, layout.size))
    actions[..., layout.n_params :] = -1.0  # no probes
    actions[..., : layout.n_params] = 1e-4
    start = time.perf_counter()
    for _ in range(steps):
        core.step(actions)
        core.padded_users()
    return steps * n_markets / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markets", type=int, default=25)
    args = parser.parse_args()
    print(f"{'behaviour':<32}{'M':>4}{'median steps/s':>18}{'best':>10}")
    for label, behaviour in BEHAVIOURS.items():
        for M in (1, args.markets):
            runs = [time_core(behaviour, args.steps, M) for _ in range(args.repeats)]
            print(f"{label:<32}{M:>4}{statistics.median(runs):>18,.0f}{max(runs):>10,.0f}")


if __name__ == "__main__":
    main()
