"""Every market variant, as one table: each choice rule crossed with learners entering and
leaving, a collective and an outside option (PettingZoo's all-parameter-combinations test).

For every cell: both PettingZoo API tests, a 300-step same-seed determinism check, and
batched-equals-single (M markets with their own seeds give exactly what each gives alone).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test

from choicemarket.baselines import MSGD, MSGDP, FixedCollective, NoUpdate
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.core import MarketCore
from choicemarket.envs.market_v0 import env as aec_env
from choicemarket.envs.market_v0 import parallel_env
from choicemarket.experiments.runner import run_markets

BASE = dict(
    dataset="breast-cancer",
    n_learners=3,
    users_per_step=40,
    probe_size=20,
    max_steps=300,
    eval_every=50,
)
RULES = {
    "preference_or_loss": dict(choice_rule="preference_or_loss", preference_weight=0.5),
    "loss_or_uniform": dict(choice_rule="loss_or_uniform", uniform_weight=0.3),
    "logit": dict(choice_rule="logit", temperature=0.3, loyalty_bonus=0.5),
    "multiplicative_weights": dict(choice_rule="multiplicative_weights", mw_rate=0.2),
    "user_types": dict(user_types={"loyal": 0.2, "quality": 0.2, "random": 0.2, "collective": 0.1}),
}
ENTRY = dict(
    max_learners=6,
    entries=((20, "clone", 0), (40, "fresh", None)),
    exit_share=0.15,
    clone_noise=0.1,
)
COLLECTIVE = dict(collective_fraction=0.2, collective_signal=((0, 3.0), (1, 3.0)))
OUTSIDE = dict(outside_threshold=0.25, return_rate=0.2)

CELLS = [
    (f"{rule}-{'entry' if e else 'fixed'}-{'coll' if c else 'nocoll'}-{'out' if o else 'noout'}",
     {**BASE, **RULES[rule], **(ENTRY if e else {}), **(COLLECTIVE if c else {}),
      **(OUTSIDE if o else {})})
    for rule, e, c, o in itertools.product(RULES, (False, True), (False, True), (False, True))
]  # fmt: skip
IDS = [name for name, _ in CELLS]


def test_the_table_has_every_cell():
    assert len(CELLS) == 5 * 2 * 2 * 2 == 40
    for _, kw in CELLS:
        MarketConfig.from_kwargs(**kw)  # no configuration error for any combination


@pytest.mark.parametrize("kwargs", [kw for _, kw in CELLS], ids=IDS)
def test_pettingzoo_api(kwargs):
    short = {**kwargs, "max_steps": 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel_api_test(parallel_env(**short), num_cycles=60)
        api_test(aec_env(**short), num_cycles=20)


def _episode(kwargs: dict, seed: int) -> list:
    """300 steps with probes and seeded random updates; everything the market produced."""
    env = parallel_env(**kwargs)
    obs, infos = env.reset(seed=seed)
    rng = np.random.default_rng(seed + 100)
    layout, n = env.action_layout, env.market_spec.n_learners
    trace = [_canonical(obs), _canonical(infos)]
    while env.agents:
        actions = {}
        for a in env.agents:
            if a == "collective":
                actions[a] = env.collective.build("plant", int(rng.integers(-1, n)) or None, 1)
                continue
            k = int(a.rsplit("_", 1)[1])
            probe = rng.random() < 0.1
            peers = tuple(j for j in range(n) if rng.random() < 0.5)
            update = rng.normal(0.0, 0.02, layout.n_params)
            actions[a] = layout.build(update, probe, peers, route_by_preference=k % 2 == 0)
        if env.core.entry is not None and env.core.state.step == 10:
            env.add_learner("fresh")
        out = env.step(actions)
        trace.append(_canonical(out))
    return trace


def _canonical(x):
    """Nested values as comparable Python objects (NaN as a marker)."""
    if isinstance(x, dict):
        return {k: _canonical(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_canonical(v) for v in x]
    if isinstance(x, np.ndarray):
        return ("array", x.dtype.str, x.shape, np.nan_to_num(x, nan=-7.77e77).tobytes())
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return x


@pytest.mark.parametrize("kwargs", [kw for _, kw in CELLS], ids=IDS)
def test_same_seed_same_300_steps(kwargs):
    first = _episode(kwargs, seed=5)
    assert len(first) == 302
    assert first == _episode(kwargs, seed=5)


def _policies(spec, n_collective: bool):
    pols = [MSGDP(spec, 0, p=0.5, probe_every=20, probe_batch_size=15)]
    pols += [MSGDP(spec, 1, p=0.3, scenario="majority_good", probe_every=25, probe_batch_size=7)]
    pols += [MSGD(spec, eta=0.05) for _ in range(spec.n_learners - 3)] + [NoUpdate(spec)]
    return pols


@pytest.mark.parametrize("kwargs", [kw for _, kw in CELLS], ids=IDS)
def test_batched_equals_single(kwargs):
    kwargs = {**kwargs, "max_steps": 80, "eval_every": 20}
    cfg = MarketConfig.from_kwargs(**kwargs)
    spec = MarketCore(cfg).spec
    seeds = [3, 11, 4]
    coll = cfg.collective_fraction > 0

    def collective(m):
        return FixedCollective("plant", destination=m % spec.n_learners, label=1)

    together = run_markets(
        cfg,
        [_policies(spec, coll) for _ in seeds],
        seeds,
        snapshot_every=40,
        collective_policies=[collective(m) for m in range(len(seeds))] if coll else None,
    )
    for m, seed in enumerate(seeds):
        alone = run_markets(
            cfg,
            [_policies(spec, coll)],
            [seed],
            snapshot_every=40,
            collective_policies=[collective(m)] if coll else None,
        )[0]
        assert _canonical(together[m].rows) == _canonical(alone.rows)
        assert together[m].snapshots == alone.snapshots
        assert together[m].events == alone.events
    assert _canonical(together[0].rows) != _canonical(together[1].rows)


@pytest.mark.parametrize("rule", ["preference_or_loss", "loss_or_uniform", "user_types"])
def test_many_markets_equal_each_alone(rule):
    """64 markets of 40 users: enough users that the loss-choosing rules compare learners for
    the users who choose by loss only (``Arrival.best_where``); each market still gives
    exactly what it gives alone, where all users are compared."""
    cfg = MarketConfig.from_kwargs(**{**BASE, **RULES[rule], "max_steps": 60, "eval_every": 20})
    spec = MarketCore(cfg).spec
    seeds = list(range(100, 164))
    together = run_markets(cfg, [_policies(spec, False) for _ in seeds], seeds, snapshot_every=30)
    for m in (0, 17, 63):
        alone = run_markets(cfg, [_policies(spec, False)], [seeds[m]], snapshot_every=30)[0]
        assert _canonical(together[m].rows) == _canonical(alone.rows)
        assert together[m].snapshots == alone.snapshots
