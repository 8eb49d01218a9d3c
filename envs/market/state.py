"""``MarketState``: the arrays that change during a run, with a leading market axis M."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MarketState:
    """State of M independent markets with n learners (o outputs, d features each).

    Arrays describe the *current* batch: the B users drawn this step, the learner each chose,
    and what that means for each learner.
    """

    theta: np.ndarray  # (M, n, o, d) parameters
    step: int  # steps taken since reset
    batch: np.ndarray  # (M, B) training-user indices of the current batch
    batch_X: np.ndarray  # (M, B, d) their covariates
    batch_T: np.ndarray  # (M, B, t) their targets
    choice: np.ndarray  # (M, B) learner chosen by each batch user (-1: served by nobody)
    served_loss: np.ndarray  # (M, B) loss of each user at the learner it chose (nan: none)
    counts: np.ndarray  # (M, n) users who chose each learner
    local_loss: np.ndarray  # (M, n) mean loss on own users (mean over batch if none)
    probe_X: np.ndarray  # (M, n, N_probe, d) covariates of the last probe response
    probe_T: np.ndarray  # (M, n, N_probe, t) pseudo-label targets of the last response
    probe_users: np.ndarray  # (M, n, N_probe) training-user index of each probed covariate
    probe_peer: np.ndarray  # (M, n, N_probe) learner queried per covariate (-1: median of set)
    probe_valid: np.ndarray  # (M, n) bool: a probe response is held
    probe_queries: np.ndarray  # (M, n) peer queries made by the last action
    global_loss: np.ndarray  # (M, n) full-population risk on the test users (last evaluation)
    global_accuracy: np.ndarray  # (M, n) test accuracy (nan for regression)
    eval_step: int  # step of the last evaluation
    probe_version: int = 0  # bumped whenever a probe response is written
    served_logits: np.ndarray | None = None  # (M, B, o) each user's logits at its learner
    # (learner 0's for a user no learner served; user_gradients leaves those out)

    @property
    def share(self) -> np.ndarray:
        """(M, n) fraction of the current batch that chose each learner."""
        return self.counts / self.batch.shape[1]
