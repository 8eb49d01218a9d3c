"""``MarketCore``: M independent markets stepped together on batched arrays.

One step of every market (semantics: users arrive, choose, learners update):

1. answer probe requests (peers are queried with the models that served the batch the
   action responds to), then apply each learner's parameter update ``theta_k += u_k``;
2. draw B training users per market i.i.d. with replacement;
3. each user chooses a learner by the choice rule, e.g. preferred learner with probability tau,
   else ``argmin_k l(theta_k; x, y)`` (ties: lowest index);
4. record counts, each user's loss at its learner, and each learner's local loss.

All M markets share one population. ``reset(seed)`` gives them one shared
``numpy.random.Generator``; ``reset(seeds=[...])`` gives market m its own generator seeded by
``seeds[m]``, so that market m follows exactly the trajectory it would follow alone with that
seed (M = 1 draws the same numbers either way).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .actions import ActionLayout
from .choice import loss_or_uniform, make_behaviour, preference_or_loss
from .collective import Collective
from .config import MarketConfig
from .entry_exit import EntryExit, is_enabled, slot_count
from .losses import logits, loss_family, quadratic_risk
from .population import Population, build_population, check_preferences, dataset_for
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
    """The batched simulation. ``reset(seed)`` then ``step(actions)`` with actions (M, n, A)."""

    def __init__(self, config: MarketConfig, n_markets: int = 1) -> None:
        if isinstance(n_markets, bool) or not isinstance(n_markets, numbers.Integral):
            raise ValueError(f"n_markets must be an integer >= 1, got {n_markets!r}")
        if n_markets < 1:
            raise ValueError(f"n_markets must be an integer >= 1, got {n_markets!r}")
        self.config = config
        self.n_markets = n_markets = int(n_markets)
        data = dataset_for(config)
        check_preferences(config, data)  # fail at construction, not at the first reset
        family = loss_family(data.task, data.extra)
        o = family.n_outputs(data.n_classes)
        self.spec = MarketSpec(
            n_learners=slot_count(config),
            n_features=data.n_features,
            n_outputs=o,
            target_dim=family.target_dim(data.n_classes),
            n_classes=data.n_classes if family.is_classification else 1,
            task=data.task,
            family=family,
            users_per_step=config.users_per_step,
            probe_size=config.probe_size,
            l2=config.l2,
            actions=ActionLayout(o * data.n_features, slot_count(config), config.max_update),
        )
        self.population: Population | None = None
        self.state: MarketState | None = None
        self.rng = np.random.default_rng()
        self.rngs: list[np.random.Generator] | None = None  # per-market generators, if any
        self._seeded = False
        # learners entering and leaving (entry.py); None keeps the learner set fixed
        self.entry = EntryExit(config, n_markets) if is_enabled(config) else None
        n, B = slot_count(config), config.users_per_step
        self._market_offset = np.arange(n_markets)[:, None] * n
        self._learner_index = np.arange(n)[None, :, None]
        self._market_index, self._user_index = np.indices((n_markets, B))
        self._no_queries = np.zeros((n_markets, n), np.int64)
        self._no_queries.flags.writeable = False
        self.behaviour = make_behaviour(config)  # None: the default choice path below
        # the optional collective of users; None (and untouched in a step) when disabled
        self.collective = (
            Collective(config, self.spec, n_markets) if config.collective_fraction else None
        )

    # ----------------------------------------------------------------- reset and step
    def reset(self, seed: int | None = None, seeds=None) -> MarketState:
        """Fresh markets: population, initial parameters, first batch and its choices.

        A ``seed`` restarts the shared generator; ``None`` continues the current one
        (Gymnasium's convention), so ``reset(seed=s); reset()`` is reproducible too.
        ``seeds`` (one integer per market) gives each market its own generator instead.
        """
        cfg, spec = self.config, self.spec
        if seeds is not None:
            extensions = (self.behaviour, self.entry, self.collective)
            if any(x is not None for x in extensions):
                raise ValueError(
                    "seeds (one generator per market) supports the default market only; richer "
                    "choice rules, learners entering and leaving and collectives use reset(seed)"
                )
            self.rngs = self._market_generators(seeds)
            self.rng = self.rngs[0]
            self._seeded = True
        elif seed is not None or not self._seeded:
            self.rngs = None
            self.rng = np.random.default_rng(seed)
            self._seeded = True
        pop_seed = cfg.population_seed
        if pop_seed is None and self.rngs is not None:
            drawn = {int(r.integers(2**31 - 1)) for r in self.rngs}
            if len(drawn) > 1:
                raise ValueError(
                    "population_seed=None draws a population per seed; markets reset together "
                    "with different seeds need a fixed population_seed (an integer >= 0)"
                )
            pop_seed = drawn.pop()
        elif pop_seed is None:
            pop_seed = int(self.rng.integers(2**31 - 1))
        self.population = pop = population_for(cfg, pop_seed)
        M, n, o, d = self.n_markets, cfg.n_learners, spec.n_outputs, spec.n_features
        if cfg.init == "partition_erm":
            theta = np.broadcast_to(pop.partition_theta, (M, n, o, d)).copy()
        elif cfg.init == "random" and self.rngs is not None:
            theta = cfg.init_scale * np.stack([r.standard_normal((n, o, d)) for r in self.rngs])
        elif cfg.init == "random":
            theta = cfg.init_scale * self.rng.standard_normal((M, n, o, d))
        else:
            theta = np.zeros((M, n, o, d))
        if self.entry is not None:  # slots of learners that enter later start empty
            theta, n = self.entry.with_slots(theta), spec.n_learners
        Np, t = spec.probe_size, spec.target_dim
        self.state = MarketState(
            theta=theta,
            step=0,
            batch=np.zeros((M, spec.users_per_step), np.int64),
            batch_X=np.zeros((M, spec.users_per_step, d)),
            batch_T=np.zeros((M, spec.users_per_step, t)),
            choice=np.zeros((M, spec.users_per_step), np.int64),
            served_loss=np.zeros((M, spec.users_per_step)),
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
        if self.behaviour is not None:
            self.behaviour.reset(pop.pref, M, pop_seed)
        if self.entry is not None:
            self.entry.reset(self)
        if self.collective is not None:
            self.collective.reset(pop)
        self._arrive()
        self.evaluate()
        return self.state

    def _market_generators(self, seeds) -> list[np.random.Generator]:
        seeds = list(seeds)
        if len(seeds) != self.n_markets or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in seeds
        ):
            raise ValueError(
                f"seeds must be {self.n_markets} integers >= 0 (one per market), got {seeds!r}"
            )
        return [np.random.default_rng(int(v)) for v in seeds]

    def _random(self, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform draws of shape (M, *shape): market m's from its own generator if it has one."""
        if self.rngs is None:
            return self.rng.random((self.n_markets, *shape))
        out = np.empty((self.n_markets, *shape))
        for m, r in enumerate(self.rngs):
            r.random(out=out[m])
        return out

    def step(self, actions: np.ndarray) -> MarketState:
        """Advance every market one step with clipped actions of shape (M, n, A)."""
        s = self.state
        if s is None:
            raise RuntimeError("call reset() before step()")
        if self.entry is not None:  # inactive learners neither act nor answer probes
            actions = self.entry.mask_actions(actions, self.spec.n_params)
        updates, probe, peers, route = self.spec.actions.split(actions)
        if peers is not None:
            s.probe_queries = np.zeros_like(s.probe_queries)
            self._answer_probes(probe, peers, route)
        elif s.probe_queries is not self._no_queries:
            s.probe_queries = self._no_queries
        s.theta += updates.reshape(s.theta.shape)
        s.step += 1
        if self.entry is not None:
            self.entry.enter(self)
        self._arrive()
        if self.entry is not None:
            self.entry.leave(self)
        return s

    def add_learner(self, kind: str = "clone", parent: int | None = None) -> int:
        """Ask for a learner to enter every market at the next step (see ``entry.py``);
        returns its slot. Needs a free slot (``max_learners``)."""
        if self.entry is None or self.state is None:
            raise ValueError(
                "add_learner needs max_learners > n_learners (a free slot) and a reset market"
            )
        return self.entry.add_learner(kind, parent)

    # ----------------------------------------------------------------- pieces of a step
    def _arrive(self) -> None:
        """Draw the batch, let users choose, and record what each learner served."""
        s, pop, cfg = self.state, self.population, self.config
        M, n = s.theta.shape[:2]
        B = cfg.users_per_step
        rng = self.rng
        # one draw for batch and loyalty: floor(u N) is uniform on 0..N-1 up to O(N / 2^53)
        if self.rngs is None:
            draws = rng.random((2, M, B))
        else:
            draws = self._random((2, B)).swapaxes(0, 1)
        idx = (draws[0] * len(pop.X_train)).astype(np.intp)
        u = draws[1]
        X, T = pop.X_train.take(idx, 0), pop.T_train.take(idx, 0)
        if self.collective is not None:
            X, T = self.collective.present(X, T, rng)
        L = pop.family.loss(logits(s.theta, X), T[:, None])  # (M, n, B)
        entry = self.entry  # learners entering and leaving: only active ones are chosen
        best = (L if entry is None else entry.exclude_inactive(L)).argmin(1)
        if self.behaviour is not None:  # richer rules, see choice.py; -1: unserved
            choice = self.behaviour.choose(rng, s.step, idx, u, L, best)
            served, counts, sums = self.behaviour.served_stats(L, choice, self._market_offset)
        else:
            if cfg.choice_rule == "preference_or_loss":
                pref = pop.pref.take(idx) if entry is None else entry.preferred(idx)
                choice = preference_or_loss(u, pref, best, cfg.preference_weight)
            else:
                if self.rngs is not None:
                    uniform = np.stack([r.integers(n, size=B) for r in self.rngs])
                elif entry is None:
                    uniform = rng.integers(n, size=(M, B))
                else:
                    uniform = entry.uniform(rng, (M, B))
                choice = loss_or_uniform(u, uniform, best, cfg.uniform_weight)
            if self.collective is not None:
                choice = self.collective.route(choice)
            served = L[self._market_index, choice, self._user_index]
            key = (self._market_offset + choice).ravel()
            counts = np.bincount(key, minlength=M * n).reshape(M, n)
            sums = np.bincount(key, weights=served.ravel(), minlength=M * n).reshape(M, n)
        if np.logical_and.reduce(counts, None):
            s.local_loss = sums / counts
        else:
            s.local_loss = np.where(counts > 0, sums / np.maximum(counts, 1), L.mean(-1))
        s.batch, s.choice, s.served_loss, s.counts = idx, choice, served, counts
        s.batch_X, s.batch_T = X, T
        if self.collective is not None:
            self.collective.record(s.theta, choice, served, pop)

    def _answer_probes(self, probe: np.ndarray, peers: np.ndarray, route: np.ndarray) -> None:
        """Fill the probe sets of the requesting learners (R requests at once).

        Each request draws N_probe training covariates. A query goes to one intended peer (the
        probed user's preferred learner when routing, or the single named peer) except that
        with probability kappa it goes to a uniformly random other learner; with several named
        peers the pseudo-label is the coordinatewise median of their logits.
        """
        s, pop, cfg, spec = self.state, self.population, self.config, self.spec
        m, k = np.nonzero(probe)
        n, Np = spec.n_learners, spec.probe_size
        noise = n > 1 and cfg.probe_noise > 0
        rng = self.rng
        # with learners entering and leaving, the noisy routing is drawn below (active peers)
        idx, noisy, other_draw = self._probe_draws(
            m, len(pop.X_train), noise and self.entry is None
        )
        Xp = pop.X_train[idx]  # (R, Np, d)
        if self.collective is not None:
            Xp = self.collective.present_probes(Xp, m, rng)
        z_all = logits(s.theta[m], Xp)  # (R, n, Np, o)
        peers_r, route_r = peers[m, k], route[m, k]
        n_named = peers_r.sum(-1)
        single = route_r | (n_named == 1)
        prefs = pop.pref[idx] if self.entry is None else self.entry.pref[m[:, None], idx]
        intended = np.where(route_r[:, None], prefs, peers_r.argmax(-1)[:, None])
        if noise:
            if self.entry is None:
                other = (intended + 1 + other_draw) % n
            else:  # a random *active* other learner
                noisy = rng.random(idx.shape) < cfg.probe_noise
                other = self.entry.other_active(intended, m, rng)
            intended = np.where(noisy & single[:, None], other, intended)
        z = np.take_along_axis(z_all, intended[:, None, :, None], 1)[:, 0]
        if not single.all():
            masked = np.where(peers_r[:, :, None, None], z_all, np.nan)
            med = np.nanmedian(masked[~single], axis=1)
            z[~single] = med
        s.probe_X[m, k] = Xp
        s.probe_users[m, k] = idx
        s.probe_peer[m, k] = np.where(single[:, None], intended, -1)
        hard = cfg.probe_labels == "hard"
        s.probe_T[m, k] = pop.family.pseudo_targets(z, hard, pop.T_train, idx)
        s.probe_valid[m, k] = True
        s.probe_version += 1
        s.probe_queries[m, k] = np.where(single, Np, Np * n_named)

    def _probe_draws(self, m: np.ndarray, n_train: int, noise: bool):
        """Random numbers of R probe requests (rows ``m`` sorted by market): probed users
        (R, N_probe), and with routing noise the noisy-query flags and the other-peer offsets.
        A market with its own generator draws its requests' numbers in the same order as the
        shared generator of a lone market does."""
        R, n, Np = len(m), self.spec.n_learners, self.spec.probe_size
        kappa = self.config.probe_noise
        groups = [(self.rng, slice(0, R))]
        if self.rngs is not None:
            starts = np.flatnonzero(np.r_[True, m[1:] != m[:-1]]) if R else np.zeros(0, int)
            ends = np.r_[starts[1:], R]
            groups = [(self.rngs[m[a]], slice(a, b)) for a, b in zip(starts, ends)]
        idx = np.empty((R, Np), np.int64)
        noisy = np.empty((R, Np), bool) if noise else None
        other = np.empty((R, Np), np.int64) if noise else None
        for rng, rows in groups:
            size = (rows.stop - rows.start, Np)
            idx[rows] = rng.integers(n_train, size=size)
            if noise:
                noisy[rows] = rng.random(size) < kappa
                other[rows] = rng.integers(n - 1, size=size)
        return idx, noisy, other

    # ----------------------------------------------------------------- measurements
    def evaluate(self) -> None:
        """Full-population risk (and accuracy) of every learner on the test users."""
        s, pop = self.state, self.population
        if pop.test_stats is not None:  # a quadratic risk: from sufficient statistics
            s.global_loss = quadratic_risk(s.theta, pop.test_stats)
            s.global_accuracy = np.full(s.global_loss.shape, math.nan)
            s.eval_step = s.step
            return
        z = logits(s.theta, pop.X_test)  # (M, n, N_test, o)
        s.global_loss = pop.family.loss(z, pop.T_test).mean(-1)
        if pop.family.is_classification:
            s.global_accuracy = (pop.family.predict(z) == pop.y_test).mean(-1)
        else:
            s.global_accuracy = np.full(s.global_loss.shape, math.nan)
        if self.collective is not None:
            self.collective.measure(s.theta, pop)
        s.eval_step = s.step

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
        if self.behaviour is not None and self.behaviour.outside_until is not None:
            ok = (s.choice >= 0).ravel()  # unserved users are seen by no learner
            at, bX, bT = at[ok], bX[ok], bT[ok]
        X[at] = bX
        T[at] = bT
        mask[at] = 1.0
        return X.reshape(M, n, B, d), T.reshape(M, n, B, t), mask.reshape(M, n, B)
