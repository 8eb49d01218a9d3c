"""MSGD and MSGD-P as scripted policies (Narang et al., Algorithms 1 and 2).

MSGD:   ``theta <- theta - eta_t (g + lambda theta)``, ``g`` the mean loss gradient over the
        users who chose the learner this step (zero if none), ``eta_t = eta`` or
        ``eta / sqrt(t + 1)``.
MSGD-P: the same with direction ``(g + p h) / (1 + p)``, ``h`` the mean gradient on ``b_p``
        points resampled with replacement from the last probe response (``g`` alone while no
        response is held). Probes are requested at the first step (offline probing) and, if
        ``probe_every`` is set, every ``probe_every`` steps after it (online probing).

Policies act on one observation (``act``) or on many learners at once (``act_batch``), and
draw only from their own ``numpy.random.Generator`` seeded by ``reset(seed)``.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from choicemarket.envs.checks import is_integer, is_real
from choicemarket.envs.market.losses import mean_gradient, weighted_mean_gradient
from choicemarket.envs.market.observation import OBSERVATION_KEYS, RowObservation
from choicemarket.envs.market.spec import MarketSpec, require_market_spec

SCHEDULES = ("constant", "inv_sqrt")
BLOCK = 16  # probe-batch draws made at once (see MSGD.uniforms)
SCENARIOS = ("preference_aware", "market_leader", "majority_good", "partial")


class MSGD:
    """Multi-learner streaming gradient descent for one learner.

    Args:
        spec: the market's :class:`MarketSpec` (``env.market_spec``).
        eta: base step size (> 0).
        l2: L2 weight lambda (>= 0); ``None`` uses the market's ``l2``.
        schedule: ``"constant"`` (eta) or ``"inv_sqrt"`` (eta / sqrt(t + 1)).
    """

    probe_batch_size = 0  # MSGD mixes in no probe batch ...
    probe_every: int | None = None  # ... and never probes

    def __init__(
        self,
        spec: MarketSpec,
        eta: float = 0.01,
        l2: float | None = None,
        schedule: str = "constant",
    ) -> None:
        spec = require_market_spec(spec, type(self).__name__)
        if not (is_real(eta) and eta > 0):
            raise ValueError(f"eta must be a finite number > 0, got {eta!r}")
        l2 = spec.l2 if l2 is None else l2
        if not (is_real(l2) and l2 >= 0):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.spec, self.eta, self.l2, self.schedule = spec, float(eta), float(l2), schedule
        self.p = 0.0
        self.rng = np.random.default_rng()
        self._block: np.ndarray | None = None  # uniforms drawn ahead from ``rng``
        self._block_rng: np.random.Generator | None = None
        self._used = 0
        self._group: _Blocks | None = None  # the blocks drawn with other policies

    def reset(self, seed: int | None = None) -> None:
        """Seed the policy's generator (MSGD itself draws nothing)."""
        self.rng = np.random.default_rng(seed)

    def uniforms(self, size: int) -> np.ndarray:
        """The next ``size`` uniforms of this policy's stream, drawn from ``rng`` ``BLOCK``
        calls at a time: the same numbers as one ``rng.random(size)`` per call."""
        self._leave_group()
        block = self._block
        if block is None or self._block_rng is not self.rng or self._used == BLOCK:
            self._block = block = self.rng.random((BLOCK, size))
            self._block_rng, self._used = self.rng, 0
        elif block.shape[1] != size:
            raise ValueError(f"size must stay {block.shape[1]} within a block, got {size!r}")
        self._used += 1
        return block[self._used - 1]

    def _leave_group(self) -> None:
        """Continue alone from where the group's blocks are (the group stops serving)."""
        group = self._group
        if group is not None:
            self._used, group.members, self._group = group.used, (), None

    def step_size(self, t: int) -> float:
        return self.eta if self.schedule == "constant" else self.eta / math.sqrt(t + 1)

    def probe_request(self, t: int) -> tuple[bool, tuple[int, ...], bool]:
        """(probe?, peers, route_by_preference) for step ``t``: MSGD never probes."""
        return False, (), False

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """The action for one learner's observation."""
        return act_batch([self], [observation])[0]

    def describe(self) -> str:
        return f"MSGD(eta={self.eta}, l2={self.l2}, schedule={self.schedule})"


class MSGDP(MSGD):
    """MSGD with peer-model probing for learner ``agent``.

    Args:
        spec, eta, l2, schedule: as :class:`MSGD`.
        agent: this learner's index (or ``"learner_k"``).
        p: probing weight (>= 0); 0 makes the policy MSGD that never probes.
        scenario: whom to query: ``"preference_aware"`` (each covariate to the learner its user
            prefers), ``"market_leader"`` (``leader``), ``"majority_good"`` (median of all
            learners; the learner itself only if ``include_self``), ``"partial"`` (median of
            ``peers``).
        probe_batch_size: b_p points resampled from the probe set each step.
        probe_every: ``None`` probes once, at the first step (offline probing, as the paper);
            k > 0 probes again every k steps (online probing).
        include_self: include this learner in the majority-good median (the published
            experiments did).
        seed: seed of the probe-batch generator (``reset(seed)`` reseeds).
    """

    def __init__(
        self,
        spec: MarketSpec,
        agent: int | str,
        p: float = 0.1,
        scenario: str = "preference_aware",
        eta: float = 0.01,
        l2: float | None = None,
        schedule: str = "constant",
        leader: int = 0,
        peers: Iterable[int] | None = None,
        include_self: bool = True,
        probe_batch_size: int = 150,
        probe_every: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(spec, eta=eta, l2=l2, schedule=schedule)
        n = spec.n_learners
        k = learner_index(agent, n)
        if not (is_real(p) and p >= 0):
            raise ValueError(f"p must be a finite number >= 0, got {p!r}")
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
        if scenario == "market_leader" and not 0 <= leader < n:
            raise ValueError(f"leader must be a learner index in 0..{n - 1}, got {leader!r}")
        if scenario == "partial":
            if peers is None or not list(peers):
                raise ValueError("peers must name at least one learner for scenario='partial'")
            peers = tuple(sorted({int(j) for j in peers}))
            if peers[0] < 0 or peers[-1] >= n:
                raise ValueError(f"peers must be learner indices in 0..{n - 1}")
        if not is_integer(probe_batch_size) or probe_batch_size < 1:
            raise ValueError(f"probe_batch_size must be an integer >= 1, got {probe_batch_size!r}")
        if probe_every is not None and (not is_integer(probe_every) or probe_every < 1):
            raise ValueError(f"probe_every must be None or an integer >= 1, got {probe_every!r}")
        self.agent, self.p, self.scenario = k, float(p), scenario
        self.leader, self.include_self = int(leader), bool(include_self)
        self.probe_batch_size = int(probe_batch_size)
        self.probe_every = None if probe_every is None else int(probe_every)
        if scenario == "market_leader":
            self.peers: tuple[int, ...] = (leader,)
        elif scenario == "majority_good":
            self.peers = tuple(j for j in range(n) if include_self or j != k)
        elif scenario == "partial":
            self.peers = peers
        else:
            self.peers = ()
        self.rng = np.random.default_rng(seed)

    def probe_request(self, t: int) -> tuple[bool, tuple[int, ...], bool]:
        if self.p == 0:
            return False, (), False
        due = t == 0 or (self.probe_every is not None and t % self.probe_every == 0)
        return due, self.peers, self.scenario == "preference_aware"

    def describe(self) -> str:
        return (
            f"MSGDP(agent={self.agent}, p={self.p}, scenario={self.scenario}, eta={self.eta}, "
            f"l2={self.l2}, b_p={self.probe_batch_size}, probe_every={self.probe_every})"
        )


def probe_rows(u: np.random.Generator | np.ndarray, n_valid, size: int | None = None):
    """Row indices uniform with replacement on ``0..n_valid-1``: ``floor(u n_valid)`` for
    uniforms ``u`` (an array; ``n_valid`` broadcasts against it), or for ``size`` fresh
    uniforms of a generator ``u``."""
    if isinstance(u, np.random.Generator):
        u = u.random(size)
    return (u * n_valid).astype(np.intp)


def probe_counts(idx: np.ndarray, n_points: int, dtype=np.float64) -> np.ndarray:
    """How often each of ``n_points`` held probe points is drawn: ``c[r, j] = #{i: idx[r, i]
    = j}`` for the probe-batch rows ``idx`` (R, b) -> (R, n_points), the weights of
    :func:`msgd_update`'s probe groups."""
    R = len(idx)
    at = (np.arange(R)[:, None] * n_points + idx).ravel()
    return np.bincount(at, minlength=R * n_points).reshape(R, n_points).astype(dtype)


def rows_of(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]``, as a strided view (no copy) when ``rows`` are evenly spaced, as the
    probers of M markets with the same prober are."""
    if len(rows) > 1:
        step = int(rows[1] - rows[0])
        if step > 0 and (np.diff(rows) == step).all():
            return a[int(rows[0]) :: step][: len(rows)]
    return a[rows]


def mix_probe_gradient(g: np.ndarray, h: np.ndarray, p: float | np.ndarray) -> np.ndarray:
    """MSGD-P's direction ``(g + p h) / (1 + p)`` from own-user and probe-batch gradients.

    ``p`` is one weight or one per row (broadcasting); either way ``p`` and ``1 + p`` are
    rounded to ``g``'s dtype, so one prober or several get the same arithmetic.
    """
    if np.ndim(p) == 0:  # a Python float is cast to g's dtype by numpy's scalar rules
        return (g + float(p) * h) / (1.0 + float(p))
    p = np.asarray(p, dtype=np.float64)
    return (g + p.astype(g.dtype) * h) / (1.0 + p).astype(g.dtype)


def gradient_step(
    direction: np.ndarray, theta: np.ndarray, l2: np.ndarray, neg_eta: np.ndarray
) -> np.ndarray:
    """The parameter update ``-eta (direction + lambda theta)`` (``neg_eta`` is ``-eta``)."""
    return (direction + l2 * theta) * neg_eta


def msgd_update(
    family,
    theta: np.ndarray,
    X: np.ndarray,
    T: np.ndarray,
    mask: np.ndarray,
    probes: Sequence[tuple],
    l2: np.ndarray,
    neg_eta: np.ndarray,
    own: np.ndarray | None = None,
) -> np.ndarray:
    """The MSGD/MSGD-P update of K learners, the one implementation of Algorithms 1 and 2.

    ``u_k = -eta_k (d_k + lambda_k theta_k)`` with ``d_k = g_k``, the mean gradient on the
    learner's users (``X``, ``T``, ``mask``: (K, B, .)), or for a prober
    ``d_k = (g_k + p_k h_k) / (1 + p_k)`` with ``h_k`` the mean gradient on its probe batch.
    ``probes`` holds groups ``(rows (R,), covariates (R, b, d), targets (R, b, t), p (R,))``
    of probers with equal batch sizes, optionally with a fifth entry, weights (R, N_held):
    then the covariates (R, N_held, d) are the held probe sets and the weights count how
    often the probe batch drew each point (the same mean
    gradient, without gathering the batch; when under half of a held set of over 256 points
    was drawn, over the drawn ones only). ``own`` (K, o, d), when given, is ``g`` itself
    (``X``, ``T``, ``mask`` are then unused: the batched core computes it from its segments).
    ``l2`` and ``neg_eta`` broadcast against (K, o, d). Gradients are computed in ``X``'s
    dtype (``own``'s when given).
    """
    if own is None:
        direction = mean_gradient(family, theta, X, T, mask)
    else:
        direction = own.copy()
    dtype = direction.dtype
    for rows, PX, PT, p, *counts in probes:
        PX, PT = PX.astype(dtype, copy=False), PT.astype(dtype, copy=False)
        th = theta[rows].astype(dtype, copy=False)
        if counts:
            W = counts[0]
            drawn = W.shape[1]
            if drawn > 256:  # a large held set: count the points drawn
                drawn = int(np.count_nonzero(W, axis=1).max(initial=0))
            if 2 * drawn < W.shape[1]:  # a few points of a large held set: only those
                cols = np.argsort(W == 0, axis=1, kind="stable")[:, :drawn]
                PX = np.take_along_axis(PX, cols[..., None], 1)
                PT = np.take_along_axis(PT, cols[..., None], 1)
                W = np.take_along_axis(W, cols, 1)
            z = np.matmul(PX, th.swapaxes(-1, -2))
            h = weighted_mean_gradient(family, z, PT, PX, W[:, None, :])[:, 0]
        else:
            h = mean_gradient(family, th, PX, PT)
        w = p if np.ndim(p) == 0 else np.asarray(p)[:, None, None]
        direction[rows] = mix_probe_gradient(direction[rows], h, w)
    return gradient_step(direction, theta, l2, neg_eta)


def probe_batches(
    policies: Sequence[MSGDP], rows: np.ndarray, n_valid: np.ndarray, sizes: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The probe-batch rows of probers ``rows`` holding ``n_valid`` probe points each,
    ``floor(u n_valid)`` for the next uniforms ``u`` of each policy's stream
    (:meth:`MSGD.uniforms`): groups ``(rows, indices (R, b))`` of equal batch size b
    (``sizes``: each row's b)."""
    if len(sizes) == 0:
        return []
    if (sizes == sizes[0]).all():
        groups = [(int(sizes[0]), rows, n_valid)]
    else:
        groups = [(b, rows[sizes == b], n_valid[sizes == b]) for b in np.unique(sizes).tolist()]
    out = []
    for b, sel, valid in groups:
        u = stream_uniforms([policies[i] for i in sel.tolist()], b)
        out.append((sel, probe_rows(u, valid[:, None])))
    return out


class _Blocks:
    """The blocks of policies that draw together: row r of ``array`` (R, BLOCK, size) is
    ``members[r]``'s block, ``used`` rows of it are consumed. A member that draws alone
    leaves (and empties ``members``, so the group serves no more)."""

    __slots__ = ("array", "members", "rngs", "used")

    def __init__(self, policies: Sequence[MSGD], size: int) -> None:
        self.array = np.empty((len(policies), BLOCK, size))
        self.members, self.rngs, self.used = tuple(policies), [p.rng for p in policies], 0
        for r, pol in enumerate(policies):
            pol.rng.random(out=self.array[r])  # the same numbers as pol.uniforms would draw
            pol._block, pol._block_rng, pol._group = self.array[r], pol.rng, self

    def serves(self, policies: Sequence[MSGD], size: int) -> bool:
        """Whether the next row of every policy's stream is the next slice of ``array``."""
        return (
            self.used < BLOCK
            and self.array.shape[2] == size
            and len(policies) == len(self.members)
            and all(map(operator.is_, policies, self.members))
            and all(map(operator.is_, self.rngs, map(_RNG, policies)))
        )


_RNG = operator.attrgetter("rng")


def stream_uniforms(policies: Sequence[MSGD], size: int) -> np.ndarray:
    """(R, size): row r is ``policies[r].uniforms(size)``, the same numbers.

    Policies that start a block together draw it into one (R, BLOCK, size) array (still one
    draw from each generator), so while they stay in step a call reads one slice of it
    instead of R blocks."""
    group = policies[0]._group
    if group is None or not group.serves(policies, size):
        for pol in policies:
            pol._leave_group()
        if not all(
            pol._block is None or pol._block_rng is not pol.rng or pol._used == BLOCK
            for pol in policies
        ):  # out of step: each policy from its own block
            return np.array([pol.uniforms(size) for pol in policies])
        group = _Blocks(policies, size)
    group.used += 1
    return group.array[:, group.used - 1]


def learner_index(agent: int | str, n: int) -> int:
    """``k`` from ``k`` or ``"learner_k"``; anything else raises ValueError naming ``agent``."""
    k = None
    if is_integer(agent):
        k = int(agent)
    elif isinstance(agent, str) and agent.startswith("learner_") and agent[8:].isdigit():
        k = int(agent[8:])
    if k is None or not 0 <= k < n:
        raise ValueError(
            f"agent must be a learner index in 0..{n - 1} or 'learner_k', got {agent!r}"
        )
    return k


_SCHEDULED = (MSGD.probe_request, MSGDP.probe_request)  # requests on MSGD-P's own schedule


@dataclass(frozen=True)
class Plan:
    """The constants of K MSGD/MSGD-P policies as arrays (see :func:`plan`)."""

    neg_eta: np.ndarray  # (K, 1, 1) minus the base step sizes
    inv_sqrt: np.ndarray | None  # (K,) bool, None if every schedule is constant
    l2: np.ndarray  # (K, 1, 1)
    probers: tuple[int, ...]  # rows with p > 0
    off: np.ndarray  # (K, A) actions with no update and every flag off
    p: np.ndarray  # (K,) probing weights
    batch: np.ndarray  # (K,) probe batch sizes b_p (0 for MSGD)
    schedules: tuple[tuple[int, int, bool], ...]  # per prober: row, probe_every (0: once),
    # and whether its requests follow MSGDP.probe_request's schedule

    def requests_due(self, steps: Sequence[float]) -> list[int]:
        """The probers that may request a probe at ``steps``: those on MSGD-P's schedule at
        the first step or a multiple of ``probe_every``, and every prober with its own rule."""
        due = []
        for i, every, scheduled in self.schedules:
            t = int(steps[i])
            if not scheduled or t == 0 or (every and t % every == 0):
                due.append(i)
        return due


def plan(policies: Sequence[MSGD]) -> Plan:
    """Array constants of ``policies`` (a function of their hyperparameters only, memoised on
    their values: a policy whose settings change gets a new plan)."""
    hyper = tuple(
        (
            pol.eta,
            pol.l2,
            pol.schedule,
            pol.p,
            pol.probe_batch_size,
            pol.probe_every or 0,
            type(pol).probe_request in _SCHEDULED,
        )
        for pol in policies
    )
    return _plan(hyper, policies[0].spec.actions)


@functools.lru_cache(maxsize=64)
def _plan(hyper: tuple[tuple], layout) -> Plan:
    eta, l2, schedule, p, batch, every, scheduled = zip(*hyper)
    inv = np.array([s == "inv_sqrt" for s in schedule])
    off = np.tile(layout.build(), (len(hyper), 1))
    off.flags.writeable = False
    return Plan(
        neg_eta=-np.array(eta)[:, None, None],
        inv_sqrt=inv if inv.any() else None,
        l2=np.array(l2)[:, None, None],
        probers=tuple(i for i, w in enumerate(p) if w > 0),
        off=off,
        p=np.array(p, np.float64),
        batch=np.array(batch, np.intp),
        schedules=tuple((i, every[i], scheduled[i]) for i, w in enumerate(p) if w > 0),
    )


def act_batch(
    policies: Sequence[MSGD],
    observations: Sequence[Mapping[str, np.ndarray]],
    active: np.ndarray | None = None,
) -> np.ndarray:
    """Actions (K, A) of K MSGD/MSGD-P policies for their K observations, computed together
    (``active``: see :func:`act_arrays`); no policies (a market of one learner has no
    opponents): no actions."""
    K = len(policies)
    if K == 0:
        return np.zeros((0, 0))
    stack = _stacked(observations)
    if stack is not None:  # rows of one stack (the ParallelEnv's observations): no restacking
        return act_arrays(
            policies,
            stack["params"].reshape(K, *policies[0].spec.param_shape),
            stack["covariates"],
            stack["targets"],
            stack["mask"],
            stack["probe_covariates"],
            stack["probe_targets"],
            stack["probe_mask"],
            stack["step"][:, 0],
            active,
        )
    return act_arrays(
        policies,
        np.array([o["params"] for o in observations]).reshape(K, *policies[0].spec.param_shape),
        np.array([o["covariates"] for o in observations]),
        np.array([o["targets"] for o in observations]),
        np.array([o["mask"] for o in observations]),
        [o["probe_covariates"] for o in observations],
        [o["probe_targets"] for o in observations],
        [o["probe_mask"] for o in observations],
        [o["step"][0] for o in observations],
        active,
    )


# the observation entries the scripted policies read (not the share or the local loss)
_ACTED_ON = tuple(k for k in OBSERVATION_KEYS if k not in ("share", "local_loss"))


def _stacked(observations: Sequence[Mapping[str, np.ndarray]]) -> dict | None:
    """The arrays ``act_arrays`` reads, stacked in the order of ``observations``, when these
    are untouched rows of one :func:`~choicemarket.envs.market.observation.stacked_observation`
    (:class:`RowObservation`); None otherwise (then the caller stacks the dicts)."""
    rows, stack = [], None
    for o in observations:
        if type(o) is not RowObservation:
            return None
        at = o.stacked_row()
        if at is None or (stack is not None and at[0] is not stack):
            return None
        stack = at[0]
        rows.append(at[1])
    if rows == list(range(len(stack["params"]))):
        return stack
    take = np.array(rows, np.intp)
    return {key: stack[key][take] for key in _ACTED_ON}


def act_arrays(
    policies: Sequence[MSGD],
    theta: np.ndarray,
    X: np.ndarray,
    T: np.ndarray,
    mask: np.ndarray,
    probe_X: Sequence[np.ndarray],
    probe_T: Sequence[np.ndarray],
    probe_mask: Sequence[np.ndarray],
    steps: Sequence[float],
    active: np.ndarray | None = None,
    constants: Plan | None = None,
    own: np.ndarray | None = None,
) -> np.ndarray:
    """Actions (K, A) from arrays: ``theta`` (K, o, d), users ``X`` (K, B, d), ``T`` (K, B, t),
    ``mask`` (K, B), row k's probe set ``probe_X[k]`` (N_probe, d), ``probe_T[k]``,
    ``probe_mask[k]`` and step ``steps[k]``. This is the MSGD/MSGD-P math without the
    observation dicts; K may span many markets. ``active`` (n,) or (K, n) bool marks the
    learners present when learners enter and leave: probe requests then name only active
    peers (a request left with none is dropped); ``None``: every learner is present.

    The update is :func:`msgd_update`; ``constants`` (:func:`plan` of ``policies``) may be
    passed by a loop that calls this every step, and ``own`` (K, o, d) the mean gradients on
    each learner's users (``MarketCore.user_gradients``) in place of ``X``, ``T``, ``mask``.
    Probe batches enter as counts over the held probe points.
    """
    spec = policies[0].spec
    layout = spec.actions
    constants = plan(policies) if constants is None else constants
    K, P = len(policies), layout.n_params
    probes = []
    if constants.probers:
        probers = np.array(constants.probers, np.intp)
        if isinstance(probe_mask, np.ndarray):
            n_valid = np.add.reduce(probe_mask[probers] != 0, 1)
        else:
            n_valid = np.array([np.count_nonzero(probe_mask[i]) for i in probers])
        held = n_valid > 0
        holders = probers[held]
        batches = probe_batches(policies, holders, n_valid[held], constants.batch[holders])
        for rows, idx in batches:
            if isinstance(probe_X, np.ndarray):
                PX, PT = rows_of(probe_X, rows), rows_of(probe_T, rows)
            else:
                PX = np.stack([probe_X[i] for i in rows.tolist()])
                PT = np.stack([probe_T[i] for i in rows.tolist()])
            counts = probe_counts(idx, PX.shape[1], PX.dtype)
            probes.append((rows, PX, PT, constants.p[rows], counts))
    neg_eta = constants.neg_eta
    if constants.inv_sqrt is not None:
        t = np.asarray(steps, dtype=np.float64)
        neg_eta = neg_eta / np.where(constants.inv_sqrt, np.sqrt(t + 1.0), 1.0)[:, None, None]
    update = msgd_update(spec.family, theta, X, T, mask, probes, constants.l2, neg_eta, own)
    actions = constants.off.copy()
    bound = layout.max_update
    np.minimum(np.maximum(update.reshape(K, P), -bound), bound, out=actions[:, :P])
    for i in constants.requests_due(steps):
        probe, peers, route = policies[i].probe_request(int(steps[i]))
        if probe and active is not None:
            on = np.asarray(active)
            on = on if on.ndim == 1 else on[i]
            peers = tuple(j for j in peers if on[j])
            probe = route or bool(peers)
        if probe:
            actions[i] = layout.build(actions[i, :P], True, peers, route)
    return actions
