"""How large a collective must be to plant a signal: the paper's bound and our estimate.

Two different quantities, for two different learners:

- :func:`planting_bound` is Hardt et al.'s signal-planting result (ICML 2023, Theorem 1, as
  restated by Gauthier et al., ICML 2025) for a *Bayes-optimal* learner trained on the mixture
  ``(1 - alpha) P0 + alpha P*``: success ``S(alpha) >= 1 - ((1 - alpha) / alpha) Delta xi``,
  with ``xi`` the share of ordinary users who already carry the signal (``x = g(x)``) and
  ``Delta = max_{x: x = g(x)} [max_y P0(y | x) - P0(y* | x)]`` the largest suboptimality of the
  target label among them. :func:`estimate_planting_bound` estimates ``xi`` (empirical share)
  and ``Delta`` (from an estimator of ``P0(y | x)`` that it names) from data.
- :func:`critical_mass_logistic` and :func:`first_order_success` are this package's own
  estimate for a *logistic risk minimiser* (no theorem): a first-order balance of the mixture
  risk along the signal direction. It is neither a bound nor the paper's result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("logistic", "knn")


def carries_signal(X: np.ndarray, features, values) -> np.ndarray:
    """(N,) bool: the users whose covariates already equal the signal, ``x = g(x)``."""
    features = np.asarray(features, np.intp)
    values = np.asarray(values, np.float64)
    return np.isclose(X[:, features], values, rtol=1e-9, atol=1e-9).all(axis=1)


def planting_bound(alpha, xi: float, delta: float) -> np.ndarray:
    """Hardt et al.'s lower bound on planting success of a Bayes-optimal learner,
    ``max(0, 1 - ((1 - alpha) / alpha) Delta xi)`` (0 at alpha = 0), for each ``alpha``."""
    a = np.asarray(alpha, np.float64)
    if np.any((a < 0) | (a > 1)) or not (0 <= xi <= 1) or not (0 <= delta <= 1):
        raise ValueError(
            f"alpha must be in [0, 1], xi and delta in [0, 1]; got {alpha!r}, {xi!r}, {delta!r}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = 1.0 - (1.0 - a) / a * delta * xi
    return np.where(a > 0, np.clip(bound, 0.0, 1.0), 0.0)


def planting_bound_mass(success: float, xi: float, delta: float) -> float:
    """The smallest alpha at which :func:`planting_bound` guarantees ``success`` < 1:
    ``alpha = Delta xi / (Delta xi + 1 - success)``; the bound is vacuous (0) up to
    ``alpha = Delta xi / (1 + Delta xi)``."""
    if not 0 <= success < 1:
        raise ValueError(f"success must be in [0, 1), got {success!r}")
    dx = delta * xi
    return dx / (dx + 1.0 - success)


@dataclass(frozen=True)
class PlantingBound:
    """Estimated inputs of the planting bound and what they give."""

    xi: float  # share of ordinary users carrying the signal
    delta: float  # max over them of max_y P0(y | x) - P0(y* | x)
    estimator: str  # the estimator of P0(y | x) behind delta
    n_carriers: int

    def success(self, alpha) -> np.ndarray:
        """Guaranteed planting success at ``alpha`` (:func:`planting_bound`)."""
        return planting_bound(alpha, self.xi, self.delta)

    def mass(self, success: float = 0.9) -> float:
        """Collective size the bound needs for ``success`` (:func:`planting_bound_mass`)."""
        return planting_bound_mass(success, self.xi, self.delta)

    @property
    def vacuous_below(self) -> float:
        """Largest alpha at which the bound guarantees nothing."""
        return planting_bound_mass(0.0, self.xi, self.delta)


def conditional_probabilities(
    X: np.ndarray,
    y: np.ndarray,
    at: np.ndarray,
    n_classes: int,
    estimator: str = "logistic",
    k: int = 50,
    l2: float = 1e-4,
) -> np.ndarray:
    """Estimates of ``P0(y | x)`` (len(at), n_classes) from labelled users ``X``, ``y``.

    ``"logistic"``: regularised logistic (softmax for more classes) regression with an
    intercept, fitted on all of ``X``; ``"knn"``: label frequencies among the ``k`` nearest
    users of ``X`` (Euclidean).
    """
    from scipy import special  # on first use: scipy costs imports

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    y = np.asarray(y, np.int64)
    if estimator == "knn":
        if not 1 <= k <= len(X):
            raise ValueError(f"k must be an integer in 1..{len(X)}, got {k!r}")
        sq = (X * X).sum(1)
        out = np.empty((len(at), n_classes))
        for start in range(0, len(at), 512):  # blocks bound the distance matrix's memory
            A = at[start : start + 512]
            dist = (A * A).sum(1)[:, None] - 2.0 * A @ X.T + sq[None, :]
            near = np.argpartition(dist, k - 1, axis=1)[:, :k]
            counts = np.zeros((len(A), n_classes))
            np.add.at(counts, (np.arange(len(A))[:, None], y[near]), 1.0)
            out[start : start + len(A)] = counts / k
        return out
    from .losses import LOSSES, fit_erm  # the ERM has one home

    family = LOSSES["binary" if n_classes == 2 else "multiclass"]
    X1 = np.hstack([X, np.ones((len(X), 1))])
    theta = fit_erm(family, X1, family.targets(y, n_classes), l2, family.n_outputs(n_classes))
    z = np.hstack([at, np.ones((len(at), 1))]) @ theta.T
    if n_classes == 2:
        p1 = special.expit(z[:, 0])
        return np.stack([1.0 - p1, p1], axis=1)
    return special.softmax(z, axis=1)


def estimate_planting_bound(
    X: np.ndarray,
    y: np.ndarray,
    features,
    values,
    label: int = 1,
    n_classes: int = 2,
    estimator: str = "logistic",
    k: int = 50,
) -> PlantingBound:
    """``xi``: the empirical share of ``X`` with ``x = g(x)``; ``Delta``: the largest
    ``max_y P0(y | x) - P0(y* | x)`` over those users, with ``P0(y | x)`` from
    :func:`conditional_probabilities` (``estimator``). No carrier: ``xi = Delta = 0``."""
    if not 0 <= label < n_classes:
        raise ValueError(f"label must be in 0..{n_classes - 1}, got {label!r}")
    carriers = carries_signal(X, features, values)
    xi = float(carriers.mean())
    if not carriers.any():
        return PlantingBound(0.0, 0.0, estimator, 0)
    P = conditional_probabilities(X, y, X[carriers], n_classes, estimator, k)
    delta = float((P.max(1) - P[:, label]).max())
    return PlantingBound(xi, delta, estimator, int(carriers.sum()))


# --------------------------------------------------------------------- our own estimate
def _signal_geometry(X, theta0, X_eval, features, values, label, l2):
    """Margins toward y* of the signalled users ``z0`` (len(X_eval),), ``|v|^2`` and the
    ordinary users' curvature ``h`` along the signal direction (see
    :func:`critical_mass_logistic`)."""
    from scipy import special  # on first use: scipy costs imports

    features = np.asarray(features, np.intp)
    values = np.asarray(values, np.float64)
    theta0 = np.asarray(theta0, np.float64).reshape(-1)
    sign = 1.0 if label == 1 else -1.0
    G = X_eval.copy()
    G[:, features] = values
    z0 = sign * (G @ theta0)
    vv = float(values @ values)
    s0 = special.expit(X @ theta0)
    ux = X[:, features] @ values
    h = float(np.mean(s0 * (1 - s0) * ux**2)) + l2 * vv
    return z0, vv, h


def critical_mass_logistic(
    X: np.ndarray,
    theta0: np.ndarray,
    X_eval: np.ndarray,
    features,
    values,
    label: int = 1,
    delta: float = 0.1,
    l2: float = 0.0,
) -> float:
    """Our estimate (not a bound) of the collective size alpha* at which a logistic risk
    minimiser reaches planting success 1 - delta, from the first-order condition of the
    mixture risk in the signal direction.

    Let ``theta0`` minimise the risk of the ordinary users ``X`` and let planting move the
    model along ``u`` (the signal coordinates, scaled by their values ``v``:
    ``theta = theta0 + beta u``). With ``z0 = +-theta0 g(x)`` the margins of the signalled
    held-out users toward y*, success 1 - delta needs ``beta_d |v|^2 = -q_delta(z0)``. The
    stationarity of ``(1 - a) R_0 + a R_planted`` along ``u`` with R_0 quadratic about theta0
    (curvature ``h = E_0[s(1-s)(u x)^2] + l2 |u|^2``) reads

        (1 - a) h beta = a E_x[1 - s(z0 + beta |v|^2)] |v|^2,

    so ``alpha*/(1 - alpha*) = h beta_d / (|v|^2 E_x[1 - s(z0 + beta_d |v|^2)])``.
    The curvature h grows with how often (and how strongly) the signal occurs naturally,
    -q_delta(z0) is how far the unmodified model is from labelling g(x) as y* (the learner's
    suboptimality for the collective's goal). Returns 0 when theta0 already succeeds.
    """
    from scipy import special  # on first use: scipy costs imports

    z0, vv, h = _signal_geometry(X, theta0, X_eval, features, values, label, l2)
    need = -np.quantile(z0, delta)
    if need <= 0:
        return 0.0
    beta = need / vv
    pull = float(np.mean(special.expit(-(z0 + beta * vv))))  # E[1 - s(z0 + beta |v|^2)]
    ratio = h * beta / (vv * pull)
    return ratio / (1.0 + ratio)


def first_order_success(
    alpha,
    X: np.ndarray,
    theta0: np.ndarray,
    X_eval: np.ndarray,
    features,
    values,
    label: int = 1,
    l2: float = 0.0,
) -> np.ndarray:
    """Our estimate (not a bound) of planting success at each ``alpha``: the root beta of the
    balance of :func:`critical_mass_logistic`, ``(1 - a) h beta = a E[1 - s(z0 + beta |v|^2)]
    |v|^2``, then the share of signalled users with ``z0 + beta |v|^2 > 0``."""
    from scipy import optimize, special  # on first use: scipy costs imports

    z0, vv, h = _signal_geometry(X, theta0, X_eval, features, values, label, l2)
    out = []
    for a in np.atleast_1d(np.asarray(alpha, np.float64)):
        if not 0 <= a < 1:
            raise ValueError(f"alpha must be in [0, 1), got {a!r}")
        beta = 0.0
        if a > 0 and h <= 0:  # nothing resists the collective: any alpha > 0 succeeds fully
            out.append(1.0)
            continue
        if a > 0:

            def balance(b: float, a: float = a) -> float:
                return (1 - a) * h * b - a * vv * float(np.mean(special.expit(-(z0 + b * vv))))

            hi = 1.0
            while balance(hi) < 0 and hi < 1e12:  # the balance rises in beta: bracket its root
                hi *= 2.0
            beta = optimize.brentq(balance, 0.0, hi, xtol=1e-12)
        out.append(float(np.mean(z0 + beta * vv > 0)))
    return np.array(out)
