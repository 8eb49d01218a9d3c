"""Rewards, the evaluation cadence and the per-learner metrics of a market, defined once.

The ParallelEnv's rewards and infos and the history rows of ``simulate`` all come from here:

- reward for the action at step t, measured on the batch of step t+1: ``"local"``
  ``-mean_{i in U_k} l(theta_k; x_i, y_i)``; ``"global"`` ``-R(theta_k)`` on the test users;
  ``"share"`` ``|U_k| / B``; minus ``probe_cost`` per peer query;
- evaluation (full-population risk) every ``eval_every`` steps, at the last step, and every
  step under ``reward="global"``;
- social cost ``sum_k |U_k| local_k / B``: the mean loss the batch's users get at the learners
  they chose (users served by nobody add nothing).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .config import MarketConfig
from .entry_exit import agent_event

if TYPE_CHECKING:
    from .core import MarketCore

# the per-learner metrics of every info and history row, in column order
METRICS = (
    "global_loss",
    "global_accuracy",
    "gap",
    "accuracy_gap",
    "local_loss",
    "share",
    "users",
    "probe_queries",
    "social_cost",
)
# with an outside option (``outside_threshold``)
OUTSIDE_METRICS = ("unserved_fraction", "outside_fraction", "group_unserved", "group_outside")
# with a collective: per learner, and on the collective's own row
COLLECTIVE_METRICS = ("planting_success", "erasing_success", "member_loss", "nonmember_loss")


def evaluation_due(config: MarketConfig, step: int) -> bool:
    """Whether the full-population figures are refreshed after ``step``."""
    return config.reward == "global" or step >= config.max_steps or step % config.eval_every == 0


def rewards(config: MarketConfig, core: MarketCore) -> np.ndarray:
    """(M, n) reward of every learner for the action just applied."""
    s = core.state
    if config.reward == "local":
        r = -s.local_loss
    elif config.reward == "global":
        r = -s.global_loss
    else:
        r = s.counts / s.batch.shape[1]
    if config.probe_cost:
        r = r - config.probe_cost * s.probe_queries
    return r


def market_events(core: MarketCore, episode: bool = False) -> list[list[dict]]:
    """Each market's entry/exit events with agent names (:func:`agent_event`): this step's,
    or with ``episode`` all of the episode's; empty lists without entry and exit."""
    events: list[list[dict]] = [[] for _ in range(core.n_markets)]
    if core.entry is not None:
        for e in core.entry.events if episode else core.entry.step_events:
            events[e["market"]].append(agent_event(e))
    return events


def market_infos(core: MarketCore, m: int, events: list[dict] | None = None) -> list[dict]:
    """Market ``m``'s info dicts, one per learner slot: :func:`learner_metrics` followed by
    the baseline's loss and accuracy, the evaluation step and, with entry and exit, the
    number of active learners and this step's ``events`` (of :func:`market_events`)."""
    s, pop = core.state, core.population
    tail = {
        "baseline_loss": pop.baseline_loss,
        "baseline_accuracy": pop.baseline_accuracy,
        "eval_step": s.eval_step,
    }
    if core.entry is not None:
        tail["active_learners"] = int(core.entry.active[m].sum())
        tail["events"] = market_events(core)[m] if events is None else events
    return learner_metrics(core, m, tail=tail)


def learner_metrics(
    core: MarketCore, m: int, head: list[dict] | None = None, tail: dict | None = None
) -> list[dict]:
    """Market ``m``'s metrics, one dict per learner slot: ``head[k]`` (if given), then
    ``METRICS`` and the outside option's (when the market has one), then ``tail``."""
    s, pop = core.state, core.population
    B = s.batch.shape[1]
    gl, ga = s.global_loss[m].tolist(), s.global_accuracy[m].tolist()
    ll, users = s.local_loss[m].tolist(), s.counts[m].tolist()
    queries = s.probe_queries[m].tolist()
    social = sum(v * c for v, c in zip(ll, users)) / B
    bl, ba = pop.baseline_loss, pop.baseline_accuracy
    rows = [
        {
            "global_loss": gl[k],
            "global_accuracy": ga[k],
            "gap": gl[k] - bl,
            "accuracy_gap": ba - ga[k],
            "local_loss": ll[k],
            "share": users[k] / B,
            "users": users[k],
            "probe_queries": queries[k],
            "social_cost": social,
        }
        for k in range(len(ll))
    ]
    if head is not None:
        rows = [{**h, **row} for h, row in zip(head, rows)]
    if core.outside is not None:
        om = core.outside.metrics(core)
        uf, of = float(om["unserved_fraction"][m]), float(om["outside_fraction"][m])
        gu, go = om["group_unserved"][m].tolist(), om["group_outside"][m].tolist()
        for k, row in enumerate(rows):
            row.update(
                unserved_fraction=uf, outside_fraction=of, group_unserved=gu[k], group_outside=go[k]
            )
    if tail:
        for row in rows:
            row.update(tail)
    return rows


def history_rows(
    core: MarketCore, seeds: list[int], returns: np.ndarray, collective_returns=None
) -> list[list[dict]]:
    """Every market's rows at the current step: one per learner present (``seed, step, agent,
    learner, METRICS..., return``), and the collective's (learner -1) when there is one."""
    s = core.state
    reported = None if core.entry is None else core.entry.reported()
    out = []
    for m, seed in enumerate(seeds):
        rows = []
        present = None if reported is None else reported[m]
        ret = returns[m].tolist()
        n = len(ret)
        head = [
            {"seed": int(seed), "step": s.step, "agent": f"learner_{k}", "learner": k}
            for k in range(n)
        ]
        for k, row in enumerate(learner_metrics(core, m, head)):
            if present is not None and not present[k]:
                continue
            row["return"] = ret[k]
            if core.collective is not None:
                row["planting_success"] = float(core.collective.planting[m, k])
                row["erasing_success"] = float(core.collective.erasing[m, k])
                row["member_loss"] = row["nonmember_loss"] = math.nan
            rows.append(row)
        if core.collective is not None:
            c = core.collective.info(m)
            row = {"seed": int(seed), "step": s.step, "agent": "collective", "learner": -1}
            row.update(dict.fromkeys(METRICS, math.nan))
            row["return"] = float(collective_returns[m])
            row["planting_success"] = float(np.mean(c["planting_success"]))
            row["erasing_success"] = float(np.mean(c["erasing_success"]))
            row["member_loss"], row["nonmember_loss"] = c["member_loss"], c["nonmember_loss"]
            rows.append(row)
        out.append(rows)
    return out
