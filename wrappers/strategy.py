"""Strategy-level actions: a few interpretable knobs instead of raw parameter coordinates.

The agent picks four numbers in ``[-1, 1]`` each step (``Box(-1, 1, (4,), float32)``):

====  ==============  =====================================================================
 i    knob            meaning
====  ==============  =====================================================================
 0    step size       multiplier ``2 ** (step_range * a0)`` of the base step size ``eta``
                      (default ``step_range = 2``: from ``eta / 4`` to ``4 eta``; 0 gives eta)
 1    probing weight  ``p = p_max (a1 + 1) / 2`` in ``[0, p_max]`` (default ``p_max = 2``:
                      -1 gives 0, i.e. plain MSGD; 0 gives 1)
 2    probe now       request a probe of peer models this step when ``a2 > 0``
 3    whom to probe   ``a3`` split into ``n + 1`` equal bins over ``[-1, 1]``: bin 0 routes
                      each probed covariate to the learner its user prefers; bin 1 asks all
                      learners (median, itself included); bin ``1 + i`` asks the i-th other
                      learner (in index order)
====  ==============  =====================================================================

The update is MSGD-P's: ``theta <- theta - m eta_t ((g + p h) / (1 + p) + lambda theta)``, ``g``
the mean gradient on the learner's users, ``h`` the mean gradient on ``probe_batch_size``
points resampled from the held probe response (``g`` alone while none is held or p = 0),
computed by :func:`~choicemarket.baselines.msgd.msgd_update`, MSGD-P's own update. With ``a0 = 0``,
``a1`` giving MSGD-P's ``p`` and the same probe requests, the trajectory is MSGD-P's bit for
bit (same seed). Use :meth:`StrategyKnobs.encode` to build knobs from these quantities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from choicemarket.baselines.msgd import SCHEDULES, msgd_update, probe_counts, probe_rows
from choicemarket.envs.checks import MAX_MAGNITUDE, is_integer, is_real, numeric_array
from choicemarket.envs.market.spec import MarketSpec

__all__ = ["StrategyActions", "StrategyKnobs", "knob_actions"]

N_KNOBS = 4


class StrategyKnobs:
    """Turns knob vectors into market actions for learner ``agent`` (see the module docstring).

    Args:
        spec: the market's :class:`MarketSpec`.
        agent: the learner's index.
        eta, l2, schedule: MSGD's base step size, L2 weight (``None``: the market's) and
            schedule (``"constant"`` or ``"inv_sqrt"``).
        probe_batch_size: b_p points resampled from the probe response each step.
        step_range: the step-size knob spans ``2 ** [-step_range, step_range]``.
        p_max: the largest probing weight.
    """

    def __init__(
        self,
        spec: MarketSpec,
        agent: int,
        eta: float = 0.01,
        l2: float | None = None,
        schedule: str = "constant",
        probe_batch_size: int = 150,
        step_range: float = 2.0,
        p_max: float = 2.0,
    ) -> None:
        l2 = spec.l2 if l2 is None else l2
        # bounded so that the update eta 2^step_range (g + p h) / (1 + p) stays finite
        limits = (("eta", eta, MAX_MAGNITUDE), ("step_range", step_range, 64.0))
        for name, v, high in (*limits, ("p_max", p_max, MAX_MAGNITUDE)):
            if not (is_real(v) and 0 < v <= high):
                raise ValueError(
                    f"{name} must be a finite number > 0 (at most {high:g}), got {v!r}"
                )
        if not (is_real(l2) and 0 <= l2 <= MAX_MAGNITUDE):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if not is_integer(probe_batch_size) or probe_batch_size < 1:
            raise ValueError(f"probe_batch_size must be an integer >= 1, got {probe_batch_size!r}")
        n = spec.n_learners
        self.spec, self.agent = spec, int(agent)
        self.eta, self.schedule = float(eta), schedule
        self.probe_batch_size = int(probe_batch_size)
        self.step_range, self.p_max = float(step_range), float(p_max)
        self.l2 = float(l2)
        self._l2 = np.array([[[self.l2]]])  # float64 like MSGD's batched constants
        # probe targets: (peers, route_by_preference)
        self.targets: list[tuple[tuple[int, ...], bool]] = [((), True), (tuple(range(n)), False)]
        self.targets += [((j,), False) for j in range(n) if j != self.agent]
        # the flag part [probe | peers | route] of a probing action, one row per target
        flags = [
            spec.actions.build(None, True, *t)[spec.actions.probe_index :] for t in self.targets
        ]
        self.flags = np.array(flags)
        self.flags.flags.writeable = False
        self.space = spaces.Box(-1.0, 1.0, (N_KNOBS,), np.float32)

    # ----------------------------------------------------------------- knobs
    def decode(self, knobs: np.ndarray) -> tuple[float, float, bool, tuple[tuple[int, ...], bool]]:
        """(step multiplier, p, probe?, (peers, route_by_preference)) of a knob vector."""
        mult, p, probe, target = self.decode_many(self.validate(knobs)[None])
        return float(mult[0]), float(p[0]), bool(probe[0]), self.targets[int(target[0])]

    def decode_many(
        self, knobs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Row-wise :meth:`decode` of validated knobs (K, 4): step multipliers
        ``2 ** (step_range a0)``, ``p = p_max (a1 + 1) / 2``, probe ``a2 > 0`` and the index
        of the target bin in :attr:`targets`, each (K,)."""
        mult = 2.0 ** (self.step_range * knobs[:, 0])
        p = self.p_max * (knobs[:, 1] + 1.0) / 2.0
        T = len(self.targets)
        target = np.minimum(((knobs[:, 3] + 1.0) / 2.0 * T).astype(np.intp), T - 1)
        return mult, p, knobs[:, 2] > 0, target

    def encode(
        self,
        step_multiplier: float = 1.0,
        p: float = 0.0,
        probe: bool = False,
        target: str | int = "preference",
    ) -> np.ndarray:
        """Knobs for the given quantities; ``target`` is ``"preference"``, ``"all"`` or a peer's
        index. ``p`` and the multiplier are exact when the knob value is a dyadic fraction
        (e.g. p in {0, 0.25, 0.5, 1, 1.5} with the default ``p_max``)."""
        n = self.spec.n_learners
        if target == "preference":
            i = 0
        elif target == "all":
            i = 1
        elif isinstance(target, int) and target != self.agent and 0 <= target < n:
            i = 2 + target - (target > self.agent)
        else:
            raise ValueError(
                f"target must be 'preference', 'all' or another learner's index, got {target!r}"
            )
        T = len(self.targets)
        return np.array(
            [  # knob values as the decoder reads them
                math.log2(step_multiplier) / self.step_range,
                2.0 * p / self.p_max - 1.0,
                1.0 if probe else -1.0,
                -1.0 + (2 * i + 1) / T,
            ],
            dtype=np.float32,
        )

    def validate(self, knobs: object) -> np.ndarray:
        """Knobs as a float64 array clipped to [-1, 1]; ``ValueError`` naming ``action`` for
        a wrong shape or type, NaN, inf or a number too large for a float."""
        return np.clip(numeric_array(knobs, (N_KNOBS,), "action"), -1.0, 1.0)

    # ----------------------------------------------------------------- the update
    def action(
        self,
        knobs: np.ndarray,
        observation: Mapping[str, np.ndarray],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """The market action for ``knobs`` given the learner's observation; ``rng`` draws the
        probe batch (only when p > 0 and a probe response is held)."""
        batch = {key: np.asarray(v)[None] for key, v in observation.items()}
        return knob_actions([self], self.validate(knobs)[None], batch, [rng])[0]


def knob_actions(
    rows: Sequence[StrategyKnobs],
    knobs: np.ndarray,
    observations: Mapping[str, np.ndarray],
    rngs: Sequence[np.random.Generator],
) -> np.ndarray:
    """Market actions (K, A) float32 of K learners turning validated ``knobs`` (K, 4) into
    MSGD-P updates (see the module docstring); :meth:`StrategyKnobs.action` is the K = 1 case.

    ``rows[i]`` is row i's :class:`StrategyKnobs` (all with the options of ``rows[0]``; only
    the probe targets differ by learner), ``observations`` its ``Dict`` observation with a
    leading axis K (float32, as the market gives it) and ``rngs[i]`` the generator of its
    probe batch.
    """
    first, obs = rows[0], observations
    spec, layout = first.spec, first.spec.actions
    K, P = len(knobs), layout.n_params
    mult, p, probe, target = first.decode_many(knobs)
    theta = obs["params"].reshape(K, *spec.param_shape)
    probes = []
    held = np.count_nonzero(obs["probe_mask"], axis=1)
    mixing = np.flatnonzero((p > 0) & (held > 0))
    if len(mixing):  # each learner draws its probe batch from its own generator
        b = np.stack([probe_rows(rngs[i], held[i], first.probe_batch_size) for i in mixing])
        PX, PT = obs["probe_covariates"][mixing], obs["probe_targets"][mixing]
        probes.append((mixing, PX, PT, p[mixing], probe_counts(b, PX.shape[1], PX.dtype)))
    neg_eta = (-first.eta * mult)[:, None, None]
    if first.schedule == "inv_sqrt":
        neg_eta = neg_eta / np.sqrt(obs["step"][:, :1].astype(np.float64) + 1.0)[:, :, None]
    update = msgd_update(
        spec.family,
        theta,
        obs["covariates"],
        obs["targets"],
        obs["mask"],
        probes,
        first._l2,
        neg_eta,
    ).reshape(K, P)
    actions = np.tile(layout.build(), (K, 1))
    actions[:, :P] = np.clip(update, -layout.max_update, layout.max_update)
    probing = np.flatnonzero(probe)
    if len(probing):
        flags = [rows[i].flags[target[i]] for i in probing.tolist()]
        actions[probing, P:] = flags
    return actions


class StrategyActions(gym.Wrapper):
    """Knob actions for a :class:`~choicemarket.wrappers.SingleLearner` (see the module
    docstring for the knobs). The probe-batch generator of the ego is reseeded at every
    reset with the seed the ego's policy would get (``SingleLearner.policy_seed``), so fixed
    knobs replay MSGD-P exactly.

    Args:
        env: a ``SingleLearner`` (possibly wrapped by observation-only wrappers).
        **options: :class:`StrategyKnobs` options (eta, l2, schedule, probe_batch_size,
            step_range, p_max).
    """

    def __init__(self, env: gym.Env, **options: Any) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not hasattr(base, "policy_seed"):
            raise ValueError("env must be a SingleLearner (or wrap one)")
        self.knobs = StrategyKnobs(base.market_spec, base.ego, **options)
        self.action_space = self.knobs.space
        self.rng = np.random.default_rng(0)
        self._obs: Mapping[str, np.ndarray] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        base = self.env.unwrapped
        self.rng = np.random.default_rng(base.policy_seed(base.ego))
        self._obs = base.observations[base.agent]
        return obs, info

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        base = self.env.unwrapped
        market_action = self.knobs.action(action, self._obs, self.rng)
        out = self.env.step(market_action)
        self._obs = base.observations[base.agent]
        return out
