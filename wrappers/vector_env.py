"""The single-learner views over M markets as one Gymnasium ``VectorEnv`` (one core call a step).

``gymnasium.make_vec("choicemarket:choicemarket/Platform-v0", num_envs=M)`` (or the ``Flat``
and ``Strategy`` ids) returns a :class:`PlatformVectorEnv`: sub-environment m is the ego of
market m, exactly as ``gymnasium.make`` of the same id reset with the same seed (same
observations, rewards, terminations, truncations and infos), but all markets advance in one
call of the batched :class:`~choicemarket.envs.market.core.MarketCore` and the scripted
opponents of every market act in one :func:`~choicemarket.baselines.msgd.act_arrays` call.

Conventions are Gymnasium 1.x's (those of ``SyncVectorEnv``):

- ``reset(seed=s)`` seeds sub-environment m with ``s + m``; a list gives one seed each; ``None``
  continues each market's generator (fresh entropy on the first reset).
  ``options={"reset_mask": mask}`` resets only the masked sub-environments;
- next-step autoreset: the step after a sub-environment terminates or truncates resets it
  (the action is ignored; reward 0, not done, the reset's observation and info);
- infos are dicts of arrays over the sub-environments with ``_key`` masks.

Markets that start their episodes at the same step share one core (the usual case: every
episode lasts ``max_steps``). A market whose episode ends early (the ego leaves the market,
``exit_share`` > 0) or that is reset alone restarts in a core of its own phase; its place in the
old core is simulated on a throwaway generator with 'off' actions until that core's episode
ends. With ``population_seed=None`` each market draws its own population from its seed, so each
market has a core of its own (M core calls a step).

The ego observation, opponents' actions and seeds come from the functions the single views use
(a single view is their M = 1 case): :func:`~choicemarket.wrappers.batched.observation_arrays`
(the ``Dict`` observation of ``market_v0`` for a learner of every market),
:func:`~choicemarket.wrappers.batched.scripted_actions` (policies' actions for rows of many
markets), :func:`~choicemarket.wrappers.batched.ego_actions` (the egos' checked actions),
:meth:`ObservationFeatures.vectors <choicemarket.wrappers.ObservationFeatures.vectors>`,
:func:`~choicemarket.wrappers.strategy.knob_actions` and
:func:`~choicemarket.baselines.seeding.policy_seed`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from choicemarket.baselines.seeding import EpisodeSeeds
from choicemarket.envs.checks import check_seed, is_integer
from choicemarket.envs.market.collective import COLLECTIVE
from choicemarket.envs.market.core import MarketCore
from choicemarket.envs.market.metrics import market_events, market_infos
from choicemarket.envs.market_v0 import raw_env

from .batched import collective_actions, ego_actions, observation_arrays, scripted_actions
from .factories import _FLAT, _SINGLE, _STRATEGY, _take
from .flat_observation import ObservationFeatures
from .single_learner import OpponentsArg, ego_and_opponents
from .strategy import StrategyKnobs

__all__ = [
    "PlatformVectorEnv",
    "platform_flat_vec_env",
    "platform_strategy_vec_env",
    "platform_vec_env",
]

MODES = ("raw", "flat", "strategy")


# --------------------------------------------------------------------- the vector env
class _Phase:
    """Markets ``markets`` (global indices) of one core, at the same step of their episodes;
    ``live[j]`` False once market ``markets[j]`` has moved on to another core."""

    def __init__(self, core: MarketCore, markets: np.ndarray) -> None:
        self.core, self.markets = core, markets
        self.live = np.ones(len(markets), bool)
        self.caches: list[dict] = [{} for _ in markets]


class PlatformVectorEnv(gym.vector.VectorEnv):
    """The ego learner of ``num_envs`` markets, the other learners scripted (see the module
    docstring).

    Args:
        num_envs: markets (sub-environments), >= 1.
        mode: ``"raw"`` (``choicemarket/Platform-v0``: market actions, ``Dict``
            observations), ``"flat"`` (``PlatformFlat-v0``) or ``"strategy"``
            (``PlatformStrategy-v0``: knob actions, flat observations).
        ego, opponents: as :class:`~choicemarket.wrappers.SingleLearner`; a mapping of policy
            objects is copied for every market after the first (each draws from its own
            generator).
        observation_options: ``param_scale``, ``clip``, ``peer_shares`` (flat observations).
        strategy_options: :class:`~choicemarket.wrappers.StrategyKnobs` options.
        **market_kwargs: market configuration fields.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        mode: str = "raw",
        ego: int | str = 0,
        opponents: OpponentsArg = None,
        observation_options: Mapping[str, Any] | None = None,
        strategy_options: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **market_kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if render_mode is not None:
            raise ValueError(f"render_mode must be None for the vector env, got {render_mode!r}")
        self.num_envs, self.mode = num_envs, mode
        template = raw_env(**market_kwargs)
        self.config, self.market_spec = template.config, template.market_spec
        scripted = []  # each market's policies (given policy objects copied after the first)
        for m in range(num_envs):
            copied = m > 0 and isinstance(opponents, Mapping)
            given = copy.deepcopy(opponents) if copied else opponents
            self.ego, policies = ego_and_opponents(template, ego, given)
            scripted.append(policies)
        n = self.market_spec.n_learners
        names = template.possible_agents
        self._policies = [[policies.get(names[k]) for k in range(n)] for policies in scripted]
        self._collective = [policies.get(COLLECTIVE) for policies in scripted]
        self.features = self.knobs = None
        space = template.observation_space(names[self.ego])
        if mode != "raw":
            self.features = ObservationFeatures(
                self.market_spec, self.config.max_steps, **dict(observation_options or {})
            )
            space = self.features.space
        action_space = template.action_space(names[self.ego])
        if mode == "strategy":
            self.knobs = StrategyKnobs(self.market_spec, self.ego, **dict(strategy_options or {}))
            action_space = self.knobs.space
        self.single_observation_space, self.single_action_space = space, action_space
        self.observation_space = batch_space(space, num_envs)
        self.action_space = batch_space(action_space, num_envs)
        self.render_mode = None
        M = num_envs
        self._episodes = [EpisodeSeeds() for _ in range(M)]
        self._knob_rngs = [np.random.default_rng(0)] * M
        self._phases: list[_Phase] = []
        self._phase_of = np.zeros(M, np.intp)  # market -> index into _phases
        self._slot_of = np.zeros(M, np.intp)  # market -> its row in that phase's core
        self._autoreset = np.zeros(M, bool)
        self._dict_obs: dict[str, np.ndarray] | None = None
        self._flat: np.ndarray | None = None
        self._infos: list[dict] = [{} for _ in range(M)]

    # ----------------------------------------------------------------- reset
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options=None):
        M = self.num_envs
        seeds = self._seeds(seed)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(M, bool)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (M,)):
            raise ValueError(f"options['reset_mask'] must be a bool numpy array of shape ({M},)")
        elif not mask.any():
            raise ValueError("options['reset_mask'] must be True for at least one environment")
        if options:
            raise ValueError(f"options may only hold 'reset_mask', got {sorted(options)}")
        super().reset(seed=int(seed) if is_integer(seed) else None)
        if self._dict_obs is None and not mask.all():
            raise ValueError("the first reset must reset every environment (no reset_mask)")
        self._restart(np.flatnonzero(mask), [seeds[m] for m in np.flatnonzero(mask)])
        self._autoreset[mask] = False
        return self._output_obs(), self._vector_infos(np.flatnonzero(mask))

    def _seeds(self, seed) -> list[int | None]:
        M = self.num_envs
        if seed is None:
            return [None] * M
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + m for m in range(M)]
        elif isinstance(seed, Sequence) and len(seed) == M:
            seeds = list(seed)
        else:
            raise ValueError(f"seed must be None, an integer or a list of {M} integers or None")
        return [check_seed(v) for v in seeds]

    def _restart(self, markets: np.ndarray, seeds: list[int | None]) -> None:
        """Start new episodes in ``markets``, seeded as the single environment's reset."""
        for phase_index, slot in zip(self._phase_of[markets], self._slot_of[markets]):
            if phase_index < len(self._phases):  # leave the old core on a throwaway generator
                phase = self._phases[phase_index]
                if phase.live[slot]:
                    phase.live[slot] = False
                    phase.core.gens.adopt(slot, np.random.default_rng(0))
        for m, seed in zip(markets.tolist(), seeds):
            self._episodes[m].start(seed)
        self._phases = [p for p in self._phases if p.live.any()]
        groups = [markets] if self.config.population_seed is not None else markets[:, None]
        for group in groups:
            core = MarketCore(self.config, n_markets=len(group))
            for j, m in enumerate(group.tolist()):
                core.gens.adopt(j, self._episodes[m].generator)
            core.reset()  # continues the generators just set
            self._phases.append(_Phase(core, group))
        for i, phase in enumerate(self._phases):
            self._phase_of[phase.markets] = i
            self._slot_of[phase.markets] = np.arange(len(phase.markets))
        n = self.market_spec.n_learners
        for m in markets.tolist():
            for k, policy in enumerate(self._policies[m]):
                if policy is not None and hasattr(policy, "reset"):
                    policy.reset(self._episodes[m].policy(k))
            coll = self._collective[m]
            if coll is not None and hasattr(coll, "reset"):
                coll.reset(self._episodes[m].policy(n))
            self._knob_rngs[m] = np.random.default_rng(self._episodes[m].policy(self.ego))
        for phase in self._phases[len(self._phases) - len(groups) :]:
            self._record(phase, np.ones(len(phase.markets), bool))

    # ----------------------------------------------------------------- step
    def step(self, actions):
        if self._dict_obs is None:
            raise RuntimeError("call reset() before step()")
        M = self.num_envs
        stepping = ~self._autoreset
        shape = (M, *self.single_action_space.shape)
        knobs = None if self.knobs is None else [self.knobs] * M
        market_actions = ego_actions(  # raises before any change
            actions,
            shape,
            self.market_spec.actions,
            np.flatnonzero(stepping),
            knobs,
            self._dict_obs,
            self._knob_rngs,
        )
        rewards = np.zeros(M, np.float64)
        terminated = np.zeros(M, bool)
        truncated = np.zeros(M, bool)
        restarting = np.flatnonzero(self._autoreset)
        if len(restarting):
            self._restart(restarting, [None] * len(restarting))
        n, ego = self.market_spec.n_learners, self.ego
        for phase in list(self._phases):
            live = phase.live.copy()
            live[np.isin(phase.markets, restarting)] = False  # just started: not stepped
            if not live.any():
                continue
            core, markets = phase.core, phase.markets
            pols = [
                None if not live[j] else p
                for j, m in enumerate(markets.tolist())
                for p in self._policies[m]
            ]
            acts = scripted_actions(core, pols, live, phase.caches)
            Mp = len(markets)
            acts = acts.reshape(Mp, n, -1)
            at = np.flatnonzero(live)
            acts[at, ego] = market_actions[markets[at]]
            coll = collective_actions(core, [self._collective[m] for m in markets], live)
            was = None if core.active is None else core.active[:, ego].copy()
            reward, _ = core.advance(acts, coll)
            rewards[markets[at]] = reward[at, ego]
            if was is not None:
                terminated[markets[at]] = (was & ~core.active[:, ego])[at]
            truncated[markets[at]] = core.state.step >= self.config.max_steps
            self._record(phase, live)
        self._autoreset = terminated | truncated
        return self._output_obs(), rewards, terminated, truncated, self._vector_infos(range(M))

    # ----------------------------------------------------------------- outputs
    def _record(self, phase: _Phase, rows: np.ndarray) -> None:
        """Store the ego observation and info of ``phase``'s markets ``rows`` (bool)."""
        core, ego = phase.core, self.ego
        obs = observation_arrays(core, ego)
        at = np.flatnonzero(rows)
        markets = phase.markets[at]
        if self._dict_obs is None:
            self._dict_obs = {
                key: np.zeros((self.num_envs, *v.shape[1:]), v.dtype) for key, v in obs.items()
            }
            self._flat = (
                None
                if self.features is None
                else np.zeros((self.num_envs, self.features.size), np.float32)
            )
        for key, v in obs.items():
            self._dict_obs[key][markets] = v[at]
        if self.features is not None:
            shares = core.state.share[at] if self.features.peer_shares else None
            sub = {key: v[at] for key, v in obs.items()}
            self._flat[markets] = self.features.vectors(sub, core.population.baseline_loss, shares)
        events = market_events(core)
        for j, m in zip(at.tolist(), markets.tolist()):
            self._infos[m] = market_infos(core, j, events[j])[ego]

    def _output_obs(self):
        if self.features is None:
            return {key: v.copy() for key, v in self._dict_obs.items()}
        return self._flat.copy()

    def _vector_infos(self, markets) -> dict:
        infos: dict = {}
        for m in markets:
            infos = self._add_info(infos, self._infos[m], int(m))
        return infos

    def close_extras(self, **kwargs: Any) -> None:
        self._phases = []


# --------------------------------------------------------------------- entry points
def platform_vec_env(num_envs: int = 1, **kwargs: Any) -> PlatformVectorEnv:
    """``make_vec("choicemarket/Platform-v0", num_envs=M)``: raw actions, ``Dict``
    observations."""
    single = _take(kwargs, _SINGLE)
    return PlatformVectorEnv(num_envs, "raw", **single, **kwargs)


def platform_flat_vec_env(num_envs: int = 1, **kwargs: Any) -> PlatformVectorEnv:
    """``make_vec("choicemarket/PlatformFlat-v0", num_envs=M)``: raw actions, flat
    observations."""
    single, flat = _take(kwargs, _SINGLE), _take(kwargs, _FLAT)
    return PlatformVectorEnv(num_envs, "flat", observation_options=flat, **single, **kwargs)


def platform_strategy_vec_env(num_envs: int = 1, **kwargs: Any) -> PlatformVectorEnv:
    """``make_vec("choicemarket/PlatformStrategy-v0", num_envs=M)``: knob actions, flat
    observations."""
    strategy, flat = _take(kwargs, _STRATEGY), _take(kwargs, _FLAT)
    single = _take(kwargs, _SINGLE)
    return PlatformVectorEnv(
        num_envs,
        "strategy",
        observation_options=flat,
        strategy_options=strategy,
        **single,
        **kwargs,
    )
