"""``MarketConfig``: every setting of a market, validated once when it is built."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

CHOICE_RULES = ("preference_or_loss", "loss_or_uniform", "logit", "multiplicative_weights")
USER_TYPES = ("loyal", "quality", "random", "collective")
PREFERENCE_RULES = ("kmeans", "market_leader", "majority_good", "category")
INITS = ("partition_erm", "random", "zeros")
REWARDS = ("local", "global", "share")
PROBE_LABELS = ("hard", "soft")


@dataclass(frozen=True)
class MarketConfig:
    """Settings of one market (see each field's comment; ranges are enforced).

    Build it with keyword arguments; unknown names and out-of-range values raise ``ValueError``.
    ``preferences`` is a rule name or a sequence with one learner index per dataset user.
    """

    n_learners: int = 5  # n >= 1
    dataset: str = "acs-income"  # a registered dataset name
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    users_per_step: int = 150  # B >= 1, drawn i.i.d. with replacement each step
    preference_weight: float = 0.7  # tau in [0, 1]: P(user goes to its preferred learner)
    choice_rule: str = "preference_or_loss"  # or "loss_or_uniform" (Su & Dean)
    uniform_weight: float = 0.0  # zeta in [0, 1]: P(uniform learner) under "loss_or_uniform"
    preferences: str | tuple[int, ...] = "kmeans"
    leader_fraction: float = 0.8  # share of users fixed by "market_leader"/"majority_good"
    init: str = "partition_erm"
    init_scale: float = 0.01  # std of the "random" initial parameters
    l2: float = 1e-4  # lambda >= 0 of the regularised ERMs (partition start and baseline)
    test_fraction: float = 0.2  # held-out users for full-population risk, in (0, 1)
    population_seed: int | None = 0  # seeds split/preferences; None: drawn from reset seed
    max_steps: int = 1000  # truncation
    reward: str = "local"
    probe_cost: float = 0.0  # reward penalty per probe query
    eval_every: int = 100  # steps between full-population evaluations in infos
    probe_size: int = 100  # N_probe covariates per probe request
    probe_labels: str = "hard"
    probe_noise: float = 0.0  # kappa in [0, 1]: P(query routed to a random other peer)
    max_update: float = 1.0  # bound of each parameter-update coordinate of the action
    temperature: float = 1.0  # > 0, "logit": P(k) ~ exp((-loss_k + bonus [k = pref]) / temperature)
    loyalty_bonus: float = 0.0  # "logit": utility bonus of the preferred learner
    mw_rate: float = 0.1  # eps in (0, 1) of "multiplicative_weights"
    user_types: Mapping[str, float] | None = None  # {type: fraction}, rest follow choice_rule
    outside_threshold: float | None = None  # users leave when every loss exceeds it; None: off
    return_rate: float = 0.1  # r in [0, 1]: P(a departed user returns) per step
    # learners entering and leaving (envs/market/entry_exit.py); the defaults keep the set fixed
    max_learners: int | None = None  # learner slots (>= n_learners); None: n_learners
    entries: tuple = ()  # ((step, "clone" | "fresh", parent index or None), ...)
    exit_share: float = 0.0  # a learner leaves when its batch share stays below this ...
    exit_patience: int = 10  # ... for this many consecutive steps (0 share: never leaves)
    exit_reassign: str = "best"  # a leaver's loyal users go to: "best" or "uniform" learner
    clone_noise: float = 0.0  # std of the Gaussian noise added to a clone's parameters
    clone_share: float = 0.5  # fraction of the parent's loyal users that move to a clone
    fresh_share: float = 0.0  # fraction of all users that become loyal to a fresh entrant
    collective_fraction: float = 0.0  # alpha in [0, 1): P(a user is a collective member); 0: off
    collective_signal: tuple[tuple[int, float], ...] = ()  # g(x): (feature, value) pairs to set

    def __post_init__(self) -> None:
        _int_at_least(self, "n_learners", 1)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a registered dataset name, got {self.dataset!r}")
        if not isinstance(self.dataset_options, Mapping):
            raise ValueError("dataset_options must be a mapping of loader keyword arguments")
        object.__setattr__(self, "dataset_options", dict(self.dataset_options))
        _int_at_least(self, "users_per_step", 1)
        _unit(self, "preference_weight")
        _choice(self, "choice_rule", CHOICE_RULES)
        _unit(self, "uniform_weight")
        if isinstance(self.preferences, str):
            _choice(self, "preferences", PREFERENCE_RULES)
        elif isinstance(self.preferences, Sequence) or hasattr(self.preferences, "__array__"):
            values = list(self.preferences)
            if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
                raise ValueError(
                    "preferences given as labels must be integer learner indices "
                    f"in 0..{self.n_learners - 1}"
                )
            labels = tuple(int(v) for v in values)
            if not labels or min(labels) < 0 or max(labels) >= self.n_learners:
                raise ValueError(
                    "preferences given as labels must be learner indices in "
                    f"0..{self.n_learners - 1}, one per dataset user"
                )
            object.__setattr__(self, "preferences", labels)
        else:
            raise ValueError(
                f"preferences must be one of {PREFERENCE_RULES} or a sequence of learner indices"
            )
        _unit(self, "leader_fraction")
        _choice(self, "init", INITS)
        _nonneg(self, "init_scale")
        _nonneg(self, "l2")
        if not (_is_real(self.test_fraction) and 0.0 < self.test_fraction < 1.0):
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}")
        if self.population_seed is not None:
            _int_at_least(self, "population_seed", 0)
        _int_at_least(self, "max_steps", 1)
        _choice(self, "reward", REWARDS)
        _nonneg(self, "probe_cost")
        _int_at_least(self, "eval_every", 1)
        _int_at_least(self, "probe_size", 1)
        _choice(self, "probe_labels", PROBE_LABELS)
        _unit(self, "probe_noise")
        if not (_is_real(self.max_update) and 0.0 < self.max_update < math.inf):
            raise ValueError(f"max_update must be a finite number > 0, got {self.max_update!r}")
        if not (_is_real(self.temperature) and self.temperature > 0.0):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if not _is_real(self.loyalty_bonus):
            raise ValueError(f"loyalty_bonus must be a finite number, got {self.loyalty_bonus!r}")
        if not (_is_real(self.mw_rate) and 0.0 < self.mw_rate < 1.0):
            raise ValueError(f"mw_rate must be a number in (0, 1), got {self.mw_rate!r}")
        if self.user_types is not None:
            object.__setattr__(self, "user_types", _user_types(self.user_types))
        if self.outside_threshold is not None and not (
            _is_real(self.outside_threshold) and self.outside_threshold >= 0.0
        ):
            raise ValueError(
                "outside_threshold must be None (no outside option) or a finite number >= 0, "
                f"got {self.outside_threshold!r}"
            )
        _unit(self, "return_rate")
        from .entry_exit import check_entry_fields  # here: entry.py imports this module

        check_entry_fields(self)
        _collective(self)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> MarketConfig:
        """Build from keyword arguments, naming any unknown ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ValueError(f"unknown market option(s) {unknown}; allowed: {sorted(names)}")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> MarketConfig:
        """A copy with ``changes`` applied (validated)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return MarketConfig.from_kwargs(**values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(self.preferences, tuple):
            d["preferences"] = list(self.preferences)
        d["collective_signal"] = [list(p) for p in self.collective_signal]
        return d


def _user_types(value: Any) -> dict[str, float]:
    """Validate ``user_types``: fractions in [0, 1] of known types, summing to at most 1."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"user_types must be None or a mapping {{type: fraction}} with types in {USER_TYPES}, "
            f"got {value!r}"
        )
    unknown = sorted(str(k) for k in value if k not in USER_TYPES)
    if unknown:
        raise ValueError(f"user_types keys must be in {USER_TYPES}, got unknown {unknown}")
    out = {}
    for k, v in value.items():
        if not (_is_real(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"user_types[{k!r}] must be a fraction in [0, 1], got {v!r}")
        out[k] = float(v)
    if sum(out.values()) > 1.0 + 1e-9:
        raise ValueError(f"user_types fractions must sum to at most 1, got {sum(out.values())!r}")
    return out


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(cfg: MarketConfig, name: str, low: int) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    object.__setattr__(cfg, name, int(v))


def _unit(cfg: MarketConfig, name: str) -> None:
    v = getattr(cfg, name)
    if not (_is_real(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")


def _nonneg(cfg: MarketConfig, name: str) -> None:
    v = getattr(cfg, name)
    if not (_is_real(v) and v >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


def _choice(cfg: MarketConfig, name: str, allowed: tuple[str, ...]) -> None:
    v = getattr(cfg, name)
    if v not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {v!r}")


def _collective(cfg: MarketConfig) -> None:
    a = cfg.collective_fraction
    if not (_is_real(a) and 0.0 <= a < 1.0):
        raise ValueError(f"collective_fraction must be a number in [0, 1), got {a!r}")
    signal = cfg.collective_signal
    message = (
        "collective_signal must be a sequence of (feature index >= 0, finite value) pairs "
        f"with distinct features, got {signal!r}"
    )
    if isinstance(signal, (str, bytes)) or not isinstance(signal, Sequence):
        raise ValueError(message)
    pairs = []
    for p in signal:
        if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2:
            raise ValueError(message)
        j, v = p
        if isinstance(j, bool) or not isinstance(j, numbers.Integral) or j < 0 or not _is_real(v):
            raise ValueError(message)
        pairs.append((int(j), float(v)))
    if len({j for j, _ in pairs}) != len(pairs):
        raise ValueError(message)
    if a > 0 and not pairs:
        raise ValueError(
            "collective_signal must name at least one (feature, value) pair "
            "when collective_fraction > 0"
        )
    object.__setattr__(cfg, "collective_fraction", float(a))
    object.__setattr__(cfg, "collective_signal", tuple(pairs))
