"""The one observation function (``stacked_observation``) against the per-learner formula it
replaced, for the ParallelEnv's dicts, the batched views and the flat features; and the
scripted policies reading the ParallelEnv's observations from their stack."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from choicemarket.baselines import MSGD, MSGDP, act_all, act_batch
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.core import MarketCore
from choicemarket.envs.market.metrics import learner_metrics
from choicemarket.envs.market.observation import RowObservation, stacked_observation
from choicemarket.envs.market_v0 import learner_observations, raw_env
from choicemarket.wrappers.batched import observation_arrays

BASE = dict(dataset="breast-cancer", n_learners=3, users_per_step=40, probe_size=20)
VARIANTS = {
    "fixed": {},
    "logit-outside": dict(choice_rule="logit", temperature=0.3, outside_threshold=0.25),
    "entry-collective": dict(
        max_learners=5,
        entries=((3, "clone", 0), (5, "fresh", None)),
        collective_fraction=0.2,
        collective_signal=((0, 3.0),),
    ),
}


def reference(core: MarketCore, m: int, dtype) -> list[dict]:
    """Learner k's observation in market m, written out per learner from the state."""
    s = core.state
    B, d = s.batch_X.shape[1], s.batch_X.shape[2]
    out = []
    for k in range(s.counts.shape[1]):
        mine = s.choice[m] == k
        X = np.where(mine[:, None], s.batch_X[m], 0.0)
        T = np.where(mine[:, None], s.batch_T[m], 0.0)
        Np = s.probe_X.shape[2]
        out.append(
            {
                "params": s.theta[m, k].reshape(-1),
                "covariates": X.reshape(B, d),
                "targets": T,
                "mask": mine.astype(float),
                "probe_covariates": s.probe_X[m, k],
                "probe_targets": s.probe_T[m, k],
                "probe_mask": np.full(Np, float(s.probe_valid[m, k])),
                "share": np.array([s.counts[m, k] / B]),
                "local_loss": np.array([s.local_loss[m, k]]),
                "step": np.array([float(s.step)]),
            }
        )
    return [{key: np.asarray(v).astype(dtype) for key, v in o.items()} for o in out]


def same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def stepped_core(kwargs: dict, n_markets: int, steps: int = 8):
    """A core after each of ``steps`` steps with random updates and probe requests."""
    core = MarketCore(MarketConfig(**BASE, **kwargs), n_markets=n_markets)
    core.reset(seed=3)
    rng = np.random.default_rng(0)
    layout, n = core.spec.actions, core.spec.n_learners
    for t in range(steps):
        update = rng.normal(0, 0.05, (n, layout.n_params))
        probe, route = t % 3 == 0, t % 2 == 1
        rows = [layout.build(update[k], probe, [(k + 1) % n], route) for k in range(n)]
        actions = np.tile(np.stack(rows), (n_markets, 1, 1))
        coll = None if core.collective is None else np.tile([1, 0, 1], (n_markets, 1))
        core.advance(actions, coll)
        yield core


@pytest.mark.parametrize("name", list(VARIANTS))
def test_unified_observation_equals_the_per_learner_formula(name):
    M = 2
    for core in stepped_core(VARIANTS[name], M):
        cache: dict = {}
        n = core.state.counts.shape[1]
        every = observation_arrays(core)
        for m in range(M):
            ref32, ref64 = reference(core, m, np.float32), reference(core, m, np.float64)
            for _ in range(2):  # the second call reads the probe arrays from the cache
                rows = learner_observations(core, m, cache)
                for k in range(n):
                    same(rows[k], ref32[k])
            wide = stacked_observation(core, m)  # the flat features' float64 input
            for k in range(n):
                same({key: v[k] for key, v in wide.items()}, ref64[k])
                same({key: v[m * n + k] for key, v in every.items()}, ref32[k])
                ego = observation_arrays(core, k)
                same({key: v[m] for key, v in ego.items()}, ref32[k])


def test_cached_probe_arrays_are_read_only_and_refreshed():
    cache: dict = {}
    for core in stepped_core({}, 1):
        rows = learner_observations(core, 0, cache)
        assert not rows[0]["probe_covariates"].flags.writeable
        np.testing.assert_array_equal(
            rows[1]["probe_covariates"], core.state.probe_X[0, 1].astype(np.float32)
        )


def census_env():
    env = raw_env(**BASE, max_steps=30)
    spec = env.market_spec
    pols = [MSGD(spec), MSGDP(spec, 1, p=0.4, probe_batch_size=30, seed=1), MSGD(spec)]
    return env, dict(zip(env.possible_agents, pols))


def test_act_all_on_the_env_stack_equals_act_on_plain_dicts():
    env, pols = census_env()
    env2, pols2 = census_env()
    obs, _ = env.reset(seed=5)
    obs2, _ = env2.reset(seed=5)
    while env.agents:
        assert all(type(o) is RowObservation for o in obs.values())
        a = act_all(pols, obs)  # from the stack
        plain = [dict(o) for o in obs2.values()]  # plain dicts: restacked
        b = dict(zip(env2.possible_agents, act_batch(list(pols2.values()), plain)))
        for agent in a:
            np.testing.assert_array_equal(a[agent], b[agent])
        obs, *_ = env.step(a)
        obs2, *_ = env2.step(b)
        for agent in obs:
            same(obs[agent], obs2[agent])


def test_a_changed_observation_is_read_as_changed():
    env, pols = census_env()
    obs, _ = env.reset(seed=5)
    changed = {a: dict(o) for a, o in obs.items()}
    changed["learner_0"]["params"] = obs["learner_0"]["params"] + 1.0
    obs["learner_0"]["params"] = changed["learner_0"]["params"]  # replaced in the env's dict
    a = act_all(pols, obs)
    b = act_batch(list(pols.values()), list(changed.values()))
    np.testing.assert_array_equal(a["learner_0"], b[0])
    # a subset of the rows, in another order
    sub = {k: obs[k] for k in ("learner_2", "learner_1")}
    got = act_batch([pols["learner_2"], pols["learner_1"]], list(sub.values()))
    want = act_batch([pols["learner_2"], pols["learner_1"]], [dict(o) for o in sub.values()])
    np.testing.assert_array_equal(got, want)


def test_observations_copy_and_pickle_as_plain_dicts():
    env, _ = census_env()
    obs, _ = env.reset(seed=0)
    for c in (copy.copy(obs["learner_0"]), copy.deepcopy(obs["learner_0"]),
              pickle.loads(pickle.dumps(obs["learner_0"]))):  # fmt: skip
        assert type(c) is dict
        same(c, obs["learner_0"])
    assert env.observation_space("learner_0").contains(obs["learner_0"])


@pytest.mark.parametrize("name", ["fixed", "logit-outside"])
def test_learner_metrics_from_columns_equal_the_per_learner_formula(name):
    for core in stepped_core(VARIANTS[name], 2, steps=4):
        s, pop = core.state, core.population
        B = s.batch.shape[1]
        for m in range(2):
            ll, users = s.local_loss[m].tolist(), s.counts[m].tolist()
            social = sum(v * c for v, c in zip(ll, users)) / B
            for k, row in enumerate(learner_metrics(core, m, tail={"eval_step": 1})):
                gl, ga = float(s.global_loss[m, k]), float(s.global_accuracy[m, k])
                want = {
                    "global_loss": gl,
                    "global_accuracy": ga,
                    "gap": gl - pop.baseline_loss,
                    "accuracy_gap": pop.baseline_accuracy - ga,
                    "local_loss": ll[k],
                    "share": users[k] / B,
                    "users": users[k],
                    "probe_queries": int(s.probe_queries[m, k]),
                    "social_cost": social,
                }
                assert list(row)[: len(want)] == list(want) and row["eval_step"] == 1
                for key, v in want.items():
                    assert type(row[key]) is type(v) and (row[key] == v or v != v), key


def test_every_change_to_the_dict_forgets_the_stack():
    env, _ = census_env()
    obs, _ = env.reset(seed=0)
    o = obs["learner_0"]
    new = o["params"] + 1.0
    changes = [
        lambda d: d.__setitem__("params", new),
        lambda d: d.update(params=new),
        lambda d: d.__ior__({"params": new}),
        lambda d: d.pop("step"),
        lambda d: d.popitem(),
        lambda d: d.setdefault("extra", 1),
        lambda d: d.__delitem__("mask"),
        lambda d: d.clear(),
    ]
    for change in changes:
        d = RowObservation.rows({key: v[None] for key, v in o.items()})[0]
        assert d.stacked_row() is not None
        change(d)
        assert d.stacked_row() is None
