"""``SingleLearner``: the market as a Gymnasium ``Env`` for one learner (the ego).

The agent controls learner ``ego``; every other learner follows a scripted policy (MSGD unless
told otherwise). Spaces are the market's own for that learner: the action is the ego's flat
market action ``[update | probe | peers | route_by_preference]`` and the observation its
``Dict`` observation (see :mod:`choicemarket.envs.market_v0`). The reward is the ego's market
reward (``reward="local"``, ``"global"`` or ``"share"``, minus ``probe_cost`` per query).
``terminated`` is True only when the ego leaves the market (``exit_share`` > 0); ``truncated``
is True at ``max_steps``. ``info`` is the ego's market info. Every market variant works:
learners that enter are played by their scripted policies from the step they enter (the ego
must be present from the start), and a collective (``collective_fraction`` > 0) plays
``opponents["collective"]`` (default: :class:`~choicemarket.baselines.FixedCollective`).

Seeding: ``reset(seed=s)`` seeds the market with ``s`` and resets opponent ``k`` with
``SeedSequence([s, k])`` (the same seeds :func:`choicemarket.simulate` gives policy ``k``), so
an episode here replays ``simulate`` with the same policies. ``reset()`` without a seed
continues the market's generator and gives the opponents seeds ``SeedSequence([s, k, e])``
for the e-th unseeded episode after the last seeded reset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from choicemarket.baselines import MSGD, FixedCollective
from choicemarket.baselines.msgd import learner_index
from choicemarket.baselines.seeding import EpisodeSeeds
from choicemarket.envs.checks import check_seed
from choicemarket.envs.market.collective import COLLECTIVE
from choicemarket.envs.market.spec import MarketSpec
from choicemarket.envs.market_v0 import raw_env
from choicemarket.envs.render import RENDER_FPS
from choicemarket.envs.views import SpecInfoAlias

from .batched import collective_actions, scripted_actions

__all__ = ["SingleLearner", "ego_and_opponents"]

OpponentsArg = Mapping[Any, Any] | Callable[[MarketSpec, int], Any] | None


class SingleLearner(SpecInfoAlias, gym.Env):
    """One learner of the market as a Gymnasium environment, the others scripted.

    Args:
        ego: the controlled learner (index or ``"learner_k"``), default 0.
        opponents: ``None`` (every other learner plays ``MSGD(spec)``), a factory
            ``(spec, k) -> policy`` called for each other learner ``k``, or a mapping from
            learner index / agent name to policy (missing learners play MSGD). A policy needs
            ``act(observation)`` and optionally ``reset(seed)``, e.g. ``MSGDP`` or ``NoUpdate``
            from :mod:`choicemarket.baselines`.
        market: an existing ``market_v0.raw_env`` to wrap instead of building one.
        render_mode: ``None``, ``"ansi"`` (the market table), ``"rgb_array"`` (an image of
            shares and accuracies over recent steps) or ``"human"`` (a window); see
            :mod:`choicemarket.envs.render`.
        **market_kwargs: fields of :class:`~choicemarket.envs.market.config.MarketConfig`.
    """

    metadata = {"render_modes": ["ansi", "rgb_array", "human"], "render_fps": RENDER_FPS}

    def __init__(
        self,
        ego: int | str = 0,
        opponents: OpponentsArg = None,
        market: raw_env | None = None,
        render_mode: str | None = None,
        **market_kwargs: Any,
    ) -> None:
        if market is None:
            market = raw_env(render_mode=render_mode, **market_kwargs)
        elif market_kwargs:
            raise ValueError("pass either market or market keyword arguments, not both")
        self.market = market
        self.render_mode = market.render_mode
        self.market_spec: MarketSpec = market.market_spec
        n = self.market_spec.n_learners
        self.ego, self.opponents = ego_and_opponents(market, ego, opponents)
        self.agent = market.possible_agents[self.ego]
        # policies by learner slot (None: the ego) for batched acting
        self._slot_policies = [self.opponents.get(a) for a in market.possible_agents[:n]]
        self._opponent_slots = [k for k in range(n) if k != self.ego]
        self.action_space = market.action_space(self.agent)
        self.observation_space = market.observation_space(self.agent)
        self._episodes = EpisodeSeeds()
        self._finished = True
        self._observations: dict = {}

    # ----------------------------------------------------------------- seeding
    def policy_seed(self, k: int) -> int:
        """The seed learner ``k``'s policy gets for the current episode."""
        return self._episodes.policy(k)

    # ----------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = check_seed(seed)
        super().reset(seed=seed)
        self._episodes.start(seed)
        observations, infos = self.market.reset(seed=seed, options=options)
        for a, policy in self.opponents.items():
            reset = getattr(policy, "reset", None)
            if reset is not None:
                reset(self.policy_seed(self.market.possible_agents.index(a)))
        self._observations = observations
        self._finished = False
        return self._ego_observation(), infos[self.agent]

    def step(self, action):
        if self._finished or not self.market.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        market = self.market
        # the ego's action is checked before any opponent acts (and draws from its generator)
        action = market.action_layout.validate(action, f"actions[{self.agent!r}]")
        # the opponents act as in the vector env, of which this is the one-market case
        rows = scripted_actions(market.core, self._slot_policies)
        names = market.possible_agents
        present = set(market.agents)
        actions = {names[k]: rows[k] for k in self._opponent_slots if names[k] in present}
        if COLLECTIVE in market.agents:
            actions[COLLECTIVE] = collective_actions(market.core, [self.opponents[COLLECTIVE]])[0]
        actions[self.agent] = action
        observations, rewards, terminations, truncations, infos = market.step(actions)
        self._observations = observations
        a = self.agent
        terminated = bool(terminations[a])
        self._finished = terminated or bool(truncations[a])  # the ego left, or time is up
        return (
            self._ego_observation(),
            float(rewards[a]),
            terminated,
            bool(truncations[a]),
            infos[a],
        )

    def _ego_observation(self) -> dict:
        """The ego's ``Dict`` observation: fresh copies of the market's arrays."""
        return {key: v.copy() for key, v in self._observations[self.agent].items()}

    def render(self) -> str | None:
        return self.market.render()

    def close(self) -> None:
        self.market.close()

    @property
    def observations(self) -> dict:
        """Every learner's latest observation (the ego's is the one returned)."""
        return self._observations


def ego_and_opponents(
    market: raw_env, ego: int | str, opponents: OpponentsArg
) -> tuple[int, dict[str, Any]]:
    """The checked ego index and the scripted policies, by agent name, of the other learners
    and the collective of ``market`` (arguments as :class:`SingleLearner`'s)."""
    if market.config.observation != "dict":
        raise ValueError(
            "observation must be 'dict' for the market of a SingleLearner (its scripted "
            "learners read the Dict); for a flat ego observation use FlatObservation "
            "(choicemarket/PlatformFlat-v0)"
        )
    n = market.market_spec.n_learners
    try:
        index = learner_index(ego, n)
    except ValueError:
        raise ValueError(
            f"ego must be a learner index in 0..{n - 1} or 'learner_k', got {ego!r}"
        ) from None
    if index >= market.config.n_learners:
        raise ValueError(
            f"ego must be present from the start, one of 0..{market.config.n_learners - 1}, "
            f"got {ego!r}"
        )
    return index, _opponents(market, index, opponents)


def _opponents(market: raw_env, ego: int, opponents: OpponentsArg) -> dict[str, Any]:
    spec = market.market_spec
    agents = [a for a in market.possible_agents if a != COLLECTIVE]
    others = [k for k in range(len(agents)) if k != ego]
    collective = {}
    if market.collective is not None:
        given = opponents.get(COLLECTIVE) if isinstance(opponents, Mapping) else None
        collective[COLLECTIVE] = given or FixedCollective(n_learners=len(agents))
    if opponents is None:
        return {**{agents[k]: MSGD(spec) for k in others}, **collective}
    if callable(opponents) and not isinstance(opponents, Mapping):
        return {**{agents[k]: opponents(spec, k) for k in others}, **collective}
    if not isinstance(opponents, Mapping):
        raise ValueError(
            "opponents must be None, a factory (spec, k) -> policy, or a mapping "
            f"{{learner index or name: policy}}; got {type(opponents).__name__}"
        )
    given = {}
    for key, policy in opponents.items():
        if key == COLLECTIVE:
            continue
        k = learner_index(key, len(agents))
        if k == ego:
            raise ValueError(f"opponents must not include the ego learner {agents[ego]!r}")
        given[agents[k]] = policy
    return {**{agents[k]: given.get(agents[k]) or MSGD(spec) for k in others}, **collective}
