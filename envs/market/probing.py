"""Probing peer models: answer the probe requests of a step's actions.

Each request draws N_probe training covariates (with replacement). A query goes to one
intended peer (the probed user's preferred learner when routing by preference, or the single
named peer) except that with probability kappa (``probe_noise``) it goes to a uniformly random
other *active* learner; with several named peers the pseudo-label is the coordinatewise median
of their logits. Peers answer with the models that served the batch the action responds to.
The response (covariates, pseudo-label targets) is held until the learner's next request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .losses import logits

if TYPE_CHECKING:
    from .core import MarketCore


def answer_probes(core: MarketCore, probe: np.ndarray, peers: np.ndarray, route: np.ndarray):
    """Fill the probe sets of the requesting learners: ``probe`` (M, n) bool, ``peers``
    (M, n, n) bool, ``route`` (M, n) bool (R requests at once)."""
    s, pop, cfg, spec = core.state, core.population, core.config, core.spec
    m, k = np.nonzero(probe)
    n, Np = spec.n_learners, spec.probe_size
    noise = n > 1 and cfg.probe_noise > 0
    idx, noisy, other_u = _draws(core, m, len(pop.X_train), noise)
    Xp = pop.X_train[idx]  # (R, Np, d)
    for c in core.components:
        Xp = c.present_probes(core, Xp, m)
    z_all = logits(s.theta[m], Xp)  # (R, n, Np, o)
    peers_r, route_r = peers[m, k], route[m, k]
    n_named = peers_r.sum(-1)
    single = route_r | (n_named == 1)
    prefs = core.preferred_of(idx, m)
    intended = np.where(route_r[:, None], prefs, peers_r.argmax(-1)[:, None])
    if noise:
        other = _other_peer(intended, other_u, n, None if core.active is None else core.active[m])
        intended = np.where(noisy & single[:, None], other, intended)
    z = np.take_along_axis(z_all, intended[:, None, :, None], 1)[:, 0]
    if not single.all():
        masked = np.where(peers_r[:, :, None, None], z_all, np.nan)
        z[~single] = np.nanmedian(masked[~single], axis=1)
    s.probe_X[m, k] = Xp
    s.probe_users[m, k] = idx
    s.probe_peer[m, k] = np.where(single[:, None], intended, -1)
    hard = cfg.probe_labels == "hard"
    s.probe_T[m, k] = pop.family.pseudo_targets(z, hard, pop.T_train, idx)
    s.probe_valid[m, k] = True
    s.probe_version += 1
    s.probe_queries[m, k] = np.where(single, Np, Np * n_named)


def _draws(core: MarketCore, m: np.ndarray, n_train: int, noise: bool):
    """Random numbers of R requests (rows ``m`` sorted by market): probed users (R, N_probe),
    and with routing noise the noisy-query flags and the other-peer draws. Market m's requests
    draw from its generator in the order a lone market draws them."""
    R, n, Np = len(m), core.spec.n_learners, core.spec.probe_size
    kappa = core.config.probe_noise
    fixed = core.active is None  # every learner present: an integer offset, else a uniform
    idx = np.empty((R, Np), np.int64)
    noisy = np.empty((R, Np), bool) if noise else None
    other = np.empty((R, Np), np.int64 if fixed else np.float64) if noise else None
    for rng, rows in core.gens.by_market(m):
        size = (rows.stop - rows.start, Np)
        idx[rows] = rng.integers(n_train, size=size)
        if noise:
            noisy[rows] = rng.random(size) < kappa
            other[rows] = rng.integers(n - 1, size=size) if fixed else rng.random(size)
    return idx, noisy, other


def _other_peer(intended: np.ndarray, draw: np.ndarray, n: int, active: np.ndarray | None):
    """A uniformly random learner other than ``intended`` (R, Np): with every learner present
    ``draw`` is an integer offset in 0..n-2; with ``active`` (R, n) it is a uniform and the
    pick ranges over the active others (``intended`` itself where it is the only one)."""
    if active is None:
        return (intended + 1 + draw) % n
    a = active.sum(1)[:, None]
    order = np.argsort(~active, axis=1, kind="stable")
    rank = np.take_along_axis(np.cumsum(active, 1) - 1, intended, 1)
    step = 1 + (draw * np.maximum(a - 1, 1)).astype(np.intp)
    other = np.take_along_axis(order, (rank + step) % a, 1)
    return np.where(a > 1, other, intended)
