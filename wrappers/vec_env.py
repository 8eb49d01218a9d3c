"""Every learner of one or more markets as one Stable-Baselines3 ``VecEnv`` (a shared policy).

Entry ``i = m * n + k`` of the vector is learner ``k`` of market ``m``: all learners act through
the same policy (parameter sharing). Observations are the flat vectors of
:class:`~choicemarket.wrappers.ObservationFeatures`; actions are the strategy knobs of
:class:`~choicemarket.wrappers.StrategyKnobs` (``strategy=True``) or raw market actions.
Rewards are each learner's market reward.

What a generic PettingZoo-to-VecEnv conversion lacks and this adds:

- ``seed(s)`` (called by ``PPO(..., seed=s)``): the next reset seeds market ``m`` with ``s + m``
  and learner ``k``'s knob generator with ``SeedSequence([s + m, k])``, so training is
  reproducible;
- the episode end at ``max_steps`` is a truncation: ``dones`` is True with
  ``infos[i]["TimeLimit.truncated"] = True`` and ``infos[i]["terminal_observation"]``, so
  on-policy algorithms bootstrap from the value of the last state; the market then restarts,
  continuing its generator.

This is the only module of the package that imports Stable-Baselines3 (install the ``rl``
extra); ``choicemarket.wrappers`` loads it on first use of its names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from choicemarket.baselines.seeding import policy_seed
from choicemarket.envs.market_v0 import raw_env

from .flat_observation import ObservationFeatures
from .strategy import StrategyKnobs

__all__ = ["MarketVecEnv", "shared_policy_vec_env"]


class MarketVecEnv(VecEnv):
    """``n_markets`` markets, each learner one entry of the vector.

    Args:
        n_markets: independent markets (num_envs = n_markets * n_learners).
        strategy: knob actions (True) or raw market actions (False).
        strategy_options: :class:`StrategyKnobs` options (eta, schedule, ...).
        observation_options: :class:`ObservationFeatures` options (param_scale, clip,
            peer_shares).
        **market_kwargs: market configuration fields.
    """

    def __init__(
        self,
        n_markets: int = 1,
        strategy: bool = True,
        strategy_options: dict[str, Any] | None = None,
        observation_options: dict[str, Any] | None = None,
        **market_kwargs: Any,
    ) -> None:
        if isinstance(n_markets, bool) or not isinstance(n_markets, int) or n_markets < 1:
            raise ValueError(f"n_markets must be an integer >= 1, got {n_markets!r}")
        self.markets = [raw_env(**market_kwargs) for _ in range(n_markets)]
        first = self.markets[0]
        spec = first.market_spec
        self.n_learners = n = spec.n_learners
        self.features = ObservationFeatures(
            spec, first.config.max_steps, **(observation_options or {})
        )
        self.strategy = bool(strategy)
        self.knobs = (
            [StrategyKnobs(spec, k, **(strategy_options or {})) for k in range(n)]
            if strategy
            else None
        )
        action_space = self.knobs[0].space if strategy else first.action_space("learner_0")
        super().__init__(n_markets * n, self.features.space, action_space)
        self._market_seeds: list[int | None] = [None] * n_markets
        self._base_seeds: list[int | None] = [None] * n_markets
        self._unseeded = [0] * n_markets
        self._rngs = [[np.random.default_rng(0)] * n for _ in range(n_markets)]
        self._obs: list[dict] = [{} for _ in range(n_markets)]
        self._actions: np.ndarray | None = None

    # ----------------------------------------------------------------- seeding and reset
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds for the next reset: market ``m`` gets ``seed + m``."""
        if seed is None:
            return [None] * len(self.markets)
        self._market_seeds = [int(seed) + m for m in range(len(self.markets))]
        return list(self._market_seeds)

    def _reset_market(self, m: int, seed: int | None) -> None:
        market = self.markets[m]
        if seed is not None:
            self._base_seeds[m], self._unseeded[m] = seed, 0
        elif self._base_seeds[m] is None:
            self._base_seeds[m] = int(np.random.SeedSequence().generate_state(1)[0])
        else:
            self._unseeded[m] += 1
        self._obs[m], _ = market.reset(seed=seed)
        base, e = self._base_seeds[m], self._unseeded[m]
        self._rngs[m] = [
            np.random.default_rng(policy_seed(base, k, e)) for k in range(self.n_learners)
        ]

    def reset(self) -> np.ndarray:
        for m in range(len(self.markets)):
            self._reset_market(m, self._market_seeds[m])
        self._market_seeds = [None] * len(self.markets)
        self._reset_seeds()
        self._reset_options()
        return np.stack(
            [self._vector(m, k) for m in range(len(self.markets)) for k in range(self.n_learners)]
        )

    def _vector(self, m: int, k: int) -> np.ndarray:
        market = self.markets[m]
        shares = market.state_arrays.share[0] if self.features.peer_shares else None
        obs = self._obs[m][market.possible_agents[k]]
        return self.features.vector(obs, market.population.baseline_loss, shares)

    # ----------------------------------------------------------------- step
    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        actions, n = self._actions, self.n_learners
        if actions is None:
            raise RuntimeError("step_async() must come before step_wait()")
        obs_out = np.empty((self.num_envs, self.features.size), np.float32)
        rewards = np.empty(self.num_envs, np.float32)
        dones = np.zeros(self.num_envs, bool)
        infos: list[dict] = []
        for m, market in enumerate(self.markets):
            obs = self._obs[m]
            step_actions = {}
            for k, agent in enumerate(market.possible_agents):
                a = actions[m * n + k]
                if self.knobs is not None:
                    a = self.knobs[k].action(a, obs[agent], self._rngs[m][k])
                step_actions[agent] = a
            self._obs[m], r, _, trunc, info = market.step(step_actions)
            done = any(trunc.values())
            for k, agent in enumerate(market.possible_agents):
                i = m * n + k
                rewards[i] = r[agent]
                infos.append(dict(info[agent]))
                obs_out[i] = self._vector(m, k)
                if done:
                    dones[i] = True
                    infos[i]["TimeLimit.truncated"] = True
                    infos[i]["terminal_observation"] = obs_out[i].copy()
            if done:
                self._reset_market(m, None)
                for k in range(n):
                    obs_out[m * n + k] = self._vector(m, k)
        self._actions = None
        return obs_out, rewards, dones, infos

    # ----------------------------------------------------------------- VecEnv plumbing
    def _market_of(self, indices) -> list[raw_env]:
        return [self.markets[i // self.n_learners] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(m, attr_name) for m in self._market_of(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for m in self._market_of(indices):
            setattr(m, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        return [
            getattr(m, method_name)(*method_args, **method_kwargs) for m in self._market_of(indices)
        ]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def close(self) -> None:
        for m in self.markets:
            m.close()


def shared_policy_vec_env(n_markets: int = 1, monitor: bool = True, **kwargs: Any) -> VecEnv:
    """A :class:`MarketVecEnv` (keyword arguments as there), in a ``VecMonitor`` so that
    Stable-Baselines3 logs episode returns (``monitor=False`` leaves it out)."""
    venv = MarketVecEnv(n_markets=n_markets, **kwargs)
    return VecMonitor(venv) if monitor else venv
