"""Flat views of participation dynamics: a learner's flat observation and the global state.

d = parameter dimension, J = sub-populations, n = learners. Parameters are clipped to
``[-clip, clip]`` (default 10) and risks to ``[0, risk_clip]`` (default 100).

Learner observation (``observation="flat"``), blocks in this order:

===========  =====  ===============  =========================================================
entry        size   bounds           value
===========  =====  ===============  =========================================================
params       d      +-clip           own parameters theta_i
share        1      [0, 1]           ``share_i = sum_j beta_j alpha_ji``
risk         1      [0, risk_clip]   local risk ``sum_j beta_j alpha_ji R_j(theta_i) / share_i``
masses       J      [0, 1]           allocation-weighted mass per sub-population
group_risks  J      [0, risk_clip]   ``R_j(theta_i)`` for every sub-population
progress     1      [0, 1]           step / max_steps
===========  =====  ===============  =========================================================

Global state (``env.state()``):

===========  =====  ===============  =========================================================
entry        size   bounds           value
===========  =====  ===============  =========================================================
params       n d    +-clip           every learner's parameters, learner-major
share        n      [0, 1]           every learner's share
local_risk   n      [0, risk_clip]   every learner's local risk
global_risk  n      [0, risk_clip]   every learner's full-population risk
allocation   J n    [0, 1]           ``alpha_ji``, sub-population-major
total_risk   1      [0, risk_clip]   ``sum_j beta_j sum_i alpha_ji R_j(theta_i)``
progress     1      [0, 1]           step / max_steps
===========  =====  ===============  =========================================================
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..layout import Block, Layout

__all__ = ["ParticipationFeatures", "ParticipationStateFeatures"]

CLIP, RISK_CLIP = 10.0, 100.0


class ParticipationFeatures:
    """Maps the learners' ``Dict`` observations to the flat vectors of the module's table."""

    def __init__(self, dim: int, n_groups: int, max_steps: int) -> None:
        self.max_steps = int(max_steps)
        self.layout = Layout(
            [
                Block("params", dim, -CLIP, CLIP, "own parameters"),
                Block("share", 1, 0.0, 1.0, "own share"),
                Block("risk", 1, 0.0, RISK_CLIP, "own local risk"),
                Block("masses", n_groups, 0.0, 1.0, "allocation-weighted mass per group"),
                Block("group_risks", n_groups, 0.0, RISK_CLIP, "own risk on every group"),
                Block("progress", 1, 0.0, 1.0, "step / max_steps"),
            ]
        )
        self.size, self.space = self.layout.size, self.layout.space

    def vectors(self, observations: Mapping[str, np.ndarray]) -> np.ndarray:
        """(k, size) flat observations from ``Dict`` observations stacked on a leading axis."""
        obs, sl = observations, self.layout.slices
        v = self.layout.empty(np.shape(obs["params"])[0])
        for name in ("params", "share", "risk", "masses", "group_risks"):
            v[:, sl[name]] = obs[name]
        v[:, sl["progress"]] = np.reshape(obs["step"], (-1, 1)) / self.max_steps
        return self.layout.finish(v)


class ParticipationStateFeatures:
    """The global state of market ``m`` of a :class:`ParticipationCore` (module table)."""

    def __init__(self, dim: int, n_groups: int, n_learners: int, max_steps: int) -> None:
        self.max_steps = int(max_steps)
        n, J = n_learners, n_groups
        self.layout = Layout(
            [
                Block("params", n * dim, -CLIP, CLIP, "every learner's parameters"),
                Block("share", n, 0.0, 1.0, "every learner's share"),
                Block("local_risk", n, 0.0, RISK_CLIP, "every learner's local risk"),
                Block("global_risk", n, 0.0, RISK_CLIP, "every learner's full-population risk"),
                Block("allocation", J * n, 0.0, 1.0, "alpha_ji, group-major"),
                Block("total_risk", 1, 0.0, RISK_CLIP, "the total risk"),
                Block("progress", 1, 0.0, 1.0, "step / max_steps"),
            ]
        )
        self.size, self.space = self.layout.size, self.layout.space

    def vector(self, state, figures: Mapping[str, np.ndarray], m: int = 0) -> np.ndarray:
        """``state``: the core's state; ``figures``: market ``m``'s ``local``, ``global``,
        ``share`` and ``total`` (as the environment measures them each step)."""
        sl = self.layout.slices
        v = self.layout.empty()
        v[sl["params"]] = state.theta[m].ravel()
        v[sl["share"]] = figures["share"]
        v[sl["local_risk"]] = figures["local"]
        v[sl["global_risk"]] = figures["global"]
        v[sl["allocation"]] = state.alpha[m].ravel()
        v[sl["total_risk"]] = figures["total"]
        v[sl["progress"]] = state.step / self.max_steps
        return self.layout.finish(v)
