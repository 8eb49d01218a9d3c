"""``MarketSpec``: the shapes and loss a policy needs to act in a market."""

from __future__ import annotations

from dataclasses import dataclass

from .actions import ActionLayout
from .losses import LossFamily


@dataclass(frozen=True)
class MarketSpec:
    """Static facts about a market, shared by every learner.

    A learner's parameters are an ``(n_outputs, n_features)`` matrix, flattened row-major to
    ``n_params`` numbers in observations and actions.
    """

    n_learners: int
    n_features: int  # d
    n_outputs: int  # o: 1, or the number of classes for softmax
    target_dim: int  # t: width of a target row
    n_classes: int  # 1 for regression
    task: str
    family: LossFamily
    users_per_step: int  # B
    probe_size: int  # N_probe
    l2: float  # the market's regularisation (of its reference ERMs)
    actions: ActionLayout

    @property
    def n_params(self) -> int:
        return self.n_outputs * self.n_features

    @property
    def param_shape(self) -> tuple[int, int]:
        return (self.n_outputs, self.n_features)


def require_market_spec(spec: object, who: str) -> MarketSpec:
    """``spec`` itself if it is a :class:`MarketSpec`; otherwise a ``TypeError`` that says where
    the market's spec is (a Gymnasium ``env.spec`` is the registration record, not this)."""
    if isinstance(spec, MarketSpec):
        return spec
    raise TypeError(
        f"{who} needs the market's MarketSpec, got {type(spec).__name__}: pass "
        "env.unwrapped.market_spec (Gymnasium ids) or env.market_spec (PettingZoo market); "
        "a Gymnasium env.spec is the registration record"
    )
