"""PettingZoo API conformance, spaces, determinism, registry, rendering, rewards and privacy
of ``choicemarket/market-v0``."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test

import choicemarket
from choicemarket.baselines import MSGD, MSGDP, act_all
from choicemarket.envs.market.observation import OBSERVATION_KEYS
from choicemarket.envs.market_v0 import env as aec_env
from choicemarket.envs.market_v0 import parallel_env

SMALL = dict(max_steps=50, users_per_step=30, probe_size=20)
CONFIGS = {
    "acs-income": dict(SMALL),
    "two-slopes": dict(SMALL, dataset="two-slopes", n_learners=2, preferences="category"),
    "digits": dict(SMALL, dataset="digits"),
    "breast-cancer": dict(SMALL, dataset="breast-cancer"),
    "gaussian-groups": dict(SMALL, dataset="gaussian-groups", n_learners=3, preferences="category"),
}
NAMES = list(CONFIGS)


def make(name: str, **overrides):
    return parallel_env(**{**CONFIGS[name], **overrides})


def random_actions(env, rng: np.random.Generator) -> dict:
    """Uniform actions inside each agent's Box bounds, drawn from ``rng``."""
    out = {}
    for a in env.agents:
        space = env.action_space(a)
        out[a] = rng.uniform(space.low, space.high).astype(np.float32)
    return out


def assert_obs_in_space(env, obs: dict) -> None:
    assert set(obs) == set(env.possible_agents)
    for a, o in obs.items():
        space = env.observation_space(a)
        assert set(o) == set(OBSERVATION_KEYS)
        bad = [k for k in OBSERVATION_KEYS if not space[k].contains(o[k])]
        assert not bad, f"{a}: {bad} outside their spaces"
        assert space.contains(o)


def assert_same(x, y) -> None:
    """Exact equality of nested dicts of arrays / floats (NaN equal to NaN)."""
    np.testing.assert_equal(x, y)


# ------------------------------------------------------------------ PettingZoo API tests


@pytest.mark.parametrize("name", NAMES)
def test_parallel_api(name):
    """PettingZoo's parallel API test passes on every dataset family."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parallel_api_test(make(name), num_cycles=60)


@pytest.mark.parametrize("name", NAMES)
def test_aec_api(name):
    """PettingZoo's AEC API test passes on the AEC conversion."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        api_test(aec_env(**CONFIGS[name]), num_cycles=60)


def test_parallel_seed_test():
    """PettingZoo's seed test: two envs built the same way behave the same."""
    parallel_seed_test(lambda: parallel_env(**CONFIGS["acs-income"]))


def test_spaces_shapes():
    """Spaces have the documented shapes (action: n_params + n_learners + 2)."""
    env = make("digits")
    s = env.market_spec
    assert (s.n_outputs, s.n_classes, s.target_dim) == (10, 10, 10)
    a = env.possible_agents[0]
    assert env.action_space(a).shape == (s.n_params + s.n_learners + 2,)
    space = env.observation_space(a)
    assert space["params"].shape == (10 * s.n_features,)
    assert space["covariates"].shape == (30, s.n_features)
    assert space["targets"].shape == (30, 10)
    assert space["probe_covariates"].shape == (20, s.n_features)
    assert env.observation_space(a) is env.observation_space(env.possible_agents[1])


# ------------------------------------------------------------------ observations in spaces


@pytest.mark.parametrize("labels", ["hard", "soft"])
@pytest.mark.parametrize("name", NAMES)
def test_observations_in_space_random_actions(name, labels):
    """A whole episode of seeded random actions (with probe requests) keeps observations
    inside their spaces."""
    env = make(name, probe_labels=labels, probe_noise=0.3)
    rng = np.random.default_rng(7)
    obs, _ = env.reset(seed=3)
    assert_obs_in_space(env, obs)
    probed = 0
    steps = 0
    while env.agents:
        obs, _, _, _, infos = env.step(random_actions(env, rng))
        steps += 1
        assert_obs_in_space(env, obs)
        probed += sum(i["probe_queries"] > 0 for i in infos.values())
    assert steps == 50
    assert probed > 0


def msgd_policies(env, probe_every: int = 7) -> dict:
    """learner_0 probes by preference online, learner_1 a majority median, others MSGD."""
    spec, agents = env.market_spec, env.possible_agents
    pols = {a: MSGD(spec, eta=0.05) for a in agents}
    pols[agents[0]] = MSGDP(spec, 0, p=0.5, eta=0.05, probe_every=probe_every, seed=1)
    pols[agents[1]] = MSGDP(
        spec, agents[1], p=0.3, scenario="majority_good", include_self=False, probe_every=10
    )
    for k, a in enumerate(agents):
        pols[a].reset(100 + k)
    return pols


@pytest.mark.parametrize("labels", ["hard", "soft"])
@pytest.mark.parametrize("name", NAMES)
def test_observations_in_space_msgd(name, labels):
    """MSGD/MSGD-P with offline (step 0) and online (every k steps) probing and kappa > 0:
    observations stay in their spaces, probes are answered at the requested steps, and probe
    targets are hard (0/1) or soft as configured."""
    env = make(name, probe_labels=labels, probe_noise=0.25)
    pols = msgd_policies(env, probe_every=7)
    obs, _ = env.reset(seed=11)
    assert_obs_in_space(env, obs)
    assert not obs["learner_0"]["probe_mask"].any()
    Np = env.market_spec.probe_size
    classification = env.market_spec.family.is_classification
    t, prev_probe = 0, None
    while env.agents:
        obs, _, _, _, infos = env.step(act_all(pols, obs))
        assert_obs_in_space(env, obs)
        q0 = infos["learner_0"]["probe_queries"]
        assert q0 == (Np if t % 7 == 0 else 0), t
        q1 = infos["learner_1"]["probe_queries"]
        n_peers = env.market_spec.n_learners - 1
        assert q1 == ((Np if n_peers == 1 else Np * n_peers) if t % 10 == 0 else 0), t
        o = obs["learner_0"]
        assert o["probe_mask"].all()
        if t % 7 == 0 and prev_probe is not None:
            assert not np.array_equal(o["probe_covariates"], prev_probe)
        elif prev_probe is not None:
            assert np.array_equal(o["probe_covariates"], prev_probe)
        prev_probe = o["probe_covariates"].copy()
        if classification:
            is_hard = np.isin(o["probe_targets"], (0.0, 1.0)).all()
            assert is_hard == (labels == "hard")
        t += 1
    assert t == 50


# ------------------------------------------------------------------ determinism


def test_multistep_determinism_with_probes():
    """Same seed and same action sequence: identical observations, rewards and infos at every
    one of 300 steps, with probe requests and probe noise."""
    cfg = dict(CONFIGS["acs-income"], max_steps=300, probe_noise=0.3, reward="share")
    e1, e2 = parallel_env(**cfg), parallel_env(**cfg)
    o1, i1 = e1.reset(seed=42)
    o2, i2 = e2.reset(seed=42)
    assert_same(o1, o2)
    assert_same(i1, i2)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    probes = 0
    for _ in range(300):
        a1, a2 = random_actions(e1, r1), random_actions(e2, r2)
        out1, out2 = e1.step(a1), e2.step(a2)
        for x, y in zip(out1, out2):
            assert_same(x, y)
        probes += sum(i["probe_queries"] > 0 for i in out1[4].values())
    assert probes > 100
    assert e1.agents == e2.agents == []


def test_msgd_determinism_online_probing():
    """Two runs of MSGD/MSGD-P (online probing, soft labels) from the same seeds agree exactly."""
    runs = []
    for _ in range(2):
        env = make("breast-cancer", probe_labels="soft", probe_noise=0.2)
        pols = msgd_policies(env, probe_every=5)
        obs, _ = env.reset(seed=9)
        trace = [obs]
        while env.agents:
            obs, rew, _, _, infos = env.step(act_all(pols, obs))
            trace.append((obs, rew, infos))
        runs.append(trace)
    assert len(runs[0]) == 51
    assert_same(runs[0], runs[1])


def test_reset_seed_then_reset_reproducible():
    """``reset(seed=s)`` then ``reset()`` gives the same second episode in two envs, and that
    episode differs from the seeded one (the generator continues)."""
    firsts, seconds = [], []
    for _ in range(2):
        env = make("acs-income")
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=5)
        firsts.append(obs)
        for _ in range(3):
            env.step(random_actions(env, rng))
        obs, _ = env.reset()
        traj = [obs]
        for _ in range(3):
            traj.append(env.step(random_actions(env, rng)))
        seconds.append(traj)
    assert_same(firsts[0], firsts[1])
    assert_same(seconds[0], seconds[1])
    c_first = firsts[0]["learner_0"]["covariates"]
    c_second = seconds[0][0]["learner_0"]["covariates"]
    assert not np.array_equal(c_first, c_second)


def test_different_seed_different_trajectory():
    """Different seeds draw different batches."""
    env = make("acs-income")
    o1, _ = env.reset(seed=1)
    b1 = env.state_arrays.batch.copy()
    o2, _ = env.reset(seed=2)
    b2 = env.state_arrays.batch.copy()
    assert not np.array_equal(b1, b2)
    assert not all(np.array_equal(o1[a]["mask"], o2[a]["mask"]) for a in o1)
    o3, _ = env.reset(seed=1)
    assert_same(o1, o3)
    np.testing.assert_array_equal(env.state_arrays.batch, b1)


def test_simulate_reproducible():
    """``choicemarket.simulate`` twice with the same seeds gives identical rows."""

    def factory(spec, k):
        return MSGDP(spec, k, p=0.4, probe_every=5) if k == 0 else MSGD(spec, eta=0.05)

    market = dict(CONFIGS["acs-income"], max_steps=40, eval_every=10, probe_noise=0.2)
    h1 = choicemarket.simulate(market, policies=factory, seeds=[0, 1])
    h2 = choicemarket.simulate(market, policies=factory, seeds=[0, 1])
    # 2 seeds x evaluation points 0, 10, 20, 30, 40 x 5 learners
    assert len(h1.rows) == 2 * 5 * 5
    assert h1.rows == h2.rows
    s0 = [r["global_loss"] for r in h1.rows if r["seed"] == 0]
    s1 = [r["global_loss"] for r in h1.rows if r["seed"] == 1]
    assert s0[5:] != s1[5:]


# ------------------------------------------------------------------ registry and render


def test_registry_fresh_interpreter(tmp_path):
    """``pettingzoo.make`` finds ``choicemarket/market-v0`` (parallel and AEC) and passes its
    keyword arguments to the config. Runs outside the repository so that the installed package,
    not the source folder, is imported."""
    code = (
        "import choicemarket, pettingzoo\n"
        "p = pettingzoo.make('parallel', 'choicemarket/market-v0', max_steps=5, n_learners=3)\n"
        "assert p.config.max_steps == 5 and p.config.n_learners == 3, p.config\n"
        "assert p.possible_agents == ['learner_0', 'learner_1', 'learner_2']\n"
        "a = pettingzoo.make('aec', 'choicemarket/market-v0', max_steps=7)\n"
        "assert a.unwrapped.config.max_steps == 7\n"
        "a.reset(seed=0)\n"
        "assert a.agent_selection == 'learner_0'\n"
        "p.reset(seed=0)\n"
        "print('OK', type(p).__name__)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "OK raw_env"


def test_render_ansi():
    """``render_mode="ansi"`` renders a table with one row per learner; None renders nothing
    and warns, as Gymnasium does."""
    env = make("gaussian-groups", render_mode="ansi")
    assert env.render() == "market not reset"
    env.reset(seed=0)
    env.step({a: env.action_layout.build() for a in env.agents})
    text = env.render()
    assert isinstance(text, str)
    rows = [line for line in text.splitlines() if line.startswith("learner_")]
    assert [r.split()[0] for r in rows] == env.possible_agents
    assert text.startswith("step 1")
    with pytest.warns(UserWarning, match="without specifying any render mode"):
        assert make("gaussian-groups").render() is None


# ------------------------------------------------------------------ rewards


@pytest.mark.parametrize("reward", ["share", "global", "local"])
def test_reward_definitions(reward):
    """share: reward == info share, summing to 1; global: -global_loss (evaluated every step);
    local: -local_loss."""
    env = make("breast-cancer", reward=reward, max_steps=20)
    rng = np.random.default_rng(1)
    env.reset(seed=0)
    step = 0
    while env.agents:
        _, rewards, _, _, infos = env.step(random_actions(env, rng))
        step += 1
        for a, r in rewards.items():
            info = infos[a]
            if reward == "share":
                assert r == info["share"]
                assert r == info["users"] / 30
            elif reward == "global":
                assert r == -info["global_loss"]
                assert info["eval_step"] == step
            else:
                assert r == -info["local_loss"]
        if reward == "share":
            assert sum(rewards.values()) == pytest.approx(1.0, abs=1e-12)
    assert step == 20


def test_probe_cost():
    """probe_cost subtracts cost x queries on the step of a request (route: N_probe queries,
    two named peers: 2 N_probe) and nothing on other steps."""
    cost, Np = 0.01, 20
    env = make("acs-income", probe_cost=cost)
    layout = env.action_layout
    env.reset(seed=0)
    acts = {a: layout.build() for a in env.agents}
    acts["learner_0"] = layout.build(probe=True, route_by_preference=True)
    acts["learner_1"] = layout.build(probe=True, peers=(2, 3))
    acts["learner_2"] = layout.build(probe=True, peers=(4,))
    acts["learner_3"] = layout.build(probe=True)  # names nobody: no query
    _, rewards, _, _, infos = env.step(acts)
    queries = [infos[a]["probe_queries"] for a in env.possible_agents]
    assert queries == [Np, 2 * Np, Np, 0, 0]
    for a in env.possible_agents:
        expected = -infos[a]["local_loss"] - cost * infos[a]["probe_queries"]
        assert rewards[a] == pytest.approx(expected, rel=0, abs=1e-12)
    assert rewards["learner_1"] < -infos["learner_1"]["local_loss"] - 0.3
    _, rewards, _, _, infos = env.step({a: layout.build() for a in env.agents})
    for a in env.possible_agents:
        assert infos[a]["probe_queries"] == 0
        assert rewards[a] == -infos[a]["local_loss"]


# ------------------------------------------------------------------ privacy and truncation


@pytest.mark.parametrize("name", ["acs-income", "digits", "two-slopes"])
def test_privacy_own_users_only(name):
    """A learner sees zeros where mask == 0, and exactly the covariates/targets of the users
    who chose it (in batch order) where mask == 1."""
    env = make(name, max_steps=10)
    rng = np.random.default_rng(2)
    obs, _ = env.reset(seed=4)
    pop = env.population
    for _ in range(5):
        s = env.state_arrays
        batch, choice = s.batch[0], s.choice[0]
        for k, a in enumerate(env.possible_agents):
            o = obs[a]
            mine = choice == k
            np.testing.assert_array_equal(o["mask"], mine.astype(np.float32))
            assert not o["covariates"][~mine].any()
            assert not o["targets"][~mine].any()
            np.testing.assert_array_equal(
                o["covariates"][mine], pop.X_train[batch[mine]].astype(np.float32)
            )
            np.testing.assert_array_equal(
                o["targets"][mine], pop.T_train[batch[mine]].astype(np.float32)
            )
            assert int(o["mask"].sum()) == s.counts[0, k]
        obs, *_ = env.step(random_actions(env, rng))


def test_truncation_at_max_steps():
    """After max_steps steps all agents are truncated (none terminated) and removed."""
    env = make("gaussian-groups", max_steps=5)
    env.reset(seed=0)
    noop = {a: env.action_layout.build() for a in env.possible_agents}
    for t in range(1, 6):
        obs, rewards, terms, truncs, infos = env.step(noop)
        assert set(obs) == set(rewards) == set(terms) == set(truncs) == set(infos)
        assert len(truncs) == 3
        assert not any(terms.values())
        assert all(v == (t == 5) for v in truncs.values())
        assert obs["learner_0"]["step"][0] == t
        assert env.agents == ([] if t == 5 else env.possible_agents)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(noop)
    env.reset(seed=0)
    assert env.agents == env.possible_agents
