"""Steps per second of the census-shaped market with scripted MSGD-P policies.

Market: n = 5 learners, B = 150 users per step, d = 16 (acs-income), learner 2 probes by
preference with p = 0.4, N_probe = 100, b_p = 150; the others run MSGD. Measured:

- ``api``: ``ParallelEnv.step`` with dict observations/actions, policies via ``act_all``;
- ``api, fixed actions``: the same environment stepped with precomputed actions (no policy);
- ``core``: ``MarketCore`` and ``act_arrays`` on arrays, no observation dicts (M = 1);
- ``core, M markets``: M independent markets in one set of arrays (market-steps per second);
- ``episode loop, M markets``: ``run_markets`` (what ``simulate``, sweeps and the demo run:
  policies, steps, evaluations and history rows), market-steps per second.

Each figure is the median (and best) of ``--repeats`` timed runs of ``--steps`` steps, and its
ratio to the reference-style loop (``../shared/bench/refloop.py`` beside the repository, the
same per-step work as the published code) timed in the same process before each figure. Both
are timed in CPU seconds of the process (``--clock wall``: elapsed seconds) with one BLAS
thread (``--blas-threads``), so that other processes on the machine, and BLAS threads waiting
on tiny products, move the ratios little.

    python benchmarks/bench_step.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from core_step import core_step  # benchmarks/core_step.py, beside this script
from yardstick import REFLOOP, note_if_missing, reference_rate  # beside this script

from choicemarket.baselines import MSGD, MSGDP, act_all
from choicemarket.baselines.msgd import plan
from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.market_v0 import raw_env
from choicemarket.experiments.runner import run_markets

MARKET = dict(
    dataset="acs-income",
    n_learners=5,
    users_per_step=150,
    probe_size=100,
    preference_weight=0.7,
    init="partition_erm",
)
PROBER, P, B_P = 2, 0.4, 150
CLOCK = time.process_time  # CPU seconds of this process (``--clock wall``: elapsed seconds)


def policies_for(spec, n_markets: int = 1) -> list:
    return [
        MSGDP(spec, k, p=P, probe_batch_size=B_P, seed=m) if k == PROBER else MSGD(spec)
        for m in range(n_markets)
        for k in range(spec.n_learners)
    ]


def time_api(steps: int) -> float:
    env = raw_env(**MARKET, max_steps=steps, eval_every=steps)
    pols = dict(zip(env.possible_agents, policies_for(env.market_spec)))
    obs, _ = env.reset(seed=0)
    start = CLOCK()
    while env.agents:
        obs, *_ = env.step(act_all(pols, obs))
    return steps / (CLOCK() - start)


def time_api_fixed(steps: int) -> float:
    env = raw_env(**MARKET, max_steps=steps, eval_every=steps)
    obs, _ = env.reset(seed=0)
    actions = act_all(dict(zip(env.possible_agents, policies_for(env.market_spec))), obs)
    actions = {a: v * 0 for a, v in actions.items()}
    start = CLOCK()
    while env.agents:
        env.step(actions)
    return steps / (CLOCK() - start)


def time_core(steps: int, n_markets: int = 1) -> float:
    core = MarketCore(MarketConfig(**MARKET, max_steps=steps), n_markets=n_markets)
    spec = core.spec
    pols = policies_for(spec, n_markets)
    constants = plan(pols)
    core.reset(seed=0)
    start = CLOCK()
    for _ in range(steps):
        core_step(core, pols, constants=constants)
    return steps * n_markets / (CLOCK() - start)


def time_loop(steps: int, n_markets: int) -> float:
    cfg = MarketConfig(**MARKET, max_steps=steps, eval_every=100)
    spec = MarketCore(cfg).spec
    pols = policies_for(spec, n_markets)
    per_market = [pols[m * spec.n_learners : (m + 1) * spec.n_learners] for m in range(n_markets)]
    start = CLOCK()
    run_markets(cfg, per_market, list(range(n_markets)))
    return steps * n_markets / (CLOCK() - start)


def measure(fn, steps: int, repeats: int, *extra) -> tuple[float, float]:
    fn(200, *extra)  # warm up (population, caches)
    rates = [fn(steps, *extra) for _ in range(repeats)]
    return statistics.median(rates), max(rates)


def _blas() -> str:
    """The BLAS libraries loaded (numpy's and scipy's) and their kernels; OPENBLAS_CORETYPE
    can change the kernel."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return "unknown"
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return "unknown"
    return "; ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in libs
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markets", type=int, nargs="*", default=[25, 100])
    parser.add_argument("--loop-markets", type=int, nargs="*", default=[64])
    parser.add_argument("--refloop", type=Path, default=REFLOOP)
    parser.add_argument(
        "--ref-repeats", type=int, default=3, help="runs of the reference loop per figure"
    )
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    try:  # BLAS threads spinning on tiny products would bill CPU time to the reference loop
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    else:
        threadpool_limits(args.blas_threads, user_api="blas")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores, BLAS: {_blas()}"
    )
    print(f"{'mode':<34}{'median steps/s':>16}{'best':>10}{'x refloop':>11}")
    rows = [
        ("api (ParallelEnv + MSGD-P policies)", time_api, ()),
        ("api, fixed actions (no policy)", time_api_fixed, ()),
        ("core, no API layer (M = 1)", time_core, (1,)),
    ]
    rows += [(f"core, M = {m} markets", time_core, (m,)) for m in args.markets]
    rows += [(f"episode loop, M = {m} markets", time_loop, (m,)) for m in args.loop_markets]
    for name, fn, extra in rows:
        steps = args.steps if not extra or extra[0] == 1 else max(200, args.steps // extra[0] * 4)
        ref = reference_rate(args.refloop, args.ref_repeats, clock=CLOCK)
        med, best = measure(fn, steps, args.repeats, *extra)
        ratio = f"{med / ref:>11.2f}" if ref else f"{'-':>11}"
        print(f"{name:<34}{med:>16,.0f}{best:>10,.0f}{ratio}")
    note_if_missing(args.refloop)


if __name__ == "__main__":
    main()
