"""Bad configuration, actions and policy arguments raise ``ValueError`` naming the culprit;
out-of-bound (finite) actions are clipped rather than rejected."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from choicemarket.baselines import MSGD, MSGDP
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market_v0 import env as aec_env
from choicemarket.envs.market_v0 import parallel_env
from choicemarket.wrappers import SingleLearner

FAST = dict(dataset="gaussian-groups", n_learners=3, preferences="category", max_steps=10)
TINY_SLOPES = dict(dataset="two-slopes", n_learners=2, dataset_options={"n_users": 40})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_learners=0), "n_learners"),
        (dict(n_learners=2.5), "n_learners"),
        (dict(users_per_step=0), "users_per_step"),
        (dict(users_per_step=True), "users_per_step"),
        (dict(preference_weight=1.5), "preference_weight"),
        (dict(preference_weight=math.nan), "preference_weight"),
        (dict(uniform_weight=-0.1), "uniform_weight"),
        (dict(choice_rule="x"), "choice_rule"),
        (dict(preferences="x"), "preferences"),
        (dict(preferences=5), "preferences"),
        (dict(preferences=[0, 1, 5]), "preferences"),
        (dict(preferences=[0, -1]), "preferences"),
        (dict(preferences=[]), "preferences"),
        (dict(leader_fraction=2.0), "leader_fraction"),
        (dict(init="x"), "init"),
        (dict(init_scale=-1.0), "init_scale"),
        (dict(test_fraction=0.0), "test_fraction"),
        (dict(test_fraction=1.0), "test_fraction"),
        (dict(max_steps=0), "max_steps"),
        (dict(reward="x"), "reward"),
        (dict(probe_cost=-1.0), "probe_cost"),
        (dict(eval_every=0), "eval_every"),
        (dict(probe_size=0), "probe_size"),
        (dict(probe_labels="x"), "probe_labels"),
        (dict(probe_noise=-0.1), "probe_noise"),
        (dict(probe_noise=1.1), "probe_noise"),
        (dict(max_update=0), "max_update"),
        (dict(max_update=math.inf), "max_update"),
        (dict(max_update=math.nan), "max_update"),
        (dict(l2=-1), "l2"),
        (dict(l2=math.inf), "l2"),
        (dict(population_seed=-1), "population_seed"),
        (dict(dataset=""), "dataset"),
        (dict(dataset_options=[1, 2]), "dataset_options"),
        (dict(no_such_option=1), "no_such_option"),
    ],
)
def test_invalid_config(kwargs, match):
    """Each invalid market option raises ValueError naming it (env and config alike)."""
    with pytest.raises(ValueError, match=match):
        parallel_env(**kwargs)
    with pytest.raises(ValueError, match=match):
        MarketConfig.from_kwargs(**kwargs)


def test_invalid_config_aec_and_replace():
    """The AEC factory and ``MarketConfig.replace`` validate too."""
    with pytest.raises(ValueError, match="reward"):
        aec_env(reward="x")
    with pytest.raises(ValueError, match="probe_noise"):
        MarketConfig().replace(probe_noise=-0.1)
    with pytest.raises(ValueError, match="render_mode"):
        parallel_env(render_mode="video", **FAST)


def test_preference_labels_wrong_length():
    """Labels with the wrong number of users raise when the env is built, naming preferences
    and the size."""
    env = parallel_env(**TINY_SLOPES, preferences=[0, 1] * 20)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"preferences.*\(40\), got 20"):
        parallel_env(**TINY_SLOPES, preferences=[0, 1] * 10)


def test_preference_labels_out_of_range():
    """A learner index >= n_learners in the labels is rejected when the env is built."""
    with pytest.raises(ValueError, match=r"preferences.*0\.\.1"):
        parallel_env(**TINY_SLOPES, preferences=[0, 2] * 20)


def test_unknown_dataset():
    """An unknown dataset name raises, naming the dataset parameter and the bad name."""
    with pytest.raises(ValueError, match="dataset must be one of .*'no-such-set'"):
        parallel_env(dataset="no-such-set")


def test_unknown_dataset_options():
    """Unknown loader options raise ValueError naming dataset_options and the option."""
    with pytest.raises(ValueError, match=r"dataset_options \['bogus'\]"):
        parallel_env(dataset="two-slopes", n_learners=2, dataset_options={"bogus": 1})


def test_category_preferences_without_categories():
    """preferences="category" on a dataset with no categories raises when the env is built."""
    with pytest.raises(ValueError, match="preferences='category'.*'breast-cancer'"):
        parallel_env(dataset="breast-cancer", preferences="category", max_steps=5)
    with pytest.raises(ValueError, match="preferences='category'.*'acs-income'"):
        parallel_env(preferences="category", max_steps=5)


def test_category_preferences_too_few_learners():
    """preferences="category" needs at least one learner per category."""
    with pytest.raises(ValueError, match="n_learners >= 3"):
        parallel_env(dataset="gaussian-groups", n_learners=2, preferences="category")


# ------------------------------------------------------------------ actions


@pytest.fixture
def market():
    env = parallel_env(**FAST)
    env.reset(seed=0)
    return env


def noop(env) -> dict:
    return {a: env.action_layout.build() for a in env.agents}


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (lambda size: np.zeros(size - 1, np.float32), r"must have shape \({size},\)"),
        (lambda size: np.zeros((1, size), np.float32), r"must have shape \({size},\)"),
        (lambda size: np.zeros(size + 3), r"must have shape \({size},\)"),
        (lambda size: np.r_[np.nan, np.zeros(size - 1)], "NaN or inf"),
        (lambda size: np.r_[np.zeros(size - 1), np.inf], "NaN or inf"),
        (lambda size: np.r_[-np.inf, np.zeros(size - 1)], "NaN or inf"),
        (lambda size: ["a"] * size, "numeric array"),
        (lambda size: None, "numeric array|shape"),
    ],
)
def test_bad_action(market, bad, match):
    """A malformed action for learner_1 raises ValueError naming that agent's action."""
    size = market.action_layout.size
    actions = noop(market)
    actions["learner_1"] = bad(size)
    with pytest.raises(ValueError, match=re.escape("actions['learner_1']")) as info:
        market.step(actions)
    assert re.search(match.format(size=size), str(info.value))
    # the failed step changed nothing: a good step still works from step 0
    obs, *_ = market.step(noop(market))
    assert obs["learner_0"]["step"][0] == 1


def test_bad_action_layout_validate():
    """``ActionLayout.validate``/``parse`` reject the same inputs under the given name."""
    layout = parallel_env(**FAST).action_layout
    with pytest.raises(ValueError, match=r"act must have shape"):
        layout.validate(np.zeros(3), name="act")
    with pytest.raises(ValueError, match=r"action contains NaN"):
        layout.parse(np.full(layout.size, np.nan))
    with pytest.raises(ValueError, match="update must have"):
        layout.build(update=np.zeros(layout.n_params + 1))
    with pytest.raises(ValueError, match="peers must be learner indices"):
        layout.build(probe=True, peers=(3,))


def test_missing_agent(market):
    """An actions dict without every live agent raises, naming the missing one."""
    actions = noop(market)
    del actions["learner_2"]
    with pytest.raises(ValueError, match=r"missing \['learner_2'\]"):
        market.step(actions)


def test_actions_not_a_dict(market):
    """A list instead of a dict raises ValueError saying actions must be a dict."""
    with pytest.raises(ValueError, match="actions must be a dict"):
        market.step(list(noop(market).values()))


def test_out_of_bound_actions_are_clipped():
    """Finite actions beyond the Box are clipped: parameters move by exactly max_update per
    coordinate, and flags beyond [-1, 1] still read as on/off."""
    env = parallel_env(**FAST, max_update=0.25)
    env.reset(seed=0)
    layout = env.action_layout
    P = layout.n_params
    before = env.state_arrays.theta.copy().reshape(3, P)
    big = np.full(layout.size, -50.0)
    big[:P] = np.linspace(-1e6, 1e6, P)  # both signs, far outside the bound
    big[layout.probe_index] = 9.0
    big[layout.route_index] = 9.0
    tiny = layout.build(update=np.full(P, 0.125))
    obs, _, _, _, infos = env.step({"learner_0": big, "learner_1": tiny, "learner_2": tiny * 0})
    delta = env.state_arrays.theta.reshape(3, P) - before
    np.testing.assert_allclose(delta[0], np.sign(big[:P]) * 0.25, rtol=0, atol=1e-12)
    np.testing.assert_allclose(delta[1], 0.125, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(delta[2], 0.0)
    assert np.abs(delta).max() <= 0.25 + 1e-12
    assert infos["learner_0"]["probe_queries"] == env.market_spec.probe_size
    assert infos["learner_1"]["probe_queries"] == 0
    assert obs["learner_0"]["probe_mask"].all()
    clipped = layout.validate(big)
    assert clipped.min() == -1.0 and clipped.max() == 1.0
    assert np.abs(clipped[:P]).max() == 0.25


def test_step_before_reset_raises():
    """Stepping a never-reset env raises a RuntimeError that says to reset."""
    env = parallel_env(**FAST)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_unknown_agent_space():
    """Spaces of an unknown agent name raise ValueError naming the agent."""
    env = parallel_env(**FAST)
    with pytest.raises(ValueError, match="learner_9"):
        env.action_space("learner_9")
    with pytest.raises(ValueError, match="learner_9"):
        env.observation_space("learner_9")


# ------------------------------------------------------------------ policies


@pytest.fixture(scope="module")
def spec():
    return parallel_env(**FAST).market_spec


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(eta=0), "eta"),
        (dict(eta=-0.1), "eta"),
        (dict(eta=math.nan), "eta"),
        (dict(eta=math.inf), "eta"),
        (dict(l2=-1.0), "l2"),
        (dict(schedule="linear"), "schedule"),
    ],
)
def test_bad_msgd(spec, kwargs, match):
    """Invalid MSGD (and MSGD-P) hyperparameters raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        MSGD(spec, **kwargs)
    with pytest.raises(ValueError, match=match):
        MSGDP(spec, 0, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(agent=3), "agent"),
        (dict(agent=-1), "agent"),
        (dict(agent="learner_3"), "agent"),
        (dict(agent=0, p=-0.1), "p must"),
        (dict(agent=0, p=math.nan), "p must"),
        (dict(agent=0, scenario="everyone"), "scenario"),
        (dict(agent=0, scenario="partial"), "peers"),
        (dict(agent=0, scenario="partial", peers=[]), "peers"),
        (dict(agent=0, scenario="partial", peers=[1, 3]), "peers"),
        (dict(agent=0, scenario="market_leader", leader=3), "leader"),
        (dict(agent=0, probe_batch_size=0), "probe_batch_size"),
        (dict(agent=0, probe_every=0), "probe_every"),
    ],
)
def test_bad_msgdp(spec, kwargs, match):
    """Invalid MSGD-P arguments raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        MSGDP(spec, **kwargs)


def test_msgdp_agent_name_without_index(spec):
    """An agent name with no ``_k`` suffix raises ValueError naming ``agent``."""
    with pytest.raises(ValueError, match="agent"):
        MSGDP(spec, "learner")


def test_msgd_accepts_numpy_scalars(spec):
    """Valid hyperparameters given as numpy scalars are accepted."""
    pol = MSGDP(spec, np.int64(1), p=np.float32(0.5), eta=np.float32(0.25), probe_every=np.int64(3))
    assert (pol.p, pol.eta, pol.probe_every) == (0.5, 0.25, 3)


def test_changed_hyperparameters_take_effect(spec):
    """No cache keeps a policy's old constants: a changed step size is the one used."""
    from choicemarket.envs.market_v0 import raw_env

    env = raw_env(dataset="two-slopes", n_learners=2, preferences="category")
    obs, _ = env.reset(seed=0)
    pol = MSGD(env.market_spec, eta=0.1)
    before = pol.act(obs["learner_0"])
    pol.eta = 0.2
    after = pol.act(obs["learner_0"])
    n = env.market_spec.n_params
    np.testing.assert_allclose(after[:n], 2 * before[:n], rtol=1e-6)
    np.testing.assert_array_equal(after, MSGD(env.market_spec, eta=0.2).act(obs["learner_0"]))


@pytest.mark.parametrize("bad", [[0.7, 1.0], ["a", "b"], [float("nan"), 0], [True, False]])
def test_preference_labels_must_be_integers(bad):
    """Non-integer preference labels are rejected, naming ``preferences``."""
    with pytest.raises(ValueError, match="preferences"):
        parallel_env(dataset="two-slopes", n_learners=2, preferences=bad)


def test_closed_environments_are_freed():
    """Asking for spaces keeps no environment alive (no cache holds them)."""
    import gc
    import weakref

    from choicemarket.envs.participation_v0 import parallel_env as participation_env

    def market():
        return parallel_env(dataset="two-slopes", n_learners=2, preferences="category")

    refs = []
    for make in [market] * 3 + [participation_env] * 3:
        env = make()
        env.observation_space(env.possible_agents[0])
        env.action_space(env.possible_agents[-1])
        refs.append(weakref.ref(env))
        env.close()
        del env
    gc.collect()
    assert all(r() is None for r in refs)


def test_unknown_options_are_type_errors_and_value_errors():
    """Gymnasium and TorchRL expect TypeError for an unexpected keyword; existing
    ``except ValueError`` keeps working."""
    import gymnasium

    import choicemarket  # noqa: F401  (registers the ids)
    from choicemarket.envs.participation_v0 import parallel_env as participation_env

    for make in (
        lambda: parallel_env(frameskip=4),
        lambda: participation_env(frameskip=4),
        lambda: gymnasium.make("choicemarket:choicemarket/PlatformStrategy-v0", frameskip=4),
        lambda: MarketConfig.from_kwargs(choice={"frameskip": 4}),
    ):
        with pytest.raises(TypeError, match="frameskip") as caught:
            make()
        assert isinstance(caught.value, ValueError)


def test_market_spec_has_a_clear_name():
    env = parallel_env(dataset="two-slopes", n_learners=2, preferences="category")
    assert env.market_spec.n_learners == 2
    with pytest.warns(DeprecationWarning, match="market_spec"):
        assert env.spec_info is env.market_spec
    single = SingleLearner(dataset="two-slopes", n_learners=2, preferences="category")
    with pytest.warns(DeprecationWarning, match="market_spec"):
        assert single.spec_info is single.market_spec


# ------------------------------------------------------------------ hardening
HUGE = 10**400  # a Python int too large for a float


def _participation(**kwargs):
    from choicemarket.envs.participation_v0 import parallel_env as participation_env

    return participation_env(**kwargs)


def _gym(env_id: str, **kwargs):
    import gymnasium

    import choicemarket  # noqa: F401  (registers the ids)

    return gymnasium.make(f"choicemarket:choicemarket/{env_id}", **kwargs)


COLLECTIVE_MARKET = dict(FAST, collective_fraction=0.3, collective_signal=[(0, 1.0)])


def test_huge_integer_actions_are_clean_errors():
    """A Python int beyond float range in any action raises ValueError naming it (it was an
    OverflowError from numpy's conversion)."""
    env = parallel_env(**COLLECTIVE_MARKET)
    env.reset(seed=0)
    size = env.action_layout.size
    actions = {a: env.action_layout.build() for a in env.agents if a != "collective"}
    actions["collective"] = [0, 0, 1]
    for agent, bad in (("learner_1", [HUGE] * size), ("collective", [HUGE, 0, 0])):
        with pytest.raises(ValueError, match=re.escape(f"actions[{agent!r}]")):
            env.step({**actions, agent: bad})
    part = _participation()
    part.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("actions['learner_0']")):
        part.step({a: [HUGE, 0.0] for a in part.agents})
    knobs = _gym("PlatformStrategy-v0", **FAST)
    knobs.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        knobs.step([HUGE] * 4)


def _snapshot(env):
    from ..fuzz.harness import first_difference, snapshot

    return snapshot(env), first_difference


def test_rejected_step_changes_nothing_with_every_agent_kind():
    """A valid collective action beside a NaN learner action (and the reverse) is refused
    before anything changes: parameters, generators, the collective's strategy, the step."""
    env = parallel_env(**COLLECTIVE_MARKET, max_learners=5, entries=((2, "fresh", None),))
    env.reset(seed=0)
    good = {a: env.action_layout.build() for a in env.agents if a != "collective"}
    env.step({**good, "collective": [1, 2, 1]})
    plant = {**good, "collective": [1, 1, 0]}
    for agent, bad in (("learner_2", [math.nan] * env.action_layout.size), ("collective", [3])):
        before, diff = _snapshot(env)
        with pytest.raises(ValueError, match=re.escape(agent)):
            env.step({**plant, agent: bad})
        after, _ = _snapshot(env)
        assert before == after, diff(before, after)
    assert env.collective.strategy[0] == 1 and env.collective.destination[0] == 2
    part = _participation()
    part.reset(seed=0)
    before, diff = _snapshot(part)
    with pytest.raises(ValueError, match="learner_1"):
        part.step({"learner_0": [0.1, 0.1], "learner_1": [math.inf, 0.0]})
    after, _ = _snapshot(part)
    assert before == after, diff(before, after)


def test_rejected_gym_step_leaves_the_opponents_generators_alone():
    """The ego's bad action is refused before any opponent acts (an MSGD-P opponent used to
    draw its probe batch first)."""
    from choicemarket.baselines import MSGDP

    env = _gym(
        "Platform-v0",
        opponents=lambda spec, k: MSGDP(spec, k, p=0.5),
        **FAST,
    )
    env.reset(seed=0)
    env.step(env.unwrapped.market.action_layout.build())
    before, diff = _snapshot(env.unwrapped)
    with pytest.raises(ValueError, match="action"):
        env.step([math.nan] * env.action_space.shape[0])
    after, _ = _snapshot(env.unwrapped)
    assert before == after, diff(before, after)


@pytest.mark.parametrize("env_id", ["Platform-v0", "PlatformFlat-v0", "PlatformStrategy-v0"])
def test_gymnasium_ids_with_one_learner(env_id):
    """A market of one learner has no opponents; every view still runs (it was an
    IndexError in the opponents' batched MSGD)."""
    env = _gym(env_id, dataset="two-slopes", n_learners=1, max_steps=3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for _ in range(3):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and math.isfinite(reward)
    assert truncated and not terminated


def test_logit_choice_with_a_tiny_temperature_picks_the_best_learner():
    """temperature 5e-324: (-loss / temperature) overflowed to NaN weights and every user went
    to learner 0; now each user takes its best learner (the two-slopes specialists split)."""
    env = parallel_env(
        dataset="two-slopes",
        n_learners=2,
        preferences="category",
        choice_rule="logit",
        temperature=5e-324,
        loyalty_bonus=0.0,
    )
    env.reset(seed=0)
    counts = env.state_arrays.counts[0]
    assert counts[0] > 0 and counts[1] > 0
    obs, rewards, *_ = env.step({a: env.action_layout.build() for a in env.agents})
    assert all(math.isfinite(r) for r in rewards.values())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(return_rate=1e-19, outside_threshold=0.1), "return_rate"),
        (dict(loyalty_bonus=1e308), "loyalty_bonus"),
        (dict(temperature=1e308), "temperature"),
        (dict(init_scale=1e39, init="random"), "init_scale"),
        (dict(max_update=1e308), "max_update"),
        (dict(probe_cost=1e308), "probe_cost"),
        (dict(clone_noise=1e308), "clone_noise"),
        (dict(l2=1e300), "l2"),
        (dict(collective_fraction=0.2, collective_signal=[(0, 1e308)]), "collective_signal"),
        (dict(dataset="two-slopes", dataset_options={"a": 1e160}), "dataset_options"),
        (dict(n_learners=10**6), "n_learners"),
        (dict(n_learners=2**63), "n_learners"),
        (dict(n_learners=HUGE), "n_learners"),
        (dict(users_per_step=10**8), "users_per_step"),
        (dict(max_learners=10**7), "max_learners"),
        (dict(max_learners=1e30), "max_learners"),
        (dict(probe_size=10**7), "probe_size"),
        (dict(exit_patience=HUGE), "exit_patience"),
        (dict(n_learners=256, users_per_step=10**6), "GiB.*users_per_step"),
        (dict(init=np.array(["zeros"])), "init"),
        (dict(reward=np.array(["local", "share"])), "reward"),
        (dict(preferences=np.float64(1.0)), "preferences"),
        (dict(dataset_options={"n_features": 2.5}), "dataset_options"),
        (dict(max_update=HUGE), "max_update"),
        (dict(entries=((1, np.array(["fresh"]), None),), max_learners=4), "entries"),
    ],
)
def test_extreme_or_wrongly_typed_fields_are_refused(kwargs, match):
    """Finite values that used to give inf/NaN figures, sizes that ran out of memory, and
    values of the wrong type: each is a ValueError naming the field."""
    with pytest.raises(ValueError, match=match):
        parallel_env(**{**FAST, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(max_update=1e39), "max_update"),
        (dict(max_update=3.5e38), "max_update"),
        (dict(optima=((1e160, 1.0), (0.0, 0.0))), "optima"),
        (dict(noise_var=1e308), "noise_var"),
        (dict(masses=np.float64(2.0)), "masses"),
        (dict(n_learners=2**63), "n_learners"),
        (dict(optima=None, n_subpops=10**5, dim=10**4), "GiB.*n_subpops"),
        (
            dict(
                risk="least_squares",
                dataset="synthetic-ratings",
                dataset_options={"n_users": 80, "n_items": 6, "mf_iterations": 2},
                group_by=None,
            ),
            "dataset",
        ),
    ],
)
def test_participation_extremes_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _participation(**kwargs)


def test_parameters_stay_bounded_and_figures_finite():
    """The largest update bound, pushed every step: the parameters stop at +-MAX_PARAM and
    every observation, reward and loss stays finite and inside its space."""
    from choicemarket.envs.checks import MAX_PARAM

    env = parallel_env(**{**FAST, "max_update": 1e6, "reward": "global", "probe_cost": 1e6})
    obs, _ = env.reset(seed=0)
    size, P = env.action_layout.size, env.action_layout.n_params
    for step in range(5):
        push = np.full(size, 1e300 * (-1) ** step)
        obs, rewards, _, _, infos = env.step({a: push for a in env.agents})
        for a in env.agents:
            assert env.observation_space(a).contains(obs[a])
            assert all(np.isfinite(v).all() for v in obs[a].values())
            assert math.isfinite(rewards[a]) and math.isfinite(infos[a]["global_loss"])
    assert np.abs(env.state_arrays.theta).max() == MAX_PARAM
    part = _participation(max_update=1e6)
    part.reset(seed=0)
    for _ in range(3):
        obs, rewards, *_ = part.step({a: np.full(2, 1e6) for a in part.agents})
    assert all(math.isfinite(r) for r in rewards.values())
    assert all(part.observation_space(a).contains(o) for a, o in obs.items())
    assert P > 0


def test_fraction_fields_become_floats():
    """max_update=Fraction(1, 3) passed validation but broke MSGD's arithmetic."""
    from fractions import Fraction

    env = parallel_env(**FAST, max_update=Fraction(1, 3))
    assert type(env.config.max_update) is float
    env.reset(seed=0)
    policy = MSGD(env.market_spec)
    obs, *_ = env.step({a: policy.act(o) for a, o in env.reset(seed=0)[0].items()})
    assert obs["learner_0"]["step"][0] == 1


@pytest.mark.parametrize("seed", [-1, 1.5, "x", 2**64 + 0.5, True, [1]])
def test_bad_reset_seed_names_seed(seed):
    """A seed numpy refuses gets a message naming ``seed``, in every family, and changes
    nothing."""
    makers = (
        lambda: parallel_env(**FAST),
        lambda: _participation(),
        lambda: _gym("Platform-v0", **FAST),
    )
    for make in makers:
        env = make()
        with pytest.raises(ValueError, match="seed"):
            env.reset(seed=seed)
