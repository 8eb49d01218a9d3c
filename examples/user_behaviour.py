"""How users' choice behaviour shapes the census market.

Every learner runs MSGD on acs-income (n = 5, B = 150, partition-ERM start). For each choice
behaviour the script prints, averaged over the last 20% of the run and then over seeds
(mean +- s.e.): the largest learner share and the Herfindahl index of shares (sum of squared
shares; 0.2 = even split over 5, 1 = monopoly), the learners' mean full-population test loss,
the social cost (mean loss of the batch at the learners chosen, unserved users adding 0), and
with an outside option the fractions of the batch unserved and of the population outside.

    python examples/user_behaviour.py --seeds 3 --steps 2000
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket import simulate

BEHAVIOURS = {
    "loyal tau=0.7 (default)": dict(preference_weight=0.7),
    "quality only (tau=0)": dict(preference_weight=0.0),
    "logit T=0.05, bonus 0.05": dict(choice_rule="logit", temperature=0.05, loyalty_bonus=0.05),
    "multiplicative weights eps=0.1": dict(choice_rule="multiplicative_weights", mw_rate=0.1),
    "types loyal .3/quality .6/random .1": dict(
        user_types={"loyal": 0.3, "quality": 0.6, "random": 0.1}
    ),
    "tau=0.7 + outside (0.6, r=0.05)": dict(outside_threshold=0.6, return_rate=0.05),
    "quality + outside (0.6, r=0.05)": dict(
        preference_weight=0.0, outside_threshold=0.6, return_rate=0.05
    ),
}


def measure(market: dict, seeds: list[int], steps: int) -> dict[str, np.ndarray]:
    """Per seed: each figure averaged over the evaluation points in the last 20% of the run."""
    h = simulate(market, seeds=seeds)
    out: dict[str, list[float]] = {}
    for seed in seeds:
        late = [r for r in h.rows if r["seed"] == seed and r["step"] >= 0.8 * steps]
        points = sorted({r["step"] for r in late})
        figures: dict[str, list[float]] = {}
        for t in points:
            rows = [r for r in late if r["step"] == t]
            share = np.array([r["share"] for r in rows])
            figures.setdefault("max share", []).append(share.max())
            figures.setdefault("HHI", []).append((share**2).sum())
            figures.setdefault("test loss", []).append(np.mean([r["global_loss"] for r in rows]))
            figures.setdefault("social cost", []).append(rows[0]["social_cost"])
            figures.setdefault("unserved", []).append(rows[0].get("unserved_fraction", 0.0))
            figures.setdefault("outside", []).append(rows[0].get("outside_fraction", 0.0))
        for name, values in figures.items():
            out.setdefault(name, []).append(float(np.mean(values)))
    return {k: np.array(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="acs-income")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    columns = ("max share", "HHI", "test loss", "social cost", "unserved", "outside")
    print(f"{'behaviour':<38}" + "".join(f"{c:>16}" for c in columns))
    for label, behaviour in BEHAVIOURS.items():
        market = dict(
            dataset=args.dataset,
            max_steps=args.steps,
            eval_every=max(1, args.steps // 50),
            **behaviour,
        )
        res = measure(market, seeds, args.steps)
        cells = []
        for c in columns:
            v = res[c]
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            cells.append(f"{v.mean():>9.3f}+-{se:<5.3f}")
        print(f"{label:<38}" + "".join(cells))


if __name__ == "__main__":
    main()
