"""Steps per second of the census market when learners may enter and leave.

The market and policies of ``bench_step.py`` (n = 5, B = 150, acs-income, learner 2 probes
by preference with p = 0.4, the others MSGD), stepped through ``ParallelEnv`` with
``act_all``, in four settings:

- ``fixed``: the default config (the learner set cannot change);
- ``spare slot``: ``max_learners=6`` and nothing scheduled (the feature on, no event);
- ``exit tracking``: ``exit_share=0.01, exit_patience=50`` (streaks updated every step);
- ``entries + exits``: a clone of learner 0 and a fresh learner enter, learners leave below
  a 5% share for 20 steps (the runner's loop: observations filtered to the agents present).

Each figure is the median (and best) of ``--repeats`` runs of ``--steps`` steps, wall clock.

    python benchmarks/bench_entry_exit.py
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench_step import MARKET, policies_for

from choicemarket.baselines import act_all
from choicemarket.envs.market_v0 import raw_env


def settings(steps: int) -> dict[str, dict]:
    return {
        "fixed (default config)": {},
        "spare slot (max_learners=6)": dict(max_learners=6),
        "exit tracking": dict(exit_share=0.01, exit_patience=50),
        "entries + exits": dict(
            max_learners=7,
            entries=((steps // 4, "clone", 0), (steps // 2, "fresh", None)),
            exit_share=0.05,
            exit_patience=20,
        ),
    }


def time_api(steps: int, extra: dict) -> tuple[float, int]:
    env = raw_env(**MARKET, max_steps=steps, eval_every=steps, **extra)
    spec = env.market_spec
    pols = dict(zip(env.possible_agents, policies_for(spec)))  # one per learner slot
    open_market = env.core.entry is not None
    obs, _ = env.reset(seed=0)
    start = time.perf_counter()
    while env.agents:
        if open_market:
            obs = {a: obs[a] for a in env.agents}
            obs, *_ = env.step(act_all(pols, obs, env.active_mask))
        else:
            obs, *_ = env.step(act_all(pols, obs))
    return steps / (time.perf_counter() - start), len(env.events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'setting':<30}{'median steps/s':>16}{'best':>10}{'events':>8}")
    for name, extra in settings(args.steps).items():
        time_api(200, {k: v for k, v in extra.items() if k != "entries"})  # warm up
        runs = [time_api(args.steps, extra) for _ in range(args.repeats)]
        rates = [r for r, _ in runs]
        print(f"{name:<30}{statistics.median(rates):>16,.0f}{max(rates):>10,.0f}{runs[0][1]:>8}")


if __name__ == "__main__":
    main()
