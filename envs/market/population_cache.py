"""On-disk cache of the costly parts of a population: preferences and reference ERMs.

A population's preferred learners (k-means on the covariates), its baseline ERM and its
partition ERMs depend only on the data, the population fields of the config, the population
seed and the code; they are stored in one ``.npz`` file per setting, named by a hash of all of
these (:func:`population_key`), so that sweeps, their worker processes and later runs start
without refitting. Storage is :mod:`choicemarket.envs.data.array_cache`: files are written
atomically and carry a digest of their arrays, checked on load: a file that is unreadable,
corrupt or written for another setting is rebuilt with a warning.

Location: the folder ``$CHOICEMARKET_CACHE_DIR`` itself if set (``off``, ``none``, ``0`` or
empty: no cache), else the sub-folder ``populations`` of the user cache directory
(``$XDG_CACHE_HOME/choicemarket`` or ``~/.cache/choicemarket``; ``%LOCALAPPDATA%\\choicemarket``
on Windows). :func:`set_cache_dir` sets the variable from Python (worker processes inherit it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data import array_cache
from ..data.array_cache import ENV_VAR, OFF, set_cache_dir
from ..data.registry import Dataset

__all__ = [
    "ARRAYS",
    "ENV_VAR",
    "OFF",
    "cache_dir",
    "code_version",
    "dataset_digest",
    "load",
    "population_key",
    "set_cache_dir",
    "store",
]

FORMAT = 1
ARRAYS = ("pref", "baseline_theta", "partition_theta")
# the modules whose code computes the cached arrays: any change to them changes the key
_CODE = ("population.py", "population_cache.py", "losses.py")
# with $CHOICEMARKET_CACHE_DIR set, population files lie in that folder itself (flat)
_CACHE = array_cache.ArrayCache("populations", "population", flat=True)


def cache_dir() -> Path | None:
    """The folder of cached populations, or ``None`` when the cache is off."""
    return _CACHE.folder()


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
    """The package version, the numeric libraries' versions (k-means results depend on
    scikit-learn's) and a hash of the code computing the arrays."""
    from choicemarket import __version__

    here = Path(__file__).parent
    files = tuple(str(here / name) for name in _CODE)
    return array_cache.code_version(files, ("numpy", "scipy", "scikit-learn"), (__version__,))


def population_key(fields: dict[str, Any], data_digest: str) -> str:
    """Key of a population: hash of ``fields`` (config fields used, seed), the data and code."""
    payload = json.dumps(
        {"format": FORMAT, "fields": fields, "data": data_digest, "code": code_version()},
        sort_keys=True,
        default=repr,
    )
    return hashlib.blake2b(payload.encode(), digest_size=20).hexdigest()


def load(key: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    """The cached arrays of ``key`` (``None``: cache off or no file). A file that cannot be
    read, fails its digest, or holds arrays of other ``shapes`` is reported with a warning
    and ``None`` is returned, so that the caller rebuilds (and :func:`store` replaces it)."""
    return _CACHE.load(key, ARRAYS, shapes)


def store(key: str, arrays: dict[str, np.ndarray]) -> Path | None:
    """Write ``arrays`` under ``key`` atomically; ``None`` when the cache is off. A folder
    that cannot be written is reported with a warning (the run goes on without a cache)."""
    return _CACHE.store(key, arrays, ARRAYS)
