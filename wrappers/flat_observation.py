"""A compact, fixed-size float32 observation for MLP policies (instead of the ``Dict``).

The layout is :class:`~choicemarket.envs.market.observation.ObservationFeatures` (its one
home, shared with the market's ``observation="flat"``; the table is in that module): own
parameters / ``param_scale``, own share, own local loss and own loss on the held probe set
(both over the baseline's test loss), a probe-held flag, the episode progress, then optionally
the statistics of its users and probe response (``user_stats=True``) and every learner's share
(``peer_shares=True``; a learner does not see them in the market). Entries are clipped into
finite bounds.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from choicemarket.envs.market.observation import ObservationFeatures

__all__ = ["FlatObservation", "ObservationFeatures"]


class FlatObservation(gym.ObservationWrapper):
    """The flat observation of the ego of a :class:`~choicemarket.wrappers.SingleLearner`.

    Args:
        env: a ``SingleLearner`` or a wrapper of one.
        param_scale, clip, peer_shares, user_stats: see :class:`ObservationFeatures`.
    """

    def __init__(
        self,
        env: gym.Env,
        param_scale: float = 1.0,
        clip: float = 10.0,
        peer_shares: bool = False,
        user_stats: bool = False,
    ) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not hasattr(base, "market"):
            raise ValueError("env must be a SingleLearner (or wrap one)")
        self.features = ObservationFeatures(
            base.market_spec,
            base.market.config.max_steps,
            param_scale,
            clip,
            peer_shares,
            user_stats,
        )
        self.observation_space = self.features.space

    def observation(self, observation) -> np.ndarray:
        base = self.env.unwrapped
        market = base.market
        obs = base.observations[base.agent]
        shares = None
        if self.features.peer_shares:
            shares = market.state_arrays.share[0]
        return self.features.vector(obs, market.population.baseline_loss, shares)
