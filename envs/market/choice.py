"""How users choose a learner: one function per choice rule, and ``UserBehaviour``, the state
of the richer rules (user types, multiplicative-weights allocations, the outside option).

Losses come as ``L`` of shape (M, n, B): market, learner, batch user. Every rule returns the
chosen learner of each batch user, shape (M, B); ``UNSERVED`` (-1) marks a user served by
nobody. Sampling rules use one uniform ``u`` per user (the one the market already draws), by
inverse CDF, so they cost no extra random numbers.

The default rule (``preference_or_loss`` with no user types and no outside option) never goes
through ``UserBehaviour``: :class:`~choicemarket.envs.market.core.MarketCore` keeps its own
code path, so its trajectories and cost are unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from .config import USER_TYPES, MarketConfig

UNSERVED = -1
RULE = -1  # user type code: follows ``choice_rule``
TYPE_CODES = {name: code for code, name in enumerate(USER_TYPES)}
LOYAL, QUALITY, RANDOM, COLLECTIVE = (TYPE_CODES[t] for t in USER_TYPES)
_TYPE_SEED = 0x75736572  # mixed with the population seed: user types are fixed per population


# ----------------------------------------------------------------- the rules
def preference_or_loss(u: np.ndarray, pref: np.ndarray, best: np.ndarray, tau: float):
    """Preferred learner with probability tau, else the lowest-loss one."""
    return np.where(u < tau, pref, best)


def loss_or_uniform(u: np.ndarray, uniform: np.ndarray, best: np.ndarray, zeta: float):
    """The uniformly drawn learner ``uniform`` with probability zeta, else the lowest-loss one."""
    return np.where(u < zeta, uniform, best)


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
    z = z / temperature
    return np.exp(z - z.max(1, keepdims=True))  # the max weight is 1: no overflow


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


def is_default(config: MarketConfig) -> bool:
    """True when the market's own default choice path applies (no ``UserBehaviour`` needed)."""
    return (
        config.choice_rule in ("preference_or_loss", "loss_or_uniform")
        and config.user_types is None
        and config.outside_threshold is None
    )


# ----------------------------------------------------------------- state of the rules
class UserBehaviour:
    """Choice state of M markets beyond the default rule.

    - ``user_type`` (N,) int8: each training user's type (``RULE`` = follows ``choice_rule``),
      fixed per population; loyal users take their preferred learner, quality-seeking and
      collective users the lowest-loss one, random users a uniform one.
    - ``alpha`` (M, G, n): each preference group's allocation over learners
      (``multiplicative_weights`` only), uniform at reset, updated after every batch with the
      group's mean loss at each learner on the batch's users of that group.
    - ``outside_until`` (M, N) int: user i of market m is outside the market while
      ``outside_until > step``. A user drawn while outside, or who finds every learner's loss
      above ``outside_threshold``, is unserved; a user who leaves returns after a
      Geometric(``return_rate``) number of steps (each step it returns with probability r).
    """

    def __init__(self, config: MarketConfig, n_learners: int) -> None:
        self.config = config
        self.n = n_learners
        self.user_type: np.ndarray | None = None
        self.alpha: np.ndarray | None = None
        self.outside_until: np.ndarray | None = None
        self.unserved: np.ndarray | None = None  # (M, B) bool, current batch
        self.group: np.ndarray | None = None  # (N,) preference label of each training user
        self.step = 0

    def reset(self, pref: np.ndarray, n_markets: int, population_seed: int) -> None:
        """Fresh state for a population with preferred learners ``pref`` (its groups)."""
        cfg, n, N = self.config, self.n, len(pref)
        self.group = pref
        self.user_type = None
        if cfg.user_types is not None:
            self.user_type = assign_user_types(cfg.user_types, N, population_seed)
        self.alpha = None
        if cfg.choice_rule == "multiplicative_weights":
            self.alpha = np.full((n_markets, n, n), 1.0 / n)
        self.outside_until = None
        if cfg.outside_threshold is not None:
            self.outside_until = np.zeros((n_markets, N), np.int64)
        self.unserved = None
        self.step = 0

    def choose(
        self,
        rng: np.random.Generator,
        step: int,
        idx: np.ndarray,
        u: np.ndarray,
        L: np.ndarray,
        best: np.ndarray,
    ) -> np.ndarray:
        """The learner each batch user ``idx`` (M, B) picks given losses ``L`` (M, n, B);
        ``UNSERVED`` for users outside the market. Updates the rules' state."""
        cfg, n = self.config, self.n
        self.step = step
        pref = self.group.take(idx)
        rule = cfg.choice_rule
        if rule == "preference_or_loss":
            choice = preference_or_loss(u, pref, best, cfg.preference_weight)
        elif rule == "loss_or_uniform":
            uniform = rng.integers(n, size=best.shape)
            choice = loss_or_uniform(u, uniform, best, cfg.uniform_weight)
        elif rule == "logit":
            choice = logit(u, L, pref, cfg.temperature, cfg.loyalty_bonus)
        else:
            choice = multiplicative_weights(u, self.alpha, pref)
            risk, present = group_batch_risk(L, pref, self.alpha.shape[1])
            mw_update(self.alpha, risk, present, cfg.mw_rate)
        if self.user_type is not None:
            kind = self.user_type.take(idx)
            choice = np.where(kind == LOYAL, pref, choice)
            choice = np.where((kind == QUALITY) | (kind == COLLECTIVE), best, choice)
            # u is otherwise unused for a random-type user: floor(u n) is its uniform learner
            choice = np.where(kind == RANDOM, np.minimum((u * n).astype(np.int64), n - 1), choice)
        if self.outside_until is not None:
            choice = self._outside(rng, step, idx, L, choice)
        return choice

    def _outside(self, rng, step: int, idx: np.ndarray, L: np.ndarray, choice: np.ndarray):
        cfg, until = self.config, self.outside_until
        rows = np.arange(len(idx))[:, None]
        away = until[rows, idx] > step
        leave = ~away & (L.min(1) > cfg.outside_threshold)
        if leave.any():
            m, b = np.nonzero(leave)
            r = cfg.return_rate
            if r > 0:
                gone = rng.geometric(r, size=len(m))
            else:
                gone = np.full(len(m), np.iinfo(np.int64).max - step)  # never returns
            until[m, idx[m, b]] = step + gone
        self.unserved = away | leave
        return np.where(self.unserved, UNSERVED, choice)

    @staticmethod
    def served_stats(
        L: np.ndarray, choice: np.ndarray, market_offset: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per user the loss at its learner (nan if unserved); per learner counts and loss sums
        over the users it served. Shapes (M, B), (M, n), (M, n)."""
        M, n, B = L.shape
        ok = choice >= 0
        c = np.where(ok, choice, 0)
        served = L[np.arange(M)[:, None], c, np.arange(B)[None, :]]
        key = (market_offset + c)[ok]
        counts = np.bincount(key, minlength=M * n).reshape(M, n)
        sums = np.bincount(key, weights=served[ok], minlength=M * n).reshape(M, n)
        if not ok.all():
            served = np.where(ok, served, math.nan)
        return served, counts, sums

    # ------------------------------------------------------------- measurements
    def outside_metrics(self, choice: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Who is left unserved (outside option on only):

        - ``unserved_fraction`` (M,): share of the current batch served by nobody;
        - ``outside_fraction`` (M,): share of the training population currently outside;
        - ``group_unserved`` (M, G): per preference group, share of its batch users unserved
          (nan if none was drawn); ``group_outside`` (M, G): share of the group outside.
        """
        G = self.n
        unserved = choice < 0
        outside = self.outside_until > self.step  # (M, N)
        M, group = len(outside), self.group
        sizes = np.bincount(group, minlength=G)
        key = (np.arange(M)[:, None] * G + group).ravel()
        g_out = np.bincount(key, weights=outside.ravel(), minlength=M * G).reshape(M, G)
        g_batch = self.group.take(idx)
        onehot = g_batch[:, :, None] == np.arange(G)
        drawn = onehot.sum(1)
        left = (onehot & unserved[:, :, None]).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            group_unserved = np.where(drawn > 0, left / np.maximum(drawn, 1), math.nan)
            group_outside = np.where(sizes > 0, g_out / np.maximum(sizes, 1), math.nan)
        return {
            "unserved_fraction": unserved.mean(1),
            "outside_fraction": outside.mean(1),
            "group_unserved": group_unserved,
            "group_outside": group_outside,
        }


def make_behaviour(config: MarketConfig) -> UserBehaviour | None:
    """``UserBehaviour`` for a config that needs one, else ``None`` (the default path)."""
    return None if is_default(config) else UserBehaviour(config, config.n_learners)
