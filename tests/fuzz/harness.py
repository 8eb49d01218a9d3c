"""Fuzzing harness shared by the hypothesis suite (``tests/fuzz``) and the campaign script
(``scripts/fuzz_campaign.py``).

A case is a configuration of one environment family (``market``: the PettingZoo market with
every component; ``participation``; ``gym``: the single-learner Gymnasium ids) built from a
valid base by changing a few fields to edge values (valid or not), and action streams that
mix valid actions with bad ones (NaN, inf, huge integers, wrong shapes and types, missing
agents). Every choice goes through a ``choose(options)`` callable, so the campaign draws with
a ``numpy`` generator and the hypothesis tests with ``data.draw``.

Outcomes (``classify`` and ``run_case``):

- ``ok``: built (or stepped) and every figure is finite, every observation inside its space;
- ``clean``: a ``ValueError``/``TypeError`` whose message names the offending field (or agent
  or ``seed``), and a rejected step left the environment exactly as it was;
- ``unclear``: a ``ValueError``/``TypeError`` that names nothing it was given;
- ``defect``: any other exception, a non-finite figure or an observation outside its space
  from finite inputs, or a rejected step that changed the environment.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

Choose = Callable[[Sequence[Any]], Any]
OUTCOMES = ("ok", "clean", "unclear", "defect")
FAMILIES = ("market", "participation", "gym")
GYM_IDS = (
    "choicemarket/Platform-v0",
    "choicemarket/PlatformFlat-v0",
    "choicemarket/PlatformStrategy-v0",
)
NAN, INF = math.nan, math.inf
HUGE_INT = 10**400

# info entries documented as NaN in some markets (regression accuracy, no members, no users)
NAN_INFOS = {
    "global_accuracy",
    "accuracy_gap",
    "baseline_accuracy",
    "member_loss",
    "nonmember_loss",
    "group_unserved",
    "group_outside",
}

# --------------------------------------------------------------------------- the values
# Each field: values of every kind (valid edges first, then invalid). Bad values of every
# type: wrong type, numpy scalars and arrays, NaN, inf, huge ints, huge and tiny floats.
COMMON_BAD = [None, "x", NAN, INF, -INF, HUGE_INT, -HUGE_INT, [1, 2], np.array([1.0]), True]

MARKET_FIELDS: dict[str, list] = {
    "n_learners": [1, 2, 3, np.int64(2), 0, -1, 2.5, 10**6, 2**63, 257],
    "users_per_step": [1, 7, 64, np.int32(5), 0, 1e3, 10**8],
    "max_steps": [1, 3, 10**9, 0, 10**10],
    "max_update": [1e-300, 1e-3, 1.0, 1e6, Fraction(1, 3), np.float32(2.0), 0, -1, 1e7, 1e308],
    "preference_weight": [0.0, 1.0, 0.5, np.float64(0.3), -0.1, 1.1],
    "choice_rule": [
        "preference_or_loss",
        "loss_or_uniform",
        "logit",
        "multiplicative_weights",
        np.str_("logit"),
        np.array(["logit"]),
        3,
    ],
    "uniform_weight": [0.0, 0.5, 1.0, -1e-9],
    "temperature": [5e-324, 1e-320, 1e-6, 1.0, 1e6, 0.0, -1.0, 1e7, 1e308],
    "loyalty_bonus": [-1e6, 0.0, 1.0, 1e6, 1e308, -1e308],
    "mw_rate": [1e-9, 0.5, 1 - 1e-12, 0.0, 1.0],
    "user_types": [
        None,
        {"loyal": 0.5},
        {"random": 1.0},
        {"quality": 0.3, "collective": 0.3},
        {"x": 0.1},
        {"loyal": 2.0},
        {"loyal": 0.6, "random": 0.6},
        [("loyal", 0.5)],
    ],
    "preferences": [
        "kmeans",
        "market_leader",
        "majority_good",
        "category",
        "x",
        5,
        [],
        np.array([0, 1]),
        np.float64(1.0),
    ],
    "leader_fraction": [0.0, 1.0, 0.8, 1.5],
    "init": ["partition_erm", "random", "zeros", "x", np.array(["zeros"]), 1.0],
    "init_scale": [0.0, 1e-3, 1.0, 1e6, 1e39, 1e308, -1.0],
    "l2": [0.0, 1e-9, 1.0, 1e6, 1e300, -1.0],
    "test_fraction": [1e-3, 0.5, 0.999, 0.0, 1.0],
    "population_seed": [0, 7, None, 2**63 - 1, 2**63, -1, 1.5],
    "reward": ["local", "global", "share", "x"],
    "probe_cost": [0.0, 1.0, 1e6, 1e308, -1.0],
    "eval_every": [1, 2, 10**9, 0, 10**400],
    "probe_size": [1, 10, 10**7, 0],
    "probe_labels": ["hard", "soft", "x"],
    "probe_noise": [0.0, 0.5, 1.0, 1.5],
    "outside_threshold": [None, 0.0, 0.5, 1e6, 1e308, -1.0],
    "return_rate": [0.0, 1e-9, 0.5, 1.0, 1e-19, 1e-300],
    "max_learners": [None, 4, 6, 256, 257, 1e30, 10**7, 0],
    "entries": [
        (),
        ((1, "fresh", None),),
        ((1, "clone", 0),),
        ((2, "clone", 0), (1, "fresh", None)),
        ((0, "fresh", None),),
        ((1, "x", None),),
        ((1, np.array(["clone"]), 0),),
        "abc",
        np.array([[1, 0, 0]]),
    ],
    "exit_share": [0.0, 0.3, 1.0, 2.0],
    "exit_patience": [1, 3, 0, 10**400],
    "exit_reassign": ["best", "uniform", "x"],
    "clone_noise": [0.0, 1.0, 1e6, 1e308, -1.0],
    "clone_share": [0.0, 0.5, 1.0, 2.0],
    "fresh_share": [0.0, 0.5, 1.0, -0.5],
    "observation": ["dict", "flat", "x", np.str_("flat")],
    "collective_fraction": [0.0, 0.2, 0.99, 1.0],
    "collective_signal": [
        (),
        ((0, 1.0),),
        ((0, 1e6),),
        ((0, 1e308),),
        ((99, 1.0),),
        ((0, 1.0), (0, 2.0)),
        ((HUGE_INT, 1.0),),
        "x",
    ],
}

# datasets small enough to build a population in milliseconds, and their options
DATASETS: dict[str, list[dict]] = {
    "two-slopes": [
        {"n_users": 40},
        {"n_users": 200, "a": 1e3, "b": -1e3},
        {"n_users": 40, "a": 1e160},
        {"n_users": 2.5},
        {"n_users": 40, "w": 1.5},
        {"bogus": 1},
    ],
    "gaussian-groups": [
        {"n_users": 90, "n_groups": 3},
        {"n_users": 60, "n_groups": 2, "n_features": 2},
        {"n_users": 90, "n_features": 2.5},
        {"n_users": 90, "separation": 1e300},
        {"n_users": 1, "n_groups": 3},
    ],
    "diabetes": [{}, {"intercept": False}, {"intercept": "yes"}],
    "synthetic-ratings": [{"n_users": 80, "n_items": 6, "mf_iterations": 2}],
}

# fields a changed value may be reported under (a component's rule naming a related field)
ALIASES = {"dataset_options": ("dataset",), "max_learners": ("entries",)}

PARTICIPATION_FIELDS: dict[str, list] = {
    "n_learners": [1, 2, 5, 0, 2**63, 257],
    "risk": ["quadratic", "least_squares", "x"],
    "optima": [
        ((0.0, 1.0), (1.0, 1.0), (0.6, 0.0)),
        ((0.0,),),
        ((1e6, -1e6), (0.0, 0.0)),
        None,
        ((1e160, 1.0), (0.0, 0.0)),
        ((0, 1), (1,)),
        np.array([[0.0, 1.0], [1.0, 0.0]]),
        [],
        "x",
    ],
    "n_subpops": [1, 5, 10**5, 10**6, 0],
    "dim": [1, 3, 10**4 + 1, 0],
    "noise_var": [0.0, 1.0, 1e6, 1e308, -1.0],
    "masses": [None, (1.0, 2.0, 3.0), (0.0, 1.0, 1.0), (1e-300, 1.0, 1.0), (1e308, 1.0, 1.0)],
    "dataset": ["two-slopes", "gaussian-groups", "synthetic-ratings", "diabetes", "x"],
    "group_by": [None, "race", 5],
    "intercept": [True, False, 1],
    "min_group_size": [1, 100, 0, 10**10],
    "eps": [1e-9, 0.1, 1 - 1e-12, 0.0, 1.0],
    "init_allocation": [
        "uniform",
        "perturbed",
        ((1.0, 0.0), (0.0, 1.0), (0.5, 0.5)),
        ((1.0, -1.0), (0.0, 1.0), (0.5, 0.5)),
        "x",
    ],
    "init_perturbation": [0.0, 1e-3, 1e6, 1e308, -1.0],
    "init_params": ["zeros", "random", "x"],
    "init_scale": [0.0, 1.0, 1e6, 1e39, -1.0],
    "l2": [0.0, 1.0, 1e300, -1.0],
    "population_seed": [0, 3, -1, 2**63],
    "max_steps": [1, 5, 0],
    "reward": ["local", "global", "total", "share", "x"],
    "max_update": [1e-3, 10.0, 1e6, 3.5e38, 1e39, Fraction(1, 3), 0.0],
    "observation": ["dict", "flat", "x"],
}
PARTICIPATION_DATASET_OPTIONS = {
    "two-slopes": {"n_users": 200},
    "gaussian-groups": {"n_users": 300},
    "synthetic-ratings": {"n_users": 80, "n_items": 6, "mf_iterations": 2},
}

GYM_OPTIONS: dict[str, list] = {
    "ego": [0, 1, "learner_0", -1, 5, 2.5],
    "eta": [1e-3, 0.01, 1e6, 0.0, NAN],
    "p_max": [0.5, 2.0, -1.0],
    "probe_batch_size": [1, 150, 0],
    "schedule": ["constant", "inv_sqrt", "x"],
}


# --------------------------------------------------------------------------- configs
def market_config(choose: Choose, n_changes: int) -> dict[str, Any]:
    """A market configuration: a valid small base with ``n_changes`` fields set to edge
    values (drawn with ``choose``)."""
    dataset = choose(list(DATASETS))
    options = dict(choose(DATASETS[dataset][:1] if choose([True, False]) else DATASETS[dataset]))
    classification = dataset == "gaussian-groups"
    cfg: dict[str, Any] = dict(
        dataset=dataset,
        dataset_options=options,
        n_learners=choose([1, 2, 3]),
        users_per_step=choose([8, 32]),
        max_steps=choose([3, 6]),
        preferences="kmeans",
        probe_size=choose([4, 16]),
        eval_every=choose([1, 2]),
        population_seed=0,
    )
    if dataset == "synthetic-ratings":
        cfg["preferences"] = "kmeans"
    # components on by default in some cases, so that their steps run too
    if choose([False, True]):
        cfg["choice_rule"] = choose(MARKET_FIELDS["choice_rule"][:4])
    if choose([False, False, True]):
        cfg.update(max_learners=cfg["n_learners"] + 2, entries=((1, "fresh", None),))
        cfg["exit_share"] = choose([0.0, 0.3])
    if choose([False, False, True]):
        cfg.update(outside_threshold=choose([0.0, 0.5]), return_rate=choose([0.0, 0.5]))
    if classification and choose([False, True]):
        cfg.update(collective_fraction=0.3, collective_signal=((0, 1.0),))
    fields = [f for f in MARKET_FIELDS if f in _market_field_names()]
    for _ in range(n_changes):
        name = choose(fields)
        cfg[name] = choose(MARKET_FIELDS[name])
    return cfg


def participation_config(choose: Choose, n_changes: int) -> dict[str, Any]:
    """A participation configuration (quadratic, sometimes least squares) with edge values."""
    cfg: dict[str, Any] = dict(n_learners=choose([1, 2, 3]), max_steps=choose([3, 6]))
    if choose([False, False, False, True]):
        dataset = choose(list(PARTICIPATION_DATASET_OPTIONS))
        cfg.update(
            risk="least_squares",
            dataset=dataset,
            group_by=None,
            dataset_options=PARTICIPATION_DATASET_OPTIONS[dataset],
            min_group_size=1,
        )
    for _ in range(n_changes):
        name = choose([f for f in PARTICIPATION_FIELDS if f in _participation_field_names()])
        cfg[name] = choose(PARTICIPATION_FIELDS[name])
        if name == "dataset":
            cfg["dataset_options"] = PARTICIPATION_DATASET_OPTIONS.get(cfg[name], {})
    return cfg


def gym_config(choose: Choose, n_changes: int) -> tuple[str, dict[str, Any]]:
    """A Gymnasium id and its keyword arguments (market fields and wrapper options)."""
    env_id = choose(GYM_IDS)
    cfg = market_config(choose, max(0, n_changes - 1))
    cfg["n_learners"] = choose([1, 2, 3]) if "n_learners" not in cfg else cfg["n_learners"]
    if n_changes and choose([False, True]):
        name = choose(list(GYM_OPTIONS))
        if name == "ego" or env_id.endswith("Strategy-v0"):
            cfg[name] = choose(GYM_OPTIONS[name])
    return env_id, cfg


def _participation_field_names() -> set[str]:
    from choicemarket.envs.participation.config import ParticipationConfig

    return {f.name for f in dataclasses.fields(ParticipationConfig)}


def _market_field_names() -> set[str]:
    from choicemarket.envs.market.config import MarketConfig

    return {f.name for f in dataclasses.fields(MarketConfig)}


# --------------------------------------------------------------------------- building
def build(family: str, cfg: Any):
    """The environment of a case (a PettingZoo ParallelEnv or a Gymnasium Env)."""
    if family == "market":
        from choicemarket.envs.market_v0 import parallel_env

        return parallel_env(**cfg)
    if family == "participation":
        from choicemarket.envs.participation_v0 import parallel_env

        return parallel_env(**cfg)
    import gymnasium as gym

    env_id, kwargs = cfg
    return gym.make(f"choicemarket:{env_id}", disable_env_checker=True, **kwargs)


def names_in(cfg: Any) -> set[str]:
    """Every name an error about ``cfg`` may cite: its keys, nested option keys, aliases."""
    kwargs = cfg[1] if isinstance(cfg, tuple) else cfg
    names = set(kwargs)
    for key, value in kwargs.items():
        if isinstance(value, Mapping):
            names.update(str(k) for k in value)
        names.update(ALIASES.get(key, ()))
    return names


def names_field(exc: BaseException, names: set[str]) -> bool:
    """Whether the message of ``exc`` names one of ``names`` (as a word)."""
    text = str(exc)
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", text) for n in names)


def classify(exc: BaseException, names: set[str]) -> str:
    """``clean``, ``unclear`` or ``defect`` for an exception raised at a boundary."""
    if isinstance(exc, (ValueError, TypeError)):
        return "clean" if names_field(exc, names) else "unclear"
    return "defect"


# --------------------------------------------------------------------------- checks
def bad_figures(value: Any, key: str = "", nan_ok: frozenset = frozenset()) -> list[str]:
    """Paths of non-finite numbers in ``value`` (nested dicts, lists, arrays); NaN is allowed
    under the keys ``nan_ok``."""
    out: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            out += bad_figures(v, f"{key}.{k}", nan_ok if k not in NAN_INFOS else NAN_INFOS)
        return out
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            out += bad_figures(v, f"{key}[{i}]", nan_ok)
        return out
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        return out
    if isinstance(value, (int, float, np.number, np.ndarray)):
        a = np.asarray(value)
        if a.dtype.kind in "fc":
            finite = np.isfinite(a) | (np.isnan(a) if nan_ok else False)
            if not np.all(finite):
                out.append(key)
    return out


def check_parallel_outputs(env, observations, rewards=None, infos=None) -> list[str]:
    """Problems in a PettingZoo step's outputs: non-finite figures, observations outside
    their spaces."""
    problems = []
    for agent, obs in observations.items():
        for path in bad_figures(obs, f"obs[{agent}]"):
            problems.append(f"non-finite {path}")
        if not env.observation_space(agent).contains(obs):
            problems.append(f"observation of {agent} outside its space")
    for path in bad_figures(rewards or {}, "rewards"):
        problems.append(f"non-finite {path}")
    for path in bad_figures(infos or {}, "infos"):
        problems.append(f"non-finite {path}")
    return problems


def check_gym_outputs(env, obs, reward=0.0, info=None) -> list[str]:
    """Problems in a Gymnasium step's outputs."""
    problems = [f"non-finite {p}" for p in bad_figures(obs, "obs")]
    if not env.observation_space.contains(obs):
        problems.append("observation outside its space")
    if not math.isfinite(float(reward)):
        problems.append("non-finite reward")
    problems += [f"non-finite {p}" for p in bad_figures(info or {}, "info")]
    return problems


# --------------------------------------------------------------------------- snapshots
_SKIP = {"population", "config", "spec", "market_spec", "_POPULATIONS", "metadata"}


def snapshot(obj: Any, depth: int = 6, seen: set | None = None) -> Any:
    """A comparable copy of everything an environment holds: arrays, numbers, strings,
    containers, generator states, and the attributes of nested objects (shared read-only
    parts such as the population and the config are compared by identity)."""
    seen = set() if seen is None else seen
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, complex, np.generic)):
        return obj
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, np.random.Generator):
        return ("rng", repr(obj.bit_generator.state))
    if isinstance(obj, np.random.BitGenerator):
        return ("bitgen", repr(obj.state))
    if id(obj) in seen or depth == 0:
        return ("ref", id(obj))
    seen.add(id(obj))
    if isinstance(obj, Mapping):
        return {repr(k): snapshot(v, depth - 1, seen) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return (type(obj).__name__, [snapshot(v, depth - 1, seen) for v in items])
    if callable(obj) and not hasattr(obj, "__dict__"):
        return ("callable", id(obj))
    state = {}
    attrs = dict(getattr(obj, "__dict__", {}))
    for slot in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, slot):
            attrs[slot] = getattr(obj, slot)
    for k, v in attrs.items():
        if isinstance(getattr(type(obj), k, None), functools.cached_property):
            continue  # a memo of immutable fields, filled on first use: not state
        if k in _SKIP:
            state[k] = ("ref", id(v))
        else:
            state[k] = snapshot(v, depth - 1, seen)
    return (type(obj).__name__, state)


def first_difference(a: Any, b: Any, path: str = "env") -> str | None:
    """The path of the first place two snapshots differ (None when equal)."""
    if type(a) is not type(b):
        return path
    if isinstance(a, dict):
        for k in a.keys() | b.keys():
            if k not in a or k not in b:
                return f"{path}.{k}"
            found = first_difference(a[k], b[k], f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], (dict, list)):
        if a[0] != b[0]:
            return path
        return first_difference(a[1], b[1], path)
    if isinstance(a, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else path


# --------------------------------------------------------------------------- actions
def bad_array(choose: Choose, shape: tuple[int, ...]) -> Any:
    """An action of the right role that must be rejected."""
    size = int(np.prod(shape))
    kind = choose(
        ["nan", "inf", "-inf", "huge_int", "shape", "scalar", "str", "none", "dict", "object"]
    )
    base = [0.0] * size
    if kind == "nan":
        base[choose(range(size))] = NAN
        return np.array(base).reshape(shape)
    if kind == "inf":
        base[choose(range(size))] = INF
        return base
    if kind == "-inf":
        base[choose(range(size))] = -INF
        return np.array(base, np.float32)
    if kind == "huge_int":
        return [HUGE_INT] * size
    if kind == "shape":
        return np.zeros(size + choose([1, -1 if size > 1 else 2]))
    if kind == "scalar":
        return 0.5
    if kind == "str":
        return "x" * size
    if kind == "none":
        return None
    if kind == "dict":
        return {"update": base}
    return [None] * size


def good_array(choose: Choose, space) -> Any:
    """A valid action: the space's edges, zeros, or values beyond the bounds (clipped)."""
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    kind = choose(["zeros", "low", "high", "beyond", "mid", "list"])
    if kind == "zeros":
        return np.zeros(space.shape, space.dtype)
    if kind == "low":
        return low.astype(space.dtype)
    if kind == "high":
        return high
    if kind == "beyond":
        return np.where(np.arange(low.size) % 2 == 0, 1e300, -1e300).reshape(space.shape)
    if kind == "mid":
        return ((low + high) / 2).astype(np.float32)
    return [float(v) for v in ((low + high) / 4).ravel()]


def collective_action(choose: Choose, nvec: np.ndarray, bad: bool) -> Any:
    """A collective action ``[strategy, destination, label]``, valid or not."""
    if not bad:
        return np.array([choose(range(int(k))) for k in nvec])
    return choose(
        [[3, 0, 0], [0.5, 0, 0], [HUGE_INT, 0, 0], [NAN, 0, 0], [0, 0], [-1, 0, 0], "plant", None]
    )


# --------------------------------------------------------------------------- running a case
def run_case(family: str, cfg: Any, streams: int, choose: Choose, steps: int = 3) -> list:
    """Build the case's environment and run ``streams`` short action streams.

    Returns ``[(phase, outcome, detail)]``: one ``("config", ...)`` entry, then one per
    stream ``("stream", ...)`` (a stream is ``ok`` when every step and check passed,
    ``clean`` when it also had rejected inputs that were all rejected cleanly)."""
    names = names_in(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            env = build(family, cfg)
        except Exception as exc:  # noqa: BLE001  (classifying every failure is the point)
            return [("config", classify(exc, names), _describe(exc))]
        results = [("config", "ok", "")]
        for _ in range(streams):
            try:
                if family == "gym":
                    outcome = _gym_stream(env, choose, steps)
                else:
                    outcome = _parallel_stream(env, choose, steps)
            except Exception as exc:  # noqa: BLE001
                outcome = ("defect", f"crash {_describe(exc)}")
            results.append(("stream", *outcome))
        return results


def _seed(choose: Choose) -> tuple[Any, bool]:
    seed = choose([0, 1, 12345, None, 2**64, -1, 1.5, "x", np.int64(3), NAN])
    ok = seed is None or (isinstance(seed, (int, np.integer)) and seed >= 0)
    return seed, ok


def _reset_seed(env, state, choose: Choose) -> tuple[Any, int, tuple[str, str] | None]:
    """A stream's seed: a chosen one; a bad one must first be refused by ``env.reset``
    without changing ``state``, and 0 is used instead. Returns ``(seed, rejected, failure)``,
    ``failure`` the stream's outcome when the bad seed was not cleanly refused."""
    seed, ok = _seed(choose)
    if ok:
        return seed, 0, None
    before = snapshot(state)
    try:
        env.reset(seed=seed)
        return seed, 0, ("defect", f"bad seed {seed!r} accepted")
    except Exception as exc:  # noqa: BLE001
        outcome = classify(exc, {"seed"})
        if outcome != "clean":
            return seed, 0, (outcome, f"reset(seed={seed!r}): {_describe(exc)}")
    if snapshot(state) != before:
        return seed, 0, ("defect", f"rejected reset(seed={seed!r}) changed the environment")
    return 0, 1, None


def _parallel_stream(env, choose: Choose, steps: int) -> tuple[str, str]:
    """One stream of a PettingZoo env: a reset (maybe a bad seed first), then steps each
    with valid actions or one bad one (which must be rejected without any change)."""
    seed, rejected, failed = _reset_seed(env, env, choose)
    if failed:
        return failed
    observations, infos = env.reset(seed=seed)
    problems = check_parallel_outputs(env, observations, None, infos)
    if problems:
        return "defect", f"reset: {problems[:3]}"
    for _ in range(steps):
        if not env.agents:
            break
        actions = {a: _good_action(env, a, choose) for a in env.agents}
        if choose([False, True]):  # one bad action, or a missing agent
            victim = choose(list(env.agents))
            if choose([True, True, True, False]):
                actions[victim] = _bad_action(env, victim, choose)
            else:
                del actions[victim]
            before = snapshot(env)
            try:
                env.step(actions)
                return "defect", f"bad action for {victim} accepted: {actions.get(victim)!r:.80}"
            except Exception as exc:  # noqa: BLE001
                outcome = classify(exc, {victim, "action", "actions"})
                if outcome != "clean":
                    return outcome, f"step: {_describe(exc)}"
            after = snapshot(env)
            if after != before:
                where = first_difference(before, after)
                return "defect", f"rejected step ({victim}) changed the environment at {where}"
            rejected += 1
            actions = {a: _good_action(env, a, choose) for a in env.agents}
        observations, rewards, _, _, infos = env.step(actions)
        problems = check_parallel_outputs(env, observations, rewards, infos)
        if problems:
            return "defect", f"step: {problems[:3]}"
    return ("clean" if rejected else "ok"), ""


def _good_action(env, agent: str, choose: Choose) -> Any:
    space = env.action_space(agent)
    if hasattr(space, "nvec"):
        return collective_action(choose, space.nvec, bad=False)
    return good_array(choose, space)


def _bad_action(env, agent: str, choose: Choose) -> Any:
    space = env.action_space(agent)
    if hasattr(space, "nvec"):
        return collective_action(choose, space.nvec, bad=True)
    return bad_array(choose, space.shape)


def _gym_stream(env, choose: Choose, steps: int) -> tuple[str, str]:
    """One stream of a Gymnasium env (the unwrapped single-learner view is compared)."""
    seed, rejected, failed = _reset_seed(env, env.unwrapped, choose)
    if failed:
        return failed
    obs, info = env.reset(seed=seed)
    problems = check_gym_outputs(env, obs, 0.0, info)
    if problems:
        return "defect", f"reset: {problems[:3]}"
    for _ in range(steps):
        if choose([False, True]):
            bad = bad_array(choose, env.action_space.shape)
            before = snapshot(env.unwrapped)
            try:
                env.step(bad)
                return "defect", f"bad action accepted: {bad!r:.80}"
            except Exception as exc:  # noqa: BLE001
                outcome = classify(exc, {"action", "actions"})
                if outcome != "clean":
                    return outcome, f"step: {_describe(exc)}"
            if snapshot(env.unwrapped) != before:
                return "defect", "rejected step changed the environment"
            rejected += 1
        obs, reward, terminated, truncated, info = env.step(good_array(choose, env.action_space))
        problems = check_gym_outputs(env, obs, reward, info)
        if problems:
            return "defect", f"step: {problems[:3]}"
        if terminated or truncated:
            break
    return ("clean" if rejected else "ok"), ""


def _describe(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text[:200]}"
