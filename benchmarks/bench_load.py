"""Long-run memory and multi-process load checks of the market.

(a) Memory: one PettingZoo market (two-slopes, 2 learners: learner 0 runs MSGD-P with p = 0.4,
learner 1 MSGD, through ``act_all``) stepped for ``--steps`` (200,000) steps in one episode;
the resident set size (RSS) is printed at intervals and its growth after a warm-up must stay
within ``--rss-bound-mb``. Then ``--envs`` market and participation environments are created,
reset, asked for every agent's spaces, closed and deleted, with the RSS printed as they go and
the same bound on its growth.

(b) Load: ``--processes`` (8) processes each run one market of the same config with its own
seed (``experiments.runner.run_markets``, ``--load-steps`` steps) at the same time; their
results (every recorded row) must be identical to a run of the same seeds one after another in
this process. Timings are printed as a ratio to the reference loop (``../shared/bench/refloop.py``
beside the repository) timed in this process, where it is present.

Every process uses one BLAS thread (set before numpy loads), so results do not depend on the
thread count and 8 processes do not oversubscribe the cores. Exits with status 1 if a check
fails.

    python benchmarks/bench_load.py
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from procstat import status_mb  # noqa: E402  (beside this script)
from yardstick import reference_rate  # noqa: E402  (beside this script)

from choicemarket.baselines import MSGD, MSGDP, act_all  # noqa: E402
from choicemarket.envs import MarketConfig, market_v0, participation_v0  # noqa: E402
from choicemarket.experiments.runner import run_markets  # noqa: E402

MARKET = dict(
    dataset="two-slopes",
    dataset_options={"n_users": 2000},
    n_learners=2,
    preferences="category",
    users_per_step=20,
    probe_size=20,
    eval_every=1000,
)


def policies(spec) -> list:
    """Learner 0: MSGD-P (p = 0.4, probe batch 10); learner 1: MSGD."""
    return [MSGDP(spec, 0, p=0.4, eta=0.05, probe_batch_size=10), MSGD(spec, eta=0.05)]


def memory_check(steps: int, report_every: int, bound_mb: float) -> bool:
    """Step one market ``steps`` times; the RSS after the first report may grow <= bound."""
    env = market_v0.parallel_env(**MARKET, max_steps=steps)
    pols = dict(zip(env.possible_agents, policies(env.market_spec), strict=True))
    obs, _ = env.reset(seed=0)
    start, t, marks = time.perf_counter(), 0, []
    while env.agents:
        obs, _, _, _, _ = env.step(act_all(pols, obs))
        t += 1
        if t % report_every == 0:
            marks.append(status_mb())
            rate = t / (time.perf_counter() - start)
            print(f"  step {t:>7}: RSS {marks[-1]:7.1f} MB  ({rate:,.0f} steps/s)", flush=True)
    env.close()
    growth = max(marks[1:], default=marks[0]) - marks[0]
    ok = t == steps and growth <= bound_mb
    print(f"  {t} steps; RSS growth after step {report_every}: {growth:+.1f} MB "
          f"(bound {bound_mb:g} MB): {'ok' if ok else 'FAILED'}")  # fmt: skip
    return ok


def lifecycle_check(n_envs: int, bound_mb: float) -> bool:
    """Create, reset, query spaces of, close and delete ``n_envs`` environments of each kind."""
    ok = True
    for name, make in (
        ("market", lambda: market_v0.parallel_env(**MARKET)),
        ("participation", lambda: participation_v0.parallel_env()),
    ):
        marks = []
        for i in range(1, n_envs + 1):
            env = make()
            env.reset(seed=i)
            for agent in env.possible_agents:
                env.observation_space(agent)
                env.action_space(agent)
            env.close()
            del env
            if i % max(1, n_envs // 5) == 0:
                marks.append(status_mb())
                print(f"  {name} environments made and closed: {i:>4}: RSS {marks[-1]:7.1f} MB")
        growth = max(marks[1:], default=marks[0]) - marks[0]
        good = growth <= bound_mb
        ok &= good
        print(f"  {name}: RSS growth after the first {n_envs // 5}: {growth:+.1f} MB "
              f"(bound {bound_mb:g} MB): {'ok' if good else 'FAILED'}")  # fmt: skip
    return ok


def run_seed(args: tuple[int, int]) -> tuple[int, str, float]:
    """``(seed, digest of every recorded row, seconds)`` of one market run with ``seed``."""
    seed, steps = args
    cfg = MarketConfig(**MARKET, max_steps=steps)
    spec = market_v0.parallel_env(**MARKET).market_spec
    start = time.perf_counter()
    (run,) = run_markets(cfg, [policies(spec)], [seed])
    wall = time.perf_counter() - start
    text = json.dumps([run.rows, run.baseline], sort_keys=True, default=repr)
    return seed, hashlib.sha256(text.encode()).hexdigest(), wall


def load_check(processes: int, steps: int, ref_rate: float | None) -> bool:
    """``processes`` concurrent runs (one seed each) against the same seeds run in sequence."""
    jobs = [(seed, steps) for seed in range(processes)]
    start = time.perf_counter()
    serial = [run_seed(job) for job in jobs]
    serial_wall = time.perf_counter() - start
    ctx = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    with ctx.Pool(processes) as pool:
        parallel = pool.map(run_seed, jobs, chunksize=1)
    parallel_wall = time.perf_counter() - start
    identical = [d for _, d, _ in serial] == [d for _, d, _ in parallel]
    total = processes * steps
    print(f"  one process, {processes} seeds in turn: {serial_wall:.1f} s "
          f"({total / serial_wall:,.0f} market-steps/s)")  # fmt: skip
    print(f"  {processes} processes at once (start-up included): {parallel_wall:.1f} s "
          f"({total / parallel_wall:,.0f} market-steps/s); each run "
          f"{min(w for *_, w in parallel):.1f}-{max(w for *_, w in parallel):.1f} s")  # fmt: skip
    if ref_rate:
        print(f"  market-steps/s as a ratio to the reference loop ({ref_rate:,.0f} steps/s): "
              f"one process {total / serial_wall / ref_rate:.2f}x, "
              f"{processes} processes {total / parallel_wall / ref_rate:.2f}x")  # fmt: skip
    print(f"  identical: {identical}")
    return identical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--report-every", type=int, default=20_000)
    parser.add_argument("--envs", type=int, default=200)
    parser.add_argument("--rss-bound-mb", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--load-steps", type=int, default=2000)
    args = parser.parse_args()
    ref = reference_rate(repeats=3)
    print(f"load average {os.getloadavg()[0]:.1f}; reference loop: "
          + (f"{ref:,.0f} steps/s" if ref else "not found"))  # fmt: skip
    print(f"(a) memory: {args.steps} steps of one market")
    ok = memory_check(args.steps, args.report_every, args.rss_bound_mb)
    print(f"(a) memory: {args.envs} environments of each kind created and closed")
    ok &= lifecycle_check(args.envs, args.rss_bound_mb)
    print(f"(b) load: {args.processes} processes x {args.load_steps} steps")
    ok &= load_check(args.processes, args.load_steps, ref)
    print(f"all checks passed: {ok}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
