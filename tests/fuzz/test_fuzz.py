"""Fuzzing every environment family with hypothesis: configurations with fields at edge
values and action streams with bad entries (see ``harness.py`` for the outcome classes).

Bounded by default (profile ``ci``); ``pytest tests/fuzz --fuzz-profile=long`` (or
``HYPOTHESIS_PROFILE=long``) searches far deeper. Asserted for every example: only clean
errors (``ValueError``/``TypeError`` naming the field, agent or seed); no non-finite figure
and no observation outside its space from finite inputs; a rejected step or reset leaves
the environment exactly as it was.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from . import harness

FUZZ = settings.get_profile("fuzz")


def _chooser(data: st.DataObject) -> harness.Choose:
    return lambda options: data.draw(st.sampled_from(list(options)))


def _assert_clean(results: list, cfg) -> None:
    bad = [r for r in results if r[1] in ("unclear", "defect")]
    assert not bad, f"{bad[0]} for config {cfg!r}"


@pytest.mark.parametrize("family", harness.FAMILIES)
@settings(FUZZ)
@given(data=st.data(), n_changes=st.integers(0, 3))
def test_configs_and_action_streams(family: str, data: st.DataObject, n_changes: int) -> None:
    choose = _chooser(data)
    make = {
        "market": harness.market_config,
        "participation": harness.participation_config,
        "gym": harness.gym_config,
    }[family]
    cfg = make(choose, n_changes)
    _assert_clean(harness.run_case(family, cfg, streams=2, choose=choose), cfg)


@settings(FUZZ)
@given(data=st.data())
def test_extreme_valid_market_stays_finite(data: st.DataObject) -> None:
    """Valid extremes only (largest update bounds, scales, costs, noise; tiny temperature):
    the market builds and every figure stays finite and inside its space."""
    choose = _chooser(data)
    cfg = harness.market_config(choose, 0)
    cfg.update(
        max_update=choose([1e6, 1.0]),
        init=choose(["random", "zeros"]),
        init_scale=choose([1e6, 0.0]),
        probe_cost=choose([1e6, 0.0]),
        clone_noise=choose([1e6, 0.0]),
        temperature=choose([5e-324, 1e6, 1.0]),
        loyalty_bonus=choose([1e6, -1e6, 0.0]),
        l2=choose([1e6, 0.0]),
    )
    _assert_clean(harness.run_case("market", cfg, streams=1, choose=choose, steps=4), cfg)
