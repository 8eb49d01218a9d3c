"""A fuzzing campaign over every environment family: random configurations (every field at
edge values, valid or not) and short action streams (valid actions mixed with NaN, inf, huge
integers, wrong shapes and types, missing agents, bad seeds).

Each outcome is classified (see ``tests/fuzz/harness.py``): ``ok``; ``clean`` (a
``ValueError``/``TypeError`` naming the field, agent or seed, and a rejected step changed
nothing); ``unclear`` (an error that names nothing it was given); ``defect`` (a crash, a
non-finite figure or an observation outside its space from finite inputs, or a rejected step
that changed the environment). Counts per family and class are printed, then the first
examples of every unclear error and defect.

    python scripts/fuzz_campaign.py --configs 20000 --streams 50000 --seed 0 --workers 2
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the harness lives with the tests
    sys.path.insert(0, ROOT)

from tests.fuzz import harness  # noqa: E402

CHUNK = 50  # configurations per task handed to a worker
BUILT = 0.45  # about this share of the drawn configurations is valid (the rest must be refused)


def run_chunk(task: tuple[int, int, int, int, bool]) -> list[tuple[str, str, str, str]]:
    """Cases ``start..start+count`` of the campaign with seed ``seed``, each running
    ``per_case_x1000 / 1000`` action streams on average if its environment builds (only
    unchanged, valid bases when ``valid_only``). Each case draws from its own generator
    (``[seed, case]``), so results do not depend on the number of workers."""
    seed, start, count, per_case_x1000, valid_only = task
    out = []
    for case in range(start, start + count):
        rng = np.random.default_rng([seed, case])

        def choose(options, rng=rng):
            options = list(options)
            return options[int(rng.integers(len(options)))]

        family = harness.FAMILIES[case % len(harness.FAMILIES)]
        n_changes = 0 if valid_only else int(rng.integers(0, 4))
        if family == "market":
            cfg = harness.market_config(choose, n_changes)
        elif family == "participation":
            cfg = harness.participation_config(choose, n_changes)
        else:
            cfg = harness.gym_config(choose, n_changes)
        # streams per case: the integer part, plus one more with the fractional probability
        whole, frac = divmod(per_case_x1000, 1000)
        streams = whole + int(rng.random() * 1000 < frac)
        for phase, outcome, detail in harness.run_case(family, cfg, streams, choose):
            out.append((family, phase, outcome, detail if outcome in ("unclear", "defect") else ""))
            if outcome in ("unclear", "defect"):
                out[-1] = (*out[-1][:3], f"{detail} | config {_short(cfg)}")
    return out


def _short(cfg) -> str:
    text = repr(cfg)
    return text if len(text) < 400 else text[:397] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=20000, help="configurations (cases)")
    parser.add_argument("--streams", type=int, default=50000, help="action streams in all")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--examples", type=int, default=5, help="examples shown per class")
    args = parser.parse_args(argv)
    if args.configs < 1 or args.streams < 0 or args.workers < 1:
        parser.error("--configs and --workers must be >= 1, --streams >= 0")
    per_case = round(1000 * args.streams / (args.configs * BUILT))
    tasks = [
        (args.seed, start, min(CHUNK, args.configs - start), per_case, False)
        for start in range(0, args.configs, CHUNK)
    ]
    counts: collections.Counter = collections.Counter()
    examples: dict[tuple, list[str]] = collections.defaultdict(list)
    t0 = time.perf_counter()

    def total(phase: str) -> int:
        return sum(v for k, v in counts.items() if k[1] == phase)

    def run(pool, tasks, top_up: bool = False) -> None:
        for done, results in enumerate(pool.imap_unordered(run_chunk, tasks), 1):
            for family, phase, outcome, detail in results:
                if top_up and phase == "config":  # valid bases of extra streams: not counted
                    continue
                counts[family, phase, outcome] += 1
                if detail and len(examples[family, phase, outcome]) < args.examples:
                    examples[family, phase, outcome].append(detail)
            if done % 20 == 0 or done == len(tasks):
                print(
                    f"[{time.perf_counter() - t0:7.0f}s] {total('config')} configurations, "
                    f"{total('stream')} streams",
                    flush=True,
                )

    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        run(pool, tasks)
        start = args.configs
        while total("stream") < args.streams:  # top up with streams on valid bases
            missing, before = args.streams - total("stream"), total("stream")
            n = max(1, -(-missing // 4))
            tasks = [
                (args.seed, s, min(CHUNK, start + n - s), 4000, True)
                for s in range(start, start + n, CHUNK)
            ]
            run(pool, tasks, top_up=True)
            start += n
            if total("stream") == before:  # no base built: more rounds would add none
                break
    _report(counts, examples)
    print(
        f"\n{total('config')} configurations, {total('stream')} action streams, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    bad = sum(v for k, v in counts.items() if k[2] in ("unclear", "defect"))
    return 1 if bad else 0


def _report(counts: collections.Counter, examples: dict) -> None:
    print()
    print(f"{'family':<15}{'phase':<8}" + "".join(f"{o:>10}" for o in harness.OUTCOMES))
    for family in harness.FAMILIES:
        for phase in ("config", "stream"):
            row = [counts[family, phase, o] for o in harness.OUTCOMES]
            print(f"{family:<15}{phase:<8}" + "".join(f"{v:>10}" for v in row))
    for phase in ("config", "stream"):
        row = [sum(counts[f, phase, o] for f in harness.FAMILIES) for o in harness.OUTCOMES]
        print(f"{'all':<15}{phase:<8}" + "".join(f"{v:>10}" for v in row))
    for key, texts in sorted(examples.items()):
        print(f"\n{' / '.join(key)}:")
        for t in texts:
            print(f"  - {t}")


if __name__ == "__main__":
    sys.exit(main())
