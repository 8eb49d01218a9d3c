"""Registry ids, added to PettingZoo's registries when ``choicemarket`` is imported."""

from __future__ import annotations

import warnings

MARKET_ID = "choicemarket/market-v0"
PARTICIPATION_ID = "choicemarket/participation-v0"


def register_envs() -> None:
    """Register ``choicemarket/market-v0`` and ``choicemarket/participation-v0`` (parallel and
    AEC) with PettingZoo (>= 1.27)."""
    try:
        from pettingzoo import aec_registry, parallel_registry
        from pettingzoo.env_registry.registration import register
    except ImportError:  # pragma: no cover - PettingZoo < 1.27 has no registry
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if MARKET_ID not in parallel_registry:
            register("parallel", MARKET_ID, "choicemarket.envs.market_v0:parallel_env")
        if MARKET_ID not in aec_registry:
            register("aec", MARKET_ID, "choicemarket.envs.market_v0:env")
        if PARTICIPATION_ID not in parallel_registry:
            register(
                "parallel", PARTICIPATION_ID, "choicemarket.envs.participation_v0:parallel_env"
            )
        if PARTICIPATION_ID not in aec_registry:
            register("aec", PARTICIPATION_ID, "choicemarket.envs.participation_v0:env")
