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

from ..checks import MAX_MAGNITUDE, as_float, brief, real_in
from .collective_theory import critical_mass_logistic  # noqa: F401 (re-exported)
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
    real_in(cfg, "collective_fraction", 0.0, 1.0, open_high=True)
    a = cfg.collective_fraction
    signal = cfg.collective_signal
    message = (
        "collective_signal must be a sequence of (feature index >= 0, value in "
        f"[-{MAX_MAGNITUDE:g}, {MAX_MAGNITUDE:g}]) pairs with distinct features, got {signal!r}"
    )
    if isinstance(signal, (str, bytes)) or not isinstance(signal, Sequence):
        raise ValueError(message)
    pairs = []
    for p in signal:
        if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2:
            raise ValueError(message)
        j, v = p
        x = as_float(v)
        if isinstance(j, bool) or not isinstance(j, numbers.Integral) or j < 0 or x is None:
            raise ValueError(message)
        if abs(x) > MAX_MAGNITUDE:
            raise ValueError(message)
        pairs.append((int(j), x))
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
            f = np.array(action, dtype=np.float64)
            ok = f.shape == (3,) and bool(np.isfinite(f).all())
            ok = ok and bool((f == np.round(f)).all() and (f >= 0).all())
            ok = ok and bool((f < self.space.nvec).all())
        except (TypeError, ValueError, OverflowError):
            ok = False
        n = self.spec.n_learners
        if ok:
            a = f.astype(np.int64)
        if not ok:
            raise ValueError(
                f"{name} must be 3 integers [strategy in 0..2 {STRATEGIES}, destination in "
                f"0..{n} (0: as usual, 1+k: learner k), label in 0..{self.n_labels - 1}], "
                f"got {brief(action)}"
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
