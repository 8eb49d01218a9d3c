"""Flat observations, global state and rendering of the market and participation envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test
from pettingzoo.test.render_test import render_test
from pettingzoo.test.state_test import state_test

import choicemarket  # noqa: F401  (registers the ids)
from choicemarket.baselines import NoUpdate
from choicemarket.envs import market_v0, participation_v0
from choicemarket.envs.layout import Block, Layout
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.participation.config import ParticipationConfig
from choicemarket.registration import GYM_IDS
from choicemarket.wrappers import FlatObservation, SingleLearner

MARKET = dict(dataset="acs-income", n_learners=3, users_per_step=30, probe_size=12, max_steps=12)
VARIANTS = {
    "plain": {},
    "regression": dict(dataset="two-slopes", n_learners=2, preferences="category"),
    "collective": dict(collective_fraction=0.2, collective_signal=[(0, 3.0)]),
    "entry-exit": dict(max_learners=4, entries=[(4, "fresh", None)], exit_share=0.3),
    "outside": dict(choice_rule="logit", outside_threshold=0.6),
}
PARTICIPATION = dict(max_steps=12)


def random_actions(env) -> dict:
    """Uniform actions from the agents' action spaces (seeded by :func:`run`)."""
    return {a: env.action_space(a).sample() for a in env.agents}


def run(env, seed: int, steps: int, check=None) -> None:
    """Play uniform random actions; ``check(env, obs)`` after reset and every step."""
    for a in env.possible_agents:
        env.action_space(a).seed(seed)
    obs, _ = env.reset(seed=seed)
    check(env, obs)
    for _ in range(steps):
        if not env.agents:
            break
        obs, *_ = env.step(random_actions(env))
        check(env, obs)


def in_spaces(env, obs) -> None:
    for a, o in obs.items():
        space = env.observation_space(a)
        assert isinstance(space, gym.spaces.Box) and np.isfinite(space.low).all()
        assert np.isfinite(space.high).all() and space.contains(o), a
    if env.agents:
        state = env.state()
        assert env.state_space.contains(state) and np.isfinite(state).all()


# ------------------------------------------------------------------ PettingZoo API


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_market_flat_api_and_state(variant):
    kw = dict(MARKET, observation="flat", **VARIANTS[variant])
    parallel_api_test(market_v0.parallel_env(**kw), num_cycles=15)
    api_test(market_v0.env(**kw), num_cycles=15)
    state_test(market_v0.env(**kw), market_v0.parallel_env(**kw))
    run(market_v0.parallel_env(**kw), 3, 12, in_spaces)


def test_participation_flat_api_and_state():
    for risk in ({}, dict(risk="least_squares", dataset="acs-income")):
        kw = dict(PARTICIPATION, observation="flat", **risk)
        parallel_api_test(participation_v0.parallel_env(**kw), num_cycles=15)
        api_test(participation_v0.env(**kw), num_cycles=15)
        state_test(participation_v0.env(**kw), participation_v0.parallel_env(**kw))
        run(participation_v0.parallel_env(**kw), 1, 12, in_spaces)


def test_dict_observation_stays_the_default_and_has_a_state():
    env = market_v0.parallel_env(**MARKET)
    assert isinstance(env.observation_space("learner_0"), gym.spaces.Dict)
    env.reset(seed=0)
    assert env.state_space.contains(env.state())
    with pytest.raises(RuntimeError, match="reset"):
        market_v0.parallel_env(**MARKET).state()


def test_observation_option_is_checked_and_grouped():
    with pytest.raises(ValueError, match=r"observation must be one of \('dict', 'flat'\)"):
        market_v0.parallel_env(observation="vector", **MARKET)
    with pytest.raises(ValueError, match="observation must be one of"):
        participation_v0.parallel_env(observation=1)
    cfg = MarketConfig.from_kwargs(market={"observation": "flat"})
    assert cfg.observation == "flat" and cfg.grouped()["market"]["observation"] == "flat"
    assert ParticipationConfig(observation="flat").observation == "flat"


# ------------------------------------------------------------------ flat layout


def test_market_flat_values_match_the_dict_observation():
    """Every block of the flat vector is the documented function of the Dict observation."""
    flat = market_v0.parallel_env(observation="flat", **MARKET)
    plain = market_v0.parallel_env(**MARKET)
    sl = flat.features.layout.slices
    actions = {a: plain.action_layout.build(probe=True) for a in plain.possible_agents}
    fo, _ = flat.reset(seed=4)
    do, _ = plain.reset(seed=4)
    for t in range(3):
        baseline = plain.population.baseline_loss
        for a in plain.possible_agents:
            v, o = fo[a], do[a]
            w = o["mask"].astype(bool)
            np.testing.assert_allclose(v[sl["params"]], o["params"], rtol=1e-6)
            assert v[sl["share"]][0] == pytest.approx(o["share"][0])
            assert v[sl["local_loss"]][0] == pytest.approx(o["local_loss"][0] / baseline, 1e-5)
            assert v[sl["progress"]][0] == pytest.approx(t / MARKET["max_steps"])
            if w.any():
                X = o["covariates"][w]
                np.testing.assert_allclose(v[sl["x_mean"]], X.mean(0), atol=1e-5)
                np.testing.assert_allclose(v[sl["x_std"]], X.std(0), atol=1e-4)
                np.testing.assert_allclose(v[sl["y_mean"]], o["targets"][w].mean(0), atol=1e-5)
            held = o["probe_mask"].astype(bool)
            assert v[sl["probe_held"]][0] == float(held.any())
            if held.any():
                pX = o["probe_covariates"][held]
                np.testing.assert_allclose(v[sl["probe_x_mean"]], pX.mean(0), atol=1e-5)
                assert v[sl["probe_loss"]][0] > 0
            else:
                assert v[sl["probe_loss"]][0] == 0 and not v[sl["probe_x_mean"]].any()
        fo, *_ = flat.step(actions)
        do, *_ = plain.step(actions)


def test_one_flat_layout_for_the_market_and_the_gymnasium_view():
    """The ego's ``FlatObservation`` with ``user_stats=True`` is the market's flat vector."""
    env = FlatObservation(
        SingleLearner(ego=1, opponents=lambda spec, k: NoUpdate(spec), **MARKET), user_stats=True
    )
    market = market_v0.parallel_env(observation="flat", **MARKET)
    assert env.observation_space == market.observation_space("learner_1")
    obs, _ = env.reset(seed=5)
    flat, _ = market.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(4):
        np.testing.assert_allclose(obs, flat["learner_1"], rtol=1e-5, atol=1e-6)
        action = rng.uniform(-0.2, 0.2, env.action_space.shape).astype(np.float32)
        actions = {a: market.action_layout.build() for a in market.agents}
        actions["learner_1"] = action
        obs, *_ = env.step(action)
        flat, *_ = market.step(actions)
    with pytest.raises(ValueError, match="observation"):
        SingleLearner(observation="flat", **MARKET)


def test_state_values():
    env = market_v0.parallel_env(**MARKET, **VARIANTS["collective"])
    env.reset(seed=2)
    env.step(random_actions(env))
    sl, s, n = env._state.layout.slices, env.state_arrays, 3
    state = env.state()
    np.testing.assert_allclose(state[sl["params"]], s.theta[0].ravel(), rtol=1e-6)
    np.testing.assert_allclose(state[sl["share"]], s.share[0], rtol=1e-6)
    assert state[sl["share"]].sum() == pytest.approx(1.0, abs=1e-6)
    assert state[sl["progress"]][0] == pytest.approx(1 / MARKET["max_steps"])
    assert state[sl["active"]].tolist() == [1.0] * n
    assert sl["collective"].stop - sl["collective"].start == 2 * n + 1
    p = participation_v0.parallel_env(**PARTICIPATION)
    p.reset(seed=0)
    ps, psl = p.state(), p._state.layout.slices
    np.testing.assert_allclose(ps[psl["allocation"]], p.state_arrays.alpha[0].ravel(), rtol=1e-6)
    assert ps[psl["share"]].sum() == pytest.approx(1.0, abs=1e-6)


def test_flat_entries_are_clipped_into_finite_bounds():
    layout = Layout([Block("a", 2, -1.0, 1.0), Block("b", 1, 0.0, 5.0)])
    out = layout.finish(np.array([np.inf, -3.0, np.nan]))
    assert out.dtype == np.float32 and out.tolist() == [1.0, -1.0, 0.0]
    assert layout.space.contains(out)
    with pytest.raises(ValueError, match="finite bounds"):
        Layout([Block("a", 1, -np.inf, 0.0)])
    env = market_v0.parallel_env(observation="flat", max_update=50.0, **MARKET)
    env.reset(seed=0)
    big = {
        a: env.action_layout.build(update=np.full(env.market_spec.n_params, 50.0))
        for a in env.agents
    }
    obs, *_ = env.step(big)
    assert all(env.observation_space(a).contains(o) for a, o in obs.items())


# ------------------------------------------------------------------ rendering


@pytest.mark.parametrize(
    "module, kw",
    [
        (market_v0, MARKET),
        (market_v0, dict(MARKET, **VARIANTS["regression"])),
        (participation_v0, PARTICIPATION),
    ],
    ids=["market", "regression", "participation"],
)
def test_rgb_array_and_human_render(module, kw, capsys):
    env = module.parallel_env(render_mode="rgb_array", **kw)
    assert env.metadata["render_fps"] > 0
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    for _ in range(3):
        env.step(random_actions(env))
    later = env.render()
    assert later.shape == first.shape and not np.array_equal(first, later)
    with pytest.warns(UserWarning, match="needs a display"):  # the test machine has none
        render_test(lambda render_mode: module.env(render_mode=render_mode, **kw))
    assert "step" in capsys.readouterr().out  # "human" without a display prints the table


def test_render_without_mode_warns():
    for env in (market_v0.parallel_env(**MARKET), participation_v0.parallel_env()):
        env.reset(seed=0)
        with pytest.warns(UserWarning, match="without specifying any render mode"):
            assert env.render() is None
    with pytest.raises(ValueError, match="render_mode must be one of"):
        participation_v0.parallel_env(render_mode="rgb")


@pytest.mark.parametrize("env_id", sorted(GYM_IDS))
def test_gymnasium_ids_render_frames_for_record_video(env_id, tmp_path):
    """The frames ``RecordVideo`` records; the .mp4 itself where moviepy is installed."""
    kw = dict(MARKET, max_steps=4)
    env = gym.wrappers.RenderCollection(gym.make(env_id, render_mode="rgb_array", **kw))
    assert env.metadata["render_fps"] > 0 and "human" in env.metadata["render_modes"]
    env.reset(seed=0)
    done = False
    while not done:
        *_, term, trunc, _ = env.step(env.action_space.sample())
        done = term or trunc
    frames = env.render()
    assert len(frames) == 5 and all(f.dtype == np.uint8 and f.shape[2] == 3 for f in frames)
    pytest.importorskip(
        "moviepy",
        reason="RecordVideo writes the .mp4 with moviepy, which is not installed (moviepy 2.2 "
        "pins pillow < 12, so no extra brings it in)",
    )
    video = gym.wrappers.RecordVideo(
        gym.make(env_id, render_mode="rgb_array", **kw), str(tmp_path), disable_logger=True
    )
    video.reset(seed=0)
    done = False
    while not done:
        *_, term, trunc, _ = video.step(video.action_space.sample())
        done = term or trunc
    video.close()
    assert list(tmp_path.glob("*.mp4"))


def test_human_render_with_a_display_draws_the_image_in_one_window(monkeypatch):
    """With an interactive backend the image goes to one matplotlib window, refreshed at every
    step (the backend is faked here: the test machine has no display)."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "get_backend", lambda: "TkAgg")
    monkeypatch.setattr(plt, "pause", lambda interval: None)
    env = market_v0.parallel_env(render_mode="human", **MARKET)
    assert env.render() is None  # before reset: the "market not reset" image
    env.reset(seed=0)
    env.step(random_actions(env))
    window = env._renderer._figure
    assert window is not None and plt.fignum_exists(window.number)
    shown = window.axes[0].images[0].get_array()
    assert shown.shape == env._image().shape
    env.close()
    assert not plt.fignum_exists(window.number)


@pytest.mark.parametrize("module", [market_v0, participation_v0])
def test_switching_to_rgb_array_mid_episode_draws_the_current_step(module):
    env = module.parallel_env()
    env.reset(seed=0)
    env.render_mode = "rgb_array"  # no step since: the image starts from this one
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[-1] == 3 and frame.dtype == np.uint8
