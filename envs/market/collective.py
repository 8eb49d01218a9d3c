"""A collective of users (Hardt et al., 2023) acting inside the market.

Membership: every arriving training user (and every probed covariate) is a member
independently with probability ``alpha = collective_fraction``; held-out test users never are,
so success is measured on ordinary users. The collective's action picks, per market:

- ``strategy``: 0 none (members present their own data), 1 plant (members present
  ``(g(x), y*)``), 2 erase (members present ``(g(x), f0(x))``, the signal paired with the label
  the population's regularised ERM ``f0`` gives their unsignalled x, the stand-in for the
  base distribution's most likely label ``argmax_y P0(y | x)`` in Hardt et al.'s erasing
  strategy);
- ``destination``: 0 members choose as usual (by the choice rule, on the data they present),
  ``1 + k`` every member goes to learner k;
- ``label``: the target label y* of planting.

``g(x)`` is x with the coordinates of ``collective_signal`` set to the given values.
Measured on the held-out users x (all non-members), for every learner k:

    planting success  S_k = mean_x [ f_k(g(x)) = y* ]
    erasing success   E_k = mean_x [ f_k(g(x)) = f_k(x) ]
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from gymnasium import spaces

from ..checks import is_real
from .component import Component
from .losses import logits
from .population import Population
from .spec import MarketSpec

if TYPE_CHECKING:
    from .choice import Arrival
    from .config import MarketConfig
    from .core import MarketCore

COLLECTIVE = "collective"
STRATEGIES = ("none", "plant", "erase")


def check_fields(cfg: MarketConfig) -> None:
    """Check (and normalise) ``collective_fraction`` and ``collective_signal``."""
    a = cfg.collective_fraction
    if not (is_real(a) and 0.0 <= a < 1.0):
        raise ValueError(f"collective_fraction must be a number in [0, 1), got {a!r}")
    signal = cfg.collective_signal
    message = (
        "collective_signal must be a sequence of (feature index >= 0, finite value) pairs "
        f"with distinct features, got {signal!r}"
    )
    if isinstance(signal, (str, bytes)) or not isinstance(signal, Sequence):
        raise ValueError(message)
    pairs = []
    for p in signal:
        if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2:
            raise ValueError(message)
        j, v = p
        if isinstance(j, bool) or not isinstance(j, numbers.Integral) or j < 0 or not is_real(v):
            raise ValueError(message)
        pairs.append((int(j), float(v)))
    if len({j for j, _ in pairs}) != len(pairs):
        raise ValueError(message)
    if a > 0 and not pairs:
        raise ValueError(
            "collective_signal must name at least one (feature, value) pair "
            "when collective_fraction > 0"
        )
    object.__setattr__(cfg, "collective_fraction", float(a))
    object.__setattr__(cfg, "collective_signal", tuple(pairs))


@dataclass(frozen=True)
class CollectiveAction:
    """A parsed collective action."""

    strategy: str  # one of STRATEGIES
    destination: int | None  # learner every member goes to, None: as usual
    label: int  # target label y*


class Collective(Component):
    """Per-market strategy of the collective and what it does to a batch (M markets).

    A destination learner that is not present (learners entering and leaving) is ignored:
    members then choose as usual."""

    def __init__(self, config: MarketConfig, spec: MarketSpec, n_markets: int) -> None:
        if not spec.family.is_classification:
            raise ValueError(
                "collective_fraction > 0 needs a classification dataset (binary or multiclass); "
                f"this market's task is {spec.task!r}"
            )
        d = spec.n_features
        bad = [j for j, _ in config.collective_signal if j >= d]
        if bad:
            raise ValueError(
                f"collective_signal features must be indices in 0..{d - 1}, got {bad[0]}"
            )
        self.alpha = config.collective_fraction
        self.features = np.array([j for j, _ in config.collective_signal], np.intp)
        self.values = np.array([v for _, v in config.collective_signal], np.float64)
        self.spec = spec
        self.n_markets = n_markets
        n, c = spec.n_learners, spec.n_classes
        self.n_labels = 2 if spec.family.name == "logistic" else c
        self.space = spaces.MultiDiscrete(np.array([len(STRATEGIES), n + 1, self.n_labels]))
        self.clear()

    # ----------------------------------------------------------------- actions
    def reset(self, core: MarketCore) -> None:
        self.clear(core.population)

    def clear(self, pop: Population | None = None) -> None:
        """No strategy and usual choices until the first action (``pop``: the population)."""
        self.pop = pop
        M, n = self.n_markets, self.spec.n_learners
        self.strategy = np.zeros(M, np.int64)
        self.destination = np.zeros(M, np.int64)
        self.label = np.ones(M, np.int64) if self.n_labels == 2 else np.zeros(M, np.int64)
        self.members = np.zeros((M, self.spec.users_per_step), bool)
        self.planting = np.zeros((M, n))
        self.erasing = np.ones((M, n))
        self._signalled_test: tuple | None = None
        self.member_loss = np.full(M, np.nan)
        self.other_loss = np.full(M, np.nan)

    def validate(self, action: object, name: str = "actions['collective']") -> np.ndarray:
        """(3,) int64 action, or ValueError naming the allowed values."""
        try:
            a = np.asarray(action)
            ok = a.shape == (3,) and np.isfinite(a.astype(np.float64)).all()
            ok = ok and bool((a.astype(np.float64) == np.round(a.astype(np.float64))).all())
        except (TypeError, ValueError):
            ok = False
        n = self.spec.n_learners
        if ok:
            a = a.astype(np.int64)
            ok = bool((a >= 0).all() and (a < self.space.nvec).all())
        if not ok:
            raise ValueError(
                f"{name} must be 3 integers [strategy in 0..2 {STRATEGIES}, destination in "
                f"0..{n} (0: as usual, 1+k: learner k), label in 0..{self.n_labels - 1}], "
                f"got {action!r}"
            )
        return a

    def set_actions(self, actions: np.ndarray) -> None:
        """Validated actions (M, 3) take effect from the next batch on."""
        self.strategy, self.destination, self.label = (actions[:, i].copy() for i in range(3))

    def build(
        self, strategy: str = "plant", destination: int | None = None, label: int = 1
    ) -> np.ndarray:
        """An action: ``strategy`` name, ``destination`` learner (None: as usual), ``label``."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        dest = 0 if destination is None else int(destination) + 1
        return self.validate(
            np.array([STRATEGIES.index(strategy), dest, label]), "collective action"
        )

    def parse(self, action: object) -> CollectiveAction:
        a = self.validate(action, "collective action")
        return CollectiveAction(STRATEGIES[a[0]], None if a[1] == 0 else int(a[1]) - 1, int(a[2]))

    # ----------------------------------------------------------------- the batch
    def signal(self, X: np.ndarray) -> np.ndarray:
        """``g(X)``: a copy with the signal coordinates set."""
        G = X.copy()
        G[..., self.features] = self.values
        return G

    def present(
        self, core: MarketCore, X: np.ndarray, T: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw members of the batch (M, B) and replace their covariates/targets by what the
        strategy has them present. Returns new arrays; the true ones are kept for losses."""
        self.members = core.gens.random(X.shape[1:2]) < self.alpha
        self._true = (X, T)
        active = self.members & (self.strategy > 0)[:, None]
        if not active.any():
            return X, T
        X = np.where(active[..., None], self.signal(X), X)
        family = self.spec.family
        plant = active & (self.strategy == 1)[:, None]
        if plant.any():
            target = family.targets(self.label, self.n_labels)  # (M, t)
            T = np.where(plant[..., None], target[:, None, :], T)
        erase = active & (self.strategy == 2)[:, None]
        if erase.any():
            f0 = family.predict(self._true[0] @ self.pop.baseline_theta.T)  # (M, B)
            target = family.targets(f0.ravel(), self.n_labels).reshape(T.shape)
            T = np.where(erase[..., None], target, T)
        return X, T

    def after_choice(self, core: MarketCore, a: Arrival, choice: np.ndarray) -> np.ndarray:
        """Send members to the destination learner where one is set (and present)."""
        routed = self.destination > 0
        if core.active is not None:
            dest = np.maximum(self.destination - 1, 0)
            routed &= core.active[np.arange(len(dest)), dest]
        routed = self.members & routed[:, None]
        if not routed.any():
            return choice
        return np.where(routed, (self.destination - 1)[:, None], choice)

    def present_probes(self, core: MarketCore, Xp: np.ndarray, markets: np.ndarray) -> np.ndarray:
        """Probed covariates (R, N_probe, d) of requests from ``markets`` (R,): each is a
        member's with probability alpha and then shows ``g(x)`` when the strategy changes
        covariates (peers are queried on the data members present)."""
        u = np.empty(Xp.shape[:2])
        for rng, rows in core.gens.by_market(markets):
            u[rows] = rng.random((rows.stop - rows.start, Xp.shape[1]))
        members = u < self.alpha
        active = members & (self.strategy[markets] > 0)[:, None]
        if not active.any():
            return Xp
        return np.where(active[..., None], self.signal(Xp), Xp)

    def after_step(self, core: MarketCore) -> None:
        """Members' loss on their true data at the learner they chose, and non-members' loss
        (over the users someone served)."""
        s, pop = core.state, core.population
        X, T = self._true
        theta, choice = s.theta, s.choice
        ok = choice >= 0
        m_idx = np.arange(theta.shape[0])[:, None]
        th = theta[m_idx, np.where(ok, choice, 0)]  # (M, B, o, d)
        z = np.einsum("mbod,mbd->mbo", th, X)
        own = np.where(ok, pop.family.loss(z, T), 0.0)
        mem = self.members & ok
        oth = ~self.members & ok
        n_mem, n_oth = mem.sum(1), oth.sum(1)
        self.member_loss = np.where(n_mem > 0, (own * mem).sum(1) / np.maximum(n_mem, 1), np.nan)
        served = np.where(ok, s.served_loss, 0.0)
        self.other_loss = np.where(n_oth > 0, (served * oth).sum(1) / np.maximum(n_oth, 1), np.nan)

    def info(self, m: int = 0) -> dict:
        """Market ``m``'s figures (see :func:`info`)."""
        return info(self, m)

    def evaluate(self, core: MarketCore) -> None:
        """Every learner's planting/erasing success on the held-out users (at evaluations)."""
        theta, pop = core.state.theta, core.population
        if self._signalled_test is None or self._signalled_test[0] is not pop:
            self._signalled_test = (pop, self.signal(pop.X_test))
        self.planting, self.erasing = success(
            pop.family, theta, pop.X_test, self._signalled_test[1], self.label
        )

    # ----------------------------------------------------------------- reward
    def reward(self) -> np.ndarray:
        """(M,) success of the current strategy: at the destination learner, or the mean over
        learners when members choose as usual; 0 without a strategy."""
        M = self.n_markets
        metric = np.where((self.strategy == 2)[:, None], self.erasing, self.planting)
        at_dest = metric[np.arange(M), np.maximum(self.destination - 1, 0)]
        r = np.where(self.destination > 0, at_dest, metric.mean(1))
        return np.where(self.strategy > 0, r, 0.0)


def success(
    family, theta: np.ndarray, X: np.ndarray, G: np.ndarray, label: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Planting and erasing success (M, n) of models ``theta`` (M, n, o, d) on users ``X`` and
    their signalled copies ``G``: ``mean[f(G) = y*]`` and ``mean[f(G) = f(X)]``."""
    pred_g = family.predict(logits(theta, G))  # (M, n, N)
    pred_x = family.predict(logits(theta, X))
    planting = (pred_g == label[:, None, None]).mean(-1)
    erasing = (pred_g == pred_x).mean(-1)
    return planting, erasing


def critical_mass_logistic(
    X: np.ndarray,
    theta0: np.ndarray,
    X_eval: np.ndarray,
    features,
    values,
    label: int = 1,
    delta: float = 0.1,
    l2: float = 0.0,
) -> float:
    """Collective size alpha* at which a logistic risk minimiser reaches planting success
    1 - delta, from the first-order condition of the mixture risk in the signal direction.

    Let ``theta0`` minimise the risk of the ordinary users ``X`` and let planting move the
    model along ``u`` (the signal coordinates, scaled by their values ``v``:
    ``theta = theta0 + beta u``). With ``z0 = +-theta0 g(x)`` the margins of the signalled
    held-out users toward y*, success 1 - delta needs ``beta_d |v|^2 = -q_delta(z0)``. The
    stationarity of ``(1 - a) R_0 + a R_planted`` along ``u`` with R_0 quadratic about theta0
    (curvature ``h = E_0[s(1-s)(u x)^2] + l2 |u|^2``) reads

        (1 - a) h beta = a E_x[1 - s(z0 + beta |v|^2)] |v|^2,

    so ``alpha*/(1 - alpha*) = h beta_d / (|v|^2 E_x[1 - s(z0 + beta_d |v|^2)])``.
    The curvature h grows with how often (and how strongly) the signal occurs naturally,
    -q_delta(z0) is how far the unmodified model is from labelling g(x) as y* (the learner's
    suboptimality for the collective's goal). Returns 0 when theta0 already succeeds.
    """
    features = np.asarray(features, np.intp)
    values = np.asarray(values, np.float64)
    theta0 = np.asarray(theta0, np.float64).reshape(-1)
    sign = 1.0 if label == 1 else -1.0
    G = X_eval.copy()
    G[:, features] = values
    z0 = sign * (G @ theta0)
    need = -np.quantile(z0, delta)
    if need <= 0:
        return 0.0
    vv = float(values @ values)
    beta = need / vv
    s0 = 1.0 / (1.0 + np.exp(-(X @ theta0)))
    ux = X[:, features] @ values
    h = float(np.mean(s0 * (1 - s0) * ux**2)) + l2 * vv
    pull = float(np.mean(1.0 / (1.0 + np.exp(z0 + beta * vv))))  # E[1 - s(z0 + beta |v|^2)]
    ratio = h * beta / (vv * pull)
    return ratio / (1.0 + ratio)


# --------------------------------------------------------------------- the PettingZoo agent
def observation_space(spec: MarketSpec, max_steps: int) -> spaces.Dict:
    """The collective's observation: every learner's success and share, members, step."""
    n = spec.n_learners

    def box(shape, high=1.0):
        return spaces.Box(low=0.0, high=high, shape=shape, dtype=np.float32)

    return spaces.Dict(
        {
            "planting_success": box((n,)),
            "erasing_success": box((n,)),
            "share": box((n,)),
            "members": box((1,)),
            "step": box((1,), float(max_steps)),
        }
    )


def observation(collective: Collective, counts: np.ndarray, step: int, m: int = 0) -> dict:
    """Observation of market ``m`` (float32 arrays)."""
    f32 = np.float32
    B = collective.members.shape[1]
    return {
        "planting_success": collective.planting[m].astype(f32),
        "erasing_success": collective.erasing[m].astype(f32),
        "share": (counts[m] / B).astype(f32),
        "members": np.array([collective.members[m].mean()], f32),
        "step": np.array([step], f32),
    }


def info(collective: Collective, m: int = 0) -> dict:
    """Info of market ``m``: success per learner, the reward, members' and others' losses."""
    dest = int(collective.destination[m])
    return {
        "planting_success": collective.planting[m].tolist(),
        "erasing_success": collective.erasing[m].tolist(),
        "success": float(collective.reward()[m]),
        "member_loss": float(collective.member_loss[m]),
        "nonmember_loss": float(collective.other_loss[m]),
        "members": int(collective.members[m].sum()),
        "strategy": STRATEGIES[int(collective.strategy[m])],
        "destination": None if dest == 0 else dest - 1,
        "label": int(collective.label[m]),
    }
