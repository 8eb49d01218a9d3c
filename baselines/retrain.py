"""Repeated retraining: refit the exact regularised ERM on the users a learner has served.

Every ``every`` steps the learner refits ``argmin_theta mean_i l(theta x_i, T_i) +
(lambda/2) ||theta||^2`` over the last ``window`` users who chose it (its own data only, the
"retraining" baseline of the overspecialization literature), and then moves its parameters
towards that target by at most ``max_update`` per coordinate per step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from choicemarket.envs.checks import is_integer, is_real
from choicemarket.envs.market.losses import fit_erm
from choicemarket.envs.market.spec import MarketSpec, require_market_spec


class Retrain:
    """Periodic exact refit on a sliding window of the learner's own users.

    Args:
        spec: the market's :class:`MarketSpec` (``env.market_spec``).
        every: steps between refits (>= 1); the first refit is at step 0.
        window: number of most recent own users kept for the refit (>= 1).
        l2: ridge weight lambda (>= 0); ``None`` uses the market's ``l2``.
    """

    def __init__(
        self, spec: MarketSpec, every: int = 100, window: int = 2000, l2: float | None = None
    ) -> None:
        spec = require_market_spec(spec, "Retrain")
        for name, v in (("every", every), ("window", window)):
            if not is_integer(v) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        l2 = spec.l2 if l2 is None else l2
        if not (is_real(l2) and l2 >= 0):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        self.spec, self.every, self.window, self.l2 = spec, int(every), int(window), float(l2)
        self._off = spec.actions.build()
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the served users and the target (retraining draws no random numbers)."""
        d, t = self.spec.n_features, self.spec.target_dim
        self._X = np.zeros((self.window, d))
        self._T = np.zeros((self.window, t))
        self._seen = 0  # users written so far; the ring position is seen % window
        self._target: np.ndarray | None = None

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        own = observation["mask"] > 0
        X, T = observation["covariates"][own], observation["targets"][own]
        if len(X):
            at = (self._seen + np.arange(len(X))) % self.window
            self._X[at], self._T[at] = X, T
            self._seen += len(X)
        step = int(observation["step"][0])
        if step % self.every == 0 and self._seen:
            m = min(self._seen, self.window)
            self._target = fit_erm(
                self.spec.family, self._X[:m], self._T[:m], self.l2, self.spec.n_outputs
            ).ravel()
        action = self._off.copy()
        if self._target is not None:
            bound = self.spec.actions.max_update
            delta = self._target - observation["params"].astype(np.float64)
            action[: self.spec.actions.n_params] = np.clip(delta, -bound, bound)
        return action

    def describe(self) -> str:
        return f"Retrain(every={self.every}, window={self.window}, l2={self.l2})"
