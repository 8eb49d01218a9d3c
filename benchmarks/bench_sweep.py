"""Wall time of the census "good" sweep: 6 probing weights x 15 seeds x 4,000 steps.

The shipped ``expt2-census`` config (n = 5, B = 150, d = 16, preference-aware MSGD-P for the
worst-at-start learner, the others MSGD, N_probe = 100, b_p = 150, evaluation every 100 steps)
run by ``run_sweep`` on the batched engine with ``--workers`` processes, from a cold start
(worker start-up and population build included), writing every run's file. Prints the wall
time, market-steps per second, the CPU seconds this script and its workers used, and the
machine's load average: on a shared machine the wall time grows with the load while the CPU
seconds do not (much), and CPU seconds / workers is the wall time the sweep needs on idle cores.

    python benchmarks/bench_sweep.py --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time

import numpy as np

from choicemarket.experiments.experiment import load_experiment
from choicemarket.experiments.sweep import run_sweep


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="expt2-census")
    parser.add_argument("--steps", type=int, default=None, help="override max_steps")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    overrides = [("market.max_steps", args.steps)] if args.steps else []
    exp = load_experiment(args.config, overrides=overrides)
    runs = exp.runs()
    steps = exp.market["max_steps"]
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{args.config}: {len(runs)} runs x {steps} steps = {len(runs) * steps:,} market-steps, "
        f"{args.workers} worker(s), chunks of at most {args.max_batch} markets"
    )
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            start, cpu = time.perf_counter(), _cpu_seconds()
            res = run_sweep(
                exp, out, workers=args.workers, progress=False, max_batch=args.max_batch
            )
            wall = time.perf_counter() - start
            cpu = _cpu_seconds() - cpu
        assert len(res["computed"]) == len(runs)
        print(
            f"wall {wall:.1f} s, {len(runs) * steps / wall:,.0f} market-steps/s "
            f"(load average after: {os.getloadavg()[0]:.1f})"
        )
        print(
            f"CPU {cpu:.1f} s in all processes; CPU / workers = {cpu / args.workers:.1f} s "
            f"({len(runs) * steps / cpu:,.0f} market-steps per CPU-second)"
        )


if __name__ == "__main__":
    main()
