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
    peers_r, route_r = peers[m, k], route[m, k]
    n_named = peers_r.sum(-1)
    single = route_r | (n_named == 1)
    prefs = core.preferred_of(idx, m)
    intended = np.where(route_r[:, None], prefs, peers_r.argmax(-1)[:, None])
    if noise:
        other = _other_peer(intended, other_u, n, None if core.active is None else core.active[m])
        intended = np.where(noisy & single[:, None], other, intended)
    z = _peer_logits(s.theta, m, Xp, intended, peers_r, single)
    s.probe_X[m, k] = Xp
    s.probe_users[m, k] = idx
    s.probe_peer[m, k] = np.where(single[:, None], intended, -1)
    hard = cfg.probe_labels == "hard"
    s.probe_T[m, k] = pop.family.pseudo_targets(z, hard, pop.T_train, idx)
    s.probe_valid[m, k] = True
    s.probe_version += 1
    s.probe_queries[m, k] = np.where(single, Np, Np * n_named)


_CHUNK = 1 << 22  # logits held at once while answering (32 MB in float64)


def _peer_logits(
    theta: np.ndarray,
    m: np.ndarray,
    Xp: np.ndarray,
    intended: np.ndarray,
    peers: np.ndarray,
    single: np.ndarray,
) -> np.ndarray:
    """The answers (R, N_probe, o): for a single-peer request the logits of the ``intended``
    peer of each covariate, otherwise the coordinatewise median of the named ``peers``' logits.

    Requests are answered a chunk at a time (at most ``_CHUNK`` logits held). Requests
    naming the same peers share one median over exactly those peers' logits, laid out with
    the peers last: no NaN-padded array over all learners is formed."""
    R, Np = intended.shape
    n, o, d = theta.shape[1:]
    z = np.empty((R, Np, o), np.result_type(theta, Xp))
    step = max(1, _CHUNK // max(1, n * Np * o))
    one = np.flatnonzero(single)
    for a in range(0, len(one), step):
        r = one[a : a + step]
        z_all = logits(theta[m[r]], Xp[r])  # (r, n, Np, o)
        z[r] = np.take_along_axis(z_all, intended[r, None, :, None], 1)[:, 0]
    multi = np.flatnonzero(~single)
    if len(multi) == 0:
        return z
    sets, which = np.unique(peers[multi], axis=0, return_inverse=True)
    for g, named in enumerate(sets):
        k = np.flatnonzero(named)
        rows = multi[which.ravel() == g]
        for a in range(0, len(rows), step):
            r = rows[a : a + step]
            w = theta[m[r]][:, k].transpose(0, 3, 2, 1).reshape(len(r), d, o * len(k))
            z[r] = _median_last(np.matmul(Xp[r], w).reshape(len(r), Np, o, len(k)))
    return z


def _median_last(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=-1)`` (the mean of the two middle values for an even count) from
    one sort of the short last axis, several times faster than a partition per row."""
    a = np.sort(a, axis=-1)
    k = a.shape[-1]
    if k % 2:
        return a[..., k // 2]
    return (a[..., k // 2 - 1] + a[..., k // 2]) / 2.0


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
