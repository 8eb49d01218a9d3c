"""The baseline registry, the retraining baseline and the benchmark suite."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from choicemarket.baselines import MSGD
from choicemarket.baselines.registry import (
    baseline_names,
    get_baseline,
    make_baseline,
    register_baseline,
)
from choicemarket.baselines.retrain import Retrain
from choicemarket.envs.market.losses import fit_erm
from choicemarket.envs.market_v0 import raw_env
from choicemarket.experiments.bench import (
    SUITE,
    BenchResult,
    evaluate_policy,
    run_bench,
    suite_markets,
)
from choicemarket.experiments.cli import main


def test_registry_lists_the_published_baselines():
    assert {"no-update", "msgd", "msgd-p", "retrain"} <= set(baseline_names())
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        get_baseline("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_baseline("msgd", lambda spec, k, s: None)


def test_msgdp_baseline_takes_the_market_setting():
    bench = suite_markets(["census-leader"])[0]
    env = raw_env(**bench.config())
    pol = make_baseline("msgd-p", env.market_spec, 3, bench)
    assert pol.scenario == "market_leader" and pol.peers == (0,) and pol.p == bench.p


def test_retrain_reaches_the_erm_of_its_own_window():
    """A monopolist that refits every step on everything it saw sits at that data's ERM."""
    env = raw_env(dataset="diabetes", n_learners=1, users_per_step=40, max_steps=30, init="zeros")
    pol = Retrain(env.market_spec, every=1, window=10_000)
    obs, _ = env.reset(seed=3)
    seen_X, seen_T = [], []
    for _ in range(30):
        o = obs["learner_0"]
        seen_X.append(o["covariates"][o["mask"] > 0])
        seen_T.append(o["targets"][o["mask"] > 0])
        obs, *_ = env.step({"learner_0": pol.act(o)})
    # the last action moved theta to the ERM of everything seen up to that step
    spec = env.market_spec
    X, T = np.vstack(seen_X).astype(float), np.vstack(seen_T).astype(float)
    target = fit_erm(spec.family, X, T, spec.l2, spec.n_outputs)
    theta = env.core.state.theta[0, 0]
    assert np.abs(target).max() < spec.actions.max_update * 4  # reachable within a few steps
    np.testing.assert_allclose(theta, target, atol=1e-5)


def test_retrain_keeps_only_its_window():
    env = raw_env(dataset="diabetes", n_learners=1, users_per_step=40, max_steps=5)
    pol = Retrain(env.market_spec, every=1, window=50)
    obs, _ = env.reset(seed=0)
    for _ in range(4):
        obs, *_ = env.step({"learner_0": pol.act(obs["learner_0"])})
    assert pol._seen == 160 and pol._X.shape[0] == 50
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        Retrain(env.market_spec, window=0)


def test_quick_bench_scores_and_ranks(tmp_path):
    result = run_bench(markets=["two-slopes", "diabetes"], seeds=[0, 1], steps_scale=0.05)
    board = result.leaderboard()
    assert {r["market"] for r in board} == {"two-slopes", "diabetes"}
    assert len(board) == 2 * len(baseline_names())
    for market in ("two-slopes", "diabetes"):
        rows = [r for r in board if r["market"] == market]
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert [r["gap"] for r in rows] == sorted(r["gap"] for r in rows)
    for r in result.runs:
        assert 0.0 <= r["share"] <= 1.0 and r["social_cost"] > 0
        assert math.isnan(r["accuracy"])  # regression markets
        assert r["gap"] == pytest.approx(r["global_risk"] - _baseline_loss(r["market"]))
    paths = result.save(tmp_path)
    with open(paths["leaderboard"]) as f:
        assert len(list(csv.DictReader(f))) == len(board)
    assert paths["markdown"].read_text().startswith("| market | # | policy |")


def _baseline_loss(market: str) -> float:
    env = raw_env(**suite_markets([market])[0].config())
    env.reset(seed=0)
    return env.population.baseline_loss


def test_no_update_scores_its_initial_model():
    """NoUpdate's risk is the focal learner's starting risk, identical over seeds."""
    bench = suite_markets(["census-preference"])[0]
    result = run_bench(
        baselines=["no-update"], markets=[bench.name], seeds=[0, 1], steps_scale=0.01
    )
    env = raw_env(**bench.config())
    _, infos = env.reset(seed=0)
    start = infos[f"learner_{bench.focal_learner()}"]["global_loss"]
    assert [r["global_risk"] for r in result.runs] == pytest.approx([start, start])


def test_user_policy_on_the_suite_with_one_call():
    calls = []

    class Mine(MSGD):
        pass

    def factory(spec, k):
        calls.append(k)
        return Mine(spec, eta=0.02)

    result = evaluate_policy(
        factory, name="mine", markets=["two-slopes"], seeds=[0], steps_scale=0.02
    )
    policies = {r["policy"] for r in result.runs}
    assert "mine" in policies and set(baseline_names()) <= policies
    assert calls == [SUITE[0].focal]

    seen = []
    only = evaluate_policy(
        lambda spec, k, market: seen.append(market.name) or MSGD(spec),
        with_baselines=False,
        markets=["two-slopes"],
        seeds=[0],
        steps_scale=0.02,
    )
    assert seen == ["two-slopes"] and {r["policy"] for r in only.runs} == {"policy"}


def test_bench_is_reproducible():
    a = run_bench(baselines=["msgd-p"], markets=["breast-cancer"], seeds=[4], steps_scale=0.05)
    b = run_bench(baselines=["msgd-p"], markets=["breast-cancer"], seeds=[4], steps_scale=0.05)
    assert a.runs == b.runs


def test_bad_bench_arguments():
    with pytest.raises(ValueError, match="unknown bench market"):
        run_bench(markets=["mars"])
    with pytest.raises(ValueError, match="steps_scale must be"):
        run_bench(steps_scale=0)
    with pytest.raises(ValueError, match="clashes with a baseline"):
        run_bench(policies={"msgd": lambda spec, k: MSGD(spec)})


def test_bench_cli(tmp_path, capsys):
    code = main(
        [
            "bench",
            "--markets",
            "two-slopes",
            "--baselines",
            "msgd,no-update",
            "--seeds",
            "2",
            "--steps-scale",
            "0.02",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "two-slopes" in out and "no-update" in out
    assert (tmp_path / "bench_leaderboard.md").exists()
    assert main(["bench", "--list"]) == 0
    assert "census-majority" in capsys.readouterr().out
    assert main(["bench", "--markets", "mars", "--no-progress"]) == 2


def test_empty_result_table():
    assert BenchResult().leaderboard() == []
