"""Ratings populations: the synthetic stand-in and MovieLens files in both published formats."""

from __future__ import annotations

import numpy as np
import pytest

from choicemarket.envs.data import dataset_names, load_dataset
from choicemarket.envs.data.movielens import ENV_VAR, load_movielens, rating_matrix
from choicemarket.envs.data.ratings import factorise
from choicemarket.envs.data.ratings_synthetic import load_synthetic_ratings


def test_registered():
    names = dataset_names()
    for name in ("movielens", "synthetic-ratings", "acs-employment"):
        assert name in names


def test_synthetic_ratings_shape_scale_and_determinism():
    a = load_synthetic_ratings(n_users=600, n_items=40, n_groups=3, mf_iterations=5, seed=3)
    b = load_synthetic_ratings(n_users=600, n_items=40, n_groups=3, mf_iterations=5, seed=3)
    c = load_synthetic_ratings(n_users=600, n_items=40, n_groups=3, mf_iterations=5, seed=4)
    assert a.task == "masked_regression" and a.n_classes == 40
    assert a.X.shape == (600, 5) and a.y.shape == (600, 40)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(np.isnan(a.y), np.isnan(c.y))
    rated = a.y[~np.isnan(a.y)]
    assert rated.min() >= 0.5 and rated.max() <= 5.0
    np.testing.assert_array_equal(rated * 2, np.round(rated * 2))  # half stars
    assert (~np.isnan(a.y)).any(1).all()  # every user rated something
    assert abs((~np.isnan(a.y)).mean() - 0.19) < 0.05
    assert sorted(np.unique(a.groups)) == [0, 1, 2]
    assert a.extra["normalise"] == "items"


def test_synthetic_groups_have_different_tastes():
    """Mean ratings of a group on each item differ between groups (a reason to specialise)."""
    ds = load_synthetic_ratings(n_users=3000, n_items=30, n_groups=2, mf_iterations=5)
    means = np.array([np.nanmean(ds.y[ds.groups == g], 0) for g in (0, 1)])
    assert np.abs(means[0] - means[1]).max() > 0.5


@pytest.mark.parametrize(
    ("option", "value"),
    [("n_users", 1), ("n_items", 0), ("rank", 0), ("density", 0.0), ("density", 1.5),
     ("normalise", "mean"), ("intercept", "yes"), ("noise", -1.0), ("n_groups", 0)],
)  # fmt: skip
def test_synthetic_options_are_validated(option, value):
    with pytest.raises(ValueError, match=option):
        load_synthetic_ratings(**{"n_users": 100, "n_items": 10, option: value})


def test_factorisation_recovers_a_low_rank_matrix():
    rng = np.random.default_rng(0)
    P0, Q0 = rng.normal(size=(300, 3)), rng.normal(size=(40, 3))
    R = 3.0 + P0 @ Q0.T
    R[rng.random(R.shape) > 0.5] = np.nan
    P, Q = factorise(R, rank=3, reg=1e-6, iterations=60)
    rated = ~np.isnan(R)
    # the fit (biases included) explains the observed entries
    bias_free = P @ Q.T
    resid = (R - bias_free)[rated]
    assert np.std(resid) < 0.05 * np.std(R[rated])


ML_ROWS = [  # user, movie, rating, timestamp
    (1, 10, 5.0, 838985046),
    (1, 20, 3.5, 838983525),
    (2, 10, 4.0, 838983392),
    (2, 30, 1.0, 838983421),
    (3, 20, 2.5, 838983392),
    (3, 10, 3.0, 838983392),
    (4, 40, 4.5, 838984474),
    (5, 30, 0.5, 838983653),
    (5, 20, 4.0, 838984885),
    (6, 10, 2.0, 838983707),
    (7, 50, 5.0, 838984596),
    (8, 20, 3.0, 838983834),
]


def _write_dat(path, rows=ML_ROWS):
    text = "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in rows)
    path.write_text(text)
    return path


def _write_csv(path, rows=ML_ROWS):
    text = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{i},{r:.1f},{t}\n" for u, i, r, t in rows
    )
    path.write_text(text)
    return path


def test_rating_matrix_keeps_the_most_rated_movies():
    table = np.array([(u, i, r) for u, i, r, _ in ML_ROWS], float)
    R, users, movies = rating_matrix(table, 3)
    # counts: movie 10 -> 4, 20 -> 4, 30 -> 2, 40 -> 1, 50 -> 1
    np.testing.assert_array_equal(movies, [10, 20, 30])
    np.testing.assert_array_equal(users, [1, 2, 3, 5, 6, 8])  # users 4, 7 rated none of them
    assert R[0, 0] == 5.0 and R[0, 1] == 3.5 and np.isnan(R[0, 2])
    assert R[3, 2] == 0.5 and R[3, 1] == 4.0


def test_movielens_dat_and_csv_formats_give_the_same_population(tmp_path):
    dat = _write_dat(tmp_path / "ratings.dat")
    csv_dir = tmp_path / "latest"
    csv_dir.mkdir()
    csv_file = _write_csv(csv_dir / "ratings.csv")
    opts = dict(n_items=3, rank=2, mf_iterations=10)
    a = load_movielens(path=str(dat), **opts)
    b = load_movielens(path=str(csv_dir), **opts)  # a folder holding ratings.csv
    assert a.task == "masked_regression" and a.X.shape == (6, 2) and a.y.shape == (6, 3)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_allclose(a.X, b.X)
    np.testing.assert_array_equal(a.extra["item_ids"], [10, 20, 30])
    assert b.extra["file"] == str(csv_file)
    rated = load_movielens(path=str(dat), normalise="rated", **opts)
    assert rated.extra["normalise"] == "rated"


@pytest.fixture
def ml_dir(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    _write_dat(d / "ratings.dat")
    return d


def test_movielens_environment_variable(ml_dir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(ml_dir))
    ds = load_dataset("movielens", n_items=2, rank=2, mf_iterations=3)
    assert ds.y.shape[1] == 2


def test_movielens_missing_file_names_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match=ENV_VAR) as info:
        load_movielens()
    assert "grouplens.org" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        load_movielens(path=str(tmp_path))
    assert str(tmp_path / "ratings.dat") in str(info.value)
    assert str(tmp_path / "ratings.csv") in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_movielens(path=str(tmp_path / "nowhere" / "ratings.dat"))


def test_movielens_bad_files_and_options(tmp_path, ml_dir):
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,item,score\n1,2,3\n")
    with pytest.raises(ValueError, match="header"):
        load_movielens(path=str(bad))
    broken = tmp_path / "b" / "ratings.dat"
    broken.parent.mkdir()
    broken.write_text("1::10::5::1\n2::x::4::2\n")
    with pytest.raises(ValueError, match="malformed"):
        load_movielens(path=str(broken), n_items=1)
    with pytest.raises(ValueError, match="n_items must be <="):
        load_movielens(path=str(ml_dir), n_items=50)
    with pytest.raises(ValueError, match="n_items"):
        load_movielens(path=str(ml_dir), n_items=0)
    with pytest.raises(ValueError, match="normalise"):
        load_movielens(path=str(ml_dir), normalise="all")
    with pytest.raises(ValueError, match="path"):
        load_movielens(path=3)
