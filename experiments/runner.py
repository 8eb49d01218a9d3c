"""``simulate`` and ``run_markets``: the one episode loop, over 1..M markets of the batched core.

Each step every learner's policy acts (MSGD/MSGD-P policies of all M markets together, as
arrays, through :func:`~choicemarket.baselines.msgd.act_arrays`; any other policy on its own
observation), the collective's policy acts if the market has one, and
:meth:`MarketCore.advance <choicemarket.envs.market.core.MarketCore.advance>` steps every market
with the evaluation cadence and rewards of :mod:`choicemarket.envs.market.metrics`. At every
evaluation the rows of :func:`~choicemarket.envs.market.metrics.history_rows` are recorded.
Market m with seed s gives exactly what it gives alone, whatever M.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from choicemarket.baselines import MSGD, FixedCollective
from choicemarket.baselines.msgd import act_arrays, plan
from choicemarket.baselines.seeding import policy_seed
from choicemarket.envs.data.atomic import atomic_write
from choicemarket.envs.market import collective as _collective
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.core import MarketCore
from choicemarket.envs.market.entry_exit import is_enabled as entry_enabled
from choicemarket.envs.market.metrics import (
    COLLECTIVE_METRICS,
    METRICS,
    OUTSIDE_METRICS,
    history_rows,
    market_events,
)
from choicemarket.envs.market.spec import MarketSpec
from choicemarket.wrappers.batched import collective_actions, observation_policy_actions

__all__ = [
    "COLLECTIVE_METRICS",
    "COLUMNS",
    "METRICS",
    "OUTSIDE_METRICS",
    "History",
    "MarketRun",
    "atomic_write",
    "mean_se",
    "run_markets",
    "simulate",
]

COLUMNS = ("seed", "step", "agent", "learner", *METRICS, "return")
COLLECTIVE = _collective.COLLECTIVE
MAX_BATCH = 64  # markets advanced together: beyond this the arrays outgrow the caches

PolicyFactory = Callable[[MarketSpec, int], Any]


@dataclass
class History:
    """Rows ``(seed, step, agent, learner, metrics..., return)`` at every evaluation point.

    ``return`` is the learner's summed reward from reset to that step. ``meta`` holds the
    market config, the policies and the baseline.
    """

    rows: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def final(self) -> list[dict]:
        """The rows of the last evaluation step of every seed."""
        last = {}
        for r in self.rows:
            last[r["seed"]] = max(last.get(r["seed"], 0), r["step"])
        return [r for r in self.rows if r["step"] == last[r["seed"]]]

    def summary(self, metric: str = "global_loss") -> dict[str, tuple[float, float]]:
        """Per agent: mean and standard error over seeds of ``metric`` at each seed's end."""
        out: dict[str, tuple[float, float]] = {}
        final = self.final()
        for agent in dict.fromkeys(r["agent"] for r in final):
            out[agent] = mean_se([r[metric] for r in final if r["agent"] == agent])
        return out

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the rows as CSV, atomically."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.rows[0]) if self.rows else COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        return atomic_write(path, buf.getvalue())

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``{"meta": ..., "rows": [...]}`` as JSON, atomically (NaN as null)."""
        rows = [{k: _json_value(v) for k, v in r.items()} for r in self.rows]
        text = json.dumps({"meta": self.meta, "rows": rows}, default=str, allow_nan=False)
        return atomic_write(path, text)

    def save(self, path: str | os.PathLike) -> Path:
        """``to_json`` for a ``.json`` path, ``to_csv`` otherwise."""
        return self.to_json(path) if Path(path).suffix == ".json" else self.to_csv(path)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> History:
        data = json.loads(Path(path).read_text())
        rows = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in data["rows"]]
        return cls(rows=rows, meta=data["meta"])


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (ddof 1; nan for a single value) of ``values``."""
    v = np.asarray(values, dtype=float)
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.nan
    return float(v.mean()), float(se)


def _json_value(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


@dataclass
class MarketRun:
    """What one market produced: rows at evaluation points (as ``History.rows`` for one
    seed), the baseline, parameter snapshots ``{step: theta list}`` and entry/exit events."""

    seed: int
    rows: list[dict]
    baseline: dict
    snapshots: dict[int, list] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)


def run_markets(
    config: MarketConfig | Mapping[str, Any],
    policies: Sequence[Sequence[Any]],
    seeds: Sequence[int],
    progress: Callable[[int], None] | None = None,
    snapshot_every: int | None = None,
    collective_policies: Sequence[Any] | None = None,
) -> list[MarketRun]:
    """Run ``len(seeds)`` markets of ``config`` together, market m with environment seed
    ``seeds[m]`` and learner k playing ``policies[m][k]`` (reset with
    :func:`~choicemarket.baselines.seeding.policy_seed`).

    Policies of different markets must be distinct objects (each draws from its own
    generator). With a collective (``collective_fraction > 0``) ``collective_policies[m]`` acts
    for market m's collective. ``progress`` is called with the number of market-steps done
    after each step; ``snapshot_every`` records every market's parameters that often.
    """
    cfg = config if isinstance(config, MarketConfig) else MarketConfig.from_kwargs(**config)
    seeds = [int(s) for s in seeds]
    M = len(seeds)
    if M == 0:
        return []
    core = MarketCore(cfg, n_markets=M)
    spec, layout = core.spec, core.spec.actions
    n, o, d, Np = spec.n_learners, spec.n_outputs, spec.n_features, spec.probe_size
    if len(policies) != M or any(len(p) != n for p in policies):
        raise ValueError(
            f"policies must hold one list per market ({M}) with one policy per learner ({n})"
        )
    flat = [pol for market in policies for pol in market]
    for pol in flat:
        if not isinstance(pol, MSGD) and not callable(getattr(pol, "act", None)):
            raise ValueError(
                "each policy must be MSGD/MSGD-P or have act(observation) -> action, "
                f"got {type(pol).__name__}"
            )
    if M > 1 and len({id(p) for p in flat}) != len(flat):
        raise ValueError("policies must be distinct objects: each draws from its own generator")
    coll = core.collective
    if coll is not None:
        if collective_policies is None or len(collective_policies) != M:
            raise ValueError(f"a market with a collective needs {M} collective policies")
    K = M * n
    is_msgd = np.array([isinstance(p, MSGD) for p in flat])
    for m, seed in enumerate(seeds):
        for k, pol in enumerate(policies[m]):
            _reset_policy(pol, policy_seed(seed, k))
        if coll is not None:
            _reset_policy(collective_policies[m], policy_seed(seed, n))
    s = core.reset(seeds=seeds)
    pop = core.population
    baseline = {"loss": pop.baseline_loss, "accuracy": _json_value(pop.baseline_accuracy)}
    rows: list[list[dict]] = [[] for _ in range(M)]
    snaps: list[dict[int, list]] = [{} for _ in range(M)]
    returns = np.zeros((M, n))
    coll_returns = np.zeros(M)
    _extend(rows, history_rows(core, seeds, returns, coll_returns))
    _snapshot(snaps, s, snapshot_every)
    off = np.tile(layout.build(), (K, 1))
    low, high = layout._bounds
    all_msgd = bool(is_msgd.all())
    full_plan = plan(flat) if all_msgd else None
    caches: list[dict] = [{} for _ in range(M)]
    for _ in range(cfg.max_steps):
        t = s.step
        acting = None if core.active is None else core.active.reshape(K)
        actions = off.copy()
        rows_msgd = np.flatnonzero(is_msgd if acting is None else is_msgd & acting)
        if len(rows_msgd):
            own = core.user_gradients().reshape(K, o, d)
            theta = s.theta.reshape(K, o, d)
            pX, pT = s.probe_X.reshape(K, Np, d), s.probe_T.reshape(K, Np, -1)
            valid = np.broadcast_to(s.probe_valid.reshape(K, 1), (K, Np))
            steps = np.full(K, t)
            present = None if acting is None else np.repeat(core.active, n, 0)
            if all_msgd and acting is None:
                actions[:] = act_arrays(
                    flat, theta, None, None, None, pX, pT, valid, steps, None, full_plan, own
                )
            else:
                r = rows_msgd
                pols = [flat[i] for i in r]
                actions[r] = act_arrays(
                    pols,
                    theta[r],
                    None,
                    None,
                    None,
                    pX[r],
                    pT[r],
                    valid[r],
                    steps[r],
                    None if present is None else present[r],
                    own=own[r],
                )
        rows_other = np.flatnonzero(~is_msgd if acting is None else ~is_msgd & acting)
        if len(rows_other):  # policies that act on observations, market by market
            observation_policy_actions(core, flat, rows_other, caches, actions)
        coll_actions = collective_actions(core, collective_policies or ())
        a64 = actions.astype(np.float64)
        np.minimum(np.maximum(a64, low, out=a64), high, out=a64)
        reward, evaluated = core.advance(a64.reshape(M, n, -1), coll_actions)
        if core.entry is None:
            returns += reward
        else:  # learners present at this step (entrants and leavers included)
            returns += np.where(core.entry.reported(), reward, 0.0)
        if coll is not None:
            coll_returns += coll.reward()
        if evaluated:
            _extend(rows, history_rows(core, seeds, returns, coll_returns))
        if snapshot_every and s.step % snapshot_every == 0:
            _snapshot(snaps, s, snapshot_every)
        if progress is not None:
            progress(M)
    events = market_events(core, episode=True)
    return [MarketRun(seeds[m], rows[m], baseline, snaps[m], events[m]) for m in range(M)]


def _reset_policy(policy: Any, seed: int) -> None:
    reset = getattr(policy, "reset", None)
    if reset is not None:  # stateless policies need not define reset
        reset(int(seed))


def _extend(rows: list[list[dict]], new: list[list[dict]]) -> None:
    for mine, more in zip(rows, new):
        mine.extend(more)


def _snapshot(snaps: list[dict], s, every: int | None) -> None:
    if every:
        for m, theta in enumerate(s.theta):
            snaps[m][s.step] = theta.tolist()


def _learner_policies(
    spec: MarketSpec, agents: list[str], policies: Mapping[str, Any] | PolicyFactory | None
) -> list[Any]:
    """Learner policies of one episode."""
    if policies is None:
        return [MSGD(spec) for _ in agents]
    if callable(policies) and not isinstance(policies, Mapping):
        return [policies(spec, k) for k in range(len(agents))]
    unknown = sorted(set(policies) - {*agents, COLLECTIVE})
    if unknown:
        raise ValueError(f"policies name unknown agents {unknown}; agents: {agents}")
    return [policies.get(a) or MSGD(spec) for a in agents]


def simulate(
    config: Mapping[str, Any] | None = None,
    policies: Mapping[str, Any] | PolicyFactory | None = None,
    seeds: Iterable[int] = (0,),
    progress: Callable[[int], None] | None = None,
    out: str | os.PathLike | None = None,
    snapshot_every: int | None = None,
    max_batch: int = MAX_BATCH,
    collective: Any | None = None,
    **market_kwargs: Any,
) -> History:
    """Run one episode per seed and record every learner at each evaluation point.

    Args:
        config: market keyword arguments (merged with ``market_kwargs``).
        policies: ``{agent: policy}`` (missing agents play MSGD), a factory
            ``(spec, learner_index) -> policy``, or ``None`` (everyone MSGD). With a collective
            (``collective_fraction > 0``) the ``"collective"`` entry is its policy; by default
            :class:`~choicemarket.baselines.FixedCollective` (plant y* = 1, members choose as
            usual). Its rows have ``learner = -1`` and extra columns ``COLLECTIVE_METRICS``.
        seeds: the environment seed of each episode; policy ``k`` is reset with
            ``SeedSequence([seed, k])``.
        progress: called with the number of market-steps done after each step.
        out: a ``.json`` or ``.csv`` path; the history so far is written there (atomically)
            after every finished batch of episodes, so an interrupted run keeps what it
            completed.
        snapshot_every: record every learner's parameters that often (``meta["snapshots"]``,
            ``{seed: {step: theta}}``).
        max_batch: episodes advanced together (a factory gives each its own policies; the
            objects of a ``{agent: policy}`` mapping play one episode after another).
        collective: the collective's policy when ``policies`` is a factory: an object with
            ``act(observation)`` (played in every episode) or a factory ``() -> policy``.

    When learners may enter and leave, policies act only for the learners present (MSGD-P
    naming only present peers), rows cover the learners present at each evaluation point, and
    ``meta["events"]`` lists every entry and exit with its seed.

    Returns:
        A :class:`History`.
    """
    kwargs = {**(config or {}), **market_kwargs}
    cfg = MarketConfig.from_kwargs(**kwargs)
    spec = MarketCore(cfg).spec
    agents = [f"learner_{k}" for k in range(spec.n_learners)]
    seeds = [int(s) for s in seeds]
    shared = isinstance(policies, Mapping)  # the caller's objects: one episode at a time
    batch = 1 if shared else max(1, int(max_batch))
    history = History(meta={"config": cfg.to_dict()})
    for start in range(0, len(seeds), batch):
        chunk = seeds[start : start + batch]
        learner_pols, coll_pols = [], []
        for _ in chunk:
            pols = _learner_policies(spec, agents, policies)
            learner_pols.append(pols)
            if cfg.collective_fraction:  # a scripted planting collective unless one is given
                given = policies.get(COLLECTIVE) if isinstance(policies, Mapping) else collective
                if given is not None and not hasattr(given, "act") and callable(given):
                    given = given()
                coll_pols.append(given or FixedCollective(n_learners=spec.n_learners))
        if "policies" not in history.meta:
            described = dict(zip(agents, learner_pols[0]))
            if coll_pols:
                described[COLLECTIVE] = coll_pols[0]
            history.meta["policies"] = {
                a: getattr(p, "describe", lambda p=p: repr(p))() for a, p in described.items()
            }
        runs = run_markets(cfg, learner_pols, chunk, progress, snapshot_every, coll_pols or None)
        for run in runs:
            history.meta.setdefault("baseline", run.baseline)
            history.rows.extend(run.rows)
            if entry_enabled(cfg):
                events = history.meta.setdefault("events", [])
                events.extend({"seed": run.seed, **e} for e in run.events)
            if snapshot_every:
                history.meta.setdefault("snapshots", {})[str(run.seed)] = {
                    str(k): v for k, v in run.snapshots.items()
                }
        if out is not None:
            history.save(out)
    return history
