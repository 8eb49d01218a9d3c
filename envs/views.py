"""What the package's environments show of themselves beyond the PettingZoo API: the core's
state arrays, the population, and the deprecated name of the market spec."""

from __future__ import annotations

import warnings
from typing import Any


class SpecInfoAlias:
    """``spec_info``, the deprecated name of ``market_spec`` (too close to Gymnasium's
    ``env.spec``): returns ``market_spec`` with a ``DeprecationWarning``."""

    market_spec: Any

    @property
    def spec_info(self):
        """Deprecated name of :attr:`market_spec`."""
        warnings.warn("spec_info is deprecated; use market_spec", DeprecationWarning, stacklevel=2)
        return self.market_spec


class CoreViews(SpecInfoAlias):
    """Read-only views of an environment's ``core``: its state and its population."""

    core: Any

    @property
    def state_arrays(self):
        """The core's state (``MarketState`` or ``ParticipationState``, market axis of length
        1); read-only by contract."""
        return self.core.state

    @property
    def population(self):
        """The core's population (the market's split, preferences and baseline; the
        participation environment's sub-populations)."""
        return self.core.population
