"""Wall time of the census "good" sweep: 6 probing weights x 15 seeds x 4,000 steps.

The shipped ``expt2-census`` config (n = 5, B = 150, d = 16, preference-aware MSGD-P for the
worst-at-start learner, the others MSGD, N_probe = 100, b_p = 150, evaluation every 100 steps)
run by ``run_sweep`` on the batched engine with ``--workers`` processes, from a cold start
(worker start-up and population build included), writing every run's file. Prints the wall
time, market-steps per second, the CPU seconds this script and its workers used, and the
machine's load average: on a shared machine the wall time grows with the load while the CPU
seconds do not (much), and CPU seconds / workers is the wall time the sweep needs on idle cores.

    python benchmarks/bench_sweep.py --workers 2

``--end-to-end`` times the command line itself instead, ``choicemarket run CONFIG --workers W
--out <temporary folder>`` in a fresh process (interpreter start, imports, worker start-up,
population, the markets and the result files all count), with ``CHOICEMARKET_CACHE_DIR`` set
to a temporary folder: once with an empty population cache (cold), then ``--repeats`` times
with the cache that run filled (warm). It times the reference-style loop
``../shared/bench/refloop.py`` (one BLAS thread, as the sweep's workers) in the same process,
before and after, and prints each run's elapsed time as a ratio to the reference loop's
elapsed time for the same number of steps (runs x steps: 360,000 for ``expt2-census``), as a
speed-up: "Nx the reference loop" is the reference loop's time divided by the run's.
``--ref-steps`` times the reference loop for fewer steps and scales its time to that number
(its cost per step does not change along a run).

    python benchmarks/bench_sweep.py --end-to-end --workers 2 --repeats 3 --ref-steps 40000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from yardstick import REFLOOP, note_if_missing, reference_seconds  # beside this script

from choicemarket.envs.data.array_cache import ENV_VAR
from choicemarket.experiments.experiment import load_experiment
from choicemarket.experiments.sweep import run_sweep


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def end_to_end(args: argparse.Namespace, total_steps: int) -> None:
    """Elapsed time of ``choicemarket run`` (cold, then warm population cache) as ratios to
    the reference loop's time for ``total_steps`` steps."""
    ref_steps = min(args.ref_steps or total_steps, total_steps)
    scale = total_steps / ref_steps

    def reference() -> float | None:
        seconds = reference_seconds(REFLOOP, ref_steps)
        if seconds is None:
            return None
        print(
            f"reference loop: {ref_steps:,} steps in {seconds:.1f} s elapsed "
            f"-> {seconds * scale:.1f} s for {total_steps:,} steps"
        )
        return seconds * scale

    note_if_missing(REFLOOP)
    before = reference()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, ENV_VAR: str(Path(tmp) / "cache")}
        command = [sys.executable, "-m", "choicemarket", "run", args.config]
        command += ["--workers", str(args.workers), "--no-progress"]
        if args.steps:
            command += ["--steps", str(args.steps)]
        for k in range(1 + args.repeats):
            out = Path(tmp) / "out"
            start = time.perf_counter()
            subprocess.run([*command, "--out", str(out)], env=env, check=True, capture_output=True)
            runs.append(("cold" if k == 0 else "warm", time.perf_counter() - start))
            shutil.rmtree(out)
    after = reference()
    ref = None if before is None else (before + after) / 2
    for cache, wall in runs:
        ratio = "" if ref is None else f", {ref / wall:.1f}x the reference loop"
        print(f"choicemarket run {args.config}, {cache} population cache: {wall:.1f} s{ratio}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="expt2-census")
    parser.add_argument("--steps", type=int, default=None, help="override max_steps")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--end-to-end", action="store_true", help="time `choicemarket run` against refloop"
    )
    parser.add_argument(
        "--ref-steps", type=int, default=None, help="reference steps timed (default: all)"
    )
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
    if args.end_to_end:
        end_to_end(args, len(runs) * steps)
        return
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            # an empty cache folder: every repeat builds its populations and parses its data
            os.environ[ENV_VAR] = str(Path(out) / "cache")
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
