"""Scripted baseline policies: MSGD and MSGD-P, and a helper that acts for many learners."""

from .collective import FixedCollective
from .msgd import MSGD, MSGDP, SCENARIOS, SCHEDULES, act_arrays, act_batch
from .policies import NoUpdate, Policy, act_all

__all__ = [
    "FixedCollective",
    "MSGD",
    "MSGDP",
    "NoUpdate",
    "Policy",
    "SCENARIOS",
    "SCHEDULES",
    "act_all",
    "act_arrays",
    "act_batch",
]
