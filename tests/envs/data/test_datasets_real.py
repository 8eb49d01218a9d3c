"""Tests for the real-data loaders: NIST ACS Data Excerpts and scikit-learn's bundled sets."""

from __future__ import annotations

import numpy as np
import pytest

from choicemarket.envs.data.acs import (
    FEATURES,
    REGIONS,
    YEARS,
    load_acs_income,
    load_acs_work,
    read_table,
)
from choicemarket.envs.data.registry import Dataset, dataset_names, load_dataset
from choicemarket.envs.data.sklearn_sets import load_breast_cancer, load_diabetes, load_digits

FORBIDDEN = {"PUMA", "INDP", "INDP_CAT", "PINCP", "PINCP_DECILE", "POVPIP", "PWGTP", "WGTP"}


def assert_standardised(X: np.ndarray) -> None:
    """Every column is mean 0 / std 1, or identically 0 (a constant column)."""
    assert np.all(np.isfinite(X))
    for j in range(X.shape[1]):
        col = X[:, j]
        if np.all(col == 0):
            continue
        assert abs(col.mean()) < 1e-9, j
        assert abs(col.std() - 1.0) < 1e-9, j


def test_registered() -> None:
    names = dataset_names()
    for name in ("acs-income", "acs-work", "diabetes", "breast-cancer", "digits"):
        assert name in names


def test_acs_income_national_2018() -> None:
    ds = load_acs_income()
    age = read_table("national", 2018)["AGEP"]
    assert isinstance(ds, Dataset)
    assert ds.task == "binary" and ds.n_classes == 2
    assert ds.n_features == 16 and ds.feature_names == FEATURES
    assert not FORBIDDEN & set(ds.feature_names)
    assert ds.n_users == int((age >= 16).sum())
    assert set(np.unique(ds.y)) == {0, 1}
    assert abs(ds.y.mean() - 0.32) < 0.01
    assert_standardised(ds.X)
    assert ds.extra == {"region": "national", "year": 2018, "source": "NIST ACS Data Excerpts"}
    assert "NIST" in ds.description


def test_acs_work_national_2018() -> None:
    ds = load_acs_work()
    age = read_table("national", 2018)["AGEP"]
    assert ds.task == "binary" and ds.n_features == 16
    assert ds.n_users == int(((age >= 16) & (age <= 90)).sum())
    assert set(np.unique(ds.y)) == {0, 1}
    assert abs(ds.y.mean() - 0.73) < 0.01
    assert_standardised(ds.X)
    assert ds.extra["source"] == "NIST ACS Data Excerpts"


def test_acs_work_label_matches_industry() -> None:
    table = read_table("national", 2018)
    ds = load_acs_work(min_age=0, max_age=99)
    cat = table["INDP_CAT"]
    assert ds.n_users == cat.shape[0]
    np.testing.assert_array_equal(ds.y, ~np.isnan(cat) & (cat != 18))


def test_acs_intercept() -> None:
    ds = load_acs_income(region="ma", year=2019, intercept=True)
    assert ds.n_features == 17 and ds.feature_names[-1] == "intercept"
    np.testing.assert_array_equal(ds.X[:, -1], 1.0)
    assert_standardised(ds.X[:, :-1])


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("year", YEARS)
def test_acs_every_region_year(region: str, year: int) -> None:
    for loader in (load_acs_income, load_acs_work):
        ds = loader(region=region, year=year)
        assert ds.n_users > 5000 and ds.n_features == 16
        assert set(np.unique(ds.y)) == {0, 1}
        assert 0.1 < ds.y.mean() < 0.9
        assert_standardised(ds.X)
        assert ds.extra["region"] == region and ds.extra["year"] == year


def test_acs_work_children_have_null_codes_not_nan() -> None:
    age = read_table("national", 2018)["AGEP"]
    kept = age <= 90
    ds = load_acs_work(min_age=0)
    assert ds.n_users == int(kept.sum())
    assert_standardised(ds.X)
    assert ds.y[age[kept] < 16].sum() == 0  # no industry is recorded under 16


def test_acs_cached_table_is_read_only() -> None:
    table = read_table("national", 2018)
    assert read_table("national", 2018) is table
    with pytest.raises(ValueError):
        table["AGEP"][0] = 1.0


@pytest.mark.parametrize(
    ("loader", "options", "option"),
    [
        (load_acs_income, {"region": "xx"}, "region"),
        (load_acs_income, {"year": 2017}, "year"),
        (load_acs_income, {"year": "2018"}, "year"),
        (load_acs_income, {"min_age": -1}, "min_age"),
        (load_acs_income, {"intercept": 1}, "intercept"),
        (load_acs_work, {"region": "xx"}, "region"),
        (load_acs_work, {"year": 2017}, "year"),
        (load_acs_work, {"max_age": 200}, "max_age"),
        (load_acs_work, {"min_age": 60, "max_age": 30}, "max_age"),
        (load_diabetes, {"intercept": "yes"}, "intercept"),
    ],
)
def test_bad_options_raise(loader, options: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):
        loader(**options)


def test_bad_option_message_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"region.*national.*ma.*tx"):
        load_acs_income(region="xx")
    with pytest.raises(ValueError, match=r"year.*2018.*2019"):
        load_acs_work(year=2017)


def test_load_dataset_by_name() -> None:
    ds = load_dataset("acs-work", region="tx", year=2019, intercept=True)
    assert ds.n_features == 17
    with pytest.raises(ValueError, match="not accepted"):
        load_dataset("acs-income", max_age=50)


def test_diabetes() -> None:
    ds = load_diabetes()
    assert ds.task == "regression"
    assert ds.X.shape == (442, 11) and ds.feature_names[-1] == "intercept"
    assert_standardised(ds.X[:, :-1])
    assert abs(ds.y.mean()) < 1e-9 and abs(ds.y.std() - 1.0) < 1e-9
    assert ds.extra["y_std"] > 0
    assert load_diabetes(intercept=False).X.shape == (442, 10)


def test_breast_cancer() -> None:
    ds = load_breast_cancer()
    assert ds.task == "binary" and ds.n_classes == 2
    assert ds.X.shape == (569, 31)
    assert set(np.unique(ds.y)) == {0, 1}
    assert_standardised(ds.X[:, :-1])


def test_digits() -> None:
    ds = load_digits(intercept=False)
    assert ds.task == "multiclass" and ds.n_classes == 10
    assert ds.X.shape == (1797, 64)
    assert set(np.unique(ds.y)) == set(range(10))
    assert_standardised(ds.X)
    assert np.any(np.all(ds.X == 0, axis=0))  # blank border pixels stay 0
