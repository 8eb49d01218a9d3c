"""How users choose a learner: one ``ChoiceRule`` interface with every rule behind it.

Losses come as ``L`` of shape (M, n, B): market, learner, batch user. Every rule returns the
chosen learner of each batch user, shape (M, B). Sampling rules use one uniform ``u`` per user
(the one the market already draws), by inverse CDF, so they cost no extra random numbers.

- ``preference_or_loss``: the preferred learner with probability tau, else
  ``argmin_k L_k`` (ties: lowest index);
- ``loss_or_uniform``: a uniformly random learner with probability zeta, else the lowest-loss;
- ``logit``: ``P(k) ~ exp((-L_k + bonus [k = pref]) / temperature)``;
- ``multiplicative_weights``: a user of group j draws from the allocation ``alpha_j``, updated
  after each batch by ``alpha_jk <- alpha_jk (1 - eps)^{R_jk}``;
- ``user_types``: a mixture; fixed fractions of users are loyal (preferred learner),
  quality-seeking or collective (lowest loss) or random (uniform), the rest follow the rule.

When learners enter and leave (``active`` given), inactive learners are never chosen: their
loss is +inf, uniform draws range over the active learners, and allocations are masked.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import is_real, one_of, real_in, unit

if TYPE_CHECKING:
    from .config import MarketConfig
    from .core import MarketCore

CHOICE_RULES = ("preference_or_loss", "loss_or_uniform", "logit", "multiplicative_weights")
USER_TYPES = ("loyal", "quality", "random", "collective")

UNSERVED = -1
RULE = -1  # user type code: follows ``choice_rule``
TYPE_CODES = {name: code for code, name in enumerate(USER_TYPES)}
LOYAL, QUALITY, RANDOM, COLLECTIVE = (TYPE_CODES[t] for t in USER_TYPES)
_TYPE_SEED = 0x75736572  # mixed with the population seed: user types are fixed per population


# ----------------------------------------------------------------- the fields
def check_fields(cfg: MarketConfig) -> None:
    """Check (and normalise) the choice fields of ``cfg``; raise ``ValueError``."""
    one_of(cfg, "choice_rule", CHOICE_RULES)
    unit(cfg, "preference_weight")
    unit(cfg, "uniform_weight")
    real_in(cfg, "temperature", 0.0, open_low=True)
    real_in(cfg, "loyalty_bonus")
    real_in(cfg, "mw_rate", 0.0, 1.0, open_low=True, open_high=True)
    if cfg.user_types is not None:
        object.__setattr__(cfg, "user_types", _user_types(cfg.user_types))


def _user_types(value: Any) -> dict[str, float]:
    """Validate ``user_types``: fractions in [0, 1] of known types, summing to at most 1."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"user_types must be None or a mapping {{type: fraction}} with types in {USER_TYPES}, "
            f"got {value!r}"
        )
    unknown = sorted(str(k) for k in value if k not in USER_TYPES)
    if unknown:
        raise ValueError(f"user_types keys must be in {USER_TYPES}, got unknown {unknown}")
    out = {}
    for k, v in value.items():
        if not (is_real(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"user_types[{k!r}] must be a fraction in [0, 1], got {v!r}")
        out[k] = float(v)
    if sum(out.values()) > 1.0 + 1e-9:
        raise ValueError(f"user_types fractions must sum to at most 1, got {sum(out.values())!r}")
    return out


# ----------------------------------------------------------------- the rules
def inverse_cdf(u: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Index k with ``cum_{<k} <= u W < cum_{<=k}`` for nonnegative ``weights`` along ``axis``
    (W their sum): a draw from ``weights / W`` with one uniform ``u`` per draw."""
    cdf = np.cumsum(weights, axis)
    last = (slice(None),) * (axis % weights.ndim) + (slice(-1, None),)
    target = np.expand_dims(u, axis) * cdf[last]
    k = (cdf <= target).sum(axis)
    return np.minimum(k, weights.shape[axis] - 1)


def _logit_weights(L: np.ndarray, pref: np.ndarray, temperature: float, bonus: float):
    z = -L
    if bonus:
        z = z + bonus * (np.arange(L.shape[1])[None, :, None] == pref[:, None, :])
    # shift by the max before dividing: (z - max) / temperature <= 0 even when z / temperature
    # would overflow (a tiny temperature), so the largest weight is exactly 1 and none is NaN
    with np.errstate(over="ignore"):
        return np.exp((z - z.max(1, keepdims=True)) / temperature)


def logit_probabilities(L: np.ndarray, pref: np.ndarray, temperature: float, bonus: float):
    """P(k) = softmax_k((-L_k + bonus [k = pref]) / temperature), shape (M, n, B)."""
    w = _logit_weights(L, pref, temperature, bonus)
    return w / w.sum(1, keepdims=True)


def logit(u: np.ndarray, L: np.ndarray, pref: np.ndarray, temperature: float, bonus: float):
    """Logit (softmax) choice: learner k with probability
    ``exp((-L_k + bonus [k = pref]) / temperature)`` normalised (inverse CDF on ``u``)."""
    return inverse_cdf(u, _logit_weights(L, pref, temperature, bonus), 1)


def multiplicative_weights(u: np.ndarray, alpha: np.ndarray, group: np.ndarray) -> np.ndarray:
    """A user of group j in market m draws its learner from the allocation ``alpha[m, j]``."""
    weights = alpha[np.arange(len(alpha))[:, None], group]  # (M, B, n)
    return inverse_cdf(u, weights, 2)


def group_batch_risk(L: np.ndarray, group: np.ndarray, n_groups: int):
    """Each group's mean loss at each learner over this batch's users of the group.

    Returns ``(risk, present)``: (M, G, n) means (0 where absent) and (M, G) bool.
    """
    onehot = (group[:, :, None] == np.arange(n_groups)).astype(L.dtype)  # (M, B, G)
    sizes = onehot.sum(1)  # (M, G)
    sums = np.matmul(L, onehot).transpose(0, 2, 1)  # (M, G, n)
    return sums / np.maximum(sizes, 1)[:, :, None], sizes > 0


def mw_update(alpha: np.ndarray, risk: np.ndarray, present: np.ndarray, eps: float) -> None:
    """In place: ``alpha_jk <- alpha_jk (1 - eps)^{R_jk}``, renormalised over k, for the groups
    ``present`` (the others keep their allocation)."""
    # in logs, shifted by the row maximum: no underflow of a whole row (alpha may hold zeros)
    with np.errstate(divide="ignore"):
        log_w = np.log(alpha) + risk * math.log1p(-eps)
    new = np.exp(log_w - log_w.max(-1, keepdims=True))
    new /= new.sum(-1, keepdims=True)
    alpha[present] = new[present]


def assign_user_types(fractions: dict[str, float], n_users: int, seed: int) -> np.ndarray:
    """Type code of each training user: ``round(f N)`` users (cumulatively rounded) of each
    type at random positions, the rest ``RULE``. Depends only on the population seed."""
    rng = np.random.default_rng([int(seed), _TYPE_SEED])
    order = rng.permutation(n_users)
    types = np.full(n_users, RULE, np.int8)
    start, cum = 0, 0.0
    for name in USER_TYPES:
        cum += fractions.get(name, 0.0)
        stop = min(n_users, round(cum * n_users))
        types[order[start:stop]] = TYPE_CODES[name]
        start = max(start, stop)
    return types


def random_learner(u: np.ndarray, n: int, active: np.ndarray | None) -> np.ndarray:
    """The ``floor(u a)``-th of the ``a`` active learners (all n when ``active`` is None) for
    uniforms ``u`` (M, B): a uniformly random active learner per user."""
    if active is None:
        return np.minimum((u * n).astype(np.int64), n - 1)
    n_active = active.sum(1)[:, None]
    r = np.minimum((u * n_active).astype(np.intp), n_active - 1)
    order = np.argsort(~active, axis=1, kind="stable")  # active slots first
    return np.take_along_axis(order, r, 1)


class Arrival:
    """What the choice rule sees of one batch of M markets.

    ``idx`` (M, B) training-user index of each batch user, ``u`` (M, B) one uniform per user,
    ``z`` (M, B, n, o) every learner's logits on every user, ``T`` (M, B, t) the targets,
    ``pref`` (M, B) preferred learner, ``active`` (M, n) bool or None (every learner present).
    The losses ``L`` (M, n, B), ``L_active`` (+inf at inactive learners) and ``best`` (the
    lowest-loss active learner, ties: lowest index) are computed when a rule first asks:
    the common rules need only ``best``, found by ``LossFamily.best`` without a
    transcendental per learner.
    """

    def __init__(
        self,
        idx: np.ndarray,
        u: np.ndarray,
        z: np.ndarray,
        T: np.ndarray,
        family,
        hard: bool,
        pref: np.ndarray,
        active: np.ndarray | None,
        exclude=None,
    ) -> None:
        self.idx, self.u, self.z, self.T, self.pref, self.active = idx, u, z, T, pref, active
        self._family, self._hard, self._exclude = family, hard, exclude

    @functools.cached_property
    def L(self) -> np.ndarray:
        return self._family.loss(self.z, self.T[:, :, None, :]).swapaxes(1, 2)

    @functools.cached_property
    def L_active(self) -> np.ndarray:
        return self.L if self._exclude is None else self._exclude(self.L)

    @functools.cached_property
    def best(self) -> np.ndarray:
        if self.active is not None or ("L" in self.__dict__ and not self._hard):
            return self.L_active.argmin(1)  # (the losses at hand: not computed again)
        return self._family.best(self.z, self.T, self._hard)

    def best_where(self, mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
        """``where(mask, best, fill)``, finding the best learner of the ``mask`` users only
        (the others keep ``fill``: a rule that picks by loss with probability p compares the
        learners for a fraction p of the users)."""
        # below a couple of thousand users selecting them costs more than comparing them all
        if self.active is not None or "best" in self.__dict__ or mask.size < 2048:
            return np.where(mask, self.best, fill)
        M, B, n, o = self.z.shape
        rows = np.flatnonzero(mask)
        out = np.array(fill, dtype=np.int64)  # a copy, (M, B)
        z, T = self.z.reshape(M * B, n, o)[rows], self.T.reshape(M * B, -1)[rows]
        out.reshape(-1)[rows] = self._family.best(z, T, self._hard)
        return out


class ChoiceRule(abc.ABC):
    """How the users of a batch pick a learner. ``reset`` at episode start, ``choose`` once
    per batch; draws beyond ``u`` come from ``core.gens``."""

    def reset(self, core: MarketCore) -> None:  # noqa: B027  (stateless rules need nothing)
        return None

    @abc.abstractmethod
    def choose(self, core: MarketCore, a: Arrival) -> np.ndarray:
        """The learner each batch user picks, shape (M, B)."""


class PreferenceOrLoss(ChoiceRule):
    """The preferred learner with probability tau (``u < tau``), else the lowest-loss one."""

    def __init__(self, tau: float) -> None:
        self.tau = tau

    def choose(self, core: MarketCore, a: Arrival) -> np.ndarray:
        return a.best_where(a.u >= self.tau, a.pref)


class LossOrUniform(ChoiceRule):
    """A uniformly drawn learner with probability zeta (``u < zeta``), else the lowest-loss
    one."""

    def __init__(self, zeta: float) -> None:
        self.zeta = zeta

    def choose(self, core: MarketCore, a: Arrival) -> np.ndarray:
        M, B = a.u.shape
        if a.active is None:
            uniform = core.gens.integers(a.z.shape[2], (B,))
        else:
            uniform = random_learner(core.gens.random((B,)), a.z.shape[2], a.active)
        return a.best_where(a.u >= self.zeta, uniform)


class Logit(ChoiceRule):
    def __init__(self, temperature: float, bonus: float) -> None:
        self.temperature, self.bonus = temperature, bonus

    def choose(self, core: MarketCore, a: Arrival) -> np.ndarray:
        return logit(a.u, a.L_active, a.pref, self.temperature, self.bonus)


class MultiplicativeWeights(ChoiceRule):
    """Allocations ``alpha`` (M, G, n) of the preference groups (G = n), uniform at reset.

    A learner that enters starts with the mean weight of the incumbents in every group;
    a learner that leaves keeps its weight, masked out of every draw."""

    def __init__(self, eps: float) -> None:
        self.eps = eps
        self.alpha: np.ndarray | None = None
        self._active: np.ndarray | None = None

    def reset(self, core: MarketCore) -> None:
        M, n = core.n_markets, core.spec.n_learners
        self.alpha = np.full((M, n, n), 1.0 / n)
        self._active = None if core.active is None else core.active.copy()

    def choose(self, core: MarketCore, a: Arrival) -> np.ndarray:
        alpha = self.alpha
        if a.active is not None and not np.array_equal(a.active, self._active):
            self._admit(a.active)
        allocation = alpha if a.active is None else alpha * a.active[:, None, :]
        choice = multiplicative_weights(a.u, allocation, a.pref)
        risk, present = group_batch_risk(a.L, a.pref, alpha.shape[1])
        mw_update(alpha, risk, present, self.eps)
        return choice

    def _admit(self, active: np.ndarray) -> None:
        new = active & ~self._active
        for m, k in zip(*np.nonzero(new)):
            old = self._active[m]
            self.alpha[m, :, k] = self.alpha[m][:, old].mean(1)
            self.alpha[m] /= self.alpha[m].sum(1, keepdims=True)
        self._active = active.copy()


class UserTypes(ChoiceRule):
    """A mixture: each training user's fixed type (fractions of ``user_types``, assigned from
    the population seed) overrides ``base`` for its users."""

    def __init__(self, base: ChoiceRule, fractions: dict[str, float]) -> None:
        self.base, self.fractions = base, fractions
        self.user_type: np.ndarray | None = None

    def reset(self, core: MarketCore) -> None:
        self.base.reset(core)
        n_users = len(core.population.X_train)
        self.user_type = assign_user_types(self.fractions, n_users, core.population_seed)

    def choose(self, core: MarketCore, a: Arrival) -> np.ndarray:
        choice = self.base.choose(core, a)
        kind = self.user_type.take(a.idx)
        choice = np.where(kind == LOYAL, a.pref, choice)
        choice = np.where((kind == QUALITY) | (kind == COLLECTIVE), a.best, choice)
        # u is otherwise unused for a random-type user: it picks its uniform learner
        rand = random_learner(a.u, a.z.shape[2], a.active)
        return np.where(kind == RANDOM, rand, choice)


def make_choice_rule(config: MarketConfig) -> ChoiceRule:
    """The config's choice rule, wrapped in its user-type mixture if it has one."""
    rule = config.choice_rule
    if rule == "preference_or_loss":
        base: ChoiceRule = PreferenceOrLoss(config.preference_weight)
    elif rule == "loss_or_uniform":
        base = LossOrUniform(config.uniform_weight)
    elif rule == "logit":
        base = Logit(config.temperature, config.loyalty_bonus)
    else:
        base = MultiplicativeWeights(config.mw_rate)
    return base if config.user_types is None else UserTypes(base, dict(config.user_types))
