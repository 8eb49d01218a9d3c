"""Population build time in a fresh process, with the population cache cold, warm and off.

Each measurement is a new Python process (as a sweep worker is) that imports choicemarket,
builds the census population of the ``expt2-census`` settings (n = 5, lambda = 1e-9, 1% test
split, k-means preferences, partition ERMs) and then times the reference-style loop
(``../shared/bench/refloop.py`` beside the repository) in the same process. Prints the median
wall and CPU seconds of the build (imports included) and the build time in reference-loop
steps (seconds x the loop's steps per second), which holds on a loaded machine where seconds
do not. The children run with ``--threads`` BLAS/OpenMP threads (default 1, as sweep workers
run; 0: the libraries' default).

    python benchmarks/bench_population.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from yardstick import REFLOOP  # beside this script

from choicemarket.experiments.sweep import THREAD_VARIABLES

HERE = Path(__file__).resolve().parent  # the child imports yardstick from here

CHILD = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.core import population_for
cfg = MarketConfig(dataset="acs-income", n_learners=5, l2=1e-9, test_fraction=0.01)
population_for(cfg, 0)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
ref = None
if sys.argv[1]:
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from yardstick import reference_rate
    ref = reference_rate(Path(sys.argv[1]), steps=1000)
print(json.dumps({"wall": wall, "cpu": cpu, "ref": ref, "sklearn": "sklearn" in sys.modules}))
"""


def build(cache: str, refloop: Path | None, threads: int = 1) -> dict:
    """One fresh-process build with ``CHOICEMARKET_CACHE_DIR=cache`` (and the reference loop
    timed after it when ``refloop`` is there)."""
    env = {**os.environ, "CHOICEMARKET_CACHE_DIR": cache}
    if threads:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    arg = str(refloop) if refloop is not None and refloop.exists() else ""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, arg, str(HERE)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--refloop", type=Path, default=REFLOOP)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: default)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}")
    rows: dict[str, list[dict]] = {"off": [], "cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        warm = str(Path(tmp) / "warm")
        build(warm, None)  # fill the warm cache once
        for i in range(args.repeats):  # interleaved, so that load changes hit every mode
            rows["off"].append(build("off", args.refloop, args.threads))
            rows["cold"].append(build(str(Path(tmp) / f"cold{i}"), args.refloop, args.threads))
            rows["warm"].append(build(warm, args.refloop, args.threads))
    print(f"{'cache':<6}{'wall s':>9}{'CPU s':>8}{'ref-loop steps':>16}{'sklearn imported':>18}")
    for mode, rs in rows.items():
        wall = float(np.median([r["wall"] for r in rs]))
        cpu = float(np.median([r["cpu"] for r in rs]))
        steps = [r["wall"] * r["ref"] for r in rs if r["ref"]]
        ref = f"{np.median(steps):>16,.0f}" if steps else f"{'-':>16}"
        print(f"{mode:<6}{wall:>9.2f}{cpu:>8.2f}{ref}{str(rs[0]['sklearn']):>18}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
