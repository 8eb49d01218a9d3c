"""Market v0: learners (platforms) compete for users who choose among them.

Description
    Each step a batch of ``users_per_step`` (B) users is drawn from the training population.
    Each user picks a learner: under ``choice_rule="preference_or_loss"`` its preferred learner
    with probability ``preference_weight`` (tau), otherwise the learner whose current model
    gives it the lowest loss; under ``"loss_or_uniform"`` a uniformly random learner with
    probability ``uniform_weight``, otherwise the lowest-loss one (ties: lowest index); under
    ``"logit"`` learner k with probability proportional to
    ``exp((-loss_k + loyalty_bonus [k = preferred]) / temperature)``; under
    ``"multiplicative_weights"`` from its preference group's allocation, updated each step by
    ``alpha_jk <- alpha_jk (1 - mw_rate)^{R_jk}``. ``user_types`` fixes a fraction of users as
    loyal, quality-seeking, random or collective; with ``outside_threshold`` users whom every
    learner serves worse than the threshold leave (unserved) and return at ``return_rate``
    per step (see :mod:`choicemarket.envs.market.choice`). Every choice rule composes with
    learners entering and leaving, the collective and the outside option. A learner
    sees only the users who chose it. Its action moves its parameters and may ask to probe
    peer models (pseudo-label covariates with their predictions).

Agents
    ``learner_0 .. learner_{n-1}``, all with the same spaces (parameter sharing works). When
    learners may enter and leave (``max_learners``, ``entries``, ``exit_share``; see
    :mod:`choicemarket.envs.market.entry_exit`) ``possible_agents`` lists every slot
    ``learner_0 .. learner_{max_learners-1}`` and ``agents`` the learners present: an entrant
    (``entries`` or ``env.add_learner``) is in ``agents`` with an observation from the step it
    enters; a learner that leaves (its share below ``exit_share`` for ``exit_patience`` steps)
    gets ``terminated=True`` on that step and is gone from ``agents`` after it. Inactive
    learners are never chosen nor probed.

Action space
    ``Box(n_params + n_learners + 2,)`` float32, see :mod:`choicemarket.envs.market.actions`:
    ``[update | probe | peers | route_by_preference]``. The update (bounded by ``max_update``,
    clipped) is added to the parameters. Probe requests are answered with the models that
    served the current batch; the response appears in the next observation and is kept until
    the next request. A request at the first step is the paper's offline probing; later
    requests are online probing. Build and read actions with ``env.action_layout.build`` /
    ``.parse``. NaN/inf or a wrong shape raise ``ValueError``.

Observation space
    ``Dict`` of ``Box`` (float32); a learner sees only its own data:

    - ``params`` (n_params,): its parameters, the (o, d) matrix flattened row-major;
    - ``covariates`` (B, d), ``targets`` (B, t), ``mask`` (B,): the current batch with the
      users who chose it at their batch positions (``mask`` 1) and zeros in every other
      position (targets: the label, P(y=1), one-hot, or for the masked multi-output loss
      the ratings followed by per-output weights, 0 where unrated);
    - ``probe_covariates`` (N_probe, d), ``probe_targets`` (N_probe, t), ``probe_mask``
      (N_probe,): the last probe response (all zero before any);
    - ``share`` (1,): the fraction of the batch that chose it; ``local_loss`` (1,): the mean
      loss of its model on those users; ``step`` (1,): steps since reset.

    With ``observation="flat"`` a learner's observation is one float32 ``Box`` with finite
    bounds instead (for MLP policies, SuperSuit, RLlib, TorchRL), computed from the ``Dict`` by
    :class:`~choicemarket.envs.market.observation.ObservationFeatures` (``user_stats=True``;
    P = n_params, d = n_features, t = target_dim, L0 = the baseline's test loss):

    ============  =====  ==========  =======================================================
    entry         size   bounds      value
    ============  =====  ==========  =======================================================
    params        P      [-10, 10]   its parameters
    share         1      [0, 1]      its share of the batch (its users / B)
    local_loss    1      [0, 10]     its mean loss on its users / L0
    probe_held    1      [0, 1]      1 if a probe response is held
    probe_loss    1      [0, 10]     its mean loss on the held probe set / L0 (0 if none)
    progress      1      [0, 1]      step / max_steps
    x_mean        d      [-10, 10]   mean covariates of its users (0 if none)
    x_std         d      [0, 10]     their standard deviation
    y_mean        t      [-10, 10]   mean targets of its users
    y_std         t      [0, 10]     their standard deviation
    probe_x_mean  d      [-10, 10]   mean covariates of the held probe set
    probe_y_mean  t      [-10, 10]   mean pseudo-label targets of the held probe set
    ============  =====  ==========  =======================================================

    Entries are clipped into their bounds. The collective's ``Dict`` is flattened
    (``gymnasium.spaces.flatten``). Scripted policies (MSGD, MSGD-P) read the ``Dict``.

State
    ``env.state()`` and ``env.state_space``: the global state for centralised critics, a
    float32 ``Box`` with finite bounds (``StateFeatures`` in
    :mod:`choicemarket.envs.market.observation`): every slot's parameters, share, local loss
    and last test loss (over L0), test accuracy, probe held, peer queries of its last action
    and presence; the unserved fraction of the batch, the progress, the age of the test
    figures; with a collective its success per learner and its members' fraction.

Rewards
    For the action at step t, measured on the batch of step t+1 that chose among the updated
    models: ``"local"``: minus the learner's mean loss on the users who chose it (its mean loss
    over the whole batch if nobody did); ``"global"``: minus the updated model's mean loss over
    the held-out test users; ``"share"``: its market share of the batch. Minus ``probe_cost``
    per peer query made by the action (a routed query counts 1, a median over S peers S).

Infos
    ``global_loss``, ``global_accuracy`` (nan for regression), ``gap`` (global loss minus the
    baseline's), ``accuracy_gap`` (baseline accuracy minus its accuracy), ``baseline_loss``,
    ``baseline_accuracy``, ``local_loss``, ``share``, ``users``, ``probe_queries``,
    ``social_cost`` (the mean loss the batch's users get at the learners they chose, the same
    for every agent; users served by nobody add nothing), ``eval_step``. With an outside
    option (``outside_threshold``) also ``unserved_fraction`` (of the batch), ``outside_fraction``
    (of the training population), ``group_unserved`` and ``group_outside`` (the same for the
    users who prefer this learner). When learners can enter and leave also
    ``active_learners`` and ``events`` (this step's entries and exits, each
    ``{step, kind, agent, parent, users}``, kind ``"clone"``, ``"fresh"``, ``"exit"`` or
    ``"skip"``). Global figures are refreshed every ``eval_every`` steps,
    at the last step and every step under ``reward="global"``; ``eval_step`` says when. The
    baseline is the regularised ERM on the whole training population evaluated on the test
    users.

Collective (optional, ``collective_fraction = alpha > 0``)
    An extra agent ``"collective"`` (Hardt et al., 2023; see ``envs/market/collective.py``):
    each arriving user, and each covariate drawn for a probe, is a member with probability
    alpha. Action ``MultiDiscrete([3, n_learners + 1, n_labels])``: ``[strategy, destination,
    label]`` with strategy 0 none, 1 plant (members present ``(g(x), y*)``), 2 erase (members
    present ``(g(x), f0(x))``); destination 0 as usual, ``1 + k`` every member goes to learner
    k; label y*. ``g(x)`` sets the ``collective_signal`` coordinates. Learners train on what
    members present; peers answer probes on it too, so a probed planted learner passes the
    signal on. An action applies from the next batch on; before the first, members act as
    ordinary users. Observation ``Dict``: ``planting_success``, ``erasing_success``, ``share``
    (n,), ``members`` (fraction of the batch), ``step``. Reward: the current strategy's success
    on the held-out users (never members) at the destination learner, or the mean over
    learners when members choose as usual, 0 with no strategy; refreshed with the global
    figures (every ``eval_every`` steps). Infos: ``planting_success`` and
    ``erasing_success`` per learner, ``success``, ``member_loss`` (members' loss on their true
    data at the learner they chose), ``nonmember_loss``, ``members``, ``strategy``,
    ``destination``, ``label``.

Episode end
    Truncation after ``max_steps`` steps; termination only for a learner that leaves the
    market (``exit_share`` > 0).

Arguments
    Every field of :class:`~choicemarket.envs.market.config.MarketConfig` as a keyword argument,
    flat or in one mapping per component (``choice={...}``, ``entry_exit={...}``, see
    ``GROUPS``), plus ``render_mode``: ``None``, ``"ansi"`` (a text table),
    ``"rgb_array"`` (an (H, W, 3) uint8 image of every learner's share and test accuracy, or
    test loss for regression, over the last 200 steps) or ``"human"`` (that image in a
    matplotlib window; without a display the text table is printed); see
    :mod:`choicemarket.envs.render`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from .market import collective as _collective
from .market.config import MarketConfig
from .market.core import MarketCore
from .market.metrics import market_events, market_infos
from .market.observation import (
    ObservationFeatures,
    RowObservation,
    StateFeatures,
    stacked_observation,
)
from .render import RENDER_FPS, Renderer, Rendering, Trace, draw
from .views import CoreViews

__all__ = ["env", "parallel_env", "raw_env"]


class raw_env(Rendering, CoreViews, ParallelEnv):  # noqa: N801  (PettingZoo naming)
    """The market as a PettingZoo ``ParallelEnv`` (one market of :class:`MarketCore`)."""

    metadata = {
        "name": "market_v0",
        "render_modes": ["ansi", "rgb_array", "human"],
        "render_fps": RENDER_FPS,
        "is_parallelizable": True,
    }

    def __init__(self, render_mode: str | None = None, **kwargs) -> None:
        self._renderer = Renderer(render_mode, self._text, self._image, "market_v0.parallel_env")
        self.render_mode = render_mode
        self._trace = Trace()
        self.config = MarketConfig.from_kwargs(**kwargs)
        self.core = MarketCore(self.config, n_markets=1)
        self.market_spec = spec = self.core.spec
        self.action_layout = spec.actions
        self.possible_agents = [f"learner_{k}" for k in range(spec.n_learners)]
        self.agents: list[str] = []
        self._index = {a: k for k, a in enumerate(self.possible_agents)}
        self.collective = self.core.collective  # None unless collective_fraction > 0
        self.features: ObservationFeatures | None = None  # the flat layout, if chosen
        if self.config.observation == "flat":
            self.features = ObservationFeatures(spec, self.config.max_steps, user_stats=True)
        if self.collective is not None:
            self.possible_agents = [*self.possible_agents, _collective.COLLECTIVE]
            self._collective_dict = _collective.observation_space(spec, self.config.max_steps)
            self._collective_space = self._collective_dict
            if self.features is not None:
                self._collective_space = spaces.flatten_space(self._collective_dict)
        self._action_space = spec.actions.space()
        self._observation_space = (
            self._make_observation_space() if self.features is None else self.features.space
        )
        self._state = StateFeatures(spec, self.config.max_steps, self.collective is not None)
        self.state_space = self._state.space
        self._probe_cache: dict = {}
        self._off_rows: np.ndarray | None = None  # 'off' actions of every slot

    # ----------------------------------------------------------------- spaces
    def _make_observation_space(self) -> spaces.Dict:
        """The ``Dict`` observation space of ``observation="dict"``."""
        s, c = self.market_spec, self.config
        inf = np.float32(np.inf)
        tlow = 0.0 if s.family.is_classification else -inf
        thigh = 1.0 if s.family.is_classification else inf
        B, Np, d, t = s.users_per_step, s.probe_size, s.n_features, s.target_dim

        def box(shape, low=-inf, high=inf):
            return spaces.Box(low=low, high=high, shape=shape, dtype=np.float32)

        return spaces.Dict(
            {
                "params": box((s.n_params,)),
                "covariates": box((B, d)),
                "targets": box((B, t), tlow, thigh),
                "mask": box((B,), 0.0, 1.0),
                "probe_covariates": box((Np, d)),
                "probe_targets": box((Np, t), tlow, thigh),
                "probe_mask": box((Np,), 0.0, 1.0),
                "share": box((1,), 0.0, 1.0),
                "local_loss": box((1,), 0.0, inf),
                "step": box((1,), 0.0, float(c.max_steps)),
            }
        )

    def observation_space(self, agent: str) -> spaces.Space:
        if agent == _collective.COLLECTIVE and self.collective is not None:
            return self._collective_space
        self._check_agent(agent)
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Box:
        if agent == _collective.COLLECTIVE and self.collective is not None:
            return self.collective.space
        self._check_agent(agent)
        return self._action_space

    def _check_agent(self, agent: str) -> None:
        if agent not in self._index:
            raise ValueError(f"agent must be one of {self.possible_agents}, got {agent!r}")

    # ----------------------------------------------------------------- API
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` seeds the market's one ``numpy.random.Generator``."""
        self.core.reset(seed)
        self._probe_cache = {}  # the cache holds per-episode arrays
        self.agents = list(self.possible_agents)
        if self.core.entry is not None:  # learners entering and leaving: the active ones
            on = self.active_mask
            self.agents = [
                a for a in self.possible_agents if a not in self._index or on[self._index[a]]
            ]
        self._trace.clear()
        self._record()
        return self._observations(), self._infos()

    def step(self, actions: dict):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        layout = self.action_layout
        if type(actions) is not dict and not isinstance(actions, Mapping):
            raise ValueError(
                f"actions must be a dict {{agent: action}}, got {type(actions).__name__}"
            )
        learners = [a for a in self.agents if a != _collective.COLLECTIVE]
        wanted = learners if self.collective is None else [*learners, _collective.COLLECTIVE]
        missing = [a for a in wanted if a not in actions]
        if missing:
            raise ValueError(
                f"actions must be a dict with an action for every agent; missing {missing}"
            )
        # every action is checked before anything changes
        stacked = layout.validate_many(
            [actions[a] for a in learners], (f"actions[{a!r}]" for a in learners)
        )
        collective_action = None
        if self.collective is not None:
            name = _collective.COLLECTIVE
            collective_action = self.collective.validate(actions[name], f"actions[{name!r}]")[None]
        core, cfg = self.core, self.config
        if core.entry is not None:  # learners entering and leaving: 'off' rows for absentees
            stacked = self._full_actions(stacked, learners)
        reward, _ = core.advance(stacked[None], collective_action)
        state = core.state
        truncated = state.step >= cfg.max_steps
        left = () if core.entry is None else self._entries_and_exits()
        agents = self.agents
        observations = self._observations()
        infos = self._infos()
        reward = reward[0].tolist()
        rewards = {a: reward[self._index[a]] for a in agents if a in self._index}
        if self.collective is not None:
            rewards[_collective.COLLECTIVE] = float(self.collective.reward()[0])
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        if left:  # learners that left at this step: terminated, then gone from agents
            terminations.update(dict.fromkeys(left, True))
            self.agents = [a for a in agents if a not in left]
        if truncated:
            self.agents = []
        self._record()
        return observations, rewards, terminations, truncations, infos

    def _full_actions(self, stacked: np.ndarray, learners: list[str]) -> np.ndarray:
        """The (n_slots, A) action array with 'off' rows for learners not present."""
        if self._off_rows is None:
            n = self.market_spec.n_learners
            self._off_rows = np.tile(self.action_layout.build(), (n, 1))
        full = self._off_rows.astype(np.float64)
        full[[self._index[a] for a in learners]] = stacked
        return full

    def _entries_and_exits(self) -> tuple[str, ...]:
        """Add this step's entrants to ``agents``; return the agents leaving at this step."""
        events = self.core.entry.step_events
        names = self.possible_agents
        entered = {names[e["learner"]] for e in events if e["kind"] in ("clone", "fresh")}
        if entered:
            order = self.possible_agents.index
            self.agents = sorted(set(self.agents) | entered, key=order)
        return tuple(names[e["learner"]] for e in events if e["kind"] == "exit")

    def add_learner(self, kind: str = "clone", parent: int | str | None = None) -> str:
        """Ask for a learner to enter at the next ``step()``: a ``"clone"`` of ``parent``
        (index or agent name; it takes a ``clone_share`` of the parent's loyal users) or a
        ``"fresh"`` start. Returns the agent name it will have; it is in ``agents``, with an
        observation, from the next step on. Needs a free slot (``max_learners``)."""
        if isinstance(parent, str):
            if parent not in self._index:
                raise ValueError(f"parent must be one of {self.agents}, got {parent!r}")
            parent = self._index[parent]
        if not self.agents:
            raise ValueError("add_learner needs a running episode; call reset() first")
        return self.possible_agents[self.core.add_learner(kind, parent)]

    @property
    def active_mask(self) -> np.ndarray:
        """(n_slots,) bool: which learners are in the market now (all, when the set is fixed)."""
        if self.core.entry is None:
            return np.ones(len(self.possible_agents), bool)
        return self.core.entry.active[0].copy()

    @property
    def events(self) -> list[dict]:
        """Entries and exits so far this episode (``{step, kind, agent, parent, users}``)."""
        return market_events(self.core, episode=True)[0]

    def _observations(self) -> dict:
        core = self.core
        if self.features is None:
            obs = learner_observations(core, 0, self._probe_cache)
        else:
            obs = self.features.vectors(stacked_observation(core), core.population.baseline_loss)
        out = {a: o for a, o in zip(self.possible_agents, obs) if a in self.agents}
        if self.collective is not None and self.agents:
            s = core.state
            c = _collective.observation(self.collective, s.counts, s.step)
            if self.features is not None:
                c = spaces.flatten(self._collective_dict, c).astype(np.float32)
            out[_collective.COLLECTIVE] = c
        return out

    def state(self) -> np.ndarray:
        """The global state (``state_space``; the table of
        :class:`~choicemarket.envs.market.observation.StateFeatures`): every learner's
        parameters, share, losses, accuracy, probing and presence, the episode's progress."""
        if self.core.state is None:
            raise RuntimeError("state() needs a running episode; call reset() first")
        return self._state.vector(self.core, self.core.population.baseline_loss)

    def _infos(self) -> dict:
        """Per-agent info dicts (``metrics.market_infos`` of this market), and the
        collective's."""
        present = set(self.agents)
        metrics = market_infos(self.core, 0)
        infos = {a: metrics[k] for k, a in enumerate(self._index) if a in present}
        if self.collective is not None and self.agents:
            infos[_collective.COLLECTIVE] = self.collective.info(0)
        return infos

    def _record(self) -> None:
        """Keep this step's shares and accuracies (test losses for regression) for the image,
        and refresh the window under ``"human"``."""
        if not self._renderer.records:
            return
        s = self.core.state
        off = ~self.active_mask
        share = np.where(off, np.nan, s.share[0])
        quality = s.global_accuracy[0] if self._classification else s.global_loss[0]
        self._trace.add(s.step, share=share, quality=np.where(off, np.nan, quality))
        if self.render_mode == "human":
            self._renderer.render()

    @property
    def _classification(self) -> bool:
        return self.market_spec.family.is_classification

    def _image(self) -> np.ndarray:
        """Shares and test accuracies (test losses for regression) over the recent steps."""
        if self.core.state is None:
            return draw("market not reset", [], [("share", np.empty((0, 0)), (0, 1))], [])
        learners = [a for a in self.possible_agents if a in self._index]
        t, s = self._trace, self.core.state
        label, ylim = ("test accuracy", (0.0, 1.0)) if self._classification else ("test loss", None)
        return draw(
            f"{self.config.dataset}: step {s.step} (test figures from step {s.eval_step})",
            list(t.steps),
            [("share", t.series("share"), (0.0, 1.0)), (label, t.series("quality"), ylim)],
            learners,
        )

    def _text(self) -> str:
        """The text table of ``"ansi"``."""
        s, pop = self.core.state, self.core.population
        if s is None:
            return "market not reset"
        lines = [
            f"step {s.step}  (global figures from step {s.eval_step}; baseline loss "
            f"{pop.baseline_loss:.4f}" + _acc(pop.baseline_accuracy) + ")",
            f"{'learner':<12}{'share':>8}{'users':>7}{'local':>10}{'global':>10}{'acc':>8}"
            f"{'gap':>10}{'probe':>7}",
        ]
        active = self.active_mask
        for k, a in enumerate(self._index):
            if not active[k]:
                continue
            acc = s.global_accuracy[0, k]
            lines.append(
                f"{a:<12}{s.share[0, k]:>8.3f}{s.counts[0, k]:>7d}{s.local_loss[0, k]:>10.4f}"
                f"{s.global_loss[0, k]:>10.4f}"
                + (f"{acc:>8.3f}" if not math.isnan(acc) else f"{'-':>8}")
                + f"{s.global_loss[0, k] - pop.baseline_loss:>10.4f}"
                + f"{'yes' if s.probe_valid[0, k] else '-':>7}"
            )
        if self.collective is not None:
            c = _collective.info(self.collective)
            lines.append(
                f"collective: {c['strategy']} -> "
                f"{'as usual' if c['destination'] is None else c['destination']}, "
                f"label {c['label']}, members {c['members']}, planting success "
                + " ".join(f"{v:.3f}" for v in c["planting_success"])
            )
        return "\n".join(lines)


def learner_observations(
    core: MarketCore, m: int = 0, cache: dict | None = None
) -> list[RowObservation]:
    """Every learner slot's observation in market ``m`` (float32 arrays; see the module
    docstring): the rows of :func:`~choicemarket.envs.market.observation.stacked_observation`.
    ``cache`` keeps read-only float32 copies of the probe responses between calls until they
    change."""
    return RowObservation.rows(stacked_observation(core, m, dtype=np.float32, cache=cache))


def _acc(acc: float) -> str:
    return "" if math.isnan(acc) else f", accuracy {acc:.3f}"


def parallel_env(**kwargs) -> raw_env:
    """The market as a PettingZoo ``ParallelEnv``."""
    return raw_env(**kwargs)


def env(**kwargs):
    """The market as a PettingZoo ``AECEnv`` (parallel-to-AEC conversion)."""
    return parallel_to_aec(raw_env(**kwargs))
