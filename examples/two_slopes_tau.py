"""Two-slopes market from random starts: where does MSGD end as loyalty tau varies?

The Appendix C instance (a = 1, b = -1, w = 0.6; learner 0 preferred by the a-group). For each
tau and seed both learners start at N(0, scale^2) and run MSGD; the script classifies the end
state and prints, per tau, how often each outcome occurs and learner 0's mean global risk.

Outcomes: "specialists" (theta_0 ~ a, theta_1 ~ b: the overspecialized equilibrium),
"swapped" (theta_0 ~ b, theta_1 ~ a), "other" (anything else, e.g. a learner between a and b).

    python examples/two_slopes_tau.py --seeds 10 --steps 5000
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket.baselines import MSGD, act_all
from choicemarket.envs.market_v0 import raw_env

A, B, W = 1.0, -1.0, 0.6


def run(tau: float, seed: int, steps: int, scale: float) -> tuple[np.ndarray, float, float]:
    env = raw_env(
        dataset="two-slopes",
        dataset_options={"a": A, "b": B, "w": W},
        n_learners=2,
        preferences="category",
        preference_weight=tau,
        init="random",
        init_scale=scale,
        l2=0.0,
        max_steps=steps,
        eval_every=steps,
    )
    policies = {a: MSGD(env.market_spec, eta=0.01) for a in env.possible_agents}
    obs, infos = env.reset(seed=seed)
    while env.agents:
        obs, _, _, _, infos = env.step(act_all(policies, obs))
    theta = env.state_arrays.theta[0, :, 0, 0].copy()
    return theta, infos["learner_0"]["global_loss"], infos["learner_0"]["baseline_loss"]


def classify(theta: np.ndarray, tol: float = 0.05) -> str:
    if abs(theta[0] - A) < tol and abs(theta[1] - B) < tol:
        return "specialists"
    if abs(theta[0] - B) < tol and abs(theta[1] - A) < tol:
        return "swapped"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--scale", type=float, default=1.0, help="std of the random start")
    parser.add_argument("--taus", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1")
    args = parser.parse_args()
    print(f"{'tau':>5} {'specialists':>12} {'swapped':>8} {'other':>6} {'risk0':>8} {'base':>7}")
    for tau in (float(t) for t in args.taus.split(",")):
        outcomes, risks = [], []
        for seed in range(args.seeds):
            theta, risk, base = run(tau, seed, args.steps, args.scale)
            outcomes.append(classify(theta))
            risks.append(risk)
        counts = {k: outcomes.count(k) for k in ("specialists", "swapped", "other")}
        print(
            f"{tau:>5.2f} {counts['specialists']:>12} {counts['swapped']:>8} {counts['other']:>6}"
            f" {np.mean(risks):>8.3f} {base:>7.3f}"
        )
    d2 = (A - B) ** 2
    print(f"specialist risks: learner 0 {(1 - W) * d2:.3f}, learner 1 {W * d2:.3f}")


if __name__ == "__main__":
    main()
