"""Registry ids, added to PettingZoo's registries when ``choicemarket`` is imported."""

from __future__ import annotations

import warnings

MARKET_ID = "choicemarket/market-v0"
PARTICIPATION_ID = "choicemarket/participation-v0"
GYM_IDS = {
    "choicemarket/Platform-v0": "choicemarket.wrappers.factories:platform_env",
    "choicemarket/PlatformFlat-v0": "choicemarket.wrappers.factories:platform_flat_env",
    "choicemarket/PlatformStrategy-v0": "choicemarket.wrappers.factories:platform_strategy_env",
}
# ``gymnasium.make_vec(id, num_envs=M)``: M markets stepped together (wrappers/vector_env.py)
_VEC = "choicemarket.wrappers.vector_env"
GYM_VECTOR_IDS = {
    "choicemarket/Platform-v0": f"{_VEC}:platform_vec_env",
    "choicemarket/PlatformFlat-v0": f"{_VEC}:platform_flat_vec_env",
    "choicemarket/PlatformStrategy-v0": f"{_VEC}:platform_strategy_vec_env",
}


def register_envs() -> None:
    """Register ``choicemarket/market-v0`` and ``choicemarket/participation-v0`` (parallel and
    AEC) with PettingZoo (>= 1.27) and the single-agent views (``GYM_IDS``) with Gymnasium."""
    register_gymnasium_envs()
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


def register_gymnasium_envs() -> None:
    """Register ``GYM_IDS`` with Gymnasium, each with its ``vector_entry_point``
    (``GYM_VECTOR_IDS``). Gymnasium 1.x loads no plugins, so use
    ``gymnasium.make("choicemarket:choicemarket/Platform-v0")`` (or ``make_vec``): the prefix
    imports the package."""
    from gymnasium.envs.registration import register, registry

    for env_id, entry_point in GYM_IDS.items():
        if env_id not in registry:
            register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=GYM_VECTOR_IDS[env_id],
                disable_env_checker=False,
            )
