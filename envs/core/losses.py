"""Loss families for linear predictors, vectorised over learners, users and markets.

Parameters are ``theta`` with shape ``(..., n, o, d)`` (n learners, o outputs, d features);
covariates ``X`` have shape ``(..., B, d)``. Logits are ``z = X theta^T`` with shape
``(..., n, B, o)``. Labels enter as *targets* ``T`` of shape ``(..., B, t)``:
the value for squared loss, the probability of class 1 for logistic loss, a probability vector
(one-hot for hard labels) for softmax cross-entropy. Every family has ``dl/dz = residual(z, T)``,
so the mean gradient over a set of users is ``residual^T X / count``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special


def logits(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``z[..., k, b, :] = theta[..., k] @ X[..., b]``: shape (..., n, B, o)."""
    return np.matmul(X[..., None, :, :], theta.swapaxes(-1, -2))


_sigmoid = special.expit


@dataclass(frozen=True)
class LossFamily:
    """One loss family. ``n_outputs`` and ``target_dim`` depend on the number of classes."""

    name: str

    def n_outputs(self, n_classes: int) -> int:
        return n_classes if self.name == "softmax" else 1

    def target_dim(self, n_classes: int) -> int:
        return self.n_outputs(n_classes)

    @property
    def is_classification(self) -> bool:
        return self.name != "squared"

    def targets(self, y: np.ndarray, n_classes: int) -> np.ndarray:
        """Labels (N,) -> targets (N, t): value, P(y=1), or one-hot."""
        if self.name == "softmax":
            return np.eye(n_classes)[y]
        return np.asarray(y, dtype=np.float64)[:, None]

    def loss(self, z: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Per-user loss, summed over the output axis: (..., o) -> (...)."""
        if self.name == "squared":
            return np.square(z - T).sum(-1)
        if self.name == "logistic":
            z = z[..., 0]  # softplus(z) - q z, with softplus written stably and cheaply
            return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))) - T[..., 0] * z
        zmax = z.max(-1, keepdims=True)
        lse = np.log(np.exp(z - zmax).sum(-1)) + zmax[..., 0]
        return lse - (T * z).sum(-1)

    def residual(self, z: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``dl/dz``: 2(z - y), sigmoid(z) - q, or softmax(z) - q."""
        if self.name == "squared":
            return 2.0 * (z - T)
        if self.name == "logistic":
            return _sigmoid(z) - T
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True) - T

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Predicted label: the value (regression), z > 0 (binary), argmax (multiclass)."""
        if self.name == "squared":
            return z[..., 0]
        if self.name == "logistic":
            return (z[..., 0] > 0).astype(np.int64)
        return z.argmax(-1)

    def pseudo_targets(self, z: np.ndarray, hard: bool) -> np.ndarray:
        """Targets from aggregated peer logits: the value; hard sign/argmax or soft link."""
        if self.name == "squared":
            return z
        if self.name == "logistic":
            return (z > 0).astype(np.float64) if hard else _sigmoid(z)
        if hard:
            return np.eye(z.shape[-1])[z.argmax(-1)]
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)


LOSSES = {
    "regression": LossFamily("squared"),
    "binary": LossFamily("logistic"),
    "multiclass": LossFamily("softmax"),
}


def mean_gradient(
    family: LossFamily,
    theta: np.ndarray,
    X: np.ndarray,
    T: np.ndarray,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Mean loss gradient over the masked users, zero where no user is masked in.

    ``theta`` (K, o, d), ``X`` (K, B, d), ``T`` (K, B, t), ``mask`` (K, B) or None (all users)
    -> (K, o, d): ``g_k = sum_b m_kb dl/dz_kb x_kb^T / max(1, sum_b m_kb)``.
    Computed in the dtype of ``X``.
    """
    z = np.matmul(X, theta.swapaxes(-1, -2).astype(X.dtype, copy=False))
    r = family.residual(z, T)
    if mask is None:
        return np.matmul(r.swapaxes(-1, -2), X) / X.shape[-2]
    r *= mask[..., None]
    count = np.maximum(np.add.reduce(mask, -1), 1.0)
    return np.matmul(r.swapaxes(-1, -2), X) / count[:, None, None]


def fit_erm(
    family: LossFamily, X: np.ndarray, T: np.ndarray, l2: float, n_outputs: int
) -> np.ndarray:
    """Regularised ERM ``argmin_theta mean_i l(theta x_i, T_i) + (l2/2) ||theta||^2`` -> (o, d).

    Squared loss is solved in closed form; logistic and softmax by L-BFGS to tight tolerance.
    No users gives zeros.
    """
    N, d = X.shape
    if N == 0:
        return np.zeros((n_outputs, d))
    if family.name == "squared":
        A = 2.0 * X.T @ X / N + l2 * np.eye(d)
        b = 2.0 * X.T @ T / N
        return np.linalg.lstsq(A, b, rcond=None)[0].T

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        theta = w.reshape(n_outputs, d)
        z = X @ theta.T
        value = family.loss(z, T).mean() + 0.5 * l2 * w @ w
        grad = family.residual(z, T).T @ X / N + l2 * theta
        return value, grad.ravel()

    res = optimize.minimize(
        objective,
        np.zeros(n_outputs * d),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-14},
    )
    return res.x.reshape(n_outputs, d)
