"""Market environments (PettingZoo) and their batched core."""

from . import market_v0, participation_v0
from .core.actions import ActionLayout, ProbeRequest
from .core.config import MarketConfig
from .core.market import MarketCore
from .core.participation import ParticipationCore, ParticipationSpec
from .core.participation_config import ParticipationConfig
from .core.spec import MarketSpec

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
