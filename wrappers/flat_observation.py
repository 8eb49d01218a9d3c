"""A compact, fixed-size float32 observation for MLP policies (instead of the ``Dict``).

The vector, in this order (P = n_params, n = n_learners):

==================  =====  ===========================================================
entry               size   value (bounds)
==================  =====  ===========================================================
params              P      own parameters / ``param_scale``, clipped to ``[-clip, clip]``
share               1      own share of the current batch (``[0, 1]``)
local loss          1      own mean loss on its users / the baseline's test loss
                           (``[0, clip]``; 1 = as good as the all-users ERM)
probe held          1      1 if a probe response is held, else 0
probe loss          1      own mean loss on the held probe set (its pseudo-labels) / the
                           baseline's test loss (``[0, clip]``; 0 when none is held): how
                           far the peers' answers are from the learner's own model
progress            1      step / max_steps (``[0, 1]``)
peer shares         n      every learner's share of the batch (only with
                           ``peer_shares=True``; a learner does not see them in the market)
==================  =====  ===========================================================

The baseline's test loss is the market's ``baseline_loss`` of the current population.
"""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from choicemarket.envs.checks import is_real
from choicemarket.envs.market.losses import logits
from choicemarket.envs.market.spec import MarketSpec

__all__ = ["FlatObservation", "ObservationFeatures"]


class ObservationFeatures:
    """Maps one learner's ``Dict`` observation to the flat vector described above."""

    def __init__(
        self,
        spec: MarketSpec,
        max_steps: int,
        param_scale: float = 1.0,
        clip: float = 10.0,
        peer_shares: bool = False,
    ) -> None:
        for name, v in (("param_scale", param_scale), ("clip", clip)):
            if not (is_real(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not isinstance(peer_shares, bool):
            raise ValueError(f"peer_shares must be True or False, got {peer_shares!r}")
        self.spec, self.max_steps = spec, int(max_steps)
        self.param_scale, self.clip, self.peer_shares = float(param_scale), float(clip), peer_shares
        P, n = spec.n_params, spec.n_learners
        self.size = P + 5 + (n if peer_shares else 0)
        low = np.zeros(self.size, np.float32)
        high = np.ones(self.size, np.float32)
        low[:P], high[:P] = -self.clip, self.clip
        high[P + 1] = high[P + 3] = self.clip  # loss ratios
        self.space = spaces.Box(low, high, dtype=np.float32)
        self._low, self._high = low, high

    def vector(
        self,
        observation: Mapping[str, np.ndarray],
        baseline_loss: float,
        shares: np.ndarray | None = None,
    ) -> np.ndarray:
        """The flat observation; ``shares`` (n,) is needed when ``peer_shares`` is on."""
        spec, obs = self.spec, observation
        P = spec.n_params
        v = np.empty(self.size, np.float64)
        v[:P] = obs["params"] / self.param_scale
        v[P] = obs["share"][0]
        scale = 1.0 / max(float(baseline_loss), 1e-12)
        v[P + 1] = obs["local_loss"][0] * scale
        held = np.count_nonzero(obs["probe_mask"])
        v[P + 2] = 1.0 if held else 0.0
        if held:
            theta = obs["params"].reshape(1, *spec.param_shape).astype(np.float64)
            z = logits(theta, obs["probe_covariates"][:held].astype(np.float64))[0]
            v[P + 3] = spec.family.loss(z, obs["probe_targets"][:held]).mean() * scale
        else:
            v[P + 3] = 0.0
        v[P + 4] = obs["step"][0] / self.max_steps
        if self.peer_shares:
            if shares is None:
                raise ValueError("shares must be given when peer_shares=True")
            v[P + 5 :] = shares
        return np.clip(v, self._low, self._high).astype(np.float32)


class FlatObservation(gym.ObservationWrapper):
    """The flat observation of the ego of a :class:`~choicemarket.wrappers.SingleLearner`.

    Args:
        env: a ``SingleLearner`` or a wrapper of one.
        param_scale, clip, peer_shares: see :class:`ObservationFeatures`.
    """

    def __init__(
        self,
        env: gym.Env,
        param_scale: float = 1.0,
        clip: float = 10.0,
        peer_shares: bool = False,
    ) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not hasattr(base, "market"):
            raise ValueError("env must be a SingleLearner (or wrap one)")
        self.features = ObservationFeatures(
            base.market_spec, base.market.config.max_steps, param_scale, clip, peer_shares
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
