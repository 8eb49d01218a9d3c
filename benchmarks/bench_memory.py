"""Peak memory of one long, wide run: the Amazon shape (20,000 steps, 9 learners, 385 features).

The market: ``gaussian-groups`` with 9 groups of 3,333 users and 384 features plus an
intercept (385 parameters per learner), one learner per group (``preferences="category"``),
B = 150, eta = 0.05, N_probe = 500, b_p = 15, 5% test split; learner 0 probes by preference
(p = 0.4), the others run MSGD; metrics recorded at evaluation points only (every
``--eval-every`` steps). The run happens in a fresh child process; the script prints the child's
whole-process peak resident set size (the kernel's ``VmHWM``, never reset, so it covers imports,
building the population and the run; ``ru_maxrss`` agrees), its peak after building the
population, its RSS right after the imports (the libraries, before any data is loaded) and just
before the run, and with ``--tracemalloc`` the peak of
Python-tracked allocations during the run (slower). It exits with status 1 if the whole-process
peak exceeds ``--budget-mb`` (200 MB).

    python benchmarks/bench_memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from procstat import status_mb  # beside this script

N_USERS = int(os.environ.get("BENCH_USERS", 29997))
MARKET = dict(
    dataset="gaussian-groups",
    dataset_options={"n_groups": 9, "n_users": N_USERS, "n_features": 384},
    n_learners=9,
    preferences="category",
    users_per_step=150,
    probe_size=500,
    test_fraction=0.05,
    init="random",
)


def child(steps: int, eval_every: int, trace: bool) -> dict:
    import tracemalloc

    from choicemarket.baselines import MSGD, MSGDP
    from choicemarket.envs import MarketConfig, MarketCore
    from choicemarket.experiments.runner import run_markets

    imports = status_mb("VmRSS")  # the libraries, before any data is loaded
    cfg = MarketConfig(**MARKET, max_steps=steps, eval_every=eval_every)
    spec = MarketCore(cfg).spec
    core = MarketCore(cfg)
    core.reset(seed=0)  # builds (and caches) the population
    del core
    imports_and_data = status_mb("VmHWM")
    before = status_mb("VmRSS")
    pols = [
        [
            MSGDP(spec, 0, p=0.4, eta=0.05, probe_batch_size=15) if k == 0 else MSGD(spec, eta=0.05)
            for k in range(9)
        ]
    ]
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    (run,) = run_markets(cfg, pols, [0])
    wall = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    peak = status_mb("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "imports_rss_mb": imports,
        "setup_peak_mb": imports_and_data,
        "n_params": spec.n_params,
        "rows": len(run.rows),
        "wall_s": wall,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "ru_maxrss_mb": maxrss,
        "traced_peak_mb": traced,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--budget-mb", type=float, default=200.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.steps, args.eval_every, args.tracemalloc)))
        return
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--steps", str(args.steps)]
    cmd += ["--eval-every", str(args.eval_every)] + (["--tracemalloc"] if args.tracemalloc else [])
    load = os.getloadavg()[0]
    res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    print(
        f"{args.steps} steps, 9 learners x {res['n_params']} parameters, {res['rows']} history "
        f"rows (every {args.eval_every} steps), {res['wall_s']:.1f} s (load average {load:.1f})"
    )
    print(f"RSS after the imports (libraries, no data yet): {res['imports_rss_mb']:.0f} MB")
    print(f"peak RSS after importing and building the population: {res['setup_peak_mb']:.0f} MB")
    print(f"RSS before the run (imports, population): {res['rss_before_mb']:.0f} MB")
    print(
        f"peak RSS of the whole process (VmHWM, not reset): {res['peak_rss_mb']:.0f} MB "
        f"(ru_maxrss {res['ru_maxrss_mb']:.0f} MB)"
    )
    if res["traced_peak_mb"] is not None:
        print(f"peak Python-tracked allocations during the run: {res['traced_peak_mb']:.1f} MB")
    within = res["peak_rss_mb"] <= args.budget_mb
    print(f"whole-process peak within {args.budget_mb:.0f} MB: {within}")
    if not within:
        sys.exit(1)


if __name__ == "__main__":
    main()
