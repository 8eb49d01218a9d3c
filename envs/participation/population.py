"""Sub-populations of a participation market, each risk written as one quadratic form.

Every risk is ``R_j(theta) = theta^T A_j theta - 2 b_j^T theta + c_j``:

- quadratic: ``A_j = I``, ``b_j = phi_j``, ``c_j = ||phi_j||^2 + sigma^2``, i.e.
  ``R_j = ||theta - phi_j||^2 + sigma^2``;
- least squares on group j's users (X_j, y_j): ``A_j = X_j^T X_j / N_j``,
  ``b_j = X_j^T y_j / N_j``, ``c_j = y_j^T y_j / N_j``, i.e. ``R_j = mean (x^T theta - y)^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import check_data_scale
from ..data.registry import load_dataset
from .config import ParticipationConfig


@dataclass(frozen=True)
class ParticipationPopulation:
    """J sub-populations in d dimensions (arrays are read-only)."""

    A: np.ndarray  # (J, d, d)
    b: np.ndarray  # (J, d)
    c: np.ndarray  # (J,)
    masses: np.ndarray  # (J,) beta_j, summing to 1
    optima: np.ndarray  # (J, d) a minimiser of each R_j (phi_j)
    names: tuple[str, ...]  # one label per sub-population
    identity: bool  # every A_j is the identity (quadratic risks)
    noise_var: float  # sigma^2 (quadratic), else 0
    sizes: np.ndarray | None = None  # (J,) users per group (least squares)

    @property
    def n_groups(self) -> int:
        return len(self.masses)

    @property
    def dim(self) -> int:
        return self.b.shape[1]

    def risks(self, theta: np.ndarray) -> np.ndarray:
        """``R[..., j, i] = R_j(theta[..., i, :])`` for parameters (..., n, d) -> (..., J, n)."""
        if self.identity:
            diff = theta[..., None, :, :] - self.optima[:, None, :]
            return np.einsum("...jid,...jid->...ji", diff, diff) + self.noise_var
        quad = np.einsum("...id,jde,...ie->...ji", theta, self.A, theta)
        lin = np.einsum("jd,...id->...ji", self.b, theta)
        # the quadratic form can round a hair below the group's minimum risk
        return np.maximum(quad - 2.0 * lin + self.c[:, None], 0.0)


def build_participation_population(config: ParticipationConfig) -> ParticipationPopulation:
    """The sub-populations of ``config`` (deterministic given the config)."""
    if config.risk == "quadratic":
        return _quadratic(config)
    return _least_squares(config)


def _normalised(masses: np.ndarray) -> np.ndarray:
    return masses / masses.sum()


def _quadratic(config: ParticipationConfig) -> ParticipationPopulation:
    if config.optima is not None:
        phi = np.array(config.optima, dtype=np.float64)
    else:
        rng = np.random.default_rng(config.population_seed)
        phi = rng.standard_normal((config.n_subpops, config.dim))
    J, d = phi.shape
    masses = np.ones(J) if config.masses is None else np.array(config.masses, np.float64)
    return _freeze(
        ParticipationPopulation(
            A=np.broadcast_to(np.eye(d), (J, d, d)),
            b=phi,
            c=(phi**2).sum(1) + config.noise_var,
            masses=_normalised(masses),
            optima=phi,
            names=tuple(f"group_{j}" for j in range(J)),
            identity=True,
            noise_var=float(config.noise_var),
        )
    )


def _least_squares(config: ParticipationConfig) -> ParticipationPopulation:
    options = dict(config.dataset_options)
    if config.group_by is not None:
        options["group_by"] = config.group_by
    data = load_dataset(config.dataset, **options)
    if data.groups is None:
        raise ValueError(
            f"dataset {config.dataset!r} has no groups; set group_by (e.g. 'race' or 'puma' "
            "for the census datasets)"
        )
    if data.task not in ("regression", "binary"):
        raise ValueError(
            f"dataset must be a regression or binary dataset for risk='least_squares', "
            f"{config.dataset!r} is {data.task}"
        )
    X, y = data.X, data.y.astype(np.float64)
    if config.intercept:
        X = np.hstack([X, np.ones((len(X), 1))])
    check_data_scale(X, y, True, config.dataset)
    codes, groups, sizes = np.unique(data.groups, return_inverse=True, return_counts=True)
    small = sizes < config.min_group_size
    names = data.extra.get("group_names")
    labels = [names[c] if names is not None and c < len(names) else str(c) for c in codes]
    if small.any():  # merge the small groups into one group named "other", placed last
        keep = np.flatnonzero(~small)
        relabel = np.full(len(codes), len(keep))
        relabel[keep] = np.arange(len(keep))
        groups = relabel[groups]
        labels = [labels[k] for k in keep] + ["other"]
    J = len(labels)
    counts = np.bincount(groups, minlength=J).astype(np.float64)
    onehot = np.zeros((len(y), J))
    onehot[np.arange(len(y)), groups] = 1.0
    A = np.einsum("nj,nd,ne->jde", onehot, X, X) / counts[:, None, None]
    b = (onehot * y[:, None]).T @ X / counts[:, None]
    c = (onehot.T @ y**2) / counts
    optima = np.stack(
        [np.linalg.lstsq(X[groups == j], y[groups == j], rcond=None)[0] for j in range(J)]
    )
    if config.masses is not None:
        if len(config.masses) != J:
            raise ValueError(
                f"masses must have one entry per group ({J} after merging groups smaller than "
                f"min_group_size), got {len(config.masses)}"
            )
        masses = np.array(config.masses, np.float64)
    else:
        masses = counts
    return _freeze(
        ParticipationPopulation(
            A=A,
            b=b,
            c=c,
            masses=_normalised(masses),
            optima=optima,
            names=tuple(f"{config.group_by or 'group'}={lab}" for lab in labels),
            identity=False,
            noise_var=0.0,
            sizes=counts.astype(np.int64),
        )
    )


def _freeze(pop: ParticipationPopulation) -> ParticipationPopulation:
    for name in ("A", "b", "c", "masses", "optima", "sizes"):
        arr = getattr(pop, name)
        if arr is not None and arr.flags.writeable:
            arr.flags.writeable = False
    return pop
