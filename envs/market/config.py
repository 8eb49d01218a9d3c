"""``MarketConfig``: every setting of a market, validated once when it is built.

Fields are grouped by the component that owns them (``GROUPS``); each component's module
checks its own fields (``check_fields``) and this module only routes them. Build a config with
flat keyword arguments or with one mapping per group, e.g.
``MarketConfig.from_kwargs(dataset="acs-income", choice={"choice_rule": "logit"},
entry_exit={"max_learners": 6, "exit_share": 0.05})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..checks import (
    MAX_LEARNERS,
    MAX_MAGNITUDE,
    UnknownOptionError,
    check_data_scale,
    check_memory,
    int_at_least,
    is_integer,
    is_sequence,
    nonneg,
    one_of,
    real_in,
    unit,
)
from ..layout import OBSERVATIONS

if TYPE_CHECKING:
    from .spec import MarketSpec

PREFERENCE_RULES = ("kmeans", "market_leader", "majority_good", "category")
INITS = ("partition_erm", "published", "random", "zeros")
RANDOM_INITS = ("random", "published")  # the starts that draw parameters at random
REWARDS = ("local", "global", "share")
PROBE_LABELS = ("hard", "soft")
MAX_BATCH = 10**6  # users_per_step and probe_size

# the component that owns each field: the module that checks it
GROUPS: dict[str, tuple[str, ...]] = {
    "market": ("n_learners", "users_per_step", "max_steps", "max_update", "observation"),
    "population": (
        "dataset",
        "dataset_options",
        "preferences",
        "leader_fraction",
        "init",
        "init_scale",
        "l2",
        "test_fraction",
        "population_seed",
    ),
    "choice": (
        "choice_rule",
        "preference_weight",
        "uniform_weight",
        "temperature",
        "loyalty_bonus",
        "mw_rate",
        "user_types",
    ),
    "probing": ("probe_size", "probe_labels", "probe_noise"),
    "metrics": ("reward", "probe_cost", "eval_every"),
    "outside": ("outside_threshold", "return_rate"),
    "entry_exit": (
        "max_learners",
        "entries",
        "exit_share",
        "exit_patience",
        "exit_reassign",
        "clone_noise",
        "clone_share",
        "fresh_share",
    ),
    "collective": ("collective_fraction", "collective_signal"),
}


@dataclass(frozen=True)
class MarketConfig:
    """Settings of one market (see each field's comment; ranges are enforced).

    Build it with keyword arguments (flat, or one mapping per group of ``GROUPS``); unknown
    names and out-of-range values raise ``ValueError``. ``preferences`` is a rule name or a
    sequence with one learner index per dataset user.
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
    init_scale: float = 0.01  # std of the "random" (and "published") initial draw
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
    observation: str = "dict"  # the PettingZoo env's learner observation: "dict" or "flat"
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
        from . import choice as _choice_rules  # components import this module
        from . import collective, entry_exit, outside

        int_at_least(self, "n_learners", 1, MAX_LEARNERS)
        int_at_least(self, "users_per_step", 1, MAX_BATCH)
        int_at_least(self, "max_steps", 1)
        real_in(self, "max_update", 0.0, MAX_MAGNITUDE, open_low=True)
        one_of(self, "observation", OBSERVATIONS)
        _check_population(self)
        int_at_least(self, "probe_size", 1, MAX_BATCH)
        one_of(self, "probe_labels", PROBE_LABELS)
        unit(self, "probe_noise")
        one_of(self, "reward", REWARDS)
        nonneg(self, "probe_cost")
        int_at_least(self, "eval_every", 1)
        _choice_rules.check_fields(self)
        outside.check_fields(self)
        entry_exit.check_fields(self)
        collective.check_fields(self)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> MarketConfig:
        """Build from keyword arguments, flat or grouped (``GROUPS``), naming unknown ones."""
        names = {f.name for f in fields(cls)}
        flat = {}
        for key, value in kwargs.items():
            if key in GROUPS and key not in names:
                if not isinstance(value, Mapping):
                    raise ValueError(
                        f"{key} must be a mapping of its fields {list(GROUPS[key])}, got {value!r}"
                    )
                unknown = sorted(set(value) - set(GROUPS[key]))
                if unknown:
                    raise UnknownOptionError(
                        f"unknown {key} option(s) {unknown}; allowed: {list(GROUPS[key])}"
                    )
                twice = sorted(set(value) & set(kwargs))
                if twice:
                    raise ValueError(f"{twice} given both flat and in {key}; give each once")
                flat.update(value)
            else:
                flat[key] = value
        unknown = sorted(set(flat) - names)
        if unknown:
            # Python's wording as well, which wrappers that retry without an option look for
            raise UnknownOptionError(
                f"unknown market option(s) {unknown} (unexpected keyword argument "
                f"{unknown[0]!r}); allowed: {sorted(names)} or the groups {sorted(GROUPS)}"
            )
        return cls(**flat)

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

    def grouped(self) -> dict[str, dict[str, Any]]:
        """The settings as one mapping per component (``GROUPS``)."""
        d = self.to_dict()
        return {group: {name: d[name] for name in names} for group, names in GROUPS.items()}


def _check_population(cfg: MarketConfig) -> None:
    if not isinstance(cfg.dataset, str) or not cfg.dataset:
        raise ValueError(f"dataset must be a registered dataset name, got {cfg.dataset!r}")
    if not isinstance(cfg.dataset_options, Mapping):
        raise ValueError("dataset_options must be a mapping of loader keyword arguments")
    object.__setattr__(cfg, "dataset_options", dict(cfg.dataset_options))
    if isinstance(cfg.preferences, str):
        one_of(cfg, "preferences", PREFERENCE_RULES)
    elif is_sequence(cfg.preferences):
        values = list(cfg.preferences)
        if not all(is_integer(v) for v in values):
            raise ValueError(
                "preferences given as labels must be integer learner indices "
                f"in 0..{cfg.n_learners - 1}"
            )
        labels = tuple(int(v) for v in values)
        if not labels or min(labels) < 0 or max(labels) >= cfg.n_learners:
            raise ValueError(
                "preferences given as labels must be learner indices in "
                f"0..{cfg.n_learners - 1}, one per dataset user"
            )
        object.__setattr__(cfg, "preferences", labels)
    else:
        raise ValueError(
            f"preferences must be one of {PREFERENCE_RULES} or a sequence of learner indices"
        )
    unit(cfg, "leader_fraction")
    one_of(cfg, "init", INITS)
    nonneg(cfg, "init_scale")
    nonneg(cfg, "l2")
    real_in(cfg, "test_fraction", 0.0, 1.0, open_low=True, open_high=True)
    if cfg.population_seed is not None:
        int_at_least(cfg, "population_seed", 0, 2**63 - 1)


def memory_estimate(spec: MarketSpec, n_markets: int = 1) -> int:
    """Bytes of the arrays one step of ``n_markets`` markets holds at once (an estimate from
    the shapes: losses of every learner on every user, the learners' padded views of the
    batch and their probe sets, the batch itself and the parameters)."""
    n, B, Np = spec.n_learners, spec.users_per_step, spec.probe_size
    d, t, o = spec.n_features, spec.target_dim, spec.n_outputs
    per_market = (
        n * B * (o + 2)  # logits and losses
        + 2 * n * B * (d + t + 1)  # each learner's view of the batch (state and observation)
        + 2 * n * Np * (d + t + 2)  # probe sets (state and observation)
        + B * (3 * d + 3 * t + 8)  # the batch, what it presents, its choices
        + 4 * n * o * d  # parameters, updates, actions
    )
    return 8 * n_markets * per_market


def check_resources(config: MarketConfig, spec: MarketSpec, data, n_markets: int = 1) -> None:
    """Refuse, before anything is allocated, a market whose per-step arrays would need more
    than ``checks.MEMORY_LIMIT`` bytes, or whose data could give losses beyond float32's
    range."""
    check_memory(
        memory_estimate(spec, n_markets),
        f"n_learners/max_learners={spec.n_learners}, users_per_step={spec.users_per_step}, "
        f"probe_size={spec.probe_size}, {spec.n_features} features, {n_markets} market(s)",
        "users_per_step, probe_size, n_learners or max_learners",
    )
    check_data_scale(data.X, data.y, not spec.family.is_classification, data.name)
