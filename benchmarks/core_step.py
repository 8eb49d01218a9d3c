"""One market step driven from the core's arrays, shared by the benchmark scripts."""

from __future__ import annotations

import numpy as np

from choicemarket.baselines import act_arrays
from choicemarket.envs.market.core import MarketCore


def core_step(core: MarketCore, pols: list, constants=None):
    """Act for every learner of every market with ``act_arrays`` (own-user gradients from
    ``MarketCore.user_gradients``, as the episode loop does) and step the core.

    ``constants`` (``choicemarket.baselines.msgd.plan(pols)``) is built once by a caller that
    steps many times, as the episode loop does.
    """
    s, spec = core.state, core.spec
    M, n, Np = core.n_markets, spec.n_learners, spec.probe_size
    K = M * n
    valid = np.broadcast_to(s.probe_valid.reshape(K, 1), (K, Np))
    actions = act_arrays(
        pols,
        s.theta.reshape(K, *spec.param_shape),
        None,
        None,
        None,
        s.probe_X.reshape(K, Np, -1),
        s.probe_T.reshape(K, Np, -1),
        valid,
        np.full(K, s.step),
        constants=constants,
        own=core.user_gradients().reshape(K, *spec.param_shape),
    )
    return core.step(actions.reshape(M, n, -1).astype(np.float64))
