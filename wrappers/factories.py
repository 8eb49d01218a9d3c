"""Factories behind the Gymnasium ids (``gymnasium.make("choicemarket:choicemarket/<id>")``).

Keyword arguments that name a wrapper option go to that wrapper; all others are market
configuration fields (:class:`~choicemarket.envs.market.config.MarketConfig`).

- ``choicemarket/Platform-v0``: :class:`SingleLearner` (raw market action, ``Dict``
  observation). Options: ``ego``, ``opponents``, ``render_mode``.
- ``choicemarket/PlatformFlat-v0``: the same with :class:`FlatObservation`. Adds
  ``param_scale``, ``clip``, ``peer_shares``, ``user_stats``.
- ``choicemarket/PlatformStrategy-v0``: :class:`StrategyActions` knobs and the flat
  observation, ready for ``PPO("MlpPolicy", ...)``. Adds ``eta``, ``schedule``,
  ``probe_batch_size``, ``step_range``, ``p_max`` (the update's L2 weight is the market's
  ``l2``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from .flat_observation import FlatObservation
from .single_learner import SingleLearner
from .strategy import StrategyActions

__all__ = ["platform_env", "platform_flat_env", "platform_strategy_env"]

_SINGLE = ("ego", "opponents", "render_mode")
_FLAT = ("param_scale", "clip", "peer_shares", "user_stats")
_STRATEGY = ("eta", "schedule", "probe_batch_size", "step_range", "p_max")


def _take(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: kwargs.pop(k) for k in names if k in kwargs}


def platform_env(**kwargs: Any) -> SingleLearner:
    """The ego learner with raw market actions and ``Dict`` observations."""
    single = _take(kwargs, _SINGLE)
    return SingleLearner(**single, **kwargs)


def platform_flat_env(**kwargs: Any) -> gym.Env:
    """The ego learner with raw market actions and the flat observation vector."""
    flat = _take(kwargs, _FLAT)
    return FlatObservation(platform_env(**kwargs), **flat)


def platform_strategy_env(**kwargs: Any) -> gym.Env:
    """The ego learner with strategy knobs (``Box(-1, 1, (4,))``) and the flat observation."""
    strategy = _take(kwargs, _STRATEGY)
    flat = _take(kwargs, _FLAT)
    return FlatObservation(StrategyActions(platform_env(**kwargs), **strategy), **flat)
