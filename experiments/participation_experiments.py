"""Dean et al.'s participation experiments on the batched core: runs to equilibrium and the
learner-splitting curve (equilibrium risk as learners are added)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from choicemarket.baselines.participation import RULES, updates_for
from choicemarket.envs.participation.config import ParticipationConfig
from choicemarket.envs.participation.core import ParticipationCore

SPLIT_RULES = ("sequential", "largest_risk")


def run_to_equilibrium(
    core: ParticipationCore,
    rule: str = "retrain",
    eta: float = 0.5,
    max_steps: int = 1500,
    tol: float = 1e-8,
    patience: int = 20,
) -> np.ndarray:
    """Step every market with the scripted ``rule`` until no allocation moves by more than
    ``tol`` for ``patience`` consecutive steps, or ``max_steps`` steps.

    Returns the total risk (steps, M) after each step.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    masses = core.population.masses
    totals = []
    calm = 0
    for _ in range(max_steps):
        before = core.state.alpha
        state = core.step(updates_for(core.spec, core.state, rule, eta))
        totals.append(state.total_risk(masses))
        calm = calm + 1 if np.abs(state.alpha - before).max() <= tol else 0
        if calm > patience:
            break
    return np.array(totals)


@dataclass(frozen=True)
class SplittingCurve:
    """Equilibrium total risk as learners are added by splitting."""

    n_learners: np.ndarray  # (S,) learners at each equilibrium
    risk: np.ndarray  # (S,) total (population-average) risk at that equilibrium
    steps: np.ndarray  # (S,) steps the run to that equilibrium took
    segmented: np.ndarray  # (S,) every sub-population had > 0.99 on one learner


def splitting_curve(
    config: ParticipationConfig,
    n_max: int,
    seed: int = 0,
    split: str = "sequential",
    scale: float = 1e-3,
    rule: str = "retrain",
    max_steps: int = 1500,
) -> SplittingCurve:
    """Run ``config`` to equilibrium, split one learner into two (a clone sharing its
    allocations with a small perturbation, see :meth:`ParticipationCore.split_learner`), run
    to equilibrium again, until ``n_max`` learners.

    ``split="sequential"`` splits learner 0, then 1, 2, ... (as in the authors' code);
    ``"largest_risk"`` splits the learner carrying the most risk ``sum_j beta_j alpha_ji R_ji``.
    """
    if split not in SPLIT_RULES:
        raise ValueError(f"split must be one of {SPLIT_RULES}, got {split!r}")
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < config.n_learners:
        raise ValueError(f"n_max must be an integer >= n_learners ({config.n_learners})")
    core = ParticipationCore(config, n_markets=1)
    core.reset(seed)
    masses = core.population.masses
    ns, risks, steps, segmented = [], [], [], []
    stage = 0
    while True:
        totals = run_to_equilibrium(core, rule=rule, max_steps=max_steps)
        s = core.state
        ns.append(core.n_learners)
        risks.append(float(s.total_risk(masses)[0]))
        steps.append(len(totals))
        segmented.append(bool((s.alpha[0].max(-1) > 0.99).all()))
        if core.n_learners >= n_max:
            break
        if split == "sequential":
            k = stage % core.n_learners
        else:
            k = int(np.einsum("j,ji->i", masses, s.alpha[0] * s.risks[0]).argmax())
        core.split_learner(k, scale)
        stage += 1
    return SplittingCurve(np.array(ns), np.array(risks), np.array(steps), np.array(segmented))
