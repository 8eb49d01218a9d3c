"""The runner's history, atomic result files, and the command line."""

import csv
import importlib
import json
import math
import os

import numpy as np
import pytest

import choicemarket.experiments.runner as runner
from choicemarket import History, simulate
from choicemarket.baselines import MSGDP
from choicemarket.experiments.cli import main

SMALL = dict(dataset="breast-cancer", n_learners=3, max_steps=60, eval_every=20)


def test_history_records_every_evaluation_point():
    h = simulate(SMALL, seeds=[0, 1])
    steps = sorted({r["step"] for r in h.rows})
    assert steps == [0, 20, 40, 60]
    assert len(h.rows) == 2 * 4 * 3
    assert {r["agent"] for r in h.rows} == {"learner_0", "learner_1", "learner_2"}
    final = h.final()
    assert len(final) == 6 and all(r["step"] == 60 for r in final)
    mean, se = h.summary("global_accuracy")["learner_0"]
    assert 0.0 < mean <= 1.0 and se >= 0.0
    assert h.meta["config"]["dataset"] == "breast-cancer"
    assert 0.9 < h.meta["baseline"]["accuracy"] <= 1.0


def test_history_csv_and_json_round_trip(tmp_path):
    h = simulate(SMALL, policies=lambda spec, k: MSGDP(spec, k, p=0.5), seeds=[3])
    h.to_csv(tmp_path / "h.csv")
    with open(tmp_path / "h.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(h.rows)
    assert float(rows[0]["global_loss"]) == pytest.approx(h.rows[0]["global_loss"])
    h.to_json(tmp_path / "h.json")
    back = History.from_json(tmp_path / "h.json")
    assert back.rows == h.rows
    assert json.loads((tmp_path / "h.json").read_text())["meta"]["policies"][
        "learner_0"
    ].startswith("MSGDP")


def test_regression_history_json_writes_nan_as_null(tmp_path):
    h = simulate(dict(dataset="diabetes", n_learners=2, max_steps=10, eval_every=10))
    h.to_json(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["rows"][0]["global_accuracy"] is None
    assert math.isnan(History.from_json(tmp_path / "r.json").rows[0]["global_accuracy"])


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_text("previous")

    def boom(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(runner.os, "replace", boom)
    with pytest.raises(OSError):
        runner.atomic_write(path, "new content")
    assert path.read_text() == "previous"
    assert os.listdir(tmp_path) == ["out.csv"]  # no temporary file left behind


def test_cli_run_writes_history(tmp_path, capsys):
    out = tmp_path / "run.csv"
    code = main(
        [
            "run",
            "--dataset",
            "two-slopes",
            "--n-learners",
            "2",
            "--preferences",
            "category",
            "--steps",
            "100",
            "--eval-every",
            "50",
            "--seeds",
            "2",
            "--prober",
            "0",
            "--p",
            "1.0",
            "--set",
            "l2=0.0",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "learner_0" in text and "baseline loss" in text
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 2


def test_cli_reports_bad_option(capsys):
    assert main(["run", "--set", "preference_weight=3", "--no-progress"]) == 2
    assert "preference_weight must be a number in [0, 1]" in capsys.readouterr().err


def test_cli_demo_small(tmp_path, capsys):
    code = main(
        [
            "demo",
            "--steps",
            "300",
            "--seeds",
            "2",
            "--probe-weights",
            "0,0.8",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "(probes)" in text and "Baseline" in text
    assert (tmp_path / "demo_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "demo_final.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 5
    assert {float(r["p"]) for r in rows} == {0.0, 0.8}


def test_cli_lists_datasets(capsys):
    assert main(["datasets"]) == 0
    names = capsys.readouterr().out.split()
    for name in ["acs-income", "acs-work", "two-slopes", "gaussian-groups", "digits"]:
        assert name in names


def test_simulate_saves_after_every_batch_of_episodes(tmp_path, monkeypatch):
    """An interrupted run keeps the batches of episodes it finished."""
    import choicemarket.experiments.runner as r

    real = r.run_markets

    def failing(config, policies, seeds, *args, **kwargs):
        if 2 in seeds:
            raise KeyboardInterrupt
        return real(config, policies, seeds, *args, **kwargs)

    monkeypatch.setattr(r, "run_markets", failing)
    for batch, done in ((1, {0, 1}), (2, {0, 1})):
        out = tmp_path / f"run{batch}.json"
        with pytest.raises(KeyboardInterrupt):
            simulate(SMALL, seeds=[0, 1, 2, 3], out=out, max_batch=batch)
        saved = History.from_json(out)
        assert {row["seed"] for row in saved.rows} == done
        assert len(saved.rows) == 2 * 4 * 3


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    path = runner.atomic_write(tmp_path / "r.csv", "a,b\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_simulate_accepts_any_policy_object():
    """A policy needs only ``act``; here a fixed do-nothing action for learner 1."""

    class Still:
        def __init__(self, spec):
            self.action = spec.actions.build()

        def act(self, observation):
            return self.action

    h = simulate(SMALL, policies=lambda spec, k: Still(spec) if k == 1 else MSGDP(spec, k, p=0))
    start = [r for r in h.rows if r["agent"] == "learner_1" and r["step"] == 0][0]
    end = [r for r in h.final() if r["agent"] == "learner_1"][0]
    assert start["global_loss"] == end["global_loss"]  # learner 1 never moved


def test_no_update_policy_keeps_parameters_and_never_probes():
    from choicemarket.baselines import NoUpdate

    h = simulate(SMALL, policies=lambda spec, k: NoUpdate(spec), seeds=[4])
    for agent in ("learner_0", "learner_1", "learner_2"):
        losses = {r["global_loss"] for r in h.rows if r["agent"] == agent}
        assert len(losses) == 1
    assert all(r["probe_queries"] == 0 for r in h.rows)


def test_simulate_takes_the_collective_policy_with_a_factory():
    from choicemarket.baselines import MSGD, FixedCollective

    market = dict(SMALL, collective_fraction=0.3, collective_signal=[(0, 3.0)])
    h = simulate(
        market,
        policies=lambda spec, k: MSGD(spec, eta=0.05),
        collective=FixedCollective("plant", destination=1, label=1),
        seeds=[0, 1],
    )
    assert "destination=1" in h.meta["policies"]["collective"]
    last = [r for r in h.final() if r["learner"] >= 0]
    by = {k: np.mean([r["planting_success"] for r in last if r["learner"] == k]) for k in range(3)}
    assert by[1] > max(by[0], by[2])  # the destination learner carries the signal


def test_atomic_write_never_changes_the_umask(tmp_path, monkeypatch):
    """Writing a result reads no umask by setting it (a thread creating files meanwhile would
    get world-writable ones)."""

    def forbidden(*args):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", forbidden)
    atomic = importlib.reload(importlib.import_module("choicemarket.envs.data.atomic"))
    path = atomic.atomic_write(tmp_path / "r.csv", "a,b\n")  # importing it reads none either
    assert path.read_text() == "a,b\n"
    assert runner.atomic_write(tmp_path / "s.csv", "c\n").read_text() == "c\n"
