"""Market environments (PettingZoo) and their batched core."""

from . import market_v0, participation_v0
from .market.actions import ActionLayout, ProbeRequest
from .market.config import MarketConfig
from .market.core import MarketCore
from .market.spec import MarketSpec
from .participation.config import ParticipationConfig
from .participation.core import ParticipationCore, ParticipationSpec

__all__ = [
    "ActionLayout",
    "MarketConfig",
    "MarketCore",
    "MarketSpec",
    "ParticipationConfig",
    "ParticipationCore",
    "ParticipationSpec",
    "ProbeRequest",
    "market_v0",
    "participation_v0",
]
