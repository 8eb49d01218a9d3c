"""The policy protocol, a do-nothing policy, and ``act_all`` for a dict of policies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from choicemarket.envs.market.spec import MarketSpec, require_market_spec

from .msgd import MSGD, act_batch


@runtime_checkable
class Policy(Protocol):
    """What the runner needs of a policy: ``reset(seed)`` and ``act(observation) -> action``."""

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray: ...


class NoUpdate:
    """Never moves its parameters and never probes (a reference point)."""

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec = require_market_spec(spec, "NoUpdate")
        self._action = spec.actions.build()

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._action.copy()

    def describe(self) -> str:
        return "NoUpdate()"


def act_all(
    policies: Mapping[str, Policy],
    observations: Mapping[str, dict],
    active: np.ndarray | None = None,
) -> dict:
    """Actions of every agent in ``observations``; MSGD-family policies act in one batch.

    ``active`` (n,) bool (``env.active_mask``) marks the learners present when learners enter
    and leave, so that MSGD-P names only present peers; ``None``: all are present.
    """
    agents = list(observations)
    pols = [policies[a] for a in agents]
    batched = [i for i, p in enumerate(pols) if isinstance(p, MSGD)]
    if len(batched) == len(agents):
        return dict(zip(agents, act_batch(pols, list(observations.values()), active)))
    actions = {}
    if batched:
        arr = act_batch(
            [pols[i] for i in batched], [observations[agents[i]] for i in batched], active
        )
        actions = {agents[i]: a for i, a in zip(batched, arr)}
    return {a: actions[a] if a in actions else policies[a].act(observations[a]) for a in agents}
