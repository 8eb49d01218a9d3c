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
