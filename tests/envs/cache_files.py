"""Damaging an on-disk cache file the ways the cache tests check: cut short, not an archive,
arrays that do not match their digest, a valid file of another setting under this name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DAMAGES = ("truncate", "garbage", "flip", "other_key")


def damage(path: Path, how: str, array: str) -> None:
    """Damage the ``.npz`` cache file ``path`` as ``how`` says (``"flip"`` changes ``array``)."""
    raw = path.read_bytes()
    if how == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        path.write_bytes(b"not a cache file")
    elif how == "flip":  # valid file, arrays that do not match their digest
        arrays = dict(np.load(path))
        arrays[array] = arrays[array] + 1.0
        np.savez(path.with_suffix(""), **arrays)
    else:  # a valid file of another setting under this name
        arrays = dict(np.load(path))
        arrays["key"] = np.array("0" * 40)
        np.savez(path.with_suffix(""), **arrays)
