"""``ParticipationCore``: M participation-dynamics markets stepped together on batched arrays.

The population-level model of Dean et al. (2024). Sub-populations j (masses beta_j, risks R_j)
spread their participation over n learners with allocations alpha_j in the simplex. One step:

1. each learner's parameter update is added: ``theta_i += u_i`` (clipped to ``max_update``;
   the parameters are kept within ``[-MAX_PARAM, MAX_PARAM]``, 1e6);
2. each sub-population reweights by multiplicative weights with rate eps:
   ``alpha_ji <- alpha_ji (1 - eps)^{R_j(theta_i)}``, renormalised over i.

Measurements after the step: ``share_i = sum_j beta_j alpha_ji``; the learner's local risk
``sum_j beta_j alpha_ji R_j(theta_i) / share_i`` (its full-population risk when nobody is left);
its full-population (global) risk ``sum_j beta_j R_j(theta_i)``; the total risk
``sum_j beta_j sum_i alpha_ji R_j(theta_i)`` (the average risk users experience).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..checks import MAX_PARAM, check_seed
from .config import ParticipationConfig, check_step_memory
from .population import ParticipationPopulation, build_participation_population

_POPULATIONS: dict[tuple, ParticipationPopulation] = {}
_POPULATION_FIELDS = (
    "risk",
    "optima",
    "n_subpops",
    "dim",
    "noise_var",
    "masses",
    "dataset",
    "group_by",
    "min_group_size",
    "intercept",
    "population_seed",
)


def participation_population_for(config: ParticipationConfig) -> ParticipationPopulation:
    """Build (or reuse, within this process) the sub-populations of ``config``."""
    key = (
        tuple(getattr(config, f) for f in _POPULATION_FIELDS),
        repr(sorted(config.dataset_options.items())),
    )
    pop = _POPULATIONS.get(key)
    if pop is None:
        if len(_POPULATIONS) >= 16:
            _POPULATIONS.pop(next(iter(_POPULATIONS)))
        pop = _POPULATIONS[key] = build_participation_population(config)
    return pop


@dataclass(frozen=True)
class ParticipationSpec:
    """What a policy needs to act: the sub-populations' risks and the action bound."""

    n_learners: int
    population: ParticipationPopulation
    eps: float
    l2: float
    max_update: float

    @property
    def dim(self) -> int:
        return self.population.dim

    @property
    def n_groups(self) -> int:
        return self.population.n_groups


@dataclass
class ParticipationState:
    """State of M markets with n learners, J sub-populations, d parameters (market axis first)."""

    theta: np.ndarray  # (M, n, d) parameters
    alpha: np.ndarray  # (M, J, n) allocations, rows in the simplex
    risks: np.ndarray  # (M, J, n) R_j(theta_i)
    step: int  # steps since reset

    def weights(self, masses: np.ndarray) -> np.ndarray:
        """(M, n, J) allocation-weighted masses beta_j alpha_ji seen by each learner."""
        return np.swapaxes(self.alpha * masses[:, None], 1, 2)

    def share(self, masses: np.ndarray) -> np.ndarray:
        """(M, n) total mass on each learner."""
        return np.einsum("j,mji->mi", masses, self.alpha)

    def local_risk(self, masses: np.ndarray) -> np.ndarray:
        """(M, n) allocation-weighted mean risk of each learner (global risk if share 0)."""
        w = self.alpha * masses[:, None]
        share = w.sum(1)
        weighted = (w * self.risks).sum(1)
        glob = self.global_risk(masses)
        return np.where(share > 0, weighted / np.where(share > 0, share, 1.0), glob)

    def global_risk(self, masses: np.ndarray) -> np.ndarray:
        """(M, n) full-population risk of each learner's model."""
        return np.einsum("j,mji->mi", masses, self.risks)

    def total_risk(self, masses: np.ndarray) -> np.ndarray:
        """(M,) sum_j beta_j sum_i alpha_ji R_j(theta_i)."""
        return np.einsum("j,mji->m", masses, self.alpha * self.risks)


class ParticipationCore:
    """The batched simulation. ``reset(seed)`` then ``step(updates)`` with updates (M, n, d)."""

    def __init__(self, config: ParticipationConfig, n_markets: int = 1) -> None:
        if isinstance(n_markets, bool) or not isinstance(n_markets, numbers.Integral):
            raise ValueError(f"n_markets must be an integer >= 1, got {n_markets!r}")
        if n_markets < 1:
            raise ValueError(f"n_markets must be an integer >= 1, got {n_markets!r}")
        self.config = config
        self.n_markets = int(n_markets)
        self.population = pop = participation_population_for(config)
        check_step_memory(pop.n_groups, config.n_learners, pop.dim)
        if not isinstance(config.init_allocation, str) and len(config.init_allocation) != (
            pop.n_groups
        ):
            raise ValueError(
                f"init_allocation must have one row per sub-population ({pop.n_groups}), "
                f"got {len(config.init_allocation)}"
            )
        self.spec = ParticipationSpec(
            n_learners=config.n_learners,
            population=pop,
            eps=config.eps,
            l2=config.l2,
            max_update=config.max_update,
        )
        self.log_keep = float(np.log1p(-config.eps))  # log(1 - eps)
        self.rng = np.random.default_rng()
        self._seeded = False
        self.state: ParticipationState | None = None

    @property
    def n_learners(self) -> int:
        return self.spec.n_learners

    def reset(self, seed: int | None = None) -> ParticipationState:
        """Fresh markets. A ``seed`` restarts the generator; ``None`` continues it."""
        cfg, pop = self.config, self.population
        seed = check_seed(seed)
        if seed is not None or not self._seeded:
            self.rng = np.random.default_rng(seed)
            self._seeded = True
        M, n, J, d = self.n_markets, self.n_learners, pop.n_groups, pop.dim
        if cfg.init_allocation == "uniform":
            alpha = np.full((M, J, n), 1.0 / n)
        elif cfg.init_allocation == "perturbed":
            alpha = 1.0 + cfg.init_perturbation * self.rng.random((M, J, n))
            alpha /= alpha.sum(-1, keepdims=True)
        else:
            given = np.array(cfg.init_allocation, np.float64)
            alpha = np.broadcast_to(given / given.sum(1, keepdims=True), (M, J, n)).copy()
        if cfg.init_params == "random":
            theta = cfg.init_scale * self.rng.standard_normal((M, n, d))
            theta = np.clip(theta, -MAX_PARAM, MAX_PARAM)
        else:
            theta = np.zeros((M, n, d))
        self.state = ParticipationState(theta=theta, alpha=alpha, risks=pop.risks(theta), step=0)
        return self.state

    def step(self, updates: np.ndarray) -> ParticipationState:
        """Advance every market one step with updates (M, n, d), clipped to ``max_update``."""
        s = self.state
        if s is None:
            raise RuntimeError("call reset() before step()")
        bound = self.config.max_update
        # the parameters stay within [-MAX_PARAM, MAX_PARAM], so every risk stays finite
        s.theta = np.clip(s.theta + np.clip(updates, -bound, bound), -MAX_PARAM, MAX_PARAM)
        s.risks = R = self.population.risks(s.theta)
        # in log space, shifted per row by its largest entry, so that a row never underflows
        # to all zeros (risks far apart, or allocations that already underflowed)
        with np.errstate(divide="ignore"):
            log_alpha = np.log(s.alpha) + R * self.log_keep
        alpha = np.exp(log_alpha - log_alpha.max(-1, keepdims=True))
        s.alpha = alpha / alpha.sum(-1, keepdims=True)
        s.step += 1
        return s

    def split_learner(self, k: int, scale: float = 1e-3) -> None:
        """Add a clone of learner ``k`` (index n): same parameters, and every sub-population's
        allocation to k is shared between the two as ``alpha_jk (1/2 + delta_j)`` and
        ``alpha_jk (1/2 - delta_j)``, ``delta_j ~ N(0, scale^2)`` clipped to [-1/2, 1/2]."""
        s = self.state
        if s is None:
            raise RuntimeError("call reset() before split_learner()")
        n = self.n_learners
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < n:
            raise ValueError(f"k must be a learner index in 0..{n - 1}, got {k!r}")
        M, J = s.alpha.shape[:2]
        delta = np.clip(scale * self.rng.standard_normal((M, J)), -0.5, 0.5)
        old = s.alpha[:, :, k]
        clone = old * (0.5 - delta)
        s.alpha = np.concatenate([s.alpha, clone[:, :, None]], axis=2)
        s.alpha[:, :, k] = old - clone
        s.theta = np.concatenate([s.theta, s.theta[:, k : k + 1]], axis=1)
        s.risks = self.population.risks(s.theta)
        self.spec = ParticipationSpec(
            n_learners=n + 1,
            population=self.population,
            eps=self.spec.eps,
            l2=self.spec.l2,
            max_update=self.spec.max_update,
        )
