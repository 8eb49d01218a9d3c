"""Steps per second of a MovieLens-shaped market, against a straightforward implementation.

Market (the published MovieLens setting): 69,474 users (``synthetic-ratings``, the embedded
stand-in with MovieLens' shape; 10% held out), d = 5 user factors, 200 items as masked
outputs (loss normalised by 200), n = 5 learners, B = 50 users per step, tau = 0.7,
eta_t = 5 / sqrt(t + 1), lambda = 1e-3; learner 2 probes by preference with p = 1,
N_probe = 1000, b_p = 100; the others run MSGD. Global risk is not evaluated while timing
(``eval_every`` = the run length) in either implementation.

``naive`` is the per-step loop a researcher writes first, as in the published notebooks:
per step, draw the batch; compute every learner's predictions, masked losses and the full
per-user gradient tensor ``2 (z - y) m / 200 (x) x`` of shape (n, B, 200, d) in one einsum;
choose (tau, else lowest loss); average each learner's chosen users' slices of that tensor in a
loop over learners; for the prober form the (b_p, 200, d) tensor on its probe batch and mix
``(g + p h) / (1 + p)``; add the L2 term and step. It is vectorised over users and items
(no per-user Python loop); what it does more is materialise gradient tensors that the
library never forms: the library computes each learner's gradient as one
(200, R) x (R, n d) product over the R masked-in rows of the batch, ``g_k = r_k^T X_k / count``.
Both compute every learner's masked loss on every batch user (the choice needs them).

``naive, population tensor`` is the literal form of the same loop written against the whole
population, as code that keeps per-user arrays over all users does: every step it forms each
learner's gradient tensor over every item and every one of the N users, (N, 200, d), and
averages it under a 0/1 vector of the users who chose the learner. It is timed on a few steps
only (each forms n tensors of N x 200 x d numbers).

Rates are CPU time (``time.process_time``), so that other processes on a shared machine
slow every mode alike; the modes run interleaved, ``--repeats`` times. Measured: ``naive``;
``api`` (``ParallelEnv.step`` + ``act_all``, observation dicts
included); ``core`` (``MarketCore`` + ``act_arrays``, M = 1); ``core, M markets``
(market-steps per second). The ratio is of the medians.

    python benchmarks/bench_movielens.py
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np
from core_step import core_step  # benchmarks/core_step.py, beside this script

from choicemarket.baselines import MSGD, MSGDP, act_all
from choicemarket.baselines.msgd import plan
from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.market_v0 import raw_env

N_USERS, N_ITEMS, RANK = 69474, 200, 5
PROBER, P, B_P, ETA, L2, TAU = 2, 1.0, 100, 5.0, 1e-3, 0.7


def market(n_users: int) -> dict:
    return dict(
        dataset="synthetic-ratings",
        dataset_options={"n_users": n_users, "n_items": N_ITEMS, "rank": RANK},
        n_learners=5,
        users_per_step=50,
        probe_size=1000,
        preference_weight=TAU,
        l2=L2,
        test_fraction=0.1,
        init="partition_erm",
    )


def policies_for(spec, n_markets: int = 1) -> list:
    def one(k: int, m: int):
        if k == PROBER:
            return MSGDP(spec, k, p=P, eta=ETA, schedule="inv_sqrt", probe_batch_size=B_P, seed=m)
        return MSGD(spec, eta=ETA, schedule="inv_sqrt")

    return [one(k, m) for m in range(n_markets) for k in range(spec.n_learners)]


def time_api(cfg: dict, steps: int) -> float:
    env = raw_env(**cfg, max_steps=steps + 1, eval_every=steps + 1)
    pols = dict(zip(env.possible_agents, policies_for(env.market_spec)))
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(act_all(pols, obs))  # the probe request and its answer
    start = time.process_time()
    for _ in range(steps):
        obs, *_ = env.step(act_all(pols, obs))
    return steps / (time.process_time() - start)


def time_core(cfg: dict, steps: int, n_markets: int = 1) -> float:
    core = MarketCore(MarketConfig(**cfg, max_steps=steps + 1), n_markets=n_markets)
    spec = core.spec
    pols = policies_for(spec, n_markets)
    constants = plan(pols)
    core.reset(seed=0)
    core_step(core, pols, constants=constants)  # the probe request, answered
    start = time.process_time()
    for _ in range(steps):
        core_step(core, pols, constants=constants)
    return steps * n_markets / (time.process_time() - start)


def _naive_data(cfg: dict, steps: int) -> tuple[np.ndarray, ...]:
    """The naive loops' arrays from the market's population: training covariates, ratings,
    rated-item mask (1 where rated), preferences and a copy of the partition ERMs (n, o, d)."""
    core = MarketCore(MarketConfig(**cfg, max_steps=steps + 1))
    core.reset(seed=0)
    pop = core.population
    o = pop.T_train.shape[1] // 2
    mask = (pop.T_train[:, o:] > 0).astype(np.float64)
    return pop.X_train, pop.T_train[:, :o], mask, pop.pref, pop.partition_theta.copy()


def time_naive(cfg: dict, steps: int) -> float:
    """The straightforward loop described in the module docstring, on the same population."""
    X, Y, Mask, pref, theta = _naive_data(cfg, steps)
    o = Y.shape[1]
    rng = np.random.default_rng(0)
    N = len(X)
    # offline probe set: preference-aware pseudo-labels on the probed users' rated items
    probe_users = rng.integers(N, size=1000)
    pX = X[probe_users]
    preds = np.einsum("nmd,bd->bnm", theta, pX)
    pY = preds[np.arange(len(pX)), pref[probe_users]]
    pM = Mask[probe_users]
    B = cfg["users_per_step"]

    start = time.process_time()
    for t in range(1, steps + 1):
        idx = rng.integers(N, size=B)
        x, y, m = X[idx], Y[idx], Mask[idx]
        err = np.matmul(theta, x.T).transpose(0, 2, 1) - y  # (n, B, o)
        loss = (err**2 * m).sum(-1) / o  # (n, B)
        grad = np.einsum("nbm,bd->nbmd", 2.0 * err * m / o, x)  # (n, B, o, d)
        choice = np.where(rng.random(B) < TAU, pref[idx], loss.argmin(0))
        chosen = grad[choice, np.arange(B)]  # (B, o, d)
        g = np.zeros_like(theta)
        for k in np.unique(choice):
            g[k] = chosen[choice == k].mean(0)
        j = rng.integers(len(pX), size=B_P)
        perr = pX[j] @ theta[PROBER].T - pY[j]
        h = np.einsum("bm,bd->bmd", 2.0 * perr * pM[j] / o, pX[j]).mean(0)
        g[PROBER] = (g[PROBER] + P * h) / (1.0 + P)
        theta -= ETA / math.sqrt(t + 1) * (g + L2 * theta)
    return steps / (time.process_time() - start)


def time_naive_population(cfg: dict, steps: int) -> float:
    """The population-wide loop described in the module docstring."""
    X, Y, Mask, pref, theta = _naive_data(cfg, steps)
    o = Y.shape[1]
    n, N, B = len(theta), len(X), cfg["users_per_step"]
    rng = np.random.default_rng(0)
    probe_users = rng.integers(N, size=1000)
    pY = np.einsum("nmd,bd->bnm", theta, X[probe_users])[np.arange(1000), pref[probe_users]]
    start = time.process_time()
    for t in range(1, steps + 1):
        idx = rng.integers(N, size=B)
        g = np.zeros_like(theta)
        losses = np.empty((n, B))
        tensors = []
        for k in range(n):
            err = X @ theta[k].T - Y  # (N, o): every user's prediction error
            tensors.append(np.einsum("nm,nd->nmd", 2.0 * err * Mask / o, X))  # (N, o, d)
            losses[k] = (err[idx] ** 2 * Mask[idx]).sum(-1) / o
        choice = np.where(rng.random(B) < TAU, pref[idx], losses.argmin(0))
        for k in range(n):
            chose = np.zeros(N)
            np.add.at(chose, idx[choice == k], 1.0)
            if chose.sum():
                g[k] = np.tensordot(chose, tensors[k], 1) / chose.sum()
        j = rng.integers(1000, size=B_P)
        pX = X[probe_users[j]]
        perr = pX @ theta[PROBER].T - pY[j]
        h = np.einsum("bm,bd->bmd", 2.0 * perr * Mask[probe_users[j]] / o, pX).mean(0)
        g[PROBER] = (g[PROBER] + P * h) / (1.0 + P)
        theta -= ETA / math.sqrt(t + 1) * (g + L2 * theta)
    return steps / (time.process_time() - start)


def measure(rows: list, cfg: dict, repeats: int) -> list[tuple[float, float]]:
    """Median and best rate of each ``(fn, steps, extra)``, the modes interleaved per repeat
    so that a change in machine load hits every mode alike."""
    for fn, _, extra in rows:
        fn(cfg, 50, *extra)  # warm up (population, caches)
    rates: list[list[float]] = [[] for _ in rows]
    for _ in range(repeats):
        for i, (fn, steps, extra) in enumerate(rows):
            rates[i].append(fn(cfg, steps, *extra))
    return [(statistics.median(r), max(r)) for r in rates]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--users", type=int, default=N_USERS)
    parser.add_argument("--markets", type=int, nargs="*", default=[5])
    parser.add_argument(
        "--population-steps", type=int, default=3, help="steps of the population-tensor loop"
    )
    args = parser.parse_args()
    cfg = market(args.users)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    start = time.perf_counter()
    MarketCore(MarketConfig(**cfg)).reset(seed=0)
    print(
        f"population ({args.users:,} users x {N_ITEMS} items, factorisation, ERMs) built in "
        f"{time.perf_counter() - start:.1f} s"
    )
    print(f"{'mode':<40}{'median steps/s':>16}{'best':>10}{'x naive':>9}")
    rows = [
        ("naive (full gradient tensors)", time_naive, max(100, args.steps // 4), ()),
        ("api (ParallelEnv + MSGD-P policies)", time_api, args.steps, ()),
        ("core, no API layer (M = 1)", time_core, args.steps, (1,)),
    ]
    rows += [
        (f"core, M = {m} markets", time_core, max(100, args.steps // m * 4), (m,))
        for m in args.markets
    ]
    results = measure([r[1:] for r in rows], cfg, args.repeats)
    naive = results[0][0]
    for (name, *_), (med, best) in zip(rows, results):
        print(f"{name:<40}{med:>16,.0f}{best:>10,.0f}{med / naive:>9.1f}")
    if args.population_steps:
        rate = time_naive_population(cfg, args.population_steps)
        api = results[1][0]
        print(
            f"{'naive, population tensor (N x 200 x d)':<40}{rate:>16,.2f}{'':>10}"
            f"{rate / naive:>9.3f}   (api is {api / rate:,.0f} x faster)"
        )


if __name__ == "__main__":
    main()
