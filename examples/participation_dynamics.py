"""Participation dynamics (Dean et al. 2024): segmentation, and welfare as learners are added.

1. The synthetic example: three sub-populations with optima (0, 1), (1, 1), (0.6, 0), equal
   masses, sigma^2 = 1, two exact-retraining learners, eps = 0.1, 500 rounds, from the exactly
   symmetric start and from the three perturbed starts of the authors' figure.
2. Learner splitting: 50 sub-populations with optima N(0, I_8); run to equilibrium, split one
   learner into two (a clone sharing its allocations with a small perturbation), repeat.
3. Least squares on the embedded census people (income > $50k as a 0/1 target, 16 features and
   an intercept) grouped by race and by area, eps = 0.999.

Run: ``python examples/participation_dynamics.py [--n-max 20]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket.baselines import ExactRetraining
from choicemarket.envs import ParticipationConfig, ParticipationCore
from choicemarket.envs.participation_v0 import parallel_env
from choicemarket.experiments.participation_experiments import run_to_equilibrium, splitting_curve

STARTS = {
    "symmetric": ((0.5, 0.5), (0.5, 0.5), (0.5, 0.5)),
    "perturbed 1": ((0.496, 0.504), (0.511, 0.489), (0.498, 0.502)),
    "perturbed 2": ((0.501, 0.499), (0.491, 0.509), (0.494, 0.506)),
    "perturbed 3": ((0.486, 0.514), (0.505, 0.495), (0.503, 0.497)),
}


def fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"


def synthetic() -> None:
    print("1. Synthetic example: 2 learners, exact retraining, eps = 0.1, 500 rounds")
    print(f"{'start':<13}{'total risk':>20}  learner 0 (groups)        learner 1 (groups)")
    for name, start in STARTS.items():
        env = parallel_env(init_allocation=start, max_steps=500)
        obs, infos = env.reset(seed=0)
        policies = {a: ExactRetraining(env.market_spec) for a in env.possible_agents}
        totals = []
        while env.agents:
            obs, _, _, _, infos = env.step({a: policies[a].act(o) for a, o in obs.items()})
            totals.append(next(iter(infos.values()))["total_risk"])
        s = env.state_arrays
        owner = s.alpha[0].argmax(1)
        seg = bool((s.alpha[0].max(1) > 0.99).all())
        cols = []
        for i in range(2):
            groups = ",".join(str(j) for j in np.flatnonzero(owner == i)) if seg else "all"
            cols.append(f"{fmt(s.theta[0, i])} ({groups})".ljust(26))
        rises = np.diff(totals).max()
        print(
            f"{name:<13}{totals[0]:>9.4f} -> {totals[-1]:.4f}  {''.join(cols)}"
            f"  largest rise {rises:.1e}"
        )


def splitting(n_max: int) -> None:
    print(f"\n2. Learner splitting: 50 sub-populations, d = 8, 2 -> {n_max} learners")
    cfg = ParticipationConfig(optima=None, n_subpops=50, dim=8, init_perturbation=1e-4)
    curves = {
        rule: splitting_curve(cfg, n_max, seed=0, split=rule)
        for rule in ("largest_risk", "sequential")
    }
    print(f"{'learners':>8}  {'split the riskiest':>20}  {'split 0, 1, 2, ...':>20}")
    a, b = curves["largest_risk"], curves["sequential"]
    for k, n in enumerate(a.n_learners):
        print(f"{n:>8}  {a.risk[k]:>20.4f}  {b.risk[k]:>20.4f}")
    print(
        f"(equilibrium total risk; every equilibrium segmented: {bool(a.segmented.all())} / "
        f"{bool(b.segmented.all())}; one learner per group would give 1.0000)"
    )


def census() -> None:
    print("\n3. Census least squares (acs-income, national 2018), eps = 0.999")
    for group_by, n in (("race", 2), ("race", 3), ("puma", 3)):
        cfg = ParticipationConfig(
            risk="least_squares",
            group_by=group_by,
            n_learners=n,
            eps=0.999,
            init_perturbation=0.01,
        )
        core = ParticipationCore(cfg)
        core.reset(seed=0)
        totals = run_to_equilibrium(core, max_steps=3000)[:, 0]
        s, pop = core.state, core.population
        owner = s.alpha[0].argmax(1)
        seg = bool((s.alpha[0].max(1) > 0.99).all())
        print(
            f"  {group_by} x {n} learners: {pop.n_groups} groups, {len(totals)} rounds, segmented "
            f"{seg}, total risk {totals[0]:.4f} -> {totals[-1]:.4f}, largest rise "
            f"{np.diff(totals).max():.1e}"
        )
        local = s.local_risk(pop.masses)[0]
        for i in range(n):
            names = [pop.names[j] for j in np.flatnonzero(owner == i)]
            print(f"    learner {i}: local risk {local[i]:.4f}  groups {', '.join(names)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-max", type=int, default=20, help="learners at the last split")
    args = parser.parse_args()
    synthetic()
    splitting(args.n_max)
    census()


if __name__ == "__main__":
    main()
