"""A fixed amount of batched census-market work, to time as a whole process.

``python benchmarks/core_run.py M STEPS`` resets M census markets (n = 5, B = 150, learner 2
MSGD-P with p = 0.4, b_p = 150, the others MSGD), steps them STEPS times with
``core_step.core_step`` (``act_arrays`` on the core's own-user gradients) and prints a checksum
of the parameters (the same on every version that computes the same numbers). Time two
versions of the library against each other with it, alternating, e.g. ``/usr/bin/time -v``.
"""

from __future__ import annotations

import sys

from bench_step import MARKET, policies_for  # beside this script
from core_step import core_step

from choicemarket.baselines.msgd import plan
from choicemarket.envs import MarketConfig, MarketCore


def main(M: int, steps: int) -> float:
    core = MarketCore(MarketConfig(**MARKET, max_steps=steps), n_markets=M)
    pols = policies_for(core.spec, M)
    constants = plan(pols)
    core.reset(seed=0)
    for _ in range(steps):
        core_step(core, pols, constants=constants)
    return float(core.state.theta.sum())


if __name__ == "__main__":
    print(main(int(sys.argv[1]), int(sys.argv[2])))
