"""Single-agent (Gymnasium) views of the market and a Stable-Baselines3 adapter.

- :class:`SingleLearner`: one learner controlled by the agent, the others scripted.
- :class:`StrategyActions` / :class:`StrategyKnobs`: four interpretable knobs (step size,
  probing weight, probe now, whom to probe) turned into MSGD-P updates.
- :class:`FlatObservation` / :class:`ObservationFeatures`: a compact float32 vector.
- :class:`PlatformVectorEnv` (module ``vector_env``): the single-learner views of M markets as
  one Gymnasium ``VectorEnv`` stepping every market in one core call
  (``gymnasium.make_vec(id, num_envs=M)``).
- ``MarketVecEnv`` / ``shared_policy_vec_env`` (module ``vec_env``): every learner of one or
  more markets as one Stable-Baselines3 ``VecEnv`` for a shared policy. Imported lazily: it
  needs the ``rl`` extra (stable-baselines3), which this package never imports on its own.
"""

from __future__ import annotations

from typing import Any

from .factories import platform_env, platform_flat_env, platform_strategy_env
from .flat_observation import FlatObservation, ObservationFeatures
from .single_learner import SingleLearner
from .strategy import StrategyActions, StrategyKnobs
from .vector_env import PlatformVectorEnv

__all__ = [
    "FlatObservation",
    "MarketVecEnv",
    "ObservationFeatures",
    "PlatformVectorEnv",
    "SingleLearner",
    "StrategyActions",
    "StrategyKnobs",
    "platform_env",
    "platform_flat_env",
    "platform_strategy_env",
    "shared_policy_vec_env",
]

_LAZY = ("MarketVecEnv", "shared_policy_vec_env")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import vec_env

        return getattr(vec_env, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
