"""``simulate``: play policies in a market and record per-learner metrics at evaluation points."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from choicemarket.baselines import MSGD, FixedCollective, act_all
from choicemarket.envs.market.collective import COLLECTIVE
from choicemarket.envs.market.spec import MarketSpec
from choicemarket.envs.market_v0 import raw_env

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
# recorded too when the market has an outside option (``outside_threshold``)
OUTSIDE_METRICS = ("unserved_fraction", "outside_fraction", "group_unserved", "group_outside")
COLUMNS = ("seed", "step", "agent", "learner", *METRICS, "return")
# extra columns when the market has a collective (its own row has learner -1)
COLLECTIVE_METRICS = ("planting_success", "erasing_success", "member_loss", "nonmember_loss")

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


def _file_mode() -> int:
    """0666 less the process umask, the mode ``open`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def atomic_write(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write ``content`` to ``path`` through a temporary file and a rename: readers never see
    a half-written file and a crash leaves any previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    data = content.encode() if isinstance(content, str) else content
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files; results get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _policies_for(
    env: raw_env, policies: Mapping[str, Any] | PolicyFactory | None
) -> dict[str, Any]:
    pols = _learner_policies_for(env, policies)
    if env.collective is not None:  # a scripted planting collective unless one is given
        given = policies.get(COLLECTIVE) if isinstance(policies, Mapping) else None
        pols[COLLECTIVE] = given or FixedCollective(n_learners=env.spec_info.n_learners)
    return pols


def _learner_policies_for(
    env: raw_env, policies: Mapping[str, Any] | PolicyFactory | None
) -> dict[str, Any]:
    learners = [a for a in env.possible_agents if a != COLLECTIVE]
    if policies is None:
        return {a: MSGD(env.spec_info) for a in learners}
    if callable(policies) and not isinstance(policies, Mapping):
        return {a: policies(env.spec_info, k) for k, a in enumerate(learners)}
    unknown = sorted(set(policies) - set(env.possible_agents))
    if unknown:
        raise ValueError(f"policies name unknown agents {unknown}; agents: {env.possible_agents}")
    return {a: policies.get(a) or MSGD(env.spec_info) for a in learners}


def simulate(
    config: Mapping[str, Any] | None = None,
    policies: Mapping[str, Any] | PolicyFactory | None = None,
    seeds: Iterable[int] = (0,),
    progress: Callable[[int], None] | None = None,
    out: str | os.PathLike | None = None,
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
        progress: called with the number of steps done after each step (e.g. a tqdm update).
        out: a ``.json`` or ``.csv`` path; the history so far is written there (atomically)
            after every finished episode, so an interrupted sweep keeps what it completed.

    When learners may enter and leave, policies act only for the agents present (MSGD-P
    naming only present peers), rows cover the learners present at each evaluation point, and
    ``meta["events"]`` lists every entry and exit with its seed.

    Returns:
        A :class:`History`.
    """
    kwargs = {**(config or {}), **market_kwargs}
    env = raw_env(**kwargs)
    pols = _policies_for(env, policies)
    history = History(
        meta={
            "config": env.config.to_dict(),
            "policies": {a: getattr(p, "describe", lambda p=p: repr(p))() for a, p in pols.items()},
        }
    )
    for seed in seeds:
        obs, infos = env.reset(seed=int(seed))
        for k, a in enumerate(env.possible_agents):
            child = np.random.SeedSequence([int(seed), k]).generate_state(1)[0]
            reset = getattr(pols[a], "reset", None)
            if reset is not None:  # stateless policies need not define reset
                reset(int(child))
        pop = env.population
        history.meta.setdefault(
            "baseline",
            {"loss": pop.baseline_loss, "accuracy": _json_value(pop.baseline_accuracy)},
        )
        returns = dict.fromkeys(env.possible_agents, 0.0)
        _record(history, seed, 0, infos, returns)
        step = 0
        open_market = env.core.entry is not None  # learners may enter and leave
        while env.agents:
            if open_market:  # act for the learners present; probe only those
                obs = {a: obs[a] for a in env.agents}
                actions = act_all(pols, obs, env.active_mask)
            else:
                actions = act_all(pols, obs)
            obs, rewards, _, _, infos = env.step(actions)
            step += 1
            for a, r in rewards.items():
                returns[a] += r
            if infos and next(iter(infos.values()))["eval_step"] == step:
                _record(history, seed, step, infos, returns)
            if progress is not None:
                progress(1)
        if open_market:
            events = history.meta.setdefault("events", [])
            events.extend({"seed": int(seed), **e} for e in env.events)
        if out is not None:
            history.save(out)
    return history


def _record(history: History, seed: int, step: int, infos: dict, returns: dict) -> None:
    c = infos.get(COLLECTIVE)
    for a, info in infos.items():
        if a == COLLECTIVE:
            continue
        k = int(a.rsplit("_", 1)[1])
        row = {"seed": int(seed), "step": step, "agent": a, "learner": k}
        row.update({m: info[m] for m in METRICS})
        row.update({m: info[m] for m in OUTSIDE_METRICS if m in info})
        row["return"] = returns[a]
        if c is not None:
            row["planting_success"] = c["planting_success"][k]
            row["erasing_success"] = c["erasing_success"][k]
            row["member_loss"] = row["nonmember_loss"] = math.nan
        history.rows.append(row)
    if c is not None:
        row = {"seed": int(seed), "step": step, "agent": COLLECTIVE, "learner": -1}
        row.update(dict.fromkeys(METRICS, math.nan))
        row["return"] = returns[COLLECTIVE]
        row["planting_success"] = float(np.mean(c["planting_success"]))
        row["erasing_success"] = float(np.mean(c["erasing_success"]))
        row["member_loss"], row["nonmember_loss"] = c["member_loss"], c["nonmember_loss"]
        history.rows.append(row)
