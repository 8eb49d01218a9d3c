"""One market with every extension at once: logit users with a loyalty bonus, an outside
option, a collective planting a signal, a newcomer entering and a rule for leaving.

Census market (acs-income, 5 learners, k-means preferences). Users choose by the logit rule
(temperature 0.2, loyalty bonus 0.3); a user whom every learner serves with loss above 0.7
leaves and returns at rate 0.05 per step; 5% of users belong to a collective that plants the
rare census flag of column 14 with label 1 at learner 0; a clone of learner 4 enters at step
500 with half of learner 4's loyal users; a learner whose share stays below 12% for 100 steps
leaves. Everyone runs MSGD (eta = 0.05); the seeds run together on the batched core.

The configuration is written grouped by component; flat keyword arguments are the same.

    python examples/composed_market.py --seeds 5 --steps 2000
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket import simulate
from choicemarket.baselines import MSGD, FixedCollective
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market_v0 import raw_env
from choicemarket.experiments.runner import mean_se

FEATURE = 14


def rare_value() -> float:
    env = raw_env(dataset="acs-income", n_learners=1)
    env.reset(seed=0)
    values, counts = np.unique(env.population.X_train[:, FEATURE], return_counts=True)
    return float(values[counts.argmin()])


def market(steps: int) -> dict:
    return dict(
        dataset="acs-income",
        market={"n_learners": 5, "max_steps": steps},
        metrics={"eval_every": steps // 4},
        choice={"choice_rule": "logit", "temperature": 0.2, "loyalty_bonus": 0.3},
        outside={"outside_threshold": 0.7, "return_rate": 0.05},
        collective={
            "collective_fraction": 0.05,
            "collective_signal": [(FEATURE, rare_value())],
        },
        entry_exit={
            "max_learners": 6,
            "entries": [(min(500, steps - 1), "clone", 4)],
            "exit_share": 0.12,
            "exit_patience": 100,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    config = MarketConfig.from_kwargs(**market(args.steps))
    history = simulate(
        config.to_dict(),
        policies=lambda spec, k: MSGD(spec, eta=0.05),
        collective=FixedCollective("plant", destination=0, label=1),
        seeds=range(args.seeds),
    )
    final = [r for r in history.final() if r["learner"] >= 0]
    print(
        f"{args.seeds} seeds x {args.steps} steps; mean +- s.e. over seeds at the last step "
        "(learners present then)"
    )
    print(f"{'learner':<10}{'present':>9}{'share':>16}{'accuracy %':>16}{'planting':>16}")
    for k in range(6):
        rows = [r for r in final if r["learner"] == k]
        if not rows:
            print(f"{'learner_' + str(k):<10}{0:>9}")
            continue
        cells = []
        for key, scale in (("share", 1.0), ("global_accuracy", 100.0), ("planting_success", 1.0)):
            m, se = mean_se([r[key] * scale for r in rows])
            se = 0.0 if np.isnan(se) else se
            cells.append(f"{m:.3f}+-{se:.3f}" if scale == 1.0 else f"{m:.1f}+-{se:.1f}")
        print(f"{'learner_' + str(k):<10}{len(rows):>9}" + "".join(f"{c:>16}" for c in cells))
    unserved = mean_se([r["unserved_fraction"] for r in final if r["learner"] == 0])
    print(f"unserved share of the last batch: {unserved[0]:.3f}+-{unserved[1]:.3f}")
    events = history.meta.get("events", [])
    kinds = {k: sum(e["kind"] == k for e in events) for k in ("clone", "fresh", "exit", "skip")}
    print(f"entries and exits over all seeds: {kinds}")


if __name__ == "__main__":
    main()
