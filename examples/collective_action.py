"""A collective of users plants a signal (Hardt et al., 2023) in census income classifiers.

Data: acs-income (national 2018). Signal g(x): the rare census flag in column 14 (about 3% of
people) switched on; target label y* = 1 (income above the threshold). Members present
``(g(x), 1)``; success is the fraction of held-out (non-member) people x whose g(x) a
learner labels 1. Learners run MSGD (eta = 0.05).

1. One learner: measured success vs the collective's size alpha (0 to 0.3), beside two
   different predictions, each for its own learner:
   - the paper's bound: Hardt et al.'s planting result for a Bayes-optimal learner,
     ``S >= 1 - ((1 - alpha) / alpha) Delta xi`` (as restated by Gauthier et al., ICML 2025),
     with xi (the share of people who already carry the signal) counted and Delta (the largest
     ``max_y P0(y|x) - P0(y*|x)`` over them) from a logistic regression with an intercept
     (and, for comparison, from 50 nearest neighbours);
   - our estimate (no theorem): the first-order balance of the logistic risk along the
     signal direction (:func:`first_order_success`, :func:`critical_mass_logistic`).
2. Five learners (k-means preferences, tau = 0.7): success at learner k when members choose as
   usual vs when every member goes to learner k, beside our estimate of the critical mass of
   the concentrated collective.
3. The same market with learner 2 probing learner k (MSGD-P, market leader k, p = 1,
   online every 50 steps): learner 2's success with and without probing.

    python examples/collective_action.py --seeds 3 --steps 800
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket.baselines import MSGD, MSGDP, FixedCollective, act_all
from choicemarket.envs.market.collective import success
from choicemarket.envs.market.collective_theory import (
    critical_mass_logistic,
    estimate_planting_bound,
    first_order_success,
)
from choicemarket.envs.market_v0 import raw_env

FEATURE, ETA = 14, 0.05
ALPHAS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
ALPHAS_ONE = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3)


def signal_value() -> float:
    env = raw_env(dataset="acs-income", n_learners=1)
    env.reset(seed=0)
    values, counts = np.unique(env.population.X_train[:, FEATURE], return_counts=True)
    return float(values[counts.argmin()])


def run(
    alpha: float,
    n: int,
    destination: int | None,
    seed: int,
    steps: int,
    value: float,
    prober: MSGDP | None = None,
) -> list[float]:
    """Each learner's planting success at the end of one episode (alpha = 0: no collective,
    success measured the same way on the held-out people)."""
    if alpha == 0:
        env = raw_env(dataset="acs-income", n_learners=n, max_steps=steps, eval_every=steps)
        policies = {a: MSGD(env.market_spec, eta=ETA) for a in env.possible_agents}
        obs, _ = env.reset(seed=seed)
        for k, pol in enumerate(policies.values()):
            pol.reset(seed * 100 + k)
        while env.agents:
            obs, *_ = env.step(act_all(policies, obs))
        pop = env.population
        G = pop.X_test.copy()
        G[:, FEATURE] = value
        planted, _ = success(pop.family, env.core.state.theta, pop.X_test, G, np.array([1]))
        return planted[0].tolist()
    env = raw_env(
        dataset="acs-income",
        n_learners=n,
        collective_fraction=alpha,
        collective_signal=[(FEATURE, value)],
        max_steps=steps,
        eval_every=steps,
    )
    policies = {a: MSGD(env.market_spec, eta=ETA) for a in env.possible_agents if a != "collective"}
    if prober is not None:
        policies[f"learner_{prober.agent}"] = prober
    policies["collective"] = FixedCollective("plant", destination, 1)
    obs, infos = env.reset(seed=seed)
    for k, pol in enumerate(policies.values()):
        pol.reset(seed * 100 + k)
    while env.agents:
        obs, _, _, _, infos = env.step(act_all(policies, obs))
    return infos["collective"]["planting_success"]


def concentrated_critical_mass(k: int, steps: int, value: float) -> float:
    """alpha_c = r s / (1 - r + r s): members who all go to learner k are a fraction
    alpha / (alpha + (1 - alpha) s) of its users (s: its share without a collective), and it
    needs a fraction r = alpha*_k (the critical mass on its own model and clientele)."""
    env = raw_env(dataset="acs-income", n_learners=5, max_steps=steps, eval_every=steps)
    policies = {a: MSGD(env.market_spec, eta=ETA) for a in env.possible_agents}
    obs, _ = env.reset(seed=0)
    shares = []
    while env.agents:
        obs, *_ = env.step(act_all(policies, obs))
        shares.append(env.core.state.share[0, k])
    s, pop = float(np.mean(shares[steps // 6 :])), env.population
    r = critical_mass_logistic(
        pop.X_train[pop.pref == k], env.core.state.theta[0, k], pop.X_test, [FEATURE], [value],
        1, 0.1, env.config.l2,
    )  # fmt: skip
    return r * s / (1 - r + r * s)


def mean_over(seeds, fn) -> float:
    return float(np.mean([fn(s) for s in seeds]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--target", type=int, default=3, help="learner k of parts 2 and 3")
    args = parser.parse_args()
    seeds, steps, k = range(args.seeds), args.steps, args.target
    value = signal_value()

    env = raw_env(dataset="acs-income", n_learners=1)
    env.reset(seed=0)
    pop, l2 = env.population, env.config.l2
    theory = (pop.X_train, pop.baseline_theta, pop.X_test, [FEATURE], [value], 1)
    alpha_star = critical_mass_logistic(*theory, 0.1, l2)
    y = pop.T_train[:, 0].astype(np.int64)
    bound = estimate_planting_bound(pop.X_train, y, [FEATURE], [value], 1, 2, "logistic")
    knn = estimate_planting_bound(pop.X_train, y, [FEATURE], [value], 1, 2, "knn", k=50)
    print(f"signal: column {FEATURE} set to {value:.3f}; y* = 1")
    print("1. one learner")
    print(
        f"paper's bound (Bayes-optimal learner): xi = {bound.xi:.4f} ({bound.n_carriers} "
        f"carriers),\n  Delta = {bound.delta:.4f} (logistic regression with intercept; "
        f"50 nearest neighbours: {knn.delta:.4f}),\n  vacuous up to alpha = "
        f"{bound.vacuous_below:.4f}, success 0.9 guaranteed from alpha = {bound.mass(0.9):.4f}"
    )
    print(f"our estimate (logistic first-order balance): success 0.9 at alpha* = {alpha_star:.4f}")
    alphas = sorted((*ALPHAS_ONE, alpha_star))
    ours = first_order_success(alphas, *theory, l2)
    print(f"{'alpha':>8}{'measured':>10}{'bound':>8}{'ours':>8}")
    for alpha, est in zip(alphas, ours):
        s = mean_over(seeds, lambda sd, a=alpha: run(a, 1, None, sd, steps, value)[0])
        print(f"{alpha:>8.4f}{s:>10.3f}{float(bound.success(alpha)):>8.3f}{est:>8.3f}")

    alpha_c = concentrated_critical_mass(k, steps, value)
    print(f"\n2. five learners; success at learner {k}")
    print(f"our estimate of the critical mass when every member goes to learner {k}: {alpha_c:.4f}")
    print(f"{'alpha':>8}{'as usual':>10}{f'all to {k}':>10}")
    for alpha in ALPHAS:
        usual = mean_over(seeds, lambda sd, a=alpha: run(a, 5, None, sd, steps, value)[k])
        conc = mean_over(seeds, lambda sd, a=alpha: run(a, 5, k, sd, steps, value)[k])
        print(f"{alpha:>8.4f}{usual:>10.3f}{conc:>10.3f}")

    print(f"\n3. members all go to learner {k}; learner 2's success (probing learner {k} or not)")
    print(f"{'alpha':>8}{'p = 0':>10}{'p = 1':>10}")
    spec = raw_env(dataset="acs-income", n_learners=5).market_spec
    for alpha in (0.01, 0.02, 0.05, 0.1):
        cells = []
        for p in (0.0, 1.0):

            def one(sd, a=alpha, p=p):
                prober = MSGDP(spec, 2, p=p, scenario="market_leader", leader=k, eta=ETA,
                               probe_every=50)  # fmt: skip
                return run(a, 5, k, sd, steps, value, prober)[2]

            cells.append(mean_over(seeds, one))
        print(f"{alpha:>8.4f}{cells[0]:>10.3f}{cells[1]:>10.3f}")


if __name__ == "__main__":
    main()
