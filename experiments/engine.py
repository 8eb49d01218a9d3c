"""Batched engine: many independent markets with MSGD/MSGD-P learners advanced in lockstep.

Market m has its own generator (``MarketCore.reset(seeds=...)``) and its own policies, so
markets may differ in seed, probing weight p, scenario and probers while sharing one set of
arrays. Every market's history is *identical* to :func:`choicemarket.experiments.runner.simulate` run on
that market alone: the policies' arithmetic is the one the environment's observations feed
them (float32 views of the batch, parameters and probe sets, float64 step), done for all
M x n learners at once.

One step, for all K = M n learners: ``g = mean_gradient(own users)``; for probers holding a
probe set, ``d = (g + p h) / (1 + p)`` with ``h`` the mean gradient on b_p resampled probe
points; ``u = -eta_t (d + lambda theta)`` clipped to ``max_update``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from choicemarket.baselines import MSGD
from choicemarket.baselines.msgd import mix_probe_gradient
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.core import MarketCore
from choicemarket.envs.market.losses import mean_gradient

_F32 = np.float32


@dataclass
class MarketRun:
    """What one market of a batch produced: rows at evaluation points (as ``History.rows``
    for one seed), the baseline, and optional parameter snapshots ``{step: theta list}``."""

    seed: int
    rows: list[dict]
    baseline: dict
    snapshots: dict[int, list]


def policy_seed(seed: int, k: int) -> int:
    """The seed ``simulate`` gives policy k of the episode with environment seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0])


class _Learners:
    """The K = M n policies of a batch as arrays (hyperparameters fixed at construction)."""

    def __init__(self, policies: Sequence[Sequence[MSGD]], n: int) -> None:
        flat = [pol for market in policies for pol in market]
        for pol in flat:
            if not isinstance(pol, MSGD):
                raise ValueError(
                    f"the batched engine runs MSGD/MSGD-P policies, got {type(pol).__name__}"
                )
        if len({id(pol) for pol in flat}) != len(flat):
            raise ValueError("policies must be distinct objects: each draws from its own generator")
        self.flat = flat
        self.M, self.n = len(policies), n
        self.neg_eta = -np.array([pol.eta for pol in flat])[:, None, None]
        inv = np.array([pol.schedule == "inv_sqrt" for pol in flat])
        self.inv_sqrt = inv if inv.any() else None
        self.l2 = np.array([pol.l2 for pol in flat])[:, None, None]
        self.probers = np.array([i for i, pol in enumerate(flat) if pol.p > 0], np.intp)
        self.p = np.array([flat[i].p for i in self.probers])[:, None, None]
        self.b_p = np.array([flat[i].probe_batch_size for i in self.probers], np.intp)

    def probe_batches(self, sel: np.ndarray, n_valid: int) -> np.ndarray | list[np.ndarray]:
        """Each selected prober's b_p probe-row indices from its own generator, as
        ``MSGDP.probe_batch`` draws them: ``floor(u * n_valid)``."""
        rows = self.probers[sel]
        b_p = self.b_p[sel]
        if (b_p == b_p[0]).all():
            u = np.empty((len(rows), int(b_p[0])))
            for j, i in enumerate(rows):
                self.flat[i].rng.random(out=u[j])
            return (u * n_valid).astype(np.intp)
        return [
            (self.flat[i].rng.random(int(b)) * n_valid).astype(np.intp) for i, b in zip(rows, b_p)
        ]

    def probe_due(self, t: int) -> list[int]:
        return [int(i) for i in self.probers if self.flat[i].probe_request(t)[0]]


def run_markets(
    config: MarketConfig | Mapping[str, Any],
    policies: Sequence[Sequence[MSGD]],
    seeds: Sequence[int],
    progress: Callable[[int], None] | None = None,
    snapshot_every: int | None = None,
) -> list[MarketRun]:
    """Run ``len(seeds)`` markets of ``config`` together; market m plays ``policies[m]`` (one
    MSGD/MSGD-P per learner) with environment seed ``seeds[m]``.

    Returns one :class:`MarketRun` per market whose rows equal ``simulate(config,
    policies[m], seeds=[seeds[m]]).rows``. ``progress`` is called with the number of
    market-steps done after each step.
    """
    cfg = config if isinstance(config, MarketConfig) else MarketConfig.from_kwargs(**config)
    seeds = [int(s) for s in seeds]
    M = len(seeds)
    if M == 0:
        return []
    if len(policies) != M:
        raise ValueError(f"policies must hold one list per market ({M}), got {len(policies)}")
    core = MarketCore(cfg, n_markets=M)
    spec = core.spec
    n, o, d, Np, P = (
        spec.n_learners,
        spec.n_outputs,
        spec.n_features,
        spec.probe_size,
        spec.n_params,
    )
    if any(len(pols) != n for pols in policies):
        raise ValueError(f"each market needs one policy per learner ({n})")
    learners = _Learners(policies, n)
    for seed, pols in zip(seeds, policies):
        for k, pol in enumerate(pols):
            pol.reset(policy_seed(seed, k))
    K = M * n
    family, layout = spec.family, spec.actions
    low, high = layout._bounds
    s = core.reset(seeds=seeds)
    pop = core.population
    baseline = {
        "loss": pop.baseline_loss,
        "accuracy": None if np.isnan(pop.baseline_accuracy) else pop.baseline_accuracy,
    }
    rows: list[list[dict]] = [[] for _ in range(M)]
    snaps: list[dict[int, list]] = [{} for _ in range(M)]
    returns = np.zeros((M, n))
    _record(rows, seeds, core, returns)
    _snapshot(snaps, s, snapshot_every)
    off = np.tile(layout.build(), (K, 1))
    probe_version, pX32, pT32 = -1, None, None
    prob_rows = learners.probers
    for _ in range(cfg.max_steps):
        t = s.step
        X, T, mask = (a.reshape(K, *a.shape[2:]) for a in core.padded_users(_F32))
        theta32 = s.theta.reshape(K, o, d).astype(_F32)
        direction = mean_gradient(family, theta32, X, T, mask)
        if len(prob_rows):
            if probe_version != s.probe_version:  # float32 probe sets of the probers only
                pX32 = s.probe_X.reshape(K, Np, d)[prob_rows].astype(_F32)
                pT32 = s.probe_T.reshape(K, Np, -1)[prob_rows].astype(_F32)
                probe_version = s.probe_version
            _mix_probes(learners, family, direction, theta32, s.probe_valid.reshape(K), pX32, pT32)
        neg_eta = learners.neg_eta
        if learners.inv_sqrt is not None:
            tt = np.full(K, float(_F32(t)))
            neg_eta = neg_eta / np.where(learners.inv_sqrt, np.sqrt(tt + 1.0), 1.0)[:, None, None]
        update = (direction + learners.l2 * theta32) * neg_eta
        actions = off.copy()
        bound = layout.max_update
        np.minimum(np.maximum(update.reshape(K, P), -bound), bound, out=actions[:, :P])
        for i in learners.probe_due(t):
            pol = learners.flat[i]
            _, peers, route = pol.probe_request(t)
            actions[i] = layout.build(actions[i, :P], True, peers, route)
        a64 = actions.astype(np.float64)
        np.minimum(np.maximum(a64, low, out=a64), high, out=a64)
        s = core.step(a64.reshape(M, n, -1))
        truncated = s.step >= cfg.max_steps
        evaluated = cfg.reward == "global" or truncated or s.step % cfg.eval_every == 0
        if evaluated:
            core.evaluate()
        if cfg.reward == "local":
            reward = -s.local_loss
        elif cfg.reward == "global":
            reward = -s.global_loss
        else:
            reward = s.counts / s.batch.shape[1]
        if cfg.probe_cost:
            reward = reward - cfg.probe_cost * s.probe_queries
        returns += reward
        if evaluated:
            _record(rows, seeds, core, returns)
        if snapshot_every and s.step % snapshot_every == 0:
            _snapshot(snaps, s, snapshot_every)
        if progress is not None:
            progress(M)
    return [MarketRun(seeds[m], rows[m], baseline, snaps[m]) for m in range(M)]


def _mix_probes(learners, family, direction, theta32, valid, pX32, pT32) -> None:
    """``direction[i] = (g_i + p_i h_i) / (1 + p_i)`` for every prober i holding a probe set
    (``pX32[j]``, ``pT32[j]``: the probe set of prober ``learners.probers[j]``)."""
    active = valid[learners.probers]
    if not active.any():
        return
    sel = np.flatnonzero(active)
    rows = learners.probers[sel]
    batches = learners.probe_batches(sel, pX32.shape[1])
    if isinstance(batches, np.ndarray):
        b = batches
        h = mean_gradient(family, theta32[rows], pX32[sel[:, None], b], pT32[sel[:, None], b])
    else:  # probe batches of different sizes: one gradient call per prober
        h = [
            mean_gradient(family, theta32[i : i + 1], pX32[j, bi][None], pT32[j, bi][None])[0]
            for i, j, bi in zip(rows, sel, batches)
        ]
    direction[rows] = mix_probe_gradient(direction[rows], np.asarray(h), learners.p[sel])


def _record(rows: list[list[dict]], seeds, core: MarketCore, returns: np.ndarray) -> None:
    """Append every learner's metrics for every market (the rows ``simulate`` records)."""
    s, pop = core.state, core.population
    M, n = s.counts.shape
    B = s.batch.shape[1]
    bl, ba = pop.baseline_loss, pop.baseline_accuracy
    gl, ga = s.global_loss.tolist(), s.global_accuracy.tolist()
    ll, users = s.local_loss.tolist(), s.counts.tolist()
    queries, ret = s.probe_queries.tolist(), returns.tolist()
    for m in range(M):
        social = sum(v * c for v, c in zip(ll[m], users[m])) / B
        for k in range(n):
            rows[m].append(
                {
                    "seed": seeds[m],
                    "step": s.step,
                    "agent": f"learner_{k}",
                    "learner": k,
                    "global_loss": gl[m][k],
                    "global_accuracy": ga[m][k],
                    "gap": gl[m][k] - bl,
                    "accuracy_gap": ba - ga[m][k],
                    "local_loss": ll[m][k],
                    "share": users[m][k] / B,
                    "users": users[m][k],
                    "probe_queries": queries[m][k],
                    "social_cost": social,
                    "return": ret[m][k],
                }
            )


def _snapshot(snaps: list[dict], s, every: int | None) -> None:
    if every:
        for m, theta in enumerate(s.theta):
            snaps[m][s.step] = theta.tolist()
