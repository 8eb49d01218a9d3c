"""One market step driven from the core's arrays, shared by the benchmark scripts."""

from __future__ import annotations

import numpy as np

from choicemarket.baselines import act_arrays
from choicemarket.envs.market.core import MarketCore


def core_step(core: MarketCore, pols: list, broadcast: bool = False, constants=None):
    """Act for every learner of every market with ``act_arrays`` and step the core.

    ``constants`` (``choicemarket.baselines.msgd.plan(pols)``) is built once by a caller that
    steps many times, as the episode loop does.

    ``broadcast`` (one market only) gives each learner the whole batch as a zero-copy view
    plus its 0/1 mask instead of zero-padded copies: the same gradient, less writing.
    """
    s, spec = core.state, core.spec
    M, n, Np = core.n_markets, spec.n_learners, spec.probe_size
    K = M * n
    if broadcast and M == 1:
        X = np.broadcast_to(s.batch_X[:, None], (M, n, *s.batch_X.shape[1:]))
        T = np.broadcast_to(s.batch_T[:, None], (M, n, *s.batch_T.shape[1:]))
        mask = (s.choice[:, None, :] == np.arange(n)[None, :, None]).astype(np.float64)
    else:
        X, T, mask = core.padded_users()
    probe_mask = np.repeat(s.probe_valid.reshape(K, 1), Np, 1).astype(float)
    actions = act_arrays(
        pols,
        s.theta.reshape(K, *spec.param_shape),
        X.reshape(K, *X.shape[2:]),
        T.reshape(K, *T.shape[2:]),
        mask.reshape(K, -1),
        s.probe_X.reshape(K, Np, -1),
        s.probe_T.reshape(K, Np, -1),
        probe_mask,
        [s.step] * K,
        constants=constants,
    )
    return core.step(actions.reshape(M, n, -1).astype(np.float64))
