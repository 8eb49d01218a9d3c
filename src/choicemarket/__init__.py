"""choicemarket: environments of competing learners under user choice."""

from __future__ import annotations

__version__ = "0.1.0"

from .registration import register_envs

register_envs()

from .experiments.runner import History, simulate  # noqa: E402

__all__ = ["History", "__version__", "register_envs", "simulate"]
