"""Loss families for linear predictors, vectorised over learners, users and markets.

Parameters are ``theta`` with shape ``(..., n, o, d)`` (n learners, o outputs, d features);
covariates ``X`` have shape ``(..., B, d)``. Logits are ``z = X theta^T`` with shape
``(..., n, B, o)``. Labels enter as *targets* ``T`` of shape ``(..., B, t)``:
the value for squared loss, the probability of class 1 for logistic loss, a probability vector
(one-hot for hard labels) for softmax cross-entropy, and for the masked multi-output squared
loss the ratings followed by per-output weights, ``T = [y | w]`` (see :data:`MASKED_SQUARED`).
Every family has ``dl/dz = residual(z, T)``, so the mean gradient over a set of users is
``residual^T X / count``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.ratings import NORMALISATIONS


def logits(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``z[..., k, b, :] = theta[..., k] @ X[..., b]``: shape (..., n, B, o)."""
    return np.matmul(X[..., None, :, :], theta.swapaxes(-1, -2))


def batch_logits(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``z[m, b, k, :] = theta[m, k] @ X[m, b]`` for parameters (M, n, o, d) and users
    (M, B, d): shape (M, B, n, o), one (B, d) x (d, n o) product per market."""
    M, n, o, d = theta.shape
    w = theta.reshape(M, n * o, d).swapaxes(1, 2)
    return np.matmul(X, w).reshape(M, X.shape[1], n, o)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-z))``: for float64 the same numbers as scipy's
    ``expit`` (no scipy import in every process that steps a market); 0 below about -745."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class LossFamily:
    """One loss family. ``n_outputs`` and ``target_dim`` depend on the number of classes
    (for the masked multi-output family: on the number of outputs, passed the same way).

    ``normalise`` matters only for ``masked_squared``: ``"items"`` divides a user's summed
    squared error by the number of outputs o, ``"rated"`` by the number of outputs it rated.
    """

    name: str
    normalise: str = "items"

    def n_outputs(self, n_classes: int) -> int:
        return n_classes if self.name in ("softmax", "masked_squared") else 1

    def target_dim(self, n_classes: int) -> int:
        o = self.n_outputs(n_classes)
        return 2 * o if self.name == "masked_squared" else o

    @property
    def is_classification(self) -> bool:
        return self.name not in ("squared", "masked_squared")

    def targets(self, y: np.ndarray, n_classes: int) -> np.ndarray:
        """Labels (N,) -> targets (N, t): value, P(y=1), or one-hot.

        Masked: ratings (N, o) with NaN where unrated -> ``[y | w]`` (N, 2o), ``y`` 0 where
        unrated, ``w = 1/o`` (``"items"``) or ``1/n_rated`` (``"rated"``) where rated, else 0.
        """
        if self.name == "softmax":
            return np.eye(n_classes)[y]
        if self.name == "masked_squared":
            return masked_targets(y, self.normalise)
        return np.asarray(y, dtype=np.float64)[:, None]

    def loss(self, z: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Per-user loss, summed over the output axis: (..., o) -> (...)."""
        if self.name == "squared":
            return np.square(z - T).sum(-1)
        if self.name == "masked_squared":
            o = z.shape[-1]
            e = z - T[..., :o]
            e *= e
            e *= T[..., o:]
            return np.add.reduce(e, -1)
        if self.name == "logistic":
            z = z[..., 0]  # softplus(z) - q z, with softplus written stably and cheaply
            return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))) - T[..., 0] * z
        zmax = z.max(-1, keepdims=True)
        lse = np.log(np.exp(z - zmax).sum(-1)) + zmax[..., 0]
        return lse - (T * z).sum(-1)

    def best(self, z: np.ndarray, T: np.ndarray, hard: bool) -> np.ndarray:
        """The lowest-loss learner of each user (ties: lowest index): logits (..., n, o) and
        targets (..., t) -> (...). For the logistic loss with 0/1 targets (``hard``) from the
        margin ``(2q - 1) z`` (``l = softplus(-margin)`` is strictly decreasing in it), so no
        transcendental per learner, and where two computed losses round to the same value
        (margins above about 37) the larger margin wins; otherwise from the losses."""
        if self.name == "logistic" and hard:
            return (z[..., 0] * (2.0 * T[..., None, 0] - 1.0)).argmax(-1)
        return self.loss(z, T[..., None, :]).argmin(-1)

    def residual(self, z: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``dl/dz``: 2(z - y), sigmoid(z) - q, or softmax(z) - q."""
        if self.name == "squared":
            return 2.0 * (z - T)
        if self.name == "masked_squared":
            o = z.shape[-1]
            return 2.0 * (z - T[..., :o]) * T[..., o:]
        if self.name == "logistic":
            return _sigmoid(z) - T
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True) - T

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Predicted label: the value (regression), z > 0 (binary), argmax (multiclass)."""
        if self.name == "squared":
            return z[..., 0]
        if self.name == "masked_squared":
            return z
        if self.name == "logistic":
            return (z[..., 0] > 0).astype(np.int64)
        return z.argmax(-1)

    def pseudo_targets(
        self,
        z: np.ndarray,
        hard: bool,
        users_T: np.ndarray | None = None,
        users: np.ndarray | None = None,
    ) -> np.ndarray:
        """Targets from aggregated peer logits: the value; hard sign/argmax or soft link.

        Masked: the peers' predicted ratings on the outputs the probed user rated, with that
        user's own weights (``users_T[users]`` holds them), as the published experiments did:
        ``[z | w_user]``. Without ``users_T``, every output with weight ``1/o``.
        """
        if self.name == "squared":
            return z
        if self.name == "masked_squared":
            o = z.shape[-1]
            if users_T is None:
                w = np.full(z.shape, 1.0 / o)
            else:
                w = users_T[users][..., o:]
            return np.concatenate([z, w], axis=-1)
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
    "masked_regression": LossFamily("masked_squared"),
}
MASKED_SQUARED = LOSSES["masked_regression"]
"""Masked multi-output squared loss: ``l = sum_j w_j (theta_j^T x - y_j)^2`` over outputs j,
``w_j = 0`` for unrated outputs and ``1/o`` (or ``1/n_rated``) for rated ones."""


def loss_family(task: str, options: dict | None = None) -> LossFamily:
    """The loss family of a dataset's ``task``; ``options`` may set ``normalise`` (masked)."""
    family = LOSSES[task]
    normalise = (options or {}).get("normalise")
    if family.name == "masked_squared" and normalise is not None and normalise != "items":
        return LossFamily("masked_squared", normalise=normalise)
    return family


def masked_targets(ratings: np.ndarray, normalise: str = "items") -> np.ndarray:
    """Ratings (N, o), NaN where unrated -> targets ``[y | w]`` (N, 2o) of the masked loss."""
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    R = np.asarray(ratings, dtype=np.float64)
    rated = ~np.isnan(R)
    if normalise == "items":
        w = rated / R.shape[1]
    else:
        w = rated / np.maximum(rated.sum(1, keepdims=True), 1)
    return np.concatenate([np.where(rated, R, 0.0), w], axis=1)


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
    if mask is not None and family.name == "masked_squared":
        k, b = np.nonzero(mask)
        if len(k) <= X.shape[-2]:  # at most B rows in all: gathering them is cheaper
            return _masked_mean_gradient(theta, X, T, mask, k, b)
    z = np.matmul(X, theta.swapaxes(-1, -2).astype(X.dtype, copy=False))
    if mask is None:
        r = family.residual(z, T)
        return np.matmul(r.swapaxes(-1, -2), X) / X.shape[-2]
    return weighted_mean_gradient(family, z, T, X, mask[:, None, :])[:, 0]


def weighted_mean_gradient(
    family: LossFamily,
    z: np.ndarray,
    T: np.ndarray,
    X: np.ndarray,
    W: np.ndarray,
    total: np.ndarray | None = None,
) -> np.ndarray:
    """Mean loss gradients of n weighted sets of the same users, zero for an empty set.

    Logits ``z`` (M, B, o) of each user at the parameters of interest, targets ``T``
    (M, B, t), covariates ``X`` (M, B, d), weights ``W`` (M, n, B) (0/1 or bool: membership)
    -> (M, n, o, d): ``g_k = sum_b W_kb dl/dz_b x_b^T / max(1, sum_b W_kb)``. For a batch
    split among learners, ``z`` holds each user's logits at the learner it chose and ``W`` is
    the one-hot of the choice: one product per market, no learner-padded copy of the batch.
    ``total`` (M, n), when given, is ``sum_b W_kb`` (known to the caller).
    """
    M, n, B = W.shape
    r = family.residual(z, T)  # (M, B, o)
    o, d = r.shape[-1], X.shape[-1]
    if o == 1:
        Wr = W * r[:, None, :, 0]
    else:
        Wr = (W[:, :, None, :] * r.swapaxes(1, 2)[:, None]).reshape(M, n * o, B)
    g = np.matmul(Wr, X).reshape(M, n, o, d)
    count = np.add.reduce(W, -1) if total is None else total
    g /= np.maximum(count, 1)[:, :, None, None]
    return g


def _masked_mean_gradient(
    theta: np.ndarray,
    X: np.ndarray,
    T: np.ndarray,
    mask: np.ndarray,
    k: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:
    """:func:`mean_gradient` of the masked loss from the masked-in rows ``(k, b)`` only.

    Wide targets make the padded layout costly (each learner's rows are mostly zeros). With
    R <= B rows in all (one market's batch split among its learners), the rows are gathered,
    their logits taken from one (R, d) x (d, K o) product, and
    ``g_k = sum_{rows of k} m r x^T / count_k`` formed as one (o, R) x (R, K d) product with
    each row's covariates placed in its learner's block.
    """
    K, o, d = theta.shape
    R = len(k)
    if R == 0:
        return np.zeros(theta.shape, X.dtype)
    Xr, Tr = X[k, b], T[k, b]
    rows = np.arange(R)
    w = theta.astype(X.dtype, copy=False).reshape(K * o, d)
    z = (Xr @ w.T).reshape(R, K, o)[rows, k]  # (R, o): each row's own learner
    z -= Tr[:, :o]
    z *= Tr[:, o:]
    z *= 2.0 * mask[k, b][:, None]
    placed = np.zeros((R, K, d), X.dtype)
    placed[rows, k] = Xr
    g = (z.T @ placed.reshape(R, K * d)).reshape(o, K, d).transpose(1, 0, 2)
    count = np.maximum(np.add.reduce(mask, -1), 1.0)
    return g / count[:, None, None]


def fit_erm(
    family: LossFamily, X: np.ndarray, T: np.ndarray, l2: float, n_outputs: int
) -> np.ndarray:
    """Regularised ERM ``argmin_theta mean_i l(theta x_i, T_i) + (l2/2) ||theta||^2`` -> (o, d).

    Squared loss is solved in closed form; logistic by Newton's method
    (:func:`_fit_logistic_newton`), softmax by L-BFGS to tight tolerance. No users gives zeros.
    """
    N, d = X.shape
    if N == 0:
        return np.zeros((n_outputs, d))
    if family.name == "masked_squared":
        return _fit_masked_ridge(X, T, l2)
    if family.name == "squared":
        A = 2.0 * X.T @ X / N + l2 * np.eye(d)
        b = 2.0 * X.T @ T / N
        return np.linalg.lstsq(A, b, rcond=None)[0].T
    start = np.zeros(n_outputs * d)
    if family.name == "logistic":
        w, converged = _fit_logistic_newton(X, T[:, 0], l2)
        if converged:
            return w[None]
        start = w  # no convergence (e.g. separable users, tiny l2): L-BFGS from there

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        theta = w.reshape(n_outputs, d)
        z = X @ theta.T
        value = family.loss(z, T).mean() + 0.5 * l2 * w @ w
        grad = family.residual(z, T).T @ X / N + l2 * theta
        return value, grad.ravel()

    from scipy import optimize  # on first use: scipy.optimize costs imports

    res = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-14},
    )
    return res.x.reshape(n_outputs, d)


def _weighted_gram(X: np.ndarray, s: np.ndarray, block: int = 2048) -> np.ndarray:
    """``X^T diag(s) X``, summed over blocks of rows (no temporary the size of ``X``)."""
    d = X.shape[1]
    out = np.zeros((d, d))
    for i in range(0, len(X), block):
        Xb = X[i : i + block]
        out += (Xb.T * s[i : i + block]) @ Xb
    return out


def _fit_logistic_newton(
    X: np.ndarray, q: np.ndarray, l2: float, max_iter: int = 50, gtol: float = 1e-11
) -> tuple[np.ndarray, bool]:
    """Newton's method with backtracking on ``f(w) = mean_i l(w x_i, q_i) + (l2/2) ||w||^2``:
    ``w <- w - t H^-1 g``, ``H = X^T diag(s(z)(1 - s(z))) X / N + l2 I``, from ``w = 0``.

    Returns ``(w, converged)``; converged when ``max |g| <= gtol`` (the objective is strictly
    convex for l2 > 0, so this is the L-BFGS fit's optimum, reached in a few dozen products).
    """
    N, d = X.shape

    def value(w: np.ndarray) -> float:
        z = X @ w
        return float((np.logaddexp(0.0, z) - q * z).mean() + 0.5 * l2 * w @ w)

    w = np.zeros(d)
    f = value(w)
    for _ in range(max_iter):
        z = X @ w
        p = _sigmoid(z)
        g = X.T @ (p - q) / N + l2 * w
        if np.abs(g).max() <= gtol:
            return w, True
        H = _weighted_gram(X, p * (1.0 - p)) / N
        H.flat[:: d + 1] += l2
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        slope = g @ step
        if not np.isfinite(slope) or slope <= 0.0:
            return w, False
        t = 1.0
        for _ in range(40):  # Armijo backtracking
            f_new = value(w - t * step)
            if f_new <= f - 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            return w, False
        w, f = w - t * step, f_new
    z = X @ w
    g = X.T @ (_sigmoid(z) - q) / N + l2 * w
    return w, bool(np.abs(g).max() <= gtol)


def quadratic_stats(X: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Sufficient statistics of the mean masked loss over users ``X`` (N, d), ``T`` (N, 2o):
    ``S_j = mean_i w_ij x_i x_i^T`` (o, d, d), ``b_j = mean_i w_ij y_ij x_i`` (o, d) and
    ``c = mean_i sum_j w_ij y_ij^2``, so that the risk is a quadratic in theta."""
    N, d = X.shape
    o = T.shape[1] // 2
    Y, W = T[:, :o], T[:, o:]
    outer = (X[:, :, None] * X[:, None, :]).reshape(N, d * d)
    S = (W.T @ outer).reshape(o, d, d) / N
    b = (W * Y).T @ X / N
    return S, b, float((W * Y * Y).sum() / N)


def quadratic_risk(theta: np.ndarray, stats: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray:
    """Mean masked loss of parameters ``theta`` (..., o, d) from :func:`quadratic_stats`:
    ``sum_j theta_j^T S_j theta_j - 2 theta_j^T b_j + c``, in O(o d^2) instead of O(N o d)."""
    S, b, c = stats
    quad = np.einsum("...oi,oij,...oj->...", theta, S, theta)
    return np.maximum(quad - 2.0 * np.einsum("...oi,oi->...", theta, b) + c, 0.0)


def _fit_masked_ridge(X: np.ndarray, T: np.ndarray, l2: float) -> np.ndarray:
    """Exact ERM of the masked loss: one weighted ridge per output j over the users who rated
    it, ``(2/N sum_i w_ij x_i x_i^T + l2 I) theta_j = 2/N sum_i w_ij y_ij x_i`` -> (o, d)."""
    N, d = X.shape
    o = T.shape[1] // 2
    Y, W = T[:, :o], T[:, o:]
    outer = (X[:, :, None] * X[:, None, :]).reshape(N, d * d)
    A = (2.0 / N) * (W.T @ outer).reshape(o, d, d) + l2 * np.eye(d)
    b = (2.0 / N) * ((W * Y).T @ X)
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:  # an output nobody rated with l2 = 0: least-norm solution
        return np.stack([np.linalg.lstsq(A[j], b[j], rcond=None)[0] for j in range(o)])
