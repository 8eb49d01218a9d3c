"""Scripted baseline policies (MSGD, MSGD-P, retraining), a registry of them by name, and a
helper that acts for many learners."""

from .collective import FixedCollective
from .msgd import MSGD, MSGDP, SCENARIOS, SCHEDULES, act_arrays, act_batch
from .participation import ExactRetraining, GradientStep
from .policies import NoUpdate, Policy, act_all
from .retrain import Retrain

__all__ = [
    "ExactRetraining",
    "FixedCollective",
    "GradientStep",
    "MSGD",
    "MSGDP",
    "NoUpdate",
    "Policy",
    "Retrain",
    "SCENARIOS",
    "SCHEDULES",
    "act_all",
    "act_arrays",
    "act_batch",
]
