"""The single-learner views' computations on M markets at once (a lone view is the M = 1 case).

- :func:`observation_arrays`: the ``market_v0`` ``Dict`` observation of one learner of every
  market, or of every learner, stacked on a leading axis;
- :func:`scripted_actions`: the actions of scripted policies for rows of many markets, every
  MSGD/MSGD-P policy in one :func:`~choicemarket.baselines.msgd.act_arrays` call;
- :func:`collective_actions`: the scripted collective of every market;
- :func:`ego_actions`: the checked market actions of the learners an agent drives, one row
  per entry of a vector env.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from choicemarket.baselines import MSGD
from choicemarket.baselines.msgd import act_arrays
from choicemarket.envs.market import collective as _collective
from choicemarket.envs.market.actions import ActionLayout
from choicemarket.envs.market.core import MarketCore
from choicemarket.envs.market.observation import stacked_observation
from choicemarket.envs.market_v0 import learner_observations

from .strategy import StrategyKnobs, knob_actions

__all__ = ["collective_actions", "ego_actions", "observation_arrays", "scripted_actions"]


def observation_arrays(core: MarketCore, learner: int | None = None) -> dict[str, np.ndarray]:
    """The ``market_v0`` ``Dict`` observation (float32) of learner ``learner`` in every market,
    stacked on a leading axis M, or with ``learner=None`` of every learner slot of every market,
    row ``m * n + k`` for learner k of market m
    (:func:`~choicemarket.envs.market.observation.stacked_observation`)."""
    return stacked_observation(core, None, learner, np.float32)


def observation_policy_actions(
    core: MarketCore,
    policies: Sequence[Any],
    rows: np.ndarray,
    caches: list[dict],
    actions: np.ndarray,
) -> None:
    """Set ``actions[rows]`` to the checked actions of the policies that act on their
    ``Dict`` observation (row ``m * n + k``: learner k of market m), market by market."""
    n, layout = core.spec.n_learners, core.spec.actions
    markets = rows // n
    for m in np.unique(markets).tolist():
        views = learner_observations(core, m, caches[m])
        ks = (rows[markets == m] % n).tolist()
        given = [policies[m * n + k].act(views[k]) for k in ks]
        names = (f"actions['learner_{k}'] of market {m}" for k in ks)
        actions[[m * n + k for k in ks]] = layout.validate_many(given, names)


def scripted_actions(
    core: MarketCore,
    policies: Sequence[Any],
    live: np.ndarray | None = None,
    caches: list[dict] | None = None,
) -> np.ndarray:
    """Actions (M n, A) float64, clipped, of the scripted learners of every market.

    ``policies[m * n + k]`` plays learner k of market m, ``None`` where the learner is driven
    from outside (its row is left 'off', as is every row of a learner not present and of a
    market with ``live[m]`` False). MSGD/MSGD-P policies act together in one
    :func:`~choicemarket.baselines.msgd.act_arrays` call; any other policy acts on its
    ``Dict`` observation, market by market (``caches``: one probe cache per market).
    """
    s, spec = core.state, core.spec
    layout = spec.actions
    M, n = s.counts.shape
    K = M * n
    on = np.array([p is not None for p in policies])
    if core.active is not None:
        on &= core.active.reshape(K)
    if live is not None:
        on &= np.repeat(live, n)
    msgd = np.array([isinstance(p, MSGD) for p in policies]) & on
    actions = np.tile(layout.build().astype(np.float64), (K, 1))
    rows = np.flatnonzero(msgd)
    if len(rows):
        obs = observation_arrays(core)
        pols = [policies[i] for i in rows.tolist()]
        present = None if core.active is None else np.repeat(core.active, n, 0)[rows]
        actions[rows] = act_arrays(
            pols,
            obs["params"][rows].reshape(len(rows), *spec.param_shape),
            obs["covariates"][rows],
            obs["targets"][rows],
            obs["mask"][rows],
            obs["probe_covariates"][rows],
            obs["probe_targets"][rows],
            obs["probe_mask"][rows],
            obs["step"][rows, 0],
            present,
        )
    others = np.flatnonzero(on & ~msgd)
    if len(others):  # policies acting on observation dicts
        caches = [{} for _ in range(M)] if caches is None else caches
        observation_policy_actions(core, policies, others, caches, actions)
    low, high = layout._bounds
    return np.minimum(np.maximum(actions, low, out=actions), high, out=actions)


def collective_actions(
    core: MarketCore, policies: Sequence[Any], live: np.ndarray | None = None
) -> np.ndarray | None:
    """The collective's validated actions (M, 3), market m's from ``policies[m]`` ('none'
    where ``live[m]`` is False); None without a collective."""
    coll = core.collective
    if coll is None:
        return None
    s = core.state
    out = np.zeros((core.n_markets, 3), np.int64)
    for m, policy in enumerate(policies):
        if live is None or live[m]:
            obs = _collective.observation(coll, s.counts, s.step, m)
            out[m] = coll.validate(policy.act(obs), f"the collective's action in market {m}")
    return out


def ego_actions(
    actions: Any,
    shape: tuple[int, ...],
    layout: ActionLayout,
    rows: np.ndarray,
    knobs: Sequence[StrategyKnobs] | None = None,
    observations: Mapping[str, np.ndarray] | None = None,
    rngs: Sequence[np.random.Generator] | None = None,
) -> np.ndarray:
    """Checked, clipped market actions (N, A) float64 from an agent's ``actions`` of ``shape``
    (N, ...): entries ``rows`` are market actions, or with ``knobs`` strategy knobs that
    ``knobs[i]`` turns into entry i's action (``observations``: the ``Dict`` observations
    stacked over the N entries, ``rngs[i]``: entry i's probe generator); other entries 'off'.
    """
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"actions must be a numeric array of shape {shape}") from exc
    if a.shape != shape:
        raise ValueError(f"actions must have shape {shape}, got {a.shape}")
    out = np.tile(layout.build().astype(np.float64), (shape[0], 1))
    if not len(rows):
        return out
    if knobs is not None:
        if not np.isfinite(a[rows]).all():
            raise ValueError("actions contain NaN or inf; all entries must be finite")
        clipped = np.clip(a[rows], -1.0, 1.0)  # StrategyKnobs.validate, row by row
        obs = {key: v[rows] for key, v in observations.items()}
        at = rows.tolist()
        chosen = knob_actions([knobs[i] for i in at], clipped, obs, [rngs[i] for i in at])
    else:
        chosen = a[rows]
    names = (f"actions[{i}]" for i in rows.tolist())
    out[rows] = layout.validate_many(list(chosen), names)
    return out
