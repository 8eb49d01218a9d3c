"""The on-disk cache of parsed census tables: warm reads equal cold ones exactly, broken files
are re-parsed with a warning, the cache can be off, and keys follow the file, reader and code."""

import gzip
import sys
import warnings

import numpy as np
import pytest

from choicemarket.envs.data import acs, array_cache
from tests.envs import cache_files


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(array_cache.ENV_VAR, str(tmp_path / "cache"))
    acs.read_table.cache_clear()
    yield tmp_path / "cache" / "tables"
    acs.read_table.cache_clear()


def _csv(tmp_path, n: int = 40, seed: int = 0, name: str = "t.csv.gz"):
    rng = np.random.default_rng(seed)
    lines = [",".join(acs._COLUMNS)]
    for i in range(n):
        cells = ["N" if rng.random() < 0.2 else str(int(rng.integers(0, 90))) for _ in acs.FEATURES]
        pincp = "N" if i % 5 == 0 else f"{rng.normal(40000, 20000):.1f}"
        lines.append(",".join([*cells, pincp, "N" if i % 3 else "7", f"{i % 4:02d}-0{i % 7}"]))
    path = tmp_path / name
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        assert not a[name].flags.writeable and not b[name].flags.writeable, name
        if a[name].dtype.kind == "f":
            np.testing.assert_array_equal(np.isnan(a[name]), np.isnan(b[name]), err_msg=name)
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_warm_read_equals_cold_read(cache, monkeypatch):
    cold = acs.read_table("ma", 2019)
    assert len(list(cache.glob("*.npz"))) == 1
    acs.read_table.cache_clear()  # as in a new process

    def refuse(path):
        raise AssertionError("a warm read must not parse the CSV")

    monkeypatch.setattr(acs, "read_table_file", refuse)
    warm = acs.read_table("ma", 2019)
    _same(warm, cold)
    assert warm["PUMA"].dtype.kind == "U"
    assert any(np.isnan(v).any() for v in warm.values() if v.dtype.kind == "f")


def test_warm_read_equals_uncached_read(cache, tmp_path):
    path = _csv(tmp_path)
    acs.read_table_cached(path)
    _same(acs.read_table_cached(path), acs.read_table_file(path))


@pytest.mark.parametrize("damage", cache_files.DAMAGES)
def test_broken_file_is_reparsed_with_a_warning(cache, tmp_path, damage):
    src = _csv(tmp_path)
    cold = acs.read_table_cached(src)
    (path,) = cache.glob("*.npz")
    cache_files.damage(path, damage, "AGEP")
    with pytest.warns(RuntimeWarning, match=f"table cache file .*{path.name}.* rebuilding"):
        rebuilt = acs.read_table_cached(src)
    _same(rebuilt, cold)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten file replaced the broken one
        _same(acs.read_table_cached(src), cold)


def test_cache_off_writes_nothing(tmp_path, monkeypatch):
    src = _csv(tmp_path)
    folder = tmp_path / "cache"
    for off in ("off", "0", "", "None"):
        monkeypatch.setenv(array_cache.ENV_VAR, off)
        assert array_cache.cache_dir("tables") is None
        acs.read_table.cache_clear()
        acs.read_table("ma", 2018)
        _same(acs.read_table_cached(src), acs.read_table_file(src))
    assert not folder.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]
    acs.read_table.cache_clear()


def test_tables_beside_populations(tmp_path, monkeypatch):
    monkeypatch.setenv(array_cache.ENV_VAR, str(tmp_path))
    assert array_cache.cache_dir("tables") == tmp_path / "tables"
    assert array_cache.cache_dir("populations", flat=True) == tmp_path
    monkeypatch.delenv(array_cache.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if sys.platform != "win32":
        assert array_cache.cache_dir("tables") == tmp_path / "choicemarket" / "tables"
        assert array_cache.cache_dir("populations", flat=True) == (
            tmp_path / "choicemarket" / "populations"
        )


def test_key_follows_file_reader_and_code(cache, tmp_path, monkeypatch):
    a = _csv(tmp_path, seed=0, name="a.csv.gz")
    key = acs.table_key(a)
    assert acs.table_key(_csv(tmp_path, seed=0, name="same.csv.gz")) == key  # bytes, not name
    assert acs.table_key(_csv(tmp_path, seed=1, name="b.csv.gz")) != key
    with monkeypatch.context() as m:
        m.setitem(acs._READER, "max_abs", 1e6)
        assert acs.table_key(a) != key
    assert acs.table_key(a) == key
    for name, value in [
        ("_COLUMNS", acs._COLUMNS[:-1]),
        ("TABLE_FORMAT", acs.TABLE_FORMAT + 1),
        ("_table_code_version", lambda: "another"),
    ]:
        with monkeypatch.context() as m:
            m.setattr(acs, name, value)
            assert acs.table_key(a) != key, name
    assert acs.table_key(a) == key


def test_unwritable_folder_warns_and_parses(tmp_path, monkeypatch):
    src = _csv(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setenv(array_cache.ENV_VAR, str(blocker))
    with pytest.warns(RuntimeWarning, match="cannot write the table cache"):
        table = acs.read_table_cached(src)
    _same(table, acs.read_table_file(src))
