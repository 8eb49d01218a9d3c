"""The shipped experiment configs run on the published data formats (``--real``)."""

from __future__ import annotations

import numpy as np

from choicemarket.experiments.cli import main
from choicemarket.experiments.experiment import load_experiment
from choicemarket.experiments.sweep import load_runs
from tests.envs.data.test_folktables_acs import write_pums


def _run(args, capsys):
    code = main(["run", *args, "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_census_config_runs_on_a_pums_file(tmp_path, capsys, monkeypatch):
    root = tmp_path / "pums"
    path = root / "2018" / "1-Year" / "psam_p01.csv"
    path.parent.mkdir(parents=True)
    write_pums(path, n=1500)
    monkeypatch.setenv("CHOICEMARKET_ACS_ROOT", str(root))
    exp = load_experiment("expt2-census", real=True)
    assert exp.market["dataset"] == "acs-employment"
    assert exp.market["dataset_options"] == {"root": None, "state": "AL", "year": 2018}
    out = tmp_path / "out"
    _run(
        [
            "expt2-census",
            "--real",
            "--set",
            "seeds=1",
            "--set",
            "market.max_steps=60",
            "--set",
            "market.eval_every=30",
            "--set",
            "market.test_fraction=0.2",
            "--out",
            str(out),
        ],
        capsys,
    )
    _, runs = load_runs(out)
    assert len(runs) == len(exp.runs()) // 15  # one seed of each probing weight
    assert all(r["market"]["dataset"] == "acs-employment" for r in runs)
    assert all(len(r["rows"]) > 0 for r in runs)


def test_ratings_config_runs_on_a_movielens_file(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    users, items = 400, 60
    taste = rng.normal(size=(users, 3)) @ rng.normal(size=(3, items))
    rated = rng.random((users, items)) < 0.4
    u, i = np.nonzero(rated)
    stars = np.clip(np.round(2 * (3 + taste[u, i])) / 2, 0.5, 5)
    lines = "".join(
        f"{a + 1}::{b + 1}::{r:g}::{900000000 + k}\n"
        for k, (a, b, r) in enumerate(zip(u, i, stars))
    )
    (tmp_path / "ratings.dat").write_text(lines)
    monkeypatch.setenv("CHOICEMARKET_MOVIELENS", str(tmp_path / "ratings.dat"))
    out = tmp_path / "out"
    _run(
        [
            "expt2-ratings",
            "--real",
            "--set",
            "seeds=1",
            "--set",
            "market.max_steps=40",
            "--set",
            "market.eval_every=20",
            "--set",
            "market.probe_size=50",
            "--set",
            "market.dataset_options={'n_items': 50}",
            "--out",
            str(out),
        ],
        capsys,
    )
    _, runs = load_runs(out)
    assert len(runs) == 6 and all(r["market"]["dataset"] == "movielens" for r in runs)
