"""``MarketCore``: the one market transition, for M independent markets on batched arrays.

One step of every market (semantics: users arrive, choose, learners update):

1. answer probe requests (``probing.py``; peers are queried with the models that served the
   batch the action responds to), then apply each learner's update ``theta_k += u_k``;
2. draw B training users per market i.i.d. with replacement;
3. each user chooses a learner by the choice rule (``choice.py``), e.g. its preferred learner
   with probability tau, else ``argmin_k l(theta_k; x, y)`` (ties: lowest index);
4. record counts, each user's loss at its learner, and each learner's local loss.

Learners entering and leaving (``entry_exit.py``), the collective (``collective.py``) and the
outside option (``outside.py``) are components with hooks on this step (``component.py``);
every combination of them and of the choice rules is one market.

All M markets share one population. ``reset(seed)`` gives them one shared
``numpy.random.Generator``; ``reset(seeds=[...])`` gives market m its own generator seeded by
``seeds[m]``, so that market m follows exactly the trajectory it would follow alone with that
seed (M = 1 draws the same numbers either way), whatever the market's components.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import MAX_PARAM, check_seed, is_integer
from . import entry_exit, outside
from .actions import ActionLayout
from .choice import Arrival, make_choice_rule
from .collective import Collective
from .component import Component
from .config import RANDOM_INITS, MarketConfig, check_resources
from .entry_exit import EntryExit, slot_count
from .generators import MarketGenerators
from .losses import (
    batch_logits,
    logits,
    loss_family,
    quadratic_risk,
    weighted_mean_gradient,
)
from .metrics import evaluation_due, rewards
from .outside import OutsideOption
from .population import (
    Population,
    build_population,
    check_preferences,
    dataset_for,
    published_start,
)
from .probing import answer_probes
from .spec import MarketSpec
from .state import MarketState

_POPULATIONS: dict[tuple, Population] = {}
_POPULATION_FIELDS = (
    "dataset",
    "n_learners",
    "preferences",
    "leader_fraction",
    "init",
    "l2",
    "test_fraction",
)


def population_for(config: MarketConfig, seed: int) -> Population:
    """Build (or reuse, within this process) the population of ``config`` for ``seed``."""
    key = (
        tuple(getattr(config, f) for f in _POPULATION_FIELDS),
        repr(sorted(config.dataset_options.items())),
        seed,
    )
    pop = _POPULATIONS.get(key)
    if pop is None:
        if len(_POPULATIONS) >= 32:
            _POPULATIONS.pop(next(iter(_POPULATIONS)))
        pop = _POPULATIONS[key] = build_population(config, seed)
    return pop


class MarketCore:
    """The batched simulation. ``reset(seed)`` then ``step(actions)`` with actions (M, n, A);
    ``advance`` adds the evaluation cadence and the rewards (``metrics.py``)."""

    def __init__(self, config: MarketConfig, n_markets: int = 1) -> None:
        if not is_integer(n_markets) or n_markets < 1:
            raise ValueError(f"n_markets must be an integer >= 1, got {n_markets!r}")
        self.config = config
        self.n_markets = n_markets = int(n_markets)
        data = dataset_for(config)
        check_preferences(config, data)  # fail at construction, not at the first reset
        family = loss_family(data.task, data.extra)
        o = family.n_outputs(data.n_classes)
        n = slot_count(config)
        self.spec = MarketSpec(
            n_learners=n,
            n_features=data.n_features,
            n_outputs=o,
            target_dim=family.target_dim(data.n_classes),
            n_classes=data.n_classes if family.is_classification else 1,
            task=data.task,
            family=family,
            users_per_step=config.users_per_step,
            probe_size=config.probe_size,
            l2=config.l2,
            actions=ActionLayout(o * data.n_features, n, config.max_update),
        )
        check_resources(config, self.spec, data, n_markets)  # before anything is allocated
        self.population: Population | None = None
        self.population_seed: int | None = None
        self.state: MarketState | None = None
        self.gens = MarketGenerators(n_markets)
        self.choice_rule = make_choice_rule(config)
        # the components this config switches on (None: off)
        self.entry = EntryExit(config, n_markets) if entry_exit.is_enabled(config) else None
        self.collective = (
            Collective(config, self.spec, n_markets) if config.collective_fraction else None
        )
        self.outside = OutsideOption(config) if outside.is_enabled(config) else None
        self.components: list[Component] = [
            c for c in (self.entry, self.collective, self.outside) if c is not None
        ]
        # (M, n) bool of the learners present, None while the learner set is fixed; each
        # user's preferred learner, (N,) for all markets or (M, N) once markets differ
        self.active: np.ndarray | None = None
        self.loyalty: np.ndarray | None = None
        B = config.users_per_step
        self._market_offset = np.arange(n_markets)[:, None] * n
        self._user_index = np.arange(B)[None, :]
        self._flat_user = np.arange(n_markets * B).reshape(n_markets, B)  # m B + b
        self._hard = False  # 0/1 targets under the logistic loss: choice by margin
        self._learners = np.arange(slot_count(config))[:, None]
        self._no_queries = np.zeros((n_markets, n), np.int64)
        self._no_queries.flags.writeable = False

    @property
    def rng(self) -> np.random.Generator:
        """The shared generator (market 0's when each market has its own)."""
        return self.gens.shared

    # ----------------------------------------------------------------- reset and step
    def reset(self, seed: int | None = None, seeds=None) -> MarketState:
        """Fresh markets: population, initial parameters, first batch and its choices.

        A ``seed`` restarts the shared generator; ``None`` continues the current one
        (Gymnasium's convention), so ``reset(seed=s); reset()`` is reproducible too.
        ``seeds`` (one integer per market) gives each market its own generator instead.
        """
        cfg, spec, gens = self.config, self.spec, self.gens
        gens.reset(check_seed(seed), seeds)
        pop_seed = cfg.population_seed
        if pop_seed is None and gens.per_market is not None:
            drawn = {int(r.integers(2**31 - 1)) for r in gens.per_market}
            if len(drawn) > 1:
                raise ValueError(
                    "population_seed=None draws a population per seed; markets reset together "
                    "with different seeds need a fixed population_seed (an integer >= 0)"
                )
            pop_seed = drawn.pop()
        elif pop_seed is None:
            pop_seed = int(gens.shared.integers(2**31 - 1))
        self.population_seed = pop_seed
        self.population = pop = population_for(cfg, pop_seed)
        M, n, o, d = self.n_markets, cfg.n_learners, spec.n_outputs, spec.n_features
        if cfg.init == "partition_erm":
            theta = np.broadcast_to(pop.partition_theta, (M, n, o, d)).copy()
        elif cfg.init in RANDOM_INITS and gens.per_market is not None:
            theta = cfg.init_scale * np.stack(
                [r.standard_normal((n, o, d)) for r in gens.per_market]
            )
        elif cfg.init in RANDOM_INITS:
            theta = cfg.init_scale * gens.shared.standard_normal((M, n, o, d))
        else:
            theta = np.zeros((M, n, o, d))
        if cfg.init == "published":  # the random draw, then gradient descent on each partition
            theta = published_start(pop, theta, cfg.l2)
        theta = np.clip(theta, -MAX_PARAM, MAX_PARAM)  # parameters stay bounded
        if self.entry is not None:  # slots of learners that enter later start empty
            theta = self.entry.with_slots(theta)
        n, B, Np, t = spec.n_learners, spec.users_per_step, spec.probe_size, spec.target_dim
        self.state = MarketState(
            theta=theta,
            step=0,
            batch=np.zeros((M, B), np.int64),
            batch_X=np.zeros((M, B, d)),
            batch_T=np.zeros((M, B, t)),
            choice=np.zeros((M, B), np.int64),
            served_loss=np.zeros((M, B)),
            counts=np.zeros((M, n), np.int64),
            local_loss=np.zeros((M, n)),
            probe_X=np.zeros((M, n, Np, d)),
            probe_T=np.zeros((M, n, Np, t)),
            probe_users=np.zeros((M, n, Np), np.int64),
            probe_peer=np.full((M, n, Np), -1, np.int64),
            probe_valid=np.zeros((M, n), bool),
            probe_queries=self._no_queries,
            global_loss=np.zeros((M, n)),
            global_accuracy=np.zeros((M, n)),
            eval_step=0,
            probe_version=0,
        )
        self.active, self.loyalty = None, pop.pref
        self._hard = spec.family.name == "logistic" and bool(np.isin(pop.T_train, (0, 1)).all())
        for c in self.components:
            c.reset(self)
        self.choice_rule.reset(self)
        self._arrive()
        self.evaluate()
        return self.state

    def step(self, actions: np.ndarray) -> MarketState:
        """Advance every market one step with clipped actions of shape (M, n, A)."""
        s = self.state
        if s is None:
            raise RuntimeError("call reset() before step()")
        for c in self.components:
            actions = c.mask_actions(self, actions)
        updates, probe, peers, route = self.spec.actions.split(actions)
        if peers is not None:
            s.probe_queries = np.zeros_like(s.probe_queries)
            answer_probes(self, probe, peers, route)
        elif s.probe_queries is not self._no_queries:
            s.probe_queries = self._no_queries
        theta = s.theta
        theta += updates.reshape(theta.shape)
        np.minimum(np.maximum(theta, -MAX_PARAM, out=theta), MAX_PARAM, out=theta)  # bounded
        s.step += 1
        for c in self.components:
            c.before_arrival(self)
        self._arrive()
        for c in self.components:
            c.after_step(self)
        return s

    def advance(
        self, actions: np.ndarray, collective_actions: np.ndarray | None = None
    ) -> tuple[np.ndarray, bool]:
        """One step with its bookkeeping: the collective's validated (M, 3) actions (if any)
        take effect, the markets step, the full-population figures are refreshed when due.
        Returns the (M, n) rewards and whether an evaluation happened."""
        if collective_actions is not None:
            self.collective.set_actions(collective_actions)
        s = self.step(actions)
        evaluated = evaluation_due(self.config, s.step)
        if evaluated:
            self.evaluate()
        return rewards(self.config, self), evaluated

    def add_learner(self, kind: str = "clone", parent: int | None = None) -> int:
        """Ask for a learner to enter every market at the next step (see ``entry_exit.py``);
        returns its slot. Needs a free slot (``max_learners``)."""
        if self.entry is None or self.state is None:
            raise ValueError(
                "add_learner needs max_learners > n_learners (a free slot) and a reset market"
            )
        return self.entry.add_learner(kind, parent)

    # ----------------------------------------------------------------- loyalty
    def preferred(self, idx: np.ndarray) -> np.ndarray:
        """Preferred learner (M, B) of the batch users ``idx`` (M, B)."""
        if self.loyalty.ndim == 1:
            return self.loyalty.take(idx)
        return np.take_along_axis(self.loyalty, idx, 1)

    def preferred_of(self, idx: np.ndarray, markets: np.ndarray) -> np.ndarray:
        """Preferred learner (R, k) of users ``idx`` (R, k) of markets ``markets`` (R,)."""
        if self.loyalty.ndim == 1:
            return self.loyalty[idx]
        return self.loyalty[markets[:, None], idx]

    # ----------------------------------------------------------------- the batch
    def _arrive(self) -> None:
        """Draw the batch, let users choose, and record what each learner served."""
        s, pop, M = self.state, self.population, self.n_markets
        n, B = s.theta.shape[1], self.config.users_per_step
        # one draw for batch and loyalty: floor(u N) is uniform on 0..N-1 up to O(N / 2^53)
        draws = self.gens.block((2, B))
        idx = (draws[:, 0] * len(pop.X_train)).astype(np.intp)
        u = draws[:, 1]
        X, T = pop.X_train.take(idx, 0), pop.T_train.take(idx, 0)
        for c in self.components:
            X, T = c.present(self, X, T)
        z = batch_logits(s.theta, X)  # (M, B, n, o)
        exclude = None if self.entry is None else self.entry.exclude_inactive
        a = Arrival(idx, u, z, T, pop.family, self._hard, self.preferred(idx), self.active, exclude)
        choice = self.choice_rule.choose(self, a)
        for c in self.components:
            choice = c.after_choice(self, a, choice)
        # each user's logits at its learner, and only there its loss
        ok = None if self.outside is None else choice >= 0
        c = choice if ok is None else np.where(ok, choice, 0)
        flat = (self._flat_user * n + c).ravel()
        o = z.shape[-1]
        if o == 1:  # a flat gather is several times faster than a gather of rows
            zs = z.reshape(-1).take(flat).reshape(M, B, 1)
        else:
            zs = z.reshape(M * B * n, o).take(flat, 0).reshape(M, B, o)
        served = pop.family.loss(zs, T)
        key = (self._market_offset + c).ravel()
        weights = served.ravel()
        if ok is not None:
            key, weights = key[ok.ravel()], weights[ok.ravel()]
        counts = np.bincount(key, minlength=M * n).reshape(M, n)
        sums = np.bincount(key, weights=weights, minlength=M * n).reshape(M, n)
        if ok is not None and not ok.all():
            served = np.where(ok, served, math.nan)
        if np.logical_and.reduce(counts, None):
            s.local_loss = sums / counts
        else:
            s.local_loss = np.where(counts > 0, sums / np.maximum(counts, 1), a.L.mean(-1))
        s.batch, s.choice, s.served_loss, s.counts = idx, choice, served, counts
        s.batch_X, s.batch_T, s.served_logits = X, T, zs

    # ----------------------------------------------------------------- measurements
    def evaluate(self) -> None:
        """Full-population risk (and accuracy) of every learner on the test users."""
        s, pop = self.state, self.population
        if pop.test_stats is not None:  # a quadratic risk: from sufficient statistics
            s.global_loss = quadratic_risk(s.theta, pop.test_stats)
            s.global_accuracy = np.full(s.global_loss.shape, math.nan)
        else:
            z = logits(s.theta, pop.X_test)  # (M, n, N_test, o)
            s.global_loss = pop.family.loss(z, pop.T_test).mean(-1)
            if pop.family.is_classification:
                s.global_accuracy = (pop.family.predict(z) == pop.y_test).mean(-1)
            else:
                s.global_accuracy = np.full(s.global_loss.shape, math.nan)
        for c in self.components:
            c.evaluate(self)
        s.eval_step = s.step

    def user_gradients(self) -> np.ndarray:
        """(M, n, o, d): each learner's mean loss gradient over the users who chose it in the
        current batch (zero if none), ``g_k = sum_{b: choice_b = k} dl/dz_b x_b^T / |U_k|``,
        from the logits the users chose by: one product per market over the batch."""
        s = self.state
        W = s.choice[:, None, :] == self._learners  # the one-hot of the choice, (M, n, B)
        family = self.spec.family
        return weighted_mean_gradient(family, s.served_logits, s.batch_T, s.batch_X, W, s.counts)

    def padded_users(self, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each learner's view of the current batch: its own users at their batch positions,
        zeros in the other positions.

        Returns covariates (M, n, B, d), targets (M, n, B, t) and mask (M, n, B) with
        ``mask[m, k, b] = 1`` iff user b of market m chose learner k.
        """
        s = self.state
        M, n = s.counts.shape
        B, d, t = s.batch_X.shape[1], s.batch_X.shape[2], s.batch_T.shape[2]
        # flat position of (market m, learner choice[m, b], user b) in an (M, n, B) array
        at = ((self._market_offset + s.choice) * B + self._user_index).ravel()
        X = np.zeros((M * n * B, d), dtype)
        T = np.zeros((M * n * B, t), dtype)
        mask = np.zeros(M * n * B, dtype)
        bX, bT = s.batch_X.reshape(-1, d), s.batch_T.reshape(-1, t)
        if self.outside is not None:
            ok = (s.choice >= 0).ravel()  # unserved users are seen by no learner
            at, bX, bT = at[ok], bX[ok], bT[ok]
        X[at] = bX
        T[at] = bT
        mask[at] = 1.0
        return X.reshape(M, n, B, d), T.reshape(M, n, B, t), mask.reshape(M, n, B)
