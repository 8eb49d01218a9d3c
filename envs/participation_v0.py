"""Participation v0: sub-populations spread their participation over learners (Dean et al. 2024).

Description
    A population-level market. Sub-populations j have masses beta_j (summing to 1) and risks
    R_j(theta): ``risk="quadratic"``: ``||theta - phi_j||^2 + sigma^2``; ``"least_squares"``:
    the mean squared error of a linear model on group j's real users (e.g. the embedded census
    people grouped by race or area). Each sub-population spreads its participation over the
    learners with an allocation alpha_j in the simplex. Each step every learner moves its
    parameters, then every sub-population updates by multiplicative weights with rate eps:
    ``alpha_ji <- alpha_ji (1 - eps)^{R_j(theta_i)}``, renormalised over i. Stable equilibria are
    segmented: each sub-population ends on a single learner.

Agents
    ``learner_0 .. learner_{n-1}``, all with the same spaces.

Action space
    ``Box(d,)`` float32 in ``[-max_update, max_update]``: the update added to the parameters
    (clipped). NaN/inf or a wrong shape raise ``ValueError``. The baselines
    (:mod:`choicemarket.baselines.participation`) retrain exactly or take one gradient step.

Observation space
    ``Dict`` of float32 ``Box``es:

    - ``params`` (d,): the learner's parameters;
    - ``masses`` (J,): its allocation-weighted mass per sub-population, ``beta_j alpha_ji``;
    - ``group_risks`` (J,): ``R_j(theta_i)`` of its model for every sub-population;
    - ``risk`` (1,): its local risk ``sum_j beta_j alpha_ji R_j(theta_i) / share_i`` (its
      full-population risk when its share is 0);
    - ``share`` (1,): ``share_i = sum_j beta_j alpha_ji``; ``step`` (1,): steps since reset.

    With ``observation="flat"`` one float32 ``Box`` with finite bounds instead: ``[params (d)
    | share | risk | masses (J) | group_risks (J) | progress]``, parameters clipped to
    [-10, 10], risks to [0, 100], progress = step / max_steps (the table is in
    :mod:`choicemarket.envs.participation.observation`).

State
    ``env.state()`` / ``env.state_space``: every learner's parameters, share, local and
    full-population risk, the allocations alpha (J x n), the total risk and the progress, as
    one float32 ``Box`` with finite bounds.

Rewards
    For the action at step t, measured after the sub-populations have responded to it:
    ``"local"``: minus the local risk; ``"global"``: minus the model's full-population risk
    ``sum_j beta_j R_j(theta_i)``; ``"total"``: minus the total risk
    ``sum_j beta_j sum_i alpha_ji R_j(theta_i)`` (the same for every learner); ``"share"``: its
    share.

Infos
    ``local_risk``, ``global_risk``, ``share``, ``total_risk`` (the same for every agent),
    ``segmented`` (every sub-population has more than 0.99 of its mass on one learner).

Episode end
    Truncation after ``max_steps`` steps; no termination.

Arguments
    Every field of :class:`~choicemarket.envs.participation.config.ParticipationConfig` as
    a keyword argument, plus ``render_mode``: ``None``, ``"ansi"`` (a text table),
    ``"rgb_array"`` (an image of every learner's share and local risk over the last 200
    steps) or ``"human"`` (that image in a window; the table without a display).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from .checks import numeric_array
from .participation.config import ParticipationConfig
from .participation.core import ParticipationCore
from .participation.observation import ParticipationFeatures, ParticipationStateFeatures
from .render import RENDER_FPS, Renderer, Rendering, Trace, draw
from .views import CoreViews

__all__ = ["env", "parallel_env", "raw_env"]

SEGMENTED = 0.99  # an allocation above this on one learner counts as segmented


class raw_env(Rendering, CoreViews, ParallelEnv):  # noqa: N801  (PettingZoo naming)
    """Participation dynamics as a PettingZoo ``ParallelEnv`` (one market of the core)."""

    metadata = {
        "name": "participation_v0",
        "render_modes": ["ansi", "rgb_array", "human"],
        "render_fps": RENDER_FPS,
        "is_parallelizable": True,
    }

    def __init__(self, render_mode: str | None = None, **kwargs) -> None:
        self._renderer = Renderer(
            render_mode, self._text, self._image, "participation_v0.parallel_env"
        )
        self.render_mode = render_mode
        self._trace = Trace()
        self._figures: dict[str, np.ndarray] = {}
        self.config = ParticipationConfig.from_kwargs(**kwargs)
        self.core = ParticipationCore(self.config, n_markets=1)
        self.market_spec = self.core.spec
        pop = self.core.population
        self.possible_agents = [f"learner_{k}" for k in range(self.config.n_learners)]
        self.agents: list[str] = []
        self._index = {a: k for k, a in enumerate(self.possible_agents)}
        d, J, bound = pop.dim, pop.n_groups, self.config.max_update
        self._action_space = spaces.Box(-bound, bound, shape=(d,), dtype=np.float32)
        inf = np.float32(np.inf)
        self._observation_space = spaces.Dict(
            {
                "params": spaces.Box(-inf, inf, shape=(d,), dtype=np.float32),
                "masses": spaces.Box(0.0, 1.0, shape=(J,), dtype=np.float32),
                "group_risks": spaces.Box(0.0, inf, shape=(J,), dtype=np.float32),
                "risk": spaces.Box(0.0, inf, shape=(1,), dtype=np.float32),
                "share": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
                "step": spaces.Box(0.0, float(self.config.max_steps), (1,), np.float32),
            }
        )
        n, T = self.config.n_learners, self.config.max_steps
        self.features: ParticipationFeatures | None = None  # the flat layout, if chosen
        if self.config.observation == "flat":
            self.features = ParticipationFeatures(d, J, T)
            self._observation_space = self.features.space
        self._state = ParticipationStateFeatures(d, J, n, T)
        self.state_space = self._state.space

    def observation_space(self, agent: str) -> spaces.Space:
        self._check_agent(agent)
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Box:
        self._check_agent(agent)
        return self._action_space

    def _check_agent(self, agent: str) -> None:
        if agent not in self._index:
            raise ValueError(f"agent must be one of {self.possible_agents}, got {agent!r}")

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` seeds the market's one ``numpy.random.Generator``."""
        self.core.reset(seed)
        self.agents = list(self.possible_agents)
        m = self._measure()
        self._trace.clear()
        self._record()
        return self._observations(m), self._infos(m)

    def step(self, actions: dict):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        if not isinstance(actions, Mapping):
            raise ValueError(
                f"actions must be a dict {{agent: action}}, got {type(actions).__name__}"
            )
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(
                f"actions must be a dict with an action for every agent; missing {missing}"
            )
        d = self.core.population.dim
        updates = np.empty((1, len(self.agents), d))
        for k, a in enumerate(self.agents):
            updates[0, k] = _validated(actions[a], d, a)
        state = self.core.step(updates)
        truncated = state.step >= self.config.max_steps
        agents = self.agents
        m = self._measure()
        observations = self._observations(m)
        infos = self._infos(m)
        key = {"local": "local_risk", "global": "global_risk", "total": "total_risk"}
        if self.config.reward == "share":
            rewards = {a: infos[a]["share"] for a in agents}
        else:
            rewards = {a: -infos[a][key[self.config.reward]] for a in agents}
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        if truncated:
            self.agents = []
        self._record()
        return observations, rewards, terminations, truncations, infos

    def _measure(self) -> dict[str, np.ndarray]:
        """Per-learner figures of the current state (market 0), computed once per step."""
        s, masses = self.core.state, self.core.population.masses
        self._figures = {
            "weights": s.weights(masses)[0],
            "local": s.local_risk(masses)[0],
            "global": s.global_risk(masses)[0],
            "share": s.share(masses)[0],
            "total": s.total_risk(masses)[0],
        }
        return self._figures

    def _observations(self, m: dict[str, np.ndarray]) -> dict:
        s = self.core.state
        f32 = np.float32
        stacked = {
            "params": s.theta[0],
            "masses": m["weights"],
            "group_risks": s.risks[0].T,
            "risk": m["local"][:, None],
            "share": m["share"][:, None],
        }
        present = [(k, a) for k, a in enumerate(self.possible_agents) if a in self.agents]
        if self.features is not None:
            flat = self.features.vectors({**stacked, "step": np.full(len(s.theta[0]), s.step)})
            return {a: flat[k] for k, a in present}
        stacked = {key: v.astype(f32) for key, v in stacked.items()}
        step = np.array([s.step], f32)
        return {a: {**{key: v[k] for key, v in stacked.items()}, "step": step} for k, a in present}

    def state(self) -> np.ndarray:
        """The global state (``state_space``; see
        :mod:`choicemarket.envs.participation.observation`): every learner's parameters,
        share and risks, the allocations, the total risk and the episode's progress."""
        if self.core.state is None:
            raise RuntimeError("state() needs a running episode; call reset() first")
        return self._state.vector(self.core.state, self._figures)

    def _infos(self, m: dict[str, np.ndarray]) -> dict:
        local, glob, share = m["local"].tolist(), m["global"].tolist(), m["share"].tolist()
        total = float(m["total"])
        segmented = bool((self.core.state.alpha[0].max(-1) > SEGMENTED).all())
        return {
            a: {
                "local_risk": local[k],
                "global_risk": glob[k],
                "share": share[k],
                "total_risk": total,
                "segmented": segmented,
            }
            for k, a in enumerate(self.possible_agents)
            if a in self.agents
        }

    def _record(self) -> None:
        """Keep this step's shares and local risks for the image; refresh the window."""
        if not self._renderer.records:
            return
        f = self._figures
        self._trace.add(self.core.state.step, share=f["share"], risk=f["local"])
        if self.render_mode == "human":
            self._renderer.render()

    def _image(self) -> np.ndarray:
        """Shares and local risks over the recent steps."""
        t, s = self._trace, self.core.state
        if s is None:
            return draw("market not reset", [], [("share", np.empty((0, 0)), (0, 1))], [])
        return draw(
            f"participation ({self.config.risk}): step {s.step}, total risk "
            f"{float(self._figures['total']):.4f}",
            list(t.steps),
            [("share", t.series("share"), (0.0, 1.0)), ("local risk", t.series("risk"), None)],
            self.possible_agents,
        )

    def _text(self) -> str:
        """The text table of ``"ansi"``."""
        s = self.core.state
        if s is None:
            return "market not reset"
        masses, pop = self.core.population.masses, self.core.population
        local, share = s.local_risk(masses)[0], s.share(masses)[0]
        lines = [f"step {s.step}  total risk {float(s.total_risk(masses)[0]):.4f}"]
        lines.append(f"{'learner':<12}{'share':>8}{'risk':>10}  params")
        for k, a in enumerate(self.possible_agents):
            params = np.array2string(s.theta[0, k], precision=3, suppress_small=True)
            lines.append(f"{a:<12}{share[k]:>8.3f}{local[k]:>10.4f}  {params}")
        for j, name in enumerate(pop.names):
            alloc = np.array2string(s.alpha[0, j], precision=3, suppress_small=True)
            lines.append(f"{name:<12} mass {masses[j]:.3f} allocation {alloc}")
        return "\n".join(lines)


def _validated(action, d: int, agent: str) -> np.ndarray:
    return numeric_array(action, (d,), f"actions[{agent!r}]")


def parallel_env(**kwargs) -> raw_env:
    """Participation dynamics as a PettingZoo ``ParallelEnv``."""
    return raw_env(**kwargs)


def env(**kwargs):
    """Participation dynamics as a PettingZoo ``AECEnv`` (parallel-to-AEC conversion)."""
    return parallel_to_aec(raw_env(**kwargs))
