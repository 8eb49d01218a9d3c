"""Learners entering and leaving the market (``envs/market/entry_exit.py``) on the census market."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test

from choicemarket import simulate
from choicemarket.baselines import MSGD, MSGDP, act_all, act_arrays
from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.market.losses import logits
from choicemarket.envs.market_v0 import env as aec_env
from choicemarket.envs.market_v0 import parallel_env

CENSUS = dict(dataset="acs-income", max_steps=400, eval_every=50)


def msgd_core_step(core: MarketCore, pols: list) -> None:
    """One step of every market with MSGD policies acting on arrays."""
    s = core.state
    X, T, mask = core.padded_users()
    K = len(pols)
    none = [None] * K
    a = act_arrays(pols, s.theta[0], X[0], T[0], mask[0], none, none, none, [s.step] * K)
    core.step(a[None])


def run_env(env, seed: int, pols: dict, steps: int | None = None) -> list:
    """Play ``pols`` (through ``act_all`` with the active mask); return per-step snapshots."""
    obs, _ = env.reset(seed=seed)
    for k, a in enumerate(env.possible_agents):
        pols[a].reset(10 + k)
    out = []
    while env.agents and (steps is None or len(out) < steps):
        obs = {a: obs[a] for a in env.agents}
        obs, rew, term, trunc, infos = env.step(act_all(pols, obs, env.active_mask))
        out.append((sorted(env.agents), rew, term, env.state_arrays.theta.copy()))
    return out


def test_market_is_unchanged_until_the_first_entry():
    """Spare slots and a scheduled entry change nothing before the entry step: the first
    learners' parameters and every choice equal those of the fixed market."""
    fixed = MarketCore(MarketConfig(**CENSUS))
    open_ = MarketCore(MarketConfig(**CENSUS, max_learners=7, entries=((30, "fresh", None),)))
    for core in (fixed, open_):
        core.reset(seed=4)
    pols = [MSGD(fixed.spec) for _ in range(5)]
    pols_open = [MSGD(open_.spec) for _ in range(7)]
    for _ in range(29):
        msgd_core_step(fixed, pols)
        msgd_core_step(open_, pols_open)
        np.testing.assert_array_equal(fixed.state.choice, open_.state.choice)
        np.testing.assert_array_equal(fixed.state.theta, open_.state.theta[:, :5])
        assert not open_.state.theta[:, 5:].any() and not open_.state.counts[:, 5:].any()
    msgd_core_step(open_, pols_open)
    assert open_.entry.active[0].tolist() == [True] * 6 + [False]


def test_clone_splits_the_parents_users_and_both_serve():
    """A clone of learner 1 at step 10 copies its parameters and takes half of its loyal
    users (drawn from the market's generator); afterwards both serve users every step."""
    core = MarketCore(MarketConfig(**CENSUS, max_learners=6, entries=((10, "clone", 1),)))
    core.reset(seed=0)
    pols = [MSGD(core.spec) for _ in range(6)]
    loyal_before = np.flatnonzero(core.population.pref == 1)
    for _ in range(10):
        msgd_core_step(core, pols)
    s, pref = core.state, core.entry.pref[0]
    np.testing.assert_array_equal(s.theta[0, 5], s.theta[0, 1])
    to_clone = np.flatnonzero(pref == 5)
    assert len(to_clone) == round(0.5 * len(loyal_before))
    assert set(to_clone) | set(np.flatnonzero(pref == 1)) == set(loyal_before)
    assert (pref[np.setdiff1d(np.arange(len(pref)), loyal_before)] != 5).all()
    assert core.entry.events == [
        dict(step=10, market=0, kind="clone", learner=5, parent=1, users=len(to_clone))
    ]
    served = np.zeros(6, int)
    for _ in range(50):
        msgd_core_step(core, pols)
        served += core.state.counts[0] > 0
    assert served[1] == 50 and served[5] == 50  # parent and clone both serve every step


def test_clone_noise_perturbs_the_copy():
    cfg = MarketConfig(**CENSUS, max_learners=6, entries=((3, "clone", 0),), clone_noise=0.5)
    core = MarketCore(cfg)
    core.reset(seed=0)
    pols = [MSGD(core.spec) for _ in range(6)]
    for _ in range(3):
        msgd_core_step(core, pols)
    diff = core.state.theta[0, 5] - core.state.theta[0, 0]
    assert 0.15 < diff.std() < 1.0


def test_fresh_learner_starts_by_the_init_rule(two_slopes):
    """A fresh entrant starts at N(0, init_scale^2) under init="random", at zeros otherwise,
    and takes each user's loyalty with probability fresh_share."""
    for init in ("random", "zeros", "partition_erm"):
        cfg = dict(two_slopes, init=init, init_scale=0.3, max_learners=3, fresh_share=0.25)
        core = MarketCore(MarketConfig(**cfg, entries=((2, "fresh", None),)))
        core.reset(seed=0)
        pols = [MSGD(core.spec) for _ in range(3)]
        for _ in range(2):
            msgd_core_step(core, pols)
        theta = core.state.theta[0, 2]
        assert theta.any() == (init == "random")
        assert abs((core.entry.pref[0] == 2).mean() - 0.25) < 0.02


@pytest.mark.parametrize("reassign", ["best", "uniform"])
def test_starved_learner_exits_after_patience_and_its_users_move(reassign):
    """Under a 10% exit share learner 2 (about 6% of the batch) leaves after 5 steps below;
    its loyal users go to their lowest-loss active learner ("best") or a uniform one, and it
    is never chosen again."""
    cfg = MarketConfig(**CENSUS, exit_share=0.1, exit_patience=5, exit_reassign=reassign)
    core = MarketCore(cfg)
    core.reset(seed=0)
    pols = [MSGD(core.spec) for _ in range(5)]
    loyal = np.flatnonzero(core.population.pref == 2)
    streak = 0
    while not core.entry.events:
        msgd_core_step(core, pols)
        streak = streak + 1 if core.state.counts[0, 2] < 0.1 * 150 else 0
    (event,) = core.entry.events
    assert event == dict(step=core.state.step, market=0, kind="exit", learner=2, parent=None,
                         users=len(loyal))  # fmt: skip
    assert streak == 5
    pref, pop, theta = core.entry.pref[0], core.population, core.state.theta[0]
    assert not (pref == 2).any()
    if reassign == "best":
        stays = np.array([0, 1, 3, 4])
        L = pop.family.loss(logits(theta[stays], pop.X_train[loyal]), pop.T_train[loyal])
        np.testing.assert_array_equal(pref[loyal], stays[L.argmin(0)])
    else:
        counts = np.bincount(pref[loyal], minlength=5)
        assert counts[2] == 0 and (np.abs(counts[[0, 1, 3, 4]] / len(loyal) - 0.25) < 0.05).all()
    for _ in range(30):
        msgd_core_step(core, pols)
        assert core.state.counts[0, 2] == 0


def test_fresh_learner_without_users_leaves_after_patience():
    """Pure loyalty and no loyal users: a fresh entrant at step 10 never gets a user; its first
    batch does not count, so with patience 4 it leaves at step 14."""
    env = parallel_env(
        **CENSUS,
        preference_weight=1.0,
        max_learners=6,
        entries=((10, "fresh", None),),
        exit_share=0.01,
        exit_patience=4,
    )
    pols = {a: MSGD(env.market_spec) for a in env.possible_agents}
    snaps = run_env(env, 0, pols, steps=20)
    assert [e["kind"] for e in env.events] == ["fresh", "exit"]
    assert [e["step"] for e in env.events] == [10, 14]
    assert "learner_5" in snaps[9][0] and "learner_5" not in snaps[13][0]
    assert snaps[13][2]["learner_5"] is True


def test_market_keeps_at_least_one_learner():
    """Everyone below an exit share of 1 with patience 1: all but the largest leave at once."""
    core = MarketCore(MarketConfig(**CENSUS, exit_share=1.0, exit_patience=1))
    core.reset(seed=1)
    pols = [MSGD(core.spec) for _ in range(5)]
    msgd_core_step(core, pols)
    counts = core.state.counts[0]
    assert core.entry.active[0].sum() == 1
    assert core.entry.active[0, np.argmax(counts)]
    assert (core.entry.pref[0] == np.argmax(counts)).all()
    for _ in range(5):
        msgd_core_step(core, pols)
        assert core.entry.active[0].sum() == 1 and core.state.counts[0].max() == 150


def test_agents_list_follows_entries_and_exits():
    """A learner added with ``add_learner`` is in ``agents`` (with an observation) from the
    next step; one that leaves is terminated on that step and gone afterwards."""
    env = parallel_env(**CENSUS, max_learners=6, exit_share=0.1, exit_patience=5)
    pols = {a: MSGD(env.market_spec) for a in env.possible_agents}
    obs, infos = env.reset(seed=0)
    assert env.agents == [f"learner_{k}" for k in range(5)]
    assert len(env.possible_agents) == 6 and infos["learner_0"]["active_learners"] == 5
    assert env.add_learner("clone", "learner_3") == "learner_5"
    assert "learner_5" not in env.agents
    obs, rew, term, trunc, infos = env.step(act_all(pols, obs, env.active_mask))
    assert "learner_5" in env.agents and set(obs) == set(env.agents) == set(term)
    assert env.observation_space("learner_5").contains(obs["learner_5"])
    assert infos["learner_5"]["events"][0]["kind"] == "clone"
    assert infos["learner_0"]["active_learners"] == 6
    left = None
    while left is None:
        before = list(env.agents)
        obs, rew, term, trunc, infos = env.step(act_all(pols, obs, env.active_mask))
        done = [a for a, t in term.items() if t]
        if done:
            left = done
    assert set(term) == set(before) and set(left) == set(before) - set(env.agents)
    assert all(e["kind"] == "exit" for e in next(iter(infos.values()))["events"])
    with pytest.raises(ValueError, match="no free learner slot"):
        env.add_learner("fresh")


def make_dynamic(**kw):
    return parallel_env(
        **{
            **dict(
                dataset="acs-income",
                max_steps=50,
                users_per_step=30,
                probe_size=20,
                max_learners=8,
                entries=((2, "clone", 0), (3, "fresh", None), (12, "clone", 5)),
                exit_share=0.1,
                exit_patience=2,
            ),
            **kw,
        }
    )


def test_parallel_api_with_entries_and_exits():
    """PettingZoo's parallel API test passes while learners enter and leave during it."""
    env = make_dynamic()
    env.action_space("learner_0").seed(0)  # one Box shared by all agents: the test's samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parallel_api_test(env, num_cycles=60)
    kinds = {e["kind"] for e in env.events}
    assert {"clone", "fresh", "exit"} <= kinds


def test_aec_api_with_entries_and_exits(monkeypatch):
    """The AEC conversion passes PettingZoo's API test while learners enter and leave (a
    clone whose parent has left is skipped)."""
    env = aec_env(**make_dynamic().config.to_dict())
    core = env.unwrapped.core
    kinds = []
    record = core.entry._event  # noqa: SLF001
    monkeypatch.setattr(core.entry, "_event", lambda *a: (kinds.append(a[2]), record(*a)))
    env.action_space("learner_0").seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        api_test(env, num_cycles=60)
    assert {"clone", "fresh", "exit"} <= set(kinds)


def test_determinism_with_entries_and_exits_over_many_steps():
    """Same seed, same trajectory (parameters, agents, events) over 400 steps with clones,
    fresh starts, exits, online probing and probe noise; another seed differs."""

    def play(seed):
        env = parallel_env(
            **CENSUS,
            max_learners=8,
            entries=((50, "clone", 2), (100, "fresh", None), (150, "clone", 0)),
            exit_share=0.08,
            exit_patience=10,
            exit_reassign="uniform",
            clone_noise=0.01,
            fresh_share=0.05,
            probe_noise=0.3,
        )
        spec = env.market_spec
        pols = {a: MSGD(spec) for a in env.possible_agents}
        pols["learner_2"] = MSGDP(spec, 2, p=0.4, probe_every=40)
        pols["learner_4"] = MSGDP(spec, 4, p=0.4, scenario="majority_good", probe_every=30)
        snaps = run_env(env, seed, pols)
        return snaps, env.events

    a, ev_a = play(3)
    b, ev_b = play(3)
    assert len(a) == 400 and ev_a == ev_b
    assert {e["kind"] for e in ev_a} >= {"clone", "fresh", "exit"}
    for (ag1, r1, t1, th1), (ag2, r2, t2, th2) in zip(a, b):
        assert ag1 == ag2 and r1 == r2 and t1 == t2
        np.testing.assert_array_equal(th1, th2)
    c, ev_c = play(4)
    assert not np.array_equal(a[-1][3], c[-1][3])


def test_inactive_learners_are_never_probed():
    """After learner 2 leaves, a majority-good prober names only the active learners (N_probe
    queries each), and a request naming the leaver does not reach it."""
    env = parallel_env(**CENSUS, exit_share=0.1, exit_patience=5, probe_size=20)
    spec = env.market_spec
    pols = {a: MSGD(spec) for a in env.possible_agents}
    pols["learner_0"] = MSGDP(spec, 0, p=0.5, scenario="majority_good", probe_every=10)
    obs, _ = env.reset(seed=0)
    queries = {}
    while env.state_arrays.step < 40:
        t, present = env.state_arrays.step, int(env.active_mask.sum())
        obs, _, _, _, infos = env.step(act_all(pols, obs, env.active_mask))
        obs = {a: obs[a] for a in env.agents}
        queries[t] = (infos["learner_0"]["probe_queries"], present)
    assert "learner_2" not in env.agents
    assert queries[0] == (100, 5) and queries[20] == (80, 4) and queries[30] == (80, 4)
    assert all(q == 0 for t, (q, _) in queries.items() if t % 10)
    assert not (env.state_arrays.probe_peer[0, 0] == 2).any()
    req = {a: env.action_layout.build() for a in env.agents}
    req["learner_1"] = env.action_layout.build(probe=True, peers=[2])
    req["learner_3"] = env.action_layout.build(probe=True, peers=[1, 2])
    _, _, _, _, infos = env.step(req)
    assert infos["learner_1"]["probe_queries"] == 0
    assert infos["learner_3"]["probe_queries"] == 20
    assert (env.state_arrays.probe_peer[0, 3] == 1).all()


def test_act_arrays_drops_inactive_peers():
    env = parallel_env(**CENSUS)
    spec = env.market_spec
    pol = MSGDP(spec, 0, p=0.5, scenario="majority_good")
    obs, _ = env.reset(seed=0)
    active = np.array([True, True, False, True, False])
    a = act_all({"learner_0": pol}, {"learner_0": obs["learner_0"]}, active)["learner_0"]
    _, req = spec.actions.parse(a)
    assert req.peers == (0, 1, 3)
    leader = MSGDP(spec, 0, p=0.5, scenario="market_leader", leader=2)
    a = act_all({"learner_0": leader}, {"learner_0": obs["learner_0"]}, active)["learner_0"]
    assert not spec.actions.parse(a)[1].probe


def test_simulate_with_entries_and_exits():
    """``simulate`` plays the learners present and records the events of every seed."""
    history = simulate(
        dict(CENSUS, max_steps=200, max_learners=6, entries=((100, "fresh", None),)),
        policies=lambda spec, k: MSGDP(spec, k, p=0.4) if k == 2 else MSGD(spec),
        seeds=range(2),
        exit_share=0.05,
        exit_patience=10,
    )
    events = history.meta["events"]
    assert [(e["seed"], e["kind"], e["agent"]) for e in events[:2]] == [
        (0, "fresh", "learner_5"),
        (0, "exit", "learner_5"),
    ]
    at_100 = {r["agent"] for r in history.rows if r["step"] == 100 and r["seed"] == 0}
    assert "learner_5" in at_100
    final = {r["agent"] for r in history.final() if r["seed"] == 0}
    assert "learner_5" not in final


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(max_learners=3), r"max_learners must be None or an integer >= n_learners \(5\)"),
        (dict(max_learners=5.5), "max_learners"),
        (dict(entries=((5, "clone", 0),)), r"max_learners must be at least .* = 6"),
        (dict(max_learners=6, entries=((5, "split", 0),)), r"kind must be one of \('clone'"),
        (dict(max_learners=6, entries=((0, "fresh", None),)), r"step must be an integer in 1"),
        (dict(max_learners=6, entries=((1000, "fresh", None),)), r"1\.\.999"),
        (dict(max_learners=6, entries=((5, "clone", 7),)), r"parent must be .* \[0, 1, 2, 3, 4\]"),
        (dict(max_learners=6, entries=((5, "clone", None),)), "integer parent"),
        (dict(max_learners=6, entries=((5, "fresh", 1),)), "parent None"),
        (dict(max_learners=7, entries=((5, "clone", 6),)), "parent"),
        (dict(max_learners=6, entries="x"), "entries must be"),
        (dict(max_learners=6, entries=((5, "fresh"),)), r"entries\[0\]"),
        (dict(exit_share=1.5), "exit_share"),
        (dict(exit_patience=0), "exit_patience"),
        (dict(exit_reassign="random"), r"exit_reassign must be one of \('best', 'uniform'\)"),
        (dict(clone_noise=-1.0), "clone_noise"),
        (dict(clone_share=2.0), "clone_share"),
        (dict(fresh_share=-0.1), "fresh_share"),
    ],
)
def test_bad_entry_exit_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MarketConfig(**kwargs)


def test_entries_from_lists_and_a_later_parent():
    """Entries given as lists (JSON, command line) are normalised and sorted by step; a clone
    may name a learner that entered earlier."""
    cfg = MarketConfig(max_learners=7, entries=[[9, "clone", 5], [3, "fresh", None]])
    assert cfg.entries == ((3, "fresh", None), (9, "clone", 5))
    assert MarketConfig.from_kwargs(**cfg.to_dict()) == cfg


def test_bad_add_learner():
    env = parallel_env(**CENSUS, max_learners=6)
    with pytest.raises(ValueError, match="reset"):
        env.add_learner("fresh")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"kind must be one of \('clone', 'fresh'\)"):
        env.add_learner("spawn")
    with pytest.raises(ValueError, match="parent must be an active learner"):
        env.add_learner("clone", 5)
    with pytest.raises(ValueError, match="parent must be None"):
        env.add_learner("fresh", 0)
    fixed = parallel_env(**CENSUS)
    fixed.reset(seed=0)
    with pytest.raises(ValueError, match="add_learner needs max_learners > n_learners"):
        fixed.add_learner("fresh")


@pytest.mark.parametrize("rule", ["preference_or_loss", "loss_or_uniform"])
def test_many_markets_never_choose_or_prefer_an_absent_learner(rule):
    """M = 3 markets in one core, learners entering and leaving at different times in each:
    every user chooses a learner present in its own market (leavers serve their last batch)
    and is loyal to one present after the step."""
    cfg = MarketConfig(
        **CENSUS,
        choice_rule=rule,
        uniform_weight=0.3,
        max_learners=7,
        entries=((5, "clone", 1), (10, "fresh", None)),
        exit_share=0.12,
        exit_patience=3,
        init="zeros",
        fresh_share=0.1,
    )
    core = MarketCore(cfg, n_markets=3)
    core.reset(seed=2)
    rng = np.random.default_rng(0)
    n_params = core.spec.n_params
    for _ in range(40):
        a = np.tile(core.spec.actions.build(), (3, 7, 1))
        a[..., :n_params] = 0.05 * rng.standard_normal((3, 7, n_params))
        core.step(a)
        s, act = core.state, core.entry.active
        served = act.copy()  # the batch chose before this step's leavers left
        for e in core.entry.step_events:
            served[e["market"], e["learner"]] |= e["kind"] == "exit"
        assert np.take_along_axis(served, s.choice, 1).all()
        assert (s.counts[~served] == 0).all()
        assert np.take_along_axis(act, core.entry.pref, 1).all()
    history = [
        tuple((e["step"], e["kind"], e["learner"]) for e in core.entry.events if e["market"] == m)
        for m in range(3)
    ]
    assert len(set(history)) > 1  # the markets went their own ways
    assert {e["market"] for e in core.entry.events if e["kind"] == "exit"} == {0, 1, 2}
