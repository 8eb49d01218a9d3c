"""Experiment configs: a YAML file per figure, validated, expanded into one run per market.

A config has these sections (only ``market`` is required)::

    name: expt2-census            # results folder name
    title: ...                    # one line for figures and reports
    market: {MarketConfig fields}
    policy: {POLICY_FIELDS}       # every learner runs MSGD; ``probers`` run MSGD-P
    sweep: {seeds: 15, p: [0, 0.2], probe_noise: [0, 0.1], ...}  # any market or policy field
    output: {snapshot_every: null}
    plot: {x: p, metric: global_accuracy}
    real_data: {dataset: acs-employment, dataset_options: {...}}  # merged into market by --real

Every combination of the swept values is run once per seed (the product, seeds innermost).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from choicemarket.baselines import MSGD, MSGDP, SCENARIOS, SCHEDULES
from choicemarket.envs.market.config import MarketConfig

SECTIONS = ("name", "title", "figure", "market", "policy", "sweep", "output", "plot", "real_data")
POLICY_DEFAULTS: dict[str, Any] = {
    "eta": 0.01,  # step size of every learner
    "schedule": "constant",  # or "inv_sqrt": eta / sqrt(t + 1)
    "probers": [],  # learner indices running MSGD-P, or "worst" (lowest accuracy at start)
    "n_probers": 1,  # how many learners "worst" picks
    "p": 0.0,  # probing weight
    "scenario": "preference_aware",
    "leader": 0,  # the known peer of "market_leader"
    "peers": None,  # the known peers of "partial"
    "include_self": True,  # majority-good median includes the prober
    "probe_batch_size": 150,  # b_p
    "probe_every": None,  # None: probe once at the start (offline); k: every k steps
}
POLICY_FIELDS = tuple(POLICY_DEFAULTS)
MARKET_FIELDS = tuple(f.name for f in fields(MarketConfig))
OUTPUT_DEFAULTS = {"snapshot_every": None}
PLOT_DEFAULTS = {"x": None, "metric": None}
SETTINGS = ("market", "policy", "sweep", "output")  # the sections that decide the results
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_CONFIG_BYTES = 1 << 20
MAX_RUNS = 100_000
MAX_ID_PREFIX = 80  # run ids: at most this readable prefix, "_" and a 10-digit digest


def _allowed(where: str, key: str, allowed: Sequence[str]) -> ValueError:
    return ValueError(f"unknown key {key!r} in {where}; allowed keys: {sorted(allowed)}")


@dataclass(frozen=True)
class Run:
    """One market of a sweep: the swept values, its seed, and the resolved settings."""

    point: dict
    seed: int
    market: dict
    policy: dict

    @property
    def run_id(self) -> str:
        """A file name: the swept values and seed (letters, digits and ``._=+-``, cut to
        ``MAX_ID_PREFIX`` characters), ``_`` and a digest of the full settings."""
        digest = hashlib.sha1(
            json.dumps([self.market, self.policy, self.seed], sort_keys=True, default=str).encode()
        ).hexdigest()[:10]
        parts = [f"{k}={_short(v)}" for k, v in self.point.items()] + [f"seed={self.seed}"]
        name = re.sub(r"[^A-Za-z0-9._=+-]", "-", "_".join(parts).replace(" ", ""))
        return f"{name[:MAX_ID_PREFIX]}_{digest}"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, (list, tuple)):
        return "-".join(_short(x) for x in v)
    return str(v)


@dataclass
class Experiment:
    """A validated config."""

    name: str
    title: str
    figure: str
    market: dict
    policy: dict
    sweep: dict  # key -> list of values; "seeds" -> list of ints
    output: dict
    plot: dict
    real_data: dict
    source: str = ""

    @property
    def settings_hash(self) -> str:
        """The short digest of the settings that decide the results (see :func:`settings_hash`)."""
        return settings_hash(self.to_dict())

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "figure": self.figure,
            "market": self.market,
            "policy": self.policy,
            "sweep": self.sweep,
            "output": self.output,
            "plot": self.plot,
            "real_data": self.real_data,
        }

    @property
    def swept(self) -> list[str]:
        """The swept fields other than seeds, in config order."""
        return [k for k in self.sweep if k != "seeds"]

    def runs(self) -> list[Run]:
        """Every (point, seed), seeds innermost; market settings validated."""
        keys = self.swept
        total = math.prod(len(self.sweep[k]) for k in self.sweep)
        if total > MAX_RUNS:
            sizes = " x ".join(f"{len(self.sweep[k])} {k}" for k in self.sweep)
            raise ValueError(f"the sweep has {total} runs ({sizes}); at most {MAX_RUNS} allowed")
        out = []
        for values in itertools.product(*(self.sweep[k] for k in keys)):
            point = dict(zip(keys, values))
            market, policy = copy.deepcopy(self.market), copy.deepcopy(self.policy)
            for k, v in point.items():
                (policy if k in POLICY_FIELDS else market)[k] = v
            MarketConfig.from_kwargs(**market)  # fail before any run starts
            check_policy(policy, market.get("n_learners", MarketConfig().n_learners))
            for seed in self.sweep["seeds"]:
                out.append(Run(point, int(seed), market, policy))
        return out


def settings_hash(config: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the sections ``SETTINGS`` of a config dict (market, policy,
    sweep, output): equal exactly when the runs, and so their results, are the same."""
    settings = {k: config.get(k) for k in SETTINGS}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_name(name: Any) -> str:
    """A config ``name`` (it names the results folder): a plain folder name."""
    text = str(name)
    if not NAME_PATTERN.fullmatch(text):
        raise ValueError(
            f"config name {text!r} must be a plain folder name: a letter or digit, then letters, "
            "digits, '.', '_' or '-', at most 64 characters"
        )
    return text


def check_policy(policy: Mapping[str, Any], n: int) -> None:
    """Validate the policy section (types and ranges) for a market of ``n`` learners."""
    for key in policy:
        if key not in POLICY_FIELDS:
            raise _allowed("policy", key, POLICY_FIELDS)
    probers = policy["probers"]
    if probers != "worst":
        if not isinstance(probers, Sequence) or isinstance(probers, str):
            raise ValueError(
                f"policy.probers must be a list of learner indices or 'worst', got {probers!r}"
            )
        if any(not isinstance(k, int) or not 0 <= k < n for k in probers):
            raise ValueError(
                f"policy.probers must be learner indices in 0..{n - 1}, got {probers!r}"
            )
    if not isinstance(policy["n_probers"], int) or not 1 <= policy["n_probers"] <= n:
        raise ValueError(f"policy.n_probers must be an integer in 1..{n}")
    if policy["scenario"] not in SCENARIOS:
        raise ValueError(f"policy.scenario must be one of {SCENARIOS}, got {policy['scenario']!r}")
    if policy["schedule"] not in SCHEDULES:
        raise ValueError(f"policy.schedule must be one of {SCHEDULES}, got {policy['schedule']!r}")
    for key in ("eta", "p"):
        v = policy[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"policy.{key} must be a finite number, got {v!r}")


def build_policies(spec, policy: Mapping[str, Any], probers: Sequence[int]) -> list[MSGD]:
    """One policy per learner: MSGD-P for ``probers``, MSGD for the others."""
    return [build_policy(spec, policy, k, probers) for k in range(spec.n_learners)]


def build_policy(spec, policy: Mapping[str, Any], k: int, probers: Sequence[int]) -> MSGD:
    """Learner ``k``'s policy: MSGD-P with ``policy``'s probing fields if ``k`` is one of
    ``probers``, else MSGD (both with its step size and schedule)."""
    common = dict(eta=policy["eta"], schedule=policy["schedule"])
    if k not in probers:
        return MSGD(spec, **common)
    return MSGDP(
        spec,
        k,
        p=policy["p"],
        scenario=policy["scenario"],
        leader=policy["leader"],
        peers=policy["peers"],
        include_self=policy["include_self"],
        probe_batch_size=policy["probe_batch_size"],
        probe_every=policy["probe_every"],
        **common,
    )


def config_dir() -> Path:
    """The folder of the shipped configs."""
    return Path(str(resources.files("choicemarket.configs")))


def config_names() -> list[str]:
    """Names of the shipped configs (``expt2-census`` for ``expt2_census.yaml``)."""
    return sorted(p.stem.replace("_", "-") for p in config_dir().glob("*.yaml"))


def find_config(name_or_path: str | Path) -> Path:
    """A config path as given, or a shipped config by name (``expt2-census``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    stem = str(name_or_path).removesuffix(".yaml").replace("-", "_")
    shipped = config_dir() / f"{Path(stem).name}.yaml"
    if shipped.exists():
        return shipped
    raise ValueError(
        f"config {str(name_or_path)!r} is neither a YAML file nor a shipped config; "
        f"shipped: {config_names()}"
    )


def load_experiment(
    name_or_path: str | Path,
    overrides: Sequence[tuple[str, Any]] = (),
    real: bool = False,
) -> Experiment:
    """Read, merge ``overrides`` (``("section.key" or "key", value)``) and validate a config.

    A bare ``key`` names a market or policy field and fixes it (removing it from the sweep);
    ``seeds`` sets the seeds. ``real`` merges the ``real_data`` section into ``market``.
    """
    path = find_config(name_or_path)
    raw = read_config(path)
    if not isinstance(raw, Mapping):
        raise ValueError(f"config {path} must be a mapping of sections {list(SECTIONS)}")
    return parse_experiment(raw, overrides, real, source=str(path))


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases: a few hundred bytes of nested aliases
    expand to gigabytes once the config is copied or written out."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ValueError(
                f"line {event.start_mark.line + 1}: YAML anchors and aliases (&name, *name) "
                "are not allowed in configs; write the values out"
            )
        return super().compose_node(parent, index)


def read_config(path: str | Path) -> Any:
    """The YAML document of a config file: at most ``MAX_CONFIG_BYTES``, plain YAML (no
    Python tags, anchors or aliases); any problem is a one-line ValueError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ValueError(f"{size} bytes; at most {MAX_CONFIG_BYTES} allowed")
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_ConfigLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = f"{where}{getattr(exc, 'problem', None) or exc}"
    except ValueError as exc:  # includes UnicodeDecodeError
        problem = str(exc)
    raise ValueError(" ".join(f"config {path} is not a valid config: {problem}".split()))


def parse_experiment(
    raw: Mapping[str, Any],
    overrides: Sequence[tuple[str, Any]] = (),
    real: bool = False,
    source: str = "",
) -> Experiment:
    """Validate a config mapping (see :func:`load_experiment`)."""
    raw = copy.deepcopy(dict(raw))
    for key in raw:
        if key not in SECTIONS:
            raise _allowed("the config", key, SECTIONS)
    market = dict(raw.get("market") or {})
    policy = {**POLICY_DEFAULTS, **(raw.get("policy") or {})}
    sweep = dict(raw.get("sweep") or {})
    output = {**OUTPUT_DEFAULTS, **(raw.get("output") or {})}
    plot = {**PLOT_DEFAULTS, **(raw.get("plot") or {})}
    real_data = dict(raw.get("real_data") or {})
    for key in market:
        if key not in MARKET_FIELDS:
            raise _allowed("market", key, MARKET_FIELDS)
    for key in real_data:
        if key not in MARKET_FIELDS and key not in POLICY_FIELDS:
            raise _allowed("real_data", key, MARKET_FIELDS + POLICY_FIELDS)
    for key in output:
        if key not in OUTPUT_DEFAULTS:
            raise _allowed("output", key, OUTPUT_DEFAULTS)
    for key in plot:
        if key not in PLOT_DEFAULTS:
            raise _allowed("plot", key, PLOT_DEFAULTS)
    if real:
        for k, v in real_data.items():
            (policy if k in POLICY_FIELDS else market)[k] = v
    sections = {"market": market, "policy": policy, "sweep": sweep, "output": output, "plot": plot}
    for key, value in overrides:
        section, _, field = key.rpartition(".")
        if section:
            if section not in sections:
                raise _allowed("--set", section, list(sections))
            target = sections[section]
            if section == "market" and field not in MARKET_FIELDS:
                raise _allowed("market", field, MARKET_FIELDS)
            target[field] = value
        elif field == "seeds":
            sweep["seeds"] = value
        elif field in POLICY_FIELDS or field in MARKET_FIELDS:
            (policy if field in POLICY_FIELDS else market)[field] = value
            sweep.pop(field, None)
        else:
            raise _allowed("--set", field, ("seeds", *MARKET_FIELDS, *POLICY_FIELDS))
    sweep = _check_sweep(sweep)
    if output["snapshot_every"] is not None and (
        not isinstance(output["snapshot_every"], int) or output["snapshot_every"] < 1
    ):
        raise ValueError("output.snapshot_every must be null or an integer >= 1")
    if raw.get("name") is not None:
        name = check_name(raw["name"])
    else:  # from the file name, made a plain folder name
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(source).stem.replace("_", "-"))
        name = stem.lstrip("._-")[:64] or "experiment"
    exp = Experiment(
        name=name,
        title=str(raw.get("title") or name),
        figure=str(raw.get("figure") or ""),
        market=market,
        policy=policy,
        sweep=sweep,
        output=output,
        plot=plot,
        real_data=real_data,
        source=source,
    )
    MarketConfig.from_kwargs(**market)
    exp.runs()  # validates every swept combination
    return exp


def _check_sweep(sweep: dict) -> dict:
    out = {}
    for key, values in sweep.items():
        if key == "seeds":
            continue
        if key not in MARKET_FIELDS and key not in POLICY_FIELDS:
            raise _allowed("sweep", key, ("seeds", *MARKET_FIELDS, *POLICY_FIELDS))
        if not isinstance(values, list) or not values:
            raise ValueError(f"sweep.{key} must be a non-empty list of values, got {values!r}")
        out[key] = values
    seeds = sweep.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        seeds = list(range(seeds))
    if (
        not isinstance(seeds, list)
        or not seeds
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
    ):
        raise ValueError(
            f"sweep.seeds must be a count >= 1 or a list of integers >= 0, got {seeds!r}"
        )
    return {"seeds": seeds, **out}
