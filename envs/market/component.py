"""``Component``: a part of the market transition with small hooks on one step.

:class:`~choicemarket.envs.market.core.MarketCore` keeps one step and calls the hooks of the
components its config switches on (learners entering and leaving, the collective, the outside
option), in this order::

    reset                         episode start, after the population and parameters
    mask_actions -> actions       before anything is applied
    present_probes -> covariates  probed covariates, before peers are queried
    before_arrival                after the updates, before the batch is drawn
    present -> (X, T)             what the batch's users present to the learners
    after_choice -> choice        after the choice rule picked a learner for every user
    after_step                    after counts and local losses are recorded
    evaluate                      at every full-population evaluation

Each component owns its config fields (checked by its module), its state, and its draws,
which come from the market generators (``core.gens``), so every component works for M markets
with their own seeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .choice import Arrival
    from .core import MarketCore


class Component:
    """No-op hooks; a component overrides those it needs."""

    def reset(self, core: MarketCore) -> None:
        return None

    def mask_actions(self, core: MarketCore, actions: np.ndarray) -> np.ndarray:
        return actions

    def present_probes(self, core: MarketCore, Xp: np.ndarray, markets: np.ndarray) -> np.ndarray:
        return Xp

    def before_arrival(self, core: MarketCore) -> None:
        return None

    def present(
        self, core: MarketCore, X: np.ndarray, T: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return X, T

    def after_choice(self, core: MarketCore, arrival: Arrival, choice: np.ndarray) -> np.ndarray:
        return choice

    def after_step(self, core: MarketCore) -> None:
        return None

    def evaluate(self, core: MarketCore) -> None:
        return None
