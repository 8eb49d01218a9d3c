"""The outside option: users whom every learner serves badly leave the market for a while.

A user drawn while outside, or who finds every active learner's loss above
``outside_threshold``, is served by nobody (choice ``UNSERVED`` = -1); a user who leaves
returns after a Geometric(``return_rate``) number of steps (each step it returns with
probability r; r = 0: never; else ``r >= MIN_RETURN_RATE``, so that the wait fits a step
counter). Off when ``outside_threshold`` is None.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..checks import as_float, unit
from .choice import UNSERVED
from .component import Component

if TYPE_CHECKING:
    from .choice import Arrival
    from .config import MarketConfig
    from .core import MarketCore


MIN_RETURN_RATE = 1e-9  # smallest positive return_rate: waits stay far below 2**63 steps


def check_fields(cfg: MarketConfig) -> None:
    """Check ``outside_threshold`` (None: off) and ``return_rate``."""
    t = cfg.outside_threshold
    if t is not None:
        v = as_float(t)
        if v is None or v < 0.0:
            raise ValueError(
                "outside_threshold must be None (no outside option) or a finite number >= 0, "
                f"got {t!r}"
            )
        object.__setattr__(cfg, "outside_threshold", v)
    unit(cfg, "return_rate")
    if 0.0 < cfg.return_rate < MIN_RETURN_RATE:
        raise ValueError(
            f"return_rate must be a number in [0, 1]: 0 (never) or at least {MIN_RETURN_RATE:g}, "
            f"got {cfg.return_rate!r}"
        )


def is_enabled(config: MarketConfig) -> bool:
    return config.outside_threshold is not None


class OutsideOption(Component):
    """``outside_until`` (M, N): user i of market m is outside while ``outside_until > step``."""

    def __init__(self, config: MarketConfig) -> None:
        self.threshold = config.outside_threshold
        self.return_rate = config.return_rate
        self.outside_until: np.ndarray | None = None
        self.step = 0

    def reset(self, core: MarketCore) -> None:
        self.outside_until = np.zeros((core.n_markets, len(core.population.X_train)), np.int64)
        self.step = 0

    def after_choice(self, core: MarketCore, a: Arrival, choice: np.ndarray) -> np.ndarray:
        step = self.step = core.state.step
        until, idx = self.outside_until, a.idx
        rows = np.arange(len(idx))[:, None]
        away = until[rows, idx] > step
        leave = ~away & (a.L_active.min(1) > self.threshold)
        if leave.any():
            never = np.iinfo(np.int64).max
            m, b = np.nonzero(leave)
            gone = np.empty(len(m), np.int64)
            r = self.return_rate
            for rng, run in core.gens.by_market(m):
                if r > 0:
                    gone[run] = rng.geometric(r, size=run.stop - run.start)
                else:
                    gone[run] = never - step  # never returns
            np.minimum(gone, never - step, out=gone)  # a wait past the counter is 'never'
            until[m, idx[m, b]] = step + gone
        return np.where(away | leave, UNSERVED, choice)

    def metrics(self, core: MarketCore) -> dict[str, np.ndarray]:
        """Who is left unserved:

        - ``unserved_fraction`` (M,): share of the current batch served by nobody;
        - ``outside_fraction`` (M,): share of the training population currently outside;
        - ``group_unserved`` (M, G): per preference group, share of its batch users unserved
          (nan if none was drawn); ``group_outside`` (M, G): share of the group outside.
        """
        s = core.state
        G = core.spec.n_learners
        group = core.population.pref
        unserved = s.choice < 0
        outside = self.outside_until > self.step  # (M, N)
        M = len(outside)
        sizes = np.bincount(group, minlength=G)
        key = (np.arange(M)[:, None] * G + group).ravel()
        g_out = np.bincount(key, weights=outside.ravel(), minlength=M * G).reshape(M, G)
        onehot = group.take(s.batch)[:, :, None] == np.arange(G)
        drawn = onehot.sum(1)
        left = (onehot & unserved[:, :, None]).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            group_unserved = np.where(drawn > 0, left / np.maximum(drawn, 1), math.nan)
            group_outside = np.where(sizes > 0, g_out / np.maximum(sizes, 1), math.nan)
        return {
            "unserved_fraction": unserved.mean(1),
            "outside_fraction": outside.mean(1),
            "group_unserved": group_unserved,
            "group_outside": group_outside,
        }
