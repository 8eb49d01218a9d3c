"""The learners' observations and the flat views of the market.

:func:`stacked_observation` is the one home of a learner's ``Dict`` observation, for every
learner of one market or of many at once: the ParallelEnv's observations are its rows
(:class:`RowObservation`), the batched views and the flat features take it whole.

:class:`ObservationFeatures` maps a learner's ``Dict`` observation (see
:mod:`choicemarket.envs.market_v0`) to one float32 vector with finite bounds; it is the one
home of the flat layout, used by the market's ``observation="flat"``, the Gymnasium
``FlatObservation`` and the Stable-Baselines3 ``VecEnv``. :class:`StateFeatures` is the global
state (``env.state()``) for centralised critics. P = n_params, n = n learner slots, d =
n_features, t = target_dim; losses are divided by the baseline's test loss L0 (1 = as good as
the all-users ERM); "clip" is the ``clip`` option (default 10).

Learner observation (blocks in this order; the ``users`` blocks only with ``user_stats=True``,
as in the market's flat observation; ``peer_shares`` only with ``peer_shares=True``):

============  =====  ==========  ===============================================================
entry         size   bounds      value
============  =====  ==========  ===============================================================
params        P      +-clip      own parameters / ``param_scale``
share         1      [0, 1]      own share of the current batch (its users / B)
local_loss    1      [0, clip]   own mean loss on its users / L0
probe_held    1      [0, 1]      1 if a probe response is held
probe_loss    1      [0, clip]   own mean loss on the held probe set (its pseudo-labels) / L0
progress      1      [0, 1]      step / max_steps
x_mean        d      +-clip      mean covariates of its users (0 when none)
x_std         d      [0, clip]   their standard deviation
y_mean        t      +-clip      mean target rows of its users
y_std         t      [0, clip]   their standard deviation
probe_x_mean  d      +-clip      mean covariates of the held probe set (0 when none)
probe_y_mean  t      +-clip      mean pseudo-label target rows of the held probe set
peer_shares   n      [0, 1]      every learner's share of the batch
============  =====  ==========  ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..checks import is_real
from ..layout import Block, Layout
from .losses import logits
from .spec import MarketSpec

__all__ = [
    "OBSERVATION_KEYS",
    "ObservationFeatures",
    "RowObservation",
    "StateFeatures",
    "stacked_observation",
]


def _positive(name: str, v: float) -> float:
    if not (is_real(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return float(v)


class ObservationFeatures:
    """Maps learners' ``Dict`` observations to the flat vectors of the module's table.

    Args:
        spec: the market's :class:`MarketSpec`.
        max_steps: the episode length (for ``progress``).
        param_scale: parameters are divided by it before clipping.
        clip: bound of the parameter, loss-ratio and statistics entries.
        peer_shares: append every learner's share (a learner does not see them in the market).
        user_stats: append the statistics of its users and of its probe response.
    """

    def __init__(
        self,
        spec: MarketSpec,
        max_steps: int,
        param_scale: float = 1.0,
        clip: float = 10.0,
        peer_shares: bool = False,
        user_stats: bool = False,
    ) -> None:
        param_scale, clip = _positive("param_scale", param_scale), _positive("clip", clip)
        for name, v in (("peer_shares", peer_shares), ("user_stats", user_stats)):
            if not isinstance(v, bool):
                raise ValueError(f"{name} must be True or False, got {v!r}")
        self.spec, self.max_steps = spec, int(max_steps)
        self.param_scale, self.clip = param_scale, clip
        self.peer_shares, self.user_stats = peer_shares, user_stats
        P, n, d, t = spec.n_params, spec.n_learners, spec.n_features, spec.target_dim
        stats = int(user_stats)
        self.layout = Layout(
            [
                Block("params", P, -clip, clip, "own parameters / param_scale"),
                Block("share", 1, 0.0, 1.0, "own share of the batch"),
                Block("local_loss", 1, 0.0, clip, "own mean loss on its users / L0"),
                Block("probe_held", 1, 0.0, 1.0, "1 if a probe response is held"),
                Block("probe_loss", 1, 0.0, clip, "own loss on the held probe set / L0"),
                Block("progress", 1, 0.0, 1.0, "step / max_steps"),
                Block("x_mean", d * stats, -clip, clip, "mean covariates of its users"),
                Block("x_std", d * stats, 0.0, clip, "their standard deviation"),
                Block("y_mean", t * stats, -clip, clip, "mean targets of its users"),
                Block("y_std", t * stats, 0.0, clip, "their standard deviation"),
                Block("probe_x_mean", d * stats, -clip, clip, "mean probe covariates"),
                Block("probe_y_mean", t * stats, -clip, clip, "mean probe targets"),
                Block("peer_shares", n * int(peer_shares), 0.0, 1.0, "every learner's share"),
            ]
        )
        self.size, self.space = self.layout.size, self.layout.space

    def vectors(
        self,
        observations: Mapping[str, np.ndarray],
        baseline_loss: float,
        shares: np.ndarray | None = None,
    ) -> np.ndarray:
        """(k, size) flat observations of k learners from their ``Dict`` observations stacked
        on a leading axis (``params`` (k, P), ``mask`` (k, B), ...); ``shares`` (n,) is needed
        when ``peer_shares`` is on."""
        spec, obs, sl = self.spec, observations, self.layout.slices
        f64 = np.float64
        params = np.asarray(obs["params"], f64)
        k = params.shape[0]
        v = self.layout.empty(k)
        scale = 1.0 / max(float(baseline_loss), 1e-12)
        v[:, sl["params"]] = params / self.param_scale
        v[:, sl["share"]] = obs["share"]
        v[:, sl["local_loss"]] = np.asarray(obs["local_loss"], f64) * scale
        pmask = np.asarray(obs["probe_mask"], f64)  # (k, N_probe)
        held = pmask.sum(-1)
        v[:, sl["probe_held"]] = (held > 0)[:, None]
        pX, pT = np.asarray(obs["probe_covariates"], f64), np.asarray(obs["probe_targets"], f64)
        probe_loss = np.zeros(k)
        if held.any():
            # z[j] = pX[j] theta_j^T: each learner's model on its own probe set
            z = logits(params.reshape(k, 1, *spec.param_shape), pX)[:, 0]
            loss = np.where(pmask > 0, spec.family.loss(z, pT), 0.0)
            probe_loss = loss.sum(-1) / np.maximum(held, 1.0)
        v[:, sl["probe_loss"]] = (probe_loss * scale)[:, None]
        v[:, sl["progress"]] = np.asarray(obs["step"], f64).reshape(-1, 1) / self.max_steps
        if self.user_stats:
            mask = np.asarray(obs["mask"], f64)
            x_mean, x_std = _weighted_moments(np.asarray(obs["covariates"], f64), mask)
            y_mean, y_std = _weighted_moments(np.asarray(obs["targets"], f64), mask)
            v[:, sl["x_mean"]], v[:, sl["x_std"]] = x_mean, x_std
            v[:, sl["y_mean"]], v[:, sl["y_std"]] = y_mean, y_std
            v[:, sl["probe_x_mean"]] = _weighted_moments(pX, pmask)[0]
            v[:, sl["probe_y_mean"]] = _weighted_moments(pT, pmask)[0]
        if self.peer_shares:
            if shares is None:
                raise ValueError("shares must be given when peer_shares=True")
            v[:, sl["peer_shares"]] = shares
        return self.layout.finish(v)

    def vector(
        self,
        observation: Mapping[str, np.ndarray],
        baseline_loss: float,
        shares: np.ndarray | None = None,
    ) -> np.ndarray:
        """One learner's flat observation; ``shares`` (n,) is needed when ``peer_shares``."""
        stacked = {key: np.asarray(a)[None] for key, a in observation.items()}
        return self.vectors(stacked, baseline_loss, shares)[0]


def _weighted_moments(A: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over axis 1 of ``A`` (k, N, c) with weights ``w`` (k, N):
    ``mean = sum_i w_i a_i / sum_i w_i`` (0 when the weights sum to 0)."""
    total = np.maximum(w.sum(-1, keepdims=True), 1e-12)
    mean = np.einsum("kn,knc->kc", w, A) / total
    second = np.einsum("kn,knc->kc", w, A * A) / total
    return mean, np.sqrt(np.maximum(second - mean * mean, 0.0))


# the keys of a learner's ``Dict`` observation, in the order of the observation space
OBSERVATION_KEYS = (
    "params",
    "covariates",
    "targets",
    "mask",
    "probe_covariates",
    "probe_targets",
    "probe_mask",
    "share",
    "local_loss",
    "step",
)


def stacked_observation(
    core,
    m: int | None = 0,
    learner: int | None = None,
    dtype=np.float64,
    cache: dict | None = None,
) -> dict[str, np.ndarray]:
    """Learner slots' ``Dict`` observations (see :mod:`choicemarket.envs.market_v0`) stacked on
    a leading axis, in ``dtype``: the n slots of market ``m`` (row k), or with ``m=None`` of
    every market (row ``m n + k``); ``learner`` keeps that slot only (one row per market).

    The one home of the observation: the ParallelEnv's dicts are rows of it, the batched
    views and the flat features take it whole. ``cache`` keeps read-only copies of the probe
    arrays between calls until the probe responses change (``probe_version``).
    """
    s = core.state
    M, n = s.counts.shape

    def pick(a: np.ndarray) -> np.ndarray:
        """(M, n, ...) -> the selected rows (K, ...)."""
        if m is None:
            return a[:, learner] if learner is not None else a.reshape(M * n, *a.shape[2:])
        return a[m] if learner is None else a[m, learner][None]

    X, T, mask = core.padded_users(dtype)
    params = pick(s.theta)
    K = params.shape[0]
    version = (m, learner, dtype, s.probe_version)
    if cache is not None and cache.get("version") == version:
        pX, pT, pmask = cache["arrays"]
    else:
        copy = cache is not None  # cached: copies, as the state's arrays change in place
        as_array = np.array if copy else np.asarray  # (numpy 1.x has no copy=None)
        pX = as_array(pick(s.probe_X), dtype)
        pT = as_array(pick(s.probe_T), dtype)
        pmask = np.repeat(pick(s.probe_valid).astype(dtype)[:, None], pX.shape[1], 1)
        if cache is not None:  # probe responses change rarely: reuse read-only copies
            for a in (pX, pT, pmask):
                a.flags.writeable = False
            cache.update(version=version, arrays=(pX, pT, pmask))
    stats = np.empty((3, K, 1), dtype)  # share, local loss, step
    stats[0, :, 0] = pick(s.counts) / s.batch.shape[1]
    stats[1, :, 0] = pick(s.local_loss)
    stats[2] = s.step
    return {
        "params": params.reshape(K, -1).astype(dtype, copy=False),
        "covariates": pick(X),
        "targets": pick(T),
        "mask": pick(mask),
        "probe_covariates": pX,
        "probe_targets": pT,
        "probe_mask": pmask,
        "share": stats[0],
        "local_loss": stats[1],
        "step": stats[2],
    }


class RowObservation(dict):
    """One learner's ``Dict`` observation: a plain ``dict`` of row views of the stacked arrays
    of :func:`stacked_observation`, which it remembers so that batched policies read many
    learners' observations from the stack instead of restacking them. Any change to the dict
    (a value replaced, added or removed) forgets the stack; a change inside an array is the
    stack's too, the values being views of it."""

    __slots__ = ("_at",)

    @classmethod
    def rows(cls, stack: dict[str, np.ndarray]) -> list[RowObservation]:
        """One observation per row of ``stack``, its values views of the stacked arrays."""
        keys = tuple(stack)
        out = []
        for row, views in enumerate(zip(*stack.values())):
            o = cls(zip(keys, views))
            o._at = (stack, row)
            out.append(o)
        return out

    def stacked_row(self) -> tuple[dict[str, np.ndarray], int] | None:
        """``(stack, row)`` while the dict is as it was made, else None."""
        return self._at

    def __reduce__(self):  # copies and pickles are plain dicts
        return dict, (dict(self),)


def _forgets_the_stack(name: str):
    method = getattr(dict, name)

    def changed(self, *args, **kwargs):
        self._at = None
        return method(self, *args, **kwargs)

    changed.__name__ = name
    return changed


for _name in (
    "__setitem__",
    "__delitem__",
    "__ior__",
    "clear",
    "pop",
    "popitem",
    "setdefault",
    "update",
):
    setattr(RowObservation, _name, _forgets_the_stack(_name))


class StateFeatures:
    """The market's global state (``env.state()``) for centralised critics.

    ============  =====  ==========  ===========================================================
    entry         size   bounds      value
    ============  =====  ==========  ===========================================================
    params        n P    +-clip      every slot's parameters / ``param_scale``, learner-major
    share         n      [0, 1]      every slot's share of the current batch
    local_loss    n      [0, clip]   every slot's mean loss on its users / L0
    global_loss   n      [0, clip]   every slot's test loss at the last evaluation / L0
    accuracy      n      [0, 1]      every slot's test accuracy then (0 for regression)
    probe_held    n      [0, 1]      1 if the slot holds a probe response
    probe_queries n      [0, clip]   peer queries made by the slot's last action / n
    active        n      [0, 1]      1 if the slot's learner is in the market
    unserved      1      [0, 1]      fraction of the batch served by nobody (outside option)
    progress      1      [0, 1]      step / max_steps
    eval_age      1      [0, 1]      (step - step of the last evaluation) / max_steps
    collective    2n+1   [0, 1]      planting and erasing success per slot, members' fraction
    ============  =====  ==========  ===========================================================

    The ``collective`` block is present only with a collective (``collective_fraction`` > 0).
    """

    def __init__(
        self,
        spec: MarketSpec,
        max_steps: int,
        collective: bool = False,
        param_scale: float = 1.0,
        clip: float = 10.0,
    ) -> None:
        param_scale, clip = _positive("param_scale", param_scale), _positive("clip", clip)
        self.max_steps, self.param_scale = int(max_steps), param_scale
        n, P = spec.n_learners, spec.n_params
        self.layout = Layout(
            [
                Block("params", n * P, -clip, clip, "every slot's parameters / param_scale"),
                Block("share", n, 0.0, 1.0, "every slot's share of the batch"),
                Block("local_loss", n, 0.0, clip, "every slot's loss on its users / L0"),
                Block("global_loss", n, 0.0, clip, "test loss at the last evaluation / L0"),
                Block("accuracy", n, 0.0, 1.0, "test accuracy then (0 for regression)"),
                Block("probe_held", n, 0.0, 1.0, "1 if the slot holds a probe response"),
                Block("probe_queries", n, 0.0, clip, "peer queries of the last action / n"),
                Block("active", n, 0.0, 1.0, "1 if the slot's learner is in the market"),
                Block("unserved", 1, 0.0, 1.0, "fraction of the batch served by nobody"),
                Block("progress", 1, 0.0, 1.0, "step / max_steps"),
                Block("eval_age", 1, 0.0, 1.0, "steps since the last evaluation / max_steps"),
                Block("collective", (2 * n + 1) * int(collective), 0.0, 1.0, "success, members"),
            ]
        )
        self.size, self.space = self.layout.size, self.layout.space

    def vector(self, core, baseline_loss: float, m: int = 0) -> np.ndarray:
        """The global state of market ``m`` of ``core`` (a :class:`MarketCore`)."""
        s, sl = core.state, self.layout.slices
        n = s.counts.shape[1]
        v = self.layout.empty()
        scale = 1.0 / max(float(baseline_loss), 1e-12)
        v[sl["params"]] = s.theta[m].ravel() / self.param_scale
        v[sl["share"]] = s.counts[m] / s.batch.shape[1]
        v[sl["local_loss"]] = s.local_loss[m] * scale
        v[sl["global_loss"]] = s.global_loss[m] * scale
        v[sl["accuracy"]] = np.nan_to_num(s.global_accuracy[m], nan=0.0)
        v[sl["probe_held"]] = s.probe_valid[m]
        v[sl["probe_queries"]] = s.probe_queries[m] / n
        v[sl["active"]] = 1.0 if core.entry is None else core.entry.active[m]
        v[sl["unserved"]] = np.mean(s.choice[m] < 0)
        v[sl["progress"]] = s.step / self.max_steps
        v[sl["eval_age"]] = (s.step - s.eval_step) / self.max_steps
        if "collective" in sl:
            c = core.collective
            v[sl["collective"]] = np.concatenate(
                [c.planting[m], c.erasing[m], [c.members[m].mean()]]
            )
        return self.layout.finish(v)
