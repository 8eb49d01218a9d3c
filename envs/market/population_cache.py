"""On-disk cache of the costly parts of a population: preferences and reference ERMs.

A population's preferred learners (k-means on the covariates), its baseline ERM and its
partition ERMs depend only on the data, the population fields of the config, the population
seed and the code; they are stored in one ``.npz`` file per setting, named by a hash of all of
these (:func:`population_key`), so that sweeps, their worker processes and later runs start
without refitting. Files are written atomically and carry a digest of their arrays, checked on
load: a file that is unreadable, corrupt or written for another setting is rebuilt with a
warning.

Location: ``$CHOICEMARKET_CACHE_DIR`` if set (``off``, ``none``, ``0`` or empty: no cache),
else the user cache directory (``$XDG_CACHE_HOME/choicemarket`` or ``~/.cache/choicemarket``;
``%LOCALAPPDATA%\\choicemarket`` on Windows), sub-folder ``populations``.
:func:`set_cache_dir` sets the variable from Python (worker processes inherit it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import warnings
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import atomic_write
from ..data.registry import Dataset

ENV_VAR = "CHOICEMARKET_CACHE_DIR"
OFF = ("", "0", "off", "none", "false", "no")
FORMAT = 1
ARRAYS = ("pref", "baseline_theta", "partition_theta")
# the modules whose code computes the cached arrays: any change to them changes the key
_CODE = ("population.py", "population_cache.py", "losses.py")
_code_version: str | None = None


def set_cache_dir(path: str | os.PathLike | None) -> None:
    """Cache populations under ``path`` (``None``: switch the cache off). Sets
    ``$CHOICEMARKET_CACHE_DIR``, so worker processes started afterwards use the same folder."""
    os.environ[ENV_VAR] = "off" if path is None else os.fspath(path)


def cache_dir() -> Path | None:
    """The folder of cached populations, or ``None`` when the cache is off."""
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return None if value.strip().lower() in OFF else Path(value).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        root = Path(os.environ["LOCALAPPDATA"]) / "choicemarket"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "choicemarket"
    return root / "populations"


def dataset_digest(data: Dataset) -> str:
    """Hash of a dataset's rows as loaded (covariates, labels, categories, with shapes)."""
    h = hashlib.blake2b(digest_size=16)
    for a in (data.X, data.y, data.groups):
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    h.update(f"{data.task}|{data.n_classes}".encode())
    return h.hexdigest()


def code_version() -> str:
    """The package version, the code computing the arrays and the numeric libraries'
    versions (k-means results depend on scikit-learn's)."""
    global _code_version
    if _code_version is None:
        from choicemarket import __version__

        h = hashlib.blake2b(digest_size=16)
        here = Path(__file__).parent
        for name in _CODE:
            h.update((here / name).read_bytes())
        versions = [__version__]
        for dist in ("numpy", "scipy", "scikit-learn"):
            try:
                versions.append(metadata.version(dist))
            except metadata.PackageNotFoundError:  # pragma: no cover - a vendored install
                versions.append("?")
        _code_version = f"{'/'.join(versions)}/{h.hexdigest()}"
    return _code_version


def population_key(fields: dict[str, Any], data_digest: str) -> str:
    """Key of a population: hash of ``fields`` (config fields used, seed), the data and code."""
    payload = json.dumps(
        {"format": FORMAT, "fields": fields, "data": data_digest, "code": code_version()},
        sort_keys=True,
        default=repr,
    )
    return hashlib.blake2b(payload.encode(), digest_size=20).hexdigest()


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def load(key: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    """The cached arrays of ``key`` (``None``: cache off or no file). A file that cannot be
    read, fails its digest, or holds arrays of other ``shapes`` is reported with a warning
    and ``None`` is returned, so that the caller rebuilds (and :func:`store` replaces it)."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in ARRAYS}
            stored_key, digest = str(f["key"]), str(f["digest"])
        if stored_key != key:
            raise ValueError("it was written for another setting")
        if _arrays_digest(arrays) != digest:
            raise ValueError("its digest does not match its arrays")
        for name, shape in shapes.items():
            if arrays[name].shape != tuple(shape):
                raise ValueError(f"{name} has shape {arrays[name].shape}, expected {shape}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(
            f"population cache file {path.name} is unusable ({err}); rebuilding it",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return arrays


def store(key: str, arrays: dict[str, np.ndarray]) -> Path | None:
    """Write ``arrays`` under ``key`` atomically; ``None`` when the cache is off. A folder
    that cannot be written is reported with a warning (the run goes on without a cache)."""
    folder = cache_dir()
    if folder is None:
        return None
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        key=np.array(key),
        digest=np.array(_arrays_digest(arrays)),
        **{name: np.ascontiguousarray(arrays[name]) for name in ARRAYS},
    )
    try:
        return atomic_write(folder / f"{key}.npz", buf.getvalue())
    except OSError as err:
        warnings.warn(
            f"cannot write the population cache in {folder} ({err}); set {ENV_VAR} to a "
            "writable folder, or to 'off'",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
