"""Configuration grouped by the component that owns it; flat keyword arguments keep working."""

from __future__ import annotations

from dataclasses import fields

import pytest

from choicemarket.envs.market.config import GROUPS, MarketConfig
from choicemarket.experiments.cli import main


def test_every_field_has_one_owner():
    owned = [name for names in GROUPS.values() for name in names]
    assert sorted(owned) == sorted(f.name for f in fields(MarketConfig))
    assert len(owned) == len(set(owned))


def test_grouped_and_flat_are_the_same_config():
    flat = MarketConfig.from_kwargs(
        dataset="breast-cancer",
        choice_rule="logit",
        temperature=0.5,
        max_learners=6,
        exit_share=0.05,
        outside_threshold=0.8,
    )
    grouped = MarketConfig.from_kwargs(
        population={"dataset": "breast-cancer"},
        choice={"choice_rule": "logit", "temperature": 0.5},
        entry_exit={"max_learners": 6, "exit_share": 0.05},
        outside={"outside_threshold": 0.8},
    )
    assert flat == grouped
    assert MarketConfig.from_kwargs(**flat.grouped()) == flat


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"choice": {"temperature": 0.5, "exit_share": 0.1}}, r"unknown choice option\(s\)"),
        ({"choice": 3}, "choice must be a mapping"),
        ({"temperature": 0.5, "choice": {"temperature": 0.4}}, "both flat and in choice"),
        ({"choice": {"temperature": -1.0}}, "temperature must be a finite number > 0"),
        ({"outside": {"return_rate": 2.0}}, r"return_rate must be a number in \[0, 1\]"),
        ({"entry_exit": {"exit_patience": 0}}, "exit_patience must be an integer >= 1"),
        ({"collective": {"collective_fraction": 0.1}}, "collective_signal must name"),
        ({"colour": 1}, r"unknown market option\(s\) \['colour'\]"),
    ],
)
def test_each_component_checks_its_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MarketConfig.from_kwargs(**kwargs)


def test_cli_lists_options_by_component(capsys):
    assert main(["options"]) == 0
    out = capsys.readouterr().out
    for group in GROUPS:
        assert f"[{group}]" in out
    assert out.index("[choice]") < out.index("choice_rule = ") < out.index("[probing]")
