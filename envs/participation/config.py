"""``ParticipationConfig``: every setting of a participation-dynamics market, validated once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..checks import (
    MAX_LEARNERS,
    MAX_MAGNITUDE,
    UnknownOptionError,
    as_float,
    brief,
    check_memory,
    int_at_least,
    is_sequence,
    nonneg,
    one_of,
    real_in,
)
from ..layout import OBSERVATIONS

RISKS = ("quadratic", "least_squares")
INIT_ALLOCATIONS = ("uniform", "perturbed")
INIT_PARAMS = ("zeros", "random")
PARTICIPATION_REWARDS = ("local", "global", "total", "share")
# Dean et al.'s synthetic example: three sub-populations in the plane
MAX_GROUPS = 10**5  # sub-populations
MAX_DIM = 10**4  # parameters of a learner
DEAN_OPTIMA: tuple[tuple[float, ...], ...] = ((0.0, 1.0), (1.0, 1.0), (0.6, 0.0))


@dataclass(frozen=True)
class ParticipationConfig:
    """Settings of one participation-dynamics market (ranges are enforced).

    Sub-populations j have masses beta_j (normalised to sum 1) and risks R_j(theta):
    ``risk="quadratic"``: ``||theta - phi_j||^2 + noise_var`` with optima ``optima`` (or, when
    ``optima`` is None, ``n_subpops`` optima drawn from N(0, I_dim) with ``population_seed``);
    ``risk="least_squares"``: the mean squared error of a linear model on the users of group j
    of ``dataset`` (grouped by ``group_by``; groups smaller than ``min_group_size`` are merged
    into one; ``intercept`` appends a constant column). Each step every sub-population updates
    its allocation over the learners by multiplicative weights with rate ``eps``.
    """

    n_learners: int = 2  # n >= 1
    risk: str = "quadratic"
    optima: tuple[tuple[float, ...], ...] | None = DEAN_OPTIMA  # phi_j, one row per group
    n_subpops: int = 50  # J of the random optima (only when optima is None)
    dim: int = 8  # d of the random optima (only when optima is None)
    noise_var: float = 1.0  # sigma^2 >= 0 of the quadratic risks
    masses: tuple[float, ...] | None = None  # beta_j > 0; None: equal (quadratic), group shares
    dataset: str = "acs-income"  # least_squares: a registered dataset
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    group_by: str | None = "race"  # passed to the loader; None: the dataset's own groups
    intercept: bool = True  # least_squares: append a constant 1 column to the covariates
    min_group_size: int = 100  # least_squares: smaller groups are merged into one
    eps: float = 0.1  # multiplicative-weights rate in (0, 1)
    init_allocation: str | tuple[tuple[float, ...], ...] = "perturbed"
    init_perturbation: float = 1e-3  # "perturbed": alpha_ji proportional to 1 + this * U[0, 1)
    init_params: str = "zeros"
    init_scale: float = 0.01  # std of the "random" initial parameters
    l2: float = 0.0  # lambda >= 0 of the learners' retraining objective (baselines)
    population_seed: int = 0  # seeds the random optima
    max_steps: int = 500  # truncation
    reward: str = "local"
    max_update: float = 10.0  # bound of each parameter-update coordinate of the action
    observation: str = "dict"  # the PettingZoo env's learner observation: "dict" or "flat"

    def __post_init__(self) -> None:
        int_at_least(self, "n_learners", 1, MAX_LEARNERS)
        one_of(self, "risk", RISKS)
        one_of(self, "observation", OBSERVATIONS)
        if self.optima is not None:
            object.__setattr__(self, "optima", _matrix(self.optima, "optima"))
        int_at_least(self, "n_subpops", 1, MAX_GROUPS)
        int_at_least(self, "dim", 1, MAX_DIM)
        if self.optima is not None and (
            len(self.optima) > MAX_GROUPS or len(self.optima[0]) > MAX_DIM
        ):
            raise ValueError(
                f"optima must have at most {MAX_GROUPS} rows of at most {MAX_DIM} numbers, "
                f"got {len(self.optima)} rows of {len(self.optima[0])}"
            )
        nonneg(self, "noise_var")
        if self.masses is not None:
            masses = _vector(self.masses, "masses")
            if min(masses) <= 0:
                raise ValueError(
                    f"masses must be numbers > 0 (at most {MAX_MAGNITUDE:g}), got {self.masses!r}"
                )
            object.__setattr__(self, "masses", masses)
            if self.risk == "quadratic" and len(masses) != self.n_groups_quadratic:
                raise ValueError(
                    f"masses must have one entry per sub-population ({self.n_groups_quadratic}),"
                    f" got {len(masses)}"
                )
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a registered dataset name, got {self.dataset!r}")
        if not isinstance(self.dataset_options, Mapping):
            raise ValueError("dataset_options must be a mapping of loader keyword arguments")
        object.__setattr__(self, "dataset_options", dict(self.dataset_options))
        if self.group_by is not None and not isinstance(self.group_by, str):
            raise ValueError(f"group_by must be None or a string, got {self.group_by!r}")
        if not isinstance(self.intercept, bool):
            raise ValueError(f"intercept must be True or False, got {self.intercept!r}")
        int_at_least(self, "min_group_size", 1)
        real_in(self, "eps", 0.0, 1.0, open_low=True, open_high=True)
        if isinstance(self.init_allocation, str):
            one_of(self, "init_allocation", INIT_ALLOCATIONS)
        else:
            alloc = _matrix(self.init_allocation, "init_allocation")
            if any(len(r) != self.n_learners for r in alloc):
                raise ValueError(
                    f"init_allocation must have one row per sub-population with n_learners "
                    f"({self.n_learners}) entries, got rows of length {[len(r) for r in alloc]}"
                )
            if any(min(r) < 0 or sum(r) <= 0 for r in alloc):
                raise ValueError("init_allocation rows must be >= 0 with a positive sum")
            object.__setattr__(self, "init_allocation", alloc)
        nonneg(self, "init_perturbation")
        one_of(self, "init_params", INIT_PARAMS)
        nonneg(self, "init_scale")
        nonneg(self, "l2")
        int_at_least(self, "population_seed", 0, 2**63 - 1)
        int_at_least(self, "max_steps", 1)
        one_of(self, "reward", PARTICIPATION_REWARDS)
        real_in(self, "max_update", 0.0, MAX_MAGNITUDE, open_low=True)
        if self.risk == "quadratic":
            J = self.n_groups_quadratic
            d = self.dim if self.optima is None else len(self.optima[0])
            check_step_memory(J, self.n_learners, d)

    @property
    def n_groups_quadratic(self) -> int:
        """J of a quadratic market."""
        return len(self.optima) if self.optima is not None else self.n_subpops

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ParticipationConfig:
        """Build from keyword arguments, naming any unknown ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise UnknownOptionError(
                f"unknown participation option(s) {unknown}; allowed: {sorted(names)}"
            )
        return cls(**kwargs)

    def replace(self, **changes: Any) -> ParticipationConfig:
        """A copy with ``changes`` applied (validated)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return ParticipationConfig.from_kwargs(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_step_memory(n_groups: int, n_learners: int, dim: int) -> None:
    """Refuse a market whose per-step arrays (risks and parameter differences of every
    sub-population at every learner, J n d numbers a few times over) are too large."""
    check_memory(
        8 * 3 * n_groups * n_learners * (dim + 2),
        f"{n_groups} sub-populations (n_subpops or optima) x n_learners={n_learners} x "
        f"{dim} parameters (dim)",
        "n_subpops, dim or n_learners",
    )


def _vector(v: Any, name: str) -> tuple[float, ...]:
    message = (
        f"{name} must be a non-empty sequence of finite numbers in "
        f"[-{MAX_MAGNITUDE:g}, {MAX_MAGNITUDE:g}], got {brief(v)}"
    )
    if not is_sequence(v):
        raise ValueError(message)
    values = [as_float(x) for x in v]
    if not values or any(x is None or abs(x) > MAX_MAGNITUDE for x in values):
        raise ValueError(message)
    return tuple(values)


def _matrix(v: Any, name: str) -> tuple[tuple[float, ...], ...]:
    if not is_sequence(v):
        raise ValueError(f"{name} must be a sequence of rows of finite numbers, got {brief(v)}")
    rows = tuple(_vector(r, f"each row of {name}") for r in v)
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"{name} must be a non-empty sequence of rows of equal length")
    return rows
