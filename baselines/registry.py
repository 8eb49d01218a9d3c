"""Named baseline policies, so benchmarks and users build them by name.

A baseline is a factory ``(spec, learner, setting) -> policy`` where ``setting`` describes the
market it plays in (its probing scenario, leader, probing weight and step size; any object with
those attributes, e.g. a :class:`choicemarket.experiments.bench.BenchMarket`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from choicemarket.envs.market.spec import MarketSpec

from .msgd import MSGD, MSGDP
from .policies import NoUpdate
from .retrain import Retrain

BaselineFactory = Callable[[MarketSpec, int, Any], Any]


@dataclass(frozen=True)
class Baseline:
    name: str
    factory: BaselineFactory
    description: str


_BASELINES: dict[str, Baseline] = {}


def register_baseline(
    name: str, factory: BaselineFactory, description: str = "", overwrite: bool = False
) -> None:
    """Add a baseline under ``name``; an existing name raises unless ``overwrite``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"baseline name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory of baseline {name!r} must be callable")
    if name in _BASELINES and not overwrite:
        raise ValueError(f"baseline {name!r} is already registered (pass overwrite=True)")
    _BASELINES[name] = Baseline(name, factory, description)


def baseline_names() -> list[str]:
    return list(_BASELINES)


def get_baseline(name: str) -> Baseline:
    try:
        return _BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; registered: {baseline_names()}") from None


def make_baseline(name: str, spec: MarketSpec, learner: int, setting: Any) -> Any:
    """Build the baseline ``name`` for ``learner`` of a market with ``spec`` and ``setting``."""
    return get_baseline(name).factory(spec, learner, setting)


def _msgd(spec: MarketSpec, learner: int, setting: Any) -> MSGD:
    return MSGD(spec, eta=setting.eta, schedule=setting.schedule)


def _msgdp(spec: MarketSpec, learner: int, setting: Any) -> MSGDP:
    return MSGDP(
        spec,
        learner,
        p=setting.p,
        scenario=setting.scenario,
        leader=setting.leader,
        eta=setting.eta,
        schedule=setting.schedule,
        probe_batch_size=setting.probe_batch_size,
        probe_every=setting.probe_every,
    )


register_baseline("no-update", lambda spec, k, s: NoUpdate(spec), "keeps its initial model")
register_baseline("msgd", _msgd, "streaming SGD on its own users (Narang et al., Alg. 1)")
register_baseline("msgd-p", _msgdp, "MSGD mixing in probed peer labels (Narang et al., Alg. 2)")
register_baseline(
    "retrain",
    lambda spec, k, s: Retrain(spec),
    "exact refit on its last 2000 users every 100 steps",
)
