"""The on-disk population cache: warm builds equal cold ones without refitting, keys follow
every input, broken files are rebuilt with a warning, and the cache can be moved or off."""

import os
import warnings

import numpy as np
import pytest

from choicemarket.envs.market import population as P
from choicemarket.envs.market import population_cache as C
from tests.envs import cache_files
from tests.envs.market.test_population_memory import FIELDS, _config

ARRAYS = ("pref", "baseline_theta", "partition_theta")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "populations"
    monkeypatch.setenv(C.ENV_VAR, str(folder))
    P._HELD.clear()
    yield folder
    P._HELD.clear()


def _no_fits(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a warm build must not refit")

    monkeypatch.setattr(P, "fit_erm", refuse)
    monkeypatch.setattr(P, "assign_preferences", refuse)


def _same(a, b):
    for f in FIELDS + ARRAYS[1:]:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert a.baseline_loss == b.baseline_loss
    assert a.baseline_accuracy == b.baseline_accuracy


@pytest.mark.parametrize("preferences", ["kmeans", "market_leader", "category"])
def test_warm_build_equals_cold_build_without_refitting(cache, monkeypatch, preferences):
    cfg = _config(preferences=preferences)
    cold = P.build_population(cfg, 3)
    assert len(list(cache.glob("*.npz"))) == 1
    P._HELD.clear()  # as in a new process
    _no_fits(monkeypatch)
    warm = P.build_population(cfg, 3)
    _same(warm, cold)
    again = P.build_population(cfg, 3)  # from the dataset held in the population's order
    _same(again, cold)


def test_cached_equals_uncached(cache, monkeypatch):
    cfg = _config()
    P.build_population(cfg, 4)
    P._HELD.clear()
    warm = P.build_population(cfg, 4)
    monkeypatch.setenv(C.ENV_VAR, "off")
    P._HELD.clear()
    _same(warm, P.build_population(cfg, 4))


def test_every_input_changes_the_key(cache):
    cfg = _config()
    P.build_population(cfg, 0)
    variants = [
        (cfg, 1),
        (cfg.replace(l2=1e-3), 0),
        (cfg.replace(test_fraction=0.3), 0),
        (cfg.replace(n_learners=4), 0),
        (cfg.replace(preferences="market_leader"), 0),
        (cfg.replace(preferences="market_leader", leader_fraction=0.5), 0),
        (cfg.replace(init="random"), 0),
        (cfg.replace(dataset_options={**cfg.dataset_options, "seed": 12}), 0),
    ]
    for i, (variant, seed) in enumerate(variants, start=2):
        P.build_population(variant, seed)
        assert len(list(cache.glob("*.npz"))) == i, variant
    # the same setting again: no new file
    P.build_population(cfg, 0)
    assert len(list(cache.glob("*.npz"))) == len(variants) + 1


def test_key_depends_on_data_and_code(monkeypatch):
    fields = {"seed": 0}
    key = C.population_key(fields, "a")
    assert C.population_key(fields, "b") != key
    monkeypatch.setattr(C, "code_version", lambda: "another")
    assert C.population_key(fields, "a") != key


@pytest.mark.parametrize("damage", cache_files.DAMAGES)
def test_broken_file_is_rebuilt_with_a_warning(cache, damage):
    cfg = _config()
    cold = P.build_population(cfg, 2)
    (path,) = cache.glob("*.npz")
    cache_files.damage(path, damage, "baseline_theta")
    P._HELD.clear()
    with pytest.warns(RuntimeWarning, match="population cache file .* rebuilding"):
        rebuilt = P.build_population(cfg, 2)
    _same(rebuilt, cold)
    P._HELD.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file replaced the broken one
        _same(P.build_population(cfg, 2), cold)


def test_cache_off_and_moved(tmp_path, monkeypatch):
    P._HELD.clear()
    for off in ("off", "0", "", "None"):
        monkeypatch.setenv(C.ENV_VAR, off)
        assert C.cache_dir() is None
    P.build_population(_config(), 0)
    assert not any(tmp_path.iterdir())
    C.set_cache_dir(tmp_path / "here")
    assert os.environ[C.ENV_VAR] == str(tmp_path / "here")
    P.build_population(_config(), 0)
    assert len(list((tmp_path / "here").glob("*.npz"))) == 1
    C.set_cache_dir(None)
    assert C.cache_dir() is None


def test_default_location_is_the_user_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(C.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if os.name != "nt":
        assert C.cache_dir() == tmp_path / "choicemarket" / "populations"


def test_unwritable_folder_warns_and_builds(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setenv(C.ENV_VAR, str(blocker / "populations"))
    P._HELD.clear()
    with pytest.warns(RuntimeWarning, match="cannot write the population cache"):
        pop = P.build_population(_config(), 0)
    assert pop.partition_theta.shape[0] == 3
