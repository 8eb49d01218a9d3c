"""When does the census market overspecialize, and when does probing help?

For each loyalty tau and start (partition ERM or small random parameters) the script first runs
MSGD for every learner (p = 0), picks the learner with the largest final accuracy gap to the
baseline, then lets that learner probe by preference with weight p (once at the start, or every
``--probe-every`` steps: online probing). It prints the prober's
final accuracy gap (points, mean +- s.e. over seeds) for each p.

    python examples/census_settings.py --dataset acs-income --seeds 5 --steps 4000
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket import simulate
from choicemarket.baselines import MSGD, MSGDP


def gaps(
    market: dict, prober: int | None, p: float, seeds: list[int], probe_every: int | None = None
) -> dict[int, np.ndarray]:
    def factory(spec, k):
        return MSGDP(spec, k, p=p, probe_every=probe_every) if k == prober else MSGD(spec)

    h = simulate(market, policies=factory, seeds=seeds)
    out: dict[int, list[float]] = {}
    for r in h.final():
        out.setdefault(r["learner"], []).append(r["accuracy_gap"])
    return {k: np.array(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="acs-income")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--taus", default="0.3,0.5,0.7,0.9")
    parser.add_argument("--inits", default="partition_erm,random")
    parser.add_argument("--ps", default="0.2,0.8")
    parser.add_argument(
        "--probe-every", type=int, default=None, help="online probing period (default: offline)"
    )
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    ps = [float(v) for v in args.ps.split(",")]
    header = f"{'init':<14}{'tau':>5}{'prober':>7}{'p=0':>13}" + "".join(
        f"{'p=' + format(p, 'g'):>13}" for p in ps
    )
    print(header)
    for init in args.inits.split(","):
        for tau in (float(t) for t in args.taus.split(",")):
            market = dict(
                dataset=args.dataset,
                preference_weight=tau,
                init=init,
                max_steps=args.steps,
                eval_every=args.steps,
            )
            base = gaps(market, None, 0.0, seeds)
            prober = max(base, key=lambda k: base[k].mean())
            cells = [base[prober]] + [
                gaps(market, prober, p, seeds, args.probe_every)[prober] for p in ps
            ]
            text = "".join(
                f"{100 * g.mean():>7.1f}+-{100 * g.std(ddof=1) / np.sqrt(len(g)):<4.1f}"
                for g in cells
            )
            print(f"{init:<14}{tau:>5g}{prober:>7}{text}")


if __name__ == "__main__":
    main()
