"""Scripted learners for the participation market: exact retraining and one gradient step.

Learner i sees the allocation-weighted masses ``w_ji = beta_j alpha_ji`` (share
``s_i = sum_j w_ji``) and minimises ``F_i(theta) = sum_j w_ji R_j(theta) + l2 s_i ||theta||^2``
with ``R_j(theta) = theta^T A_j theta - 2 b_j^T theta + c_j``:

- exact retraining: ``theta_i = (sum_j w_ji A_j + l2 s_i I)^+ sum_j w_ji b_j``; for quadratic
  risks the mass-weighted mean of the optima ``sum_j w_ji phi_j / s_i`` (shrunk by 1/(1+l2));
- gradient step: ``theta_i <- theta_i - eta grad F_i = theta_i - 2 eta (sum_j w_ji (A_j theta_i
  - b_j) + l2 s_i theta_i)``.

A learner nobody uses (``s_i = 0``) keeps its parameters. The ``*_arrays`` functions act for
every learner of M markets at once (float64); the policies act from one observation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from choicemarket.envs.participation.core import ParticipationSpec, ParticipationState

RULES = ("retrain", "gradient")
_RCOND = 1e-10  # pseudo-inverse cut-off: directions a learner's users do not determine


def retrain_arrays(spec: ParticipationSpec, weights: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Exact retraining targets (..., n, d) from weights (..., n, J) and parameters (..., n, d)."""
    pop = spec.population
    share = weights.sum(-1)
    used = share > 0
    safe = np.where(used, share, 1.0)[..., None]
    rhs = weights @ pop.b  # (..., n, d)
    if pop.identity:
        target = rhs / (safe * (1.0 + spec.l2))
    else:
        lhs = np.einsum("...ij,jde->...ide", weights, pop.A)
        lhs /= safe[..., None]
        if spec.l2 > 0:
            lhs += spec.l2 * np.eye(pop.dim)
            target = np.linalg.solve(lhs, (rhs / safe)[..., None])[..., 0]
        else:
            target = (np.linalg.pinv(lhs, rcond=_RCOND, hermitian=True) @ (rhs / safe)[..., None])[
                ..., 0
            ]
    return np.where(used[..., None], target, theta)


def gradient_arrays(
    spec: ParticipationSpec, weights: np.ndarray, theta: np.ndarray, eta: float
) -> np.ndarray:
    """Parameters after one gradient step on F_i, for weights (..., n, J), theta (..., n, d)."""
    pop = spec.population
    share = weights.sum(-1)[..., None]
    if pop.identity:
        grad = share * theta - weights @ pop.b
    else:
        grad = np.einsum("...ij,jde,...ie->...id", weights, pop.A, theta) - weights @ pop.b
    grad = 2.0 * (grad + spec.l2 * share * theta)
    return theta - eta * grad


def updates_for(
    spec: ParticipationSpec, state: ParticipationState, rule: str = "retrain", eta: float = 0.5
) -> np.ndarray:
    """Updates (M, n, d) of every learner of a :class:`ParticipationCore` state under ``rule``."""
    weights = state.weights(spec.population.masses)
    if rule == "retrain":
        return retrain_arrays(spec, weights, state.theta) - state.theta
    if rule == "gradient":
        return gradient_arrays(spec, weights, state.theta, eta) - state.theta
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


class ExactRetraining:
    """Refit on the current allocation-weighted population every step (Dean et al.'s learner).

    The update is clipped to the market's ``max_update``; set it above the largest jump.
    """

    def __init__(self, spec: ParticipationSpec) -> None:
        self.spec = spec

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        theta = np.asarray(observation["params"], np.float64)
        w = np.asarray(observation["masses"], np.float64)
        target = retrain_arrays(self.spec, w[None], theta[None])[0]
        return (target - theta).astype(np.float32)

    def describe(self) -> str:
        return "ExactRetraining()"


class GradientStep:
    """One gradient step of size ``eta`` on ``F_i`` every step."""

    def __init__(self, spec: ParticipationSpec, eta: float = 0.5) -> None:
        if not (isinstance(eta, (int, float)) and not isinstance(eta, bool) and eta > 0):
            raise ValueError(f"eta must be a number > 0, got {eta!r}")
        if not np.isfinite(eta):
            raise ValueError(f"eta must be a finite number > 0, got {eta!r}")
        self.spec = spec
        self.eta = float(eta)

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        theta = np.asarray(observation["params"], np.float64)
        w = np.asarray(observation["masses"], np.float64)
        new = gradient_arrays(self.spec, w[None], theta[None], self.eta)[0]
        return (new - theta).astype(np.float32)

    def describe(self) -> str:
        return f"GradientStep(eta={self.eta})"
