"""A fixed suite of markets on which every registered baseline (or your policy) is scored.

Each market has one *focal* learner. The focal learner plays the policy under evaluation, every
other learner plays MSGD, and each run is scored on the focal learner at the end:

- ``global_risk``: its full-population (test) risk; ``gap``: that minus the baseline's (the
  regularised ERM on all training users), so 0 is as good as a monopolist trained on everyone;
- ``accuracy``: its test accuracy (classification markets);
- ``share``: its market share averaged over every step of the run;
- ``social_cost``: the mean loss users get at the learners they chose, averaged over the run's
  evaluation points (a market-level figure: what the focal policy does to everyone).

Markets and seeds are fixed, so results are comparable across versions and policies::

    from .bench import evaluate_policy
    result = evaluate_policy(lambda spec, k: MyPolicy(spec, k), name="mine")
    print(result.table())
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from choicemarket.baselines import MSGD
from choicemarket.baselines.registry import baseline_names, get_baseline

from .demo import worst_start_learners
from .runner import atomic_write, mean_se, simulate

BENCH_SEEDS = (0, 1, 2, 3, 4)
SCORES = ("global_risk", "gap", "accuracy", "share", "social_cost")


@dataclass(frozen=True)
class BenchMarket:
    """One market of the suite and the probing setting its MSGD-P baseline uses.

    ``focal`` is the evaluated learner; ``None`` picks the learner with the worst initial model
    (excluding the market leader in the market-leader scenario).
    """

    name: str
    market: Mapping[str, Any]
    steps: int
    scenario: str = "preference_aware"
    leader: int = 0
    p: float = 0.8
    eta: float = 0.01
    schedule: str = "constant"
    probe_batch_size: int = 150
    probe_every: int | None = None
    focal: int | None = None
    description: str = ""
    evaluations: int = field(default=20, repr=False)

    def config(self) -> dict[str, Any]:
        every = max(1, self.steps // self.evaluations)
        return {**self.market, "max_steps": self.steps, "eval_every": every, "reward": "share"}

    def focal_learner(self) -> int:
        if self.focal is not None:
            return self.focal
        exclude = (self.leader,) if self.scenario == "market_leader" else ()
        return worst_start_learners(self.config(), exclude=exclude)[0]


_CENSUS = dict(dataset="acs-income", n_learners=5, preference_weight=0.7, init="partition_erm")

SUITE: tuple[BenchMarket, ...] = (
    BenchMarket(
        "two-slopes",
        dict(dataset="two-slopes", n_learners=2, preference_weight=0.3, init="random"),
        steps=2000,
        eta=0.05,
        focal=0,
        description="1-d regression, two groups with slopes 1 and -1, small random start",
    ),
    BenchMarket(
        "census-preference",
        _CENSUS,
        steps=4000,
        description="ACS income, 5 learners, k-means preferences, probe by preference",
    ),
    BenchMarket(
        "census-leader",
        {**_CENSUS, "preferences": "market_leader"},
        steps=4000,
        scenario="market_leader",
        description="ACS income, learner 0 holds 80% of loyal users, probe the leader",
    ),
    BenchMarket(
        "census-majority",
        {**_CENSUS, "preferences": "majority_good"},
        steps=4000,
        scenario="majority_good",
        description="ACS income, 80% of users spread over 3 learners, probe the median",
    ),
    BenchMarket(
        "breast-cancer",
        dict(dataset="breast-cancer", n_learners=3, preference_weight=0.7, users_per_step=50),
        steps=3000,
        eta=0.05,
        description="sklearn breast cancer (logistic), 3 learners, probe by preference",
    ),
    BenchMarket(
        "diabetes",
        dict(dataset="diabetes", n_learners=3, preference_weight=0.7, users_per_step=50),
        steps=3000,
        eta=0.01,
        description="sklearn diabetes (squared loss), 3 learners, probe by preference",
    ),
)


def suite_markets(names: Iterable[str] | None = None) -> tuple[BenchMarket, ...]:
    """The suite, or the named subset of it (unknown names raise ``ValueError``)."""
    if names is None:
        return SUITE
    known = {m.name: m for m in SUITE}
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown bench market(s) {unknown}; suite: {list(known)}")
    return tuple(known[n] for n in names)


@dataclass
class BenchResult:
    """Per-run scores (``runs``) and their leaderboard (:meth:`leaderboard`)."""

    runs: list[dict] = field(default_factory=list)

    def leaderboard(self) -> list[dict]:
        """Per market and policy: mean and s.e. over seeds of every score, ranked by gap."""
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in self.runs:
            groups.setdefault((r["market"], r["policy"]), []).append(r)
        rows = []
        for (market, policy), runs in groups.items():
            row = {"market": market, "policy": policy, "focal": runs[0]["focal"]}
            row["seeds"] = len(runs)
            for s in SCORES:
                row[s], row[s + "_se"] = mean_se([r[s] for r in runs])
            rows.append(row)
        for market in dict.fromkeys(r["market"] for r in rows):
            ranked = sorted((r for r in rows if r["market"] == market), key=lambda r: r["gap"])
            for i, r in enumerate(ranked, 1):
                r["rank"] = i
        order = {m: i for i, m in enumerate(dict.fromkeys(r["market"] for r in rows))}
        return sorted(rows, key=lambda r: (order[r["market"]], r["rank"]))

    def table(self, markdown: bool = False) -> str:
        """The leaderboard as aligned text, or as a Markdown table."""
        heads = ["market", "#", "policy", "global risk", "gap", "accuracy %", "share", "social"]
        lines = []
        for r in self.leaderboard():
            acc = (
                "-"
                if math.isnan(r["accuracy"])
                else _pm(100 * r["accuracy"], 100 * r["accuracy_se"], 1)
            )
            lines.append(
                [
                    r["market"],
                    str(r["rank"]),
                    r["policy"],
                    _pm(r["global_risk"], r["global_risk_se"], 4),
                    _pm(r["gap"], r["gap_se"], 4),
                    acc,
                    _pm(r["share"], r["share_se"], 3),
                    _pm(r["social_cost"], r["social_cost_se"], 4),
                ]
            )
        if markdown:
            out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
            out += ["| " + " | ".join(cells) + " |" for cells in lines]
            return "\n".join(out)
        widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(heads)]
        fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
        out = [fmt.format(*heads), "-" * (sum(widths) + 2 * (len(widths) - 1))]
        out += [fmt.format(*cells) for cells in lines]
        return "\n".join(out)

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``bench_runs.csv``, ``bench_leaderboard.csv`` and ``bench_leaderboard.md``."""
        out = Path(out)
        return {
            "runs": atomic_write(out / "bench_runs.csv", _csv(self.runs)),
            "leaderboard": atomic_write(out / "bench_leaderboard.csv", _csv(self.leaderboard())),
            "markdown": atomic_write(
                out / "bench_leaderboard.md", self.table(markdown=True) + "\n"
            ),
        }


def _pm(mean: float, se: float, digits: int) -> str:
    if math.isnan(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}+-{se:.{digits}f}"


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _as_factory(policy: Callable, bench: BenchMarket) -> Callable[[Any, int], Any]:
    """``(spec, k)`` factory from a user callable taking ``(spec, k)`` or ``(spec, k, market)``."""
    try:
        n_args = len(inspect.signature(policy).parameters)
    except (TypeError, ValueError):
        n_args = 3
    if n_args >= 3:
        return lambda spec, k: policy(spec, k, bench)
    return lambda spec, k: policy(spec, k)


def score_market(
    bench: BenchMarket,
    policy: Callable,
    name: str,
    seeds: Sequence[int] = BENCH_SEEDS,
    progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """Scores of ``policy`` (a factory) as the focal learner of ``bench``, one row per seed."""
    focal = bench.focal_learner()
    make_focal = _as_factory(policy, bench)

    def factory(spec, k):
        if k == focal:
            return make_focal(spec, k)
        return MSGD(spec, eta=bench.eta, schedule=bench.schedule)

    h = simulate(bench.config(), policies=factory, seeds=seeds, progress=progress)
    steps = bench.steps
    rows = []
    for seed in seeds:
        mine = [r for r in h.rows if r["seed"] == seed and r["learner"] == focal]
        last = mine[-1]
        social = [r["social_cost"] for r in mine[1:]]
        rows.append(
            {
                "market": bench.name,
                "policy": name,
                "focal": focal,
                "seed": int(seed),
                "global_risk": last["global_loss"],
                "gap": last["gap"],
                "accuracy": last["global_accuracy"],
                "share": last["return"] / steps,
                "social_cost": float(np.mean(social)),
            }
        )
    return rows


def run_bench(
    policies: Mapping[str, Callable] | None = None,
    baselines: Iterable[str] | None = None,
    markets: Iterable[str] | None = None,
    seeds: Sequence[int] = BENCH_SEEDS,
    steps_scale: float = 1.0,
    progress: bool = False,
) -> BenchResult:
    """Score registered baselines (all by default) and extra ``policies`` on the suite.

    Args:
        policies: ``{name: factory}``; a factory takes ``(spec, k)`` or ``(spec, k, market)``.
        baselines: registered baseline names (``None``: all; ``[]``: none).
        markets: suite market names (``None``: all).
        seeds: environment seeds of every run.
        steps_scale: multiplies every market's episode length (< 1 for quick checks).
        progress: show a progress bar over all steps.
    """
    if not (isinstance(steps_scale, (int, float)) and 0 < steps_scale <= 100):
        raise ValueError(f"steps_scale must be a number in (0, 100], got {steps_scale!r}")
    names = baseline_names() if baselines is None else list(baselines)
    entries: dict[str, Callable] = {}
    for n in names:
        factory = get_baseline(n).factory
        entries[n] = lambda spec, k, m, f=factory: f(spec, k, m)
    for n, f in (policies or {}).items():
        if n in entries:
            raise ValueError(f"policy name {n!r} clashes with a baseline; choose another name")
        if not callable(f):
            raise ValueError(f"policy {n!r} must be a factory (spec, k) -> policy")
        entries[n] = f
    suite = [
        replace(m, steps=max(10, round(m.steps * steps_scale))) for m in suite_markets(markets)
    ]
    seeds = [int(s) for s in seeds]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = sum(m.steps for m in suite) * len(seeds) * len(entries)
        bar = tqdm(total=total, unit="step", unit_scale=True, desc="bench", smoothing=0.1)
    result = BenchResult()
    for bench in suite:
        for n, f in entries.items():
            result.runs += score_market(bench, f, n, seeds, bar.update if bar else None)
    if bar:
        bar.close()
    return result


def evaluate_policy(
    policy: Callable,
    name: str = "policy",
    with_baselines: bool = True,
    **kwargs: Any,
) -> BenchResult:
    """Score your policy factory on the suite, next to every registered baseline by default.

    ``policy(spec, k)`` (or ``policy(spec, k, market)``) returns an object with ``act(obs)``
    and optionally ``reset(seed)``. Other keyword arguments go to :func:`run_bench`.
    """
    return run_bench(policies={name: policy}, baselines=None if with_baselines else [], **kwargs)
