"""Every learner of one or more markets as one Stable-Baselines3 ``VecEnv`` (a shared policy).

Entry ``i = m * n + k`` of the vector is learner slot ``k`` of market ``m``: all learners act
through the same policy (parameter sharing). Observations are the flat vectors of
:class:`~choicemarket.wrappers.ObservationFeatures`; actions are the strategy knobs of
:class:`~choicemarket.wrappers.StrategyKnobs` (``strategy=True``) or raw market actions.
Rewards are each learner's market reward. Every market advances in one call of the batched
:class:`~choicemarket.envs.market.core.MarketCore`, its learners' knobs turn into updates in
one :func:`~choicemarket.wrappers.strategy.knob_actions` call and their observations into
vectors in one :meth:`~choicemarket.wrappers.ObservationFeatures.vectors` call.

What a generic PettingZoo-to-VecEnv conversion lacks and this adds:

- ``seed(s)`` (called by ``PPO(..., seed=s)``): the next reset seeds market ``m`` with ``s + m``
  and learner ``k``'s knob generator with ``SeedSequence([s + m, k])``, so training is
  reproducible; a reset without a seed continues each market's generator;
- the episode end at ``max_steps`` is a truncation: ``dones`` is True with
  ``infos[i]["TimeLimit.truncated"] = True`` and ``infos[i]["terminal_observation"]``, so
  on-policy algorithms bootstrap from the value of the last state; every market then restarts
  (they run in step, so they end together).

Learners entering and leaving (``max_learners``, ``entries``, ``exit_share``): every slot is an
entry of the vector. A slot without a learner (not yet entered, or left) sees a zero
observation, gets reward 0 and ``infos[i]["active"] = False``; its actions are ignored. A
learner that leaves ends its entry's episode: ``dones[i]`` True with
``"TimeLimit.truncated"`` False and its last observation as ``"terminal_observation"``. The
zero stretch of an empty slot is an episode too: it ends (a truncation, terminal observation
zeros) when a learner enters the slot, whose first observation is then returned, or at the
market's end. ``VecMonitor`` therefore also logs empty stretches, with return 0. A collective
(``collective_fraction`` > 0) is scripted: ``collective`` policy, default
:class:`~choicemarket.baselines.FixedCollective`.

This is the only module of the package that imports Stable-Baselines3 (install the ``rl``
extra); ``choicemarket.wrappers`` loads it on first use of its names.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from choicemarket.baselines import FixedCollective
from choicemarket.baselines.seeding import EpisodeSeeds
from choicemarket.envs.checks import check_seed
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.core import MarketCore
from choicemarket.envs.market.metrics import market_events, market_infos

from .batched import collective_actions, ego_actions, observation_arrays
from .flat_observation import ObservationFeatures
from .strategy import StrategyKnobs

__all__ = ["MarketVecEnv", "shared_policy_vec_env"]


class MarketVecEnv(VecEnv):
    """``n_markets`` markets, each learner slot one entry of the vector.

    Args:
        n_markets: independent markets (num_envs = n_markets * n_learners, n_learners counting
            every slot when learners enter and leave).
        strategy: knob actions (True) or raw market actions (False).
        strategy_options: :class:`StrategyKnobs` options (eta, schedule, ...).
        observation_options: :class:`ObservationFeatures` options (param_scale, clip,
            peer_shares).
        collective: the collective's policy when ``collective_fraction`` > 0 (copied per
            market; default ``FixedCollective``).
        **market_kwargs: market configuration fields.
    """

    def __init__(
        self,
        n_markets: int = 1,
        strategy: bool = True,
        strategy_options: dict[str, Any] | None = None,
        observation_options: dict[str, Any] | None = None,
        collective: Any = None,
        **market_kwargs: Any,
    ) -> None:
        if isinstance(n_markets, bool) or not isinstance(n_markets, int) or n_markets < 1:
            raise ValueError(f"n_markets must be an integer >= 1, got {n_markets!r}")
        self.config = MarketConfig.from_kwargs(**market_kwargs)
        if n_markets > 1 and self.config.population_seed is None:
            raise ValueError(
                "population_seed must be an integer >= 0 when n_markets > 1: the markets "
                "share one population, got None"
            )
        self.core = MarketCore(self.config, n_markets)
        self.market_spec = spec = self.core.spec
        self.action_layout = spec.actions
        self.n_markets, self.n_learners = n_markets, (n := spec.n_learners)
        self.features = ObservationFeatures(
            spec, self.config.max_steps, **(observation_options or {})
        )
        self.strategy = bool(strategy)
        self.knobs = (
            [StrategyKnobs(spec, k, **(strategy_options or {})) for k in range(n)]
            if strategy
            else None
        )
        self._row_knobs = None if self.knobs is None else self.knobs * n_markets
        action_space = self.knobs[0].space if strategy else spec.actions.space()
        self.render_mode = None
        super().__init__(n_markets * n, self.features.space, action_space)
        self._collective = None
        if self.core.collective is not None:
            given = collective or FixedCollective(n_learners=n)
            self._collective = [copy.deepcopy(given) for _ in range(n_markets)]
        self._market_seeds: list[int | None] = [None] * n_markets
        self._episodes = [EpisodeSeeds() for _ in range(n_markets)]
        self._rngs = [np.random.default_rng(0)] * (n_markets * n)
        self._obs: dict[str, np.ndarray] = {}
        self._vectors = np.zeros((self.num_envs, self.features.size), np.float32)
        self._actions: np.ndarray | None = None

    # ----------------------------------------------------------------- seeding and reset
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds for the next reset: market ``m`` gets ``seed + m``."""
        seed = check_seed(seed)
        if seed is None:
            return [None] * self.n_markets
        self._market_seeds = [int(seed) + m for m in range(self.n_markets)]
        return list(self._market_seeds)

    def reset(self) -> np.ndarray:
        self._reset_markets(self._market_seeds)
        self._market_seeds = [None] * self.n_markets
        self._reset_seeds()
        self._reset_options()
        return self._observe()

    def _reset_markets(self, seeds: list[int | None]) -> None:
        """Restart every market: a seed starts its generator and policy seeds afresh, None
        continues them (the e-th unseeded episode)."""
        n = self.n_learners
        for m, seed in enumerate(seeds):
            episode = self._episodes[m]
            episode.start(seed)
            for k in range(n):
                self._rngs[m * n + k] = np.random.default_rng(episode.policy(k))
            if self._collective is not None and hasattr(self._collective[m], "reset"):
                self._collective[m].reset(episode.policy(n))
        for m, episode in enumerate(self._episodes):
            self.core.gens.adopt(m, episode.generator)
        self.core.reset()  # continues the generators just set

    def _active(self) -> np.ndarray:
        """(M n,) bool: the slots with a learner."""
        core = self.core
        if core.active is None:
            return np.ones(self.num_envs, bool)
        return core.active.reshape(-1).copy()

    def _observe(self, keep: np.ndarray | None = None) -> np.ndarray:
        """Flat observations of every slot, zeros for empty ones (``keep``: the slots whose
        observation is kept although empty now, the learners that just left)."""
        core = self.core
        self._obs = observation_arrays(core)
        shares = None
        if self.features.peer_shares:
            shares = np.repeat(core.state.share, self.n_learners, 0)
        vectors = self.features.vectors(self._obs, core.population.baseline_loss, shares)
        empty = ~self._active()
        if keep is not None:
            empty &= ~keep
        vectors[empty] = 0.0
        self._vectors = vectors
        return vectors.copy()

    # ----------------------------------------------------------------- step
    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        actions, core = self._actions, self.core
        if actions is None:
            raise RuntimeError("step_async() must come before step_wait()")
        self._actions = None  # a rejected step changes nothing else
        M, n = self.n_markets, self.n_learners
        before = self._active()
        shape, rows = (self.num_envs, *self.action_space.shape), np.flatnonzero(before)
        market_actions = ego_actions(
            actions, shape, self.action_layout, rows, self._row_knobs, self._obs, self._rngs
        )
        coll = collective_actions(core, self._collective) if self._collective else None
        reward, _ = core.advance(market_actions.reshape(M, n, -1), coll)
        after = self._active()
        last = self._vectors
        obs = self._observe(keep=before & ~after)
        rewards = np.where(before, reward.reshape(-1), 0.0).astype(np.float32)
        left, entered = before & ~after, after & ~before
        truncated = core.state.step >= self.config.max_steps
        dones = left | entered | truncated
        infos = self._infos(before | after)
        for i in np.flatnonzero(dones).tolist():
            time_limit = truncated or bool(entered[i])
            terminal = last[i] if entered[i] else obs[i]
            infos[i]["TimeLimit.truncated"] = time_limit and not left[i]
            infos[i]["terminal_observation"] = terminal.copy()
        obs[left] = 0.0  # a slot left empty
        self._vectors[left] = 0.0
        if truncated:
            self._reset_markets([None] * M)
            obs = self._observe()
        return obs, rewards, dones, infos

    def _infos(self, present: np.ndarray) -> list[dict]:
        """Each slot's market info (``{"active": False}`` for a slot without a learner)."""
        core, n = self.core, self.n_learners
        active = self._active()
        events = market_events(core)
        infos: list[dict] = []
        for m in range(self.n_markets):  # info dicts are per entry: built market by market
            rows = market_infos(core, m, events[m])
            for k in range(n):
                i = m * n + k
                info = rows[k] if present[i] else {}
                info["active"] = bool(active[i])
                infos.append(info)
        return infos

    # ----------------------------------------------------------------- VecEnv plumbing
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """The attribute of this environment, once per index (every entry shares it)."""
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        return [
            getattr(self, method_name)(*method_args, **method_kwargs)
            for _ in self._get_indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def close(self) -> None:
        pass


def shared_policy_vec_env(n_markets: int = 1, monitor: bool = True, **kwargs: Any) -> VecEnv:
    """A :class:`MarketVecEnv` (keyword arguments as there), in a ``VecMonitor`` so that
    Stable-Baselines3 logs episode returns (``monitor=False`` leaves it out)."""
    venv = MarketVecEnv(n_markets=n_markets, **kwargs)
    return VecMonitor(venv) if monitor else venv
