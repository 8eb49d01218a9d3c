"""Market environments (PettingZoo) and their batched core."""

from . import market_v0
from .core.actions import ActionLayout, ProbeRequest
from .core.config import MarketConfig
from .core.market import MarketCore
from .core.spec import MarketSpec

__all__ = ["ActionLayout", "MarketConfig", "MarketCore", "MarketSpec", "ProbeRequest", "market_v0"]
