"""A scripted collective: the same strategy, destination and target label every step."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from choicemarket.envs.market.collective import STRATEGIES


class FixedCollective:
    """Always plays ``[strategy, destination, label]`` (see :mod:`...core.collective`).

    Args:
        strategy: ``"none"``, ``"plant"`` (members present ``(g(x), y*)``) or ``"erase"``.
        destination: learner index every member goes to, or ``None`` (members choose as usual).
        label: the target label y* of planting.
        n_learners: if given, ``destination`` is checked against it.
    """

    def __init__(
        self,
        strategy: str = "plant",
        destination: int | None = None,
        label: int = 1,
        n_learners: int | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if destination is not None and (
            not isinstance(destination, numbers.Integral)
            or isinstance(destination, bool)
            or destination < 0
            or (n_learners is not None and destination >= n_learners)
        ):
            top = "" if n_learners is None else f" in 0..{n_learners - 1}"
            raise ValueError(
                f"destination must be None or a learner index{top}, got {destination!r}"
            )
        if isinstance(label, bool) or not isinstance(label, numbers.Integral) or label < 0:
            raise ValueError(f"label must be a class index >= 0, got {label!r}")
        self.strategy, self.destination, self.label = strategy, destination, int(label)
        dest = 0 if destination is None else int(destination) + 1
        self._action = np.array([STRATEGIES.index(strategy), dest, self.label], np.int64)

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._action.copy()

    def describe(self) -> str:
        return (
            f"FixedCollective(strategy={self.strategy!r}, destination={self.destination}, "
            f"label={self.label})"
        )
