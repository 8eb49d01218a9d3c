"""On-disk cache of named numpy arrays: one ``.npz`` file per key, in a folder per kind.

A file ``<folder>/<key>.npz`` holds the arrays, the ``key`` it was written for and a
``digest``: blake2b-128 over, for each array name in the caller's order, the name, dtype,
shape and bytes. Files are written atomically; on load the stored key and the digest are
checked, and a file that is unreadable, corrupt or written for another key gives a
``RuntimeWarning`` and ``None`` (the caller recomputes and stores again). Arrays are saved
with ``allow_pickle=False`` (numbers and numpy unicode strings only).

Location: ``$CHOICEMARKET_CACHE_DIR`` if set (``off``, ``none``, ``0`` or empty: no cache),
else the user cache directory (``$XDG_CACHE_HOME/choicemarket`` or ``~/.cache/choicemarket``;
``%LOCALAPPDATA%\\choicemarket`` on Windows); each kind of cache in a sub-folder named after
it (``tables``, ...), except that a ``flat`` kind (``populations``) lies in the folder of
``$CHOICEMARKET_CACHE_DIR`` itself.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import sys
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from .atomic import atomic_write

ENV_VAR = "CHOICEMARKET_CACHE_DIR"
OFF = ("", "0", "off", "none", "false", "no")
_RESERVED = ("key", "digest")


def set_cache_dir(path: str | os.PathLike | None) -> None:
    """Cache under ``path`` (``None``: switch the cache off). Sets ``$CHOICEMARKET_CACHE_DIR``,
    so worker processes started afterwards use the same folder."""
    os.environ[ENV_VAR] = "off" if path is None else os.fspath(path)


def cache_dir(kind: str, *, flat: bool = False) -> Path | None:
    """The folder of the cache ``kind``, or ``None`` when the cache is off.

    ``flat``: a folder set by ``$CHOICEMARKET_CACHE_DIR`` holds this kind's files itself, not
    in a sub-folder (the population cache's layout, so that its files stay where they are)."""
    value = os.environ.get(ENV_VAR)
    if value is not None:
        if value.strip().lower() in OFF:
            return None
        root = Path(value).expanduser()
        return root if flat else root / kind
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        root = Path(os.environ["LOCALAPPDATA"]) / "choicemarket"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "choicemarket"
    return root / kind


@functools.cache
def code_version(
    files: tuple[str, ...], dists: tuple[str, ...], extra: tuple[str, ...] = ()
) -> str:
    """``extra``, the installed versions of ``dists`` and blake2b-128 of the source ``files``,
    joined by ``/``: the part of a cache key that changes with the code computing the arrays."""
    h = hashlib.blake2b(digest_size=16)
    for name in files:
        h.update(Path(name).read_bytes())
    versions = list(extra)
    for dist in dists:
        try:
            versions.append(metadata.version(dist))
        except metadata.PackageNotFoundError:  # pragma: no cover - a vendored install
            versions.append("?")
    return f"{'/'.join(versions)}/{h.hexdigest()}"


def arrays_digest(arrays: Mapping[str, np.ndarray], names: Sequence[str]) -> str:
    """blake2b-128 over each of ``names`` in order: name, dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    for name in names:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


class ArrayCache:
    """The cache of one ``kind`` (sub-folder); ``what`` names it in warnings."""

    def __init__(self, kind: str, what: str, *, flat: bool = False, compress: bool = True):
        self.kind, self.what, self.flat, self.compress = kind, what, flat, compress

    def folder(self) -> Path | None:
        """This kind's folder (see :func:`cache_dir`), or ``None`` when the cache is off."""
        return cache_dir(self.kind, flat=self.flat)

    def load(
        self,
        key: str,
        names: Sequence[str],
        shapes: Mapping[str, tuple[int, ...]] | None = None,
    ) -> dict[str, np.ndarray] | None:
        """The arrays ``names`` (in this order) stored under ``key``; ``None``: cache off or no
        file. A file that cannot be read, fails its key or digest, or holds arrays of other
        ``shapes`` gives a warning and ``None``, so that the caller rebuilds and stores."""
        folder = self.folder()
        if folder is None:
            return None
        path = folder / f"{key}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {name: f[name] for name in names}
                stored_key, digest = str(f["key"]), str(f["digest"])
            if stored_key != key:
                raise ValueError("it was written for another setting")
            if arrays_digest(arrays, names) != digest:
                raise ValueError("its digest does not match its arrays")
            for name, shape in (shapes or {}).items():
                if arrays[name].shape != tuple(shape):
                    raise ValueError(f"{name} has shape {arrays[name].shape}, expected {shape}")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(
                f"{self.what} cache file {path} is unusable ({err}); rebuilding it",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return arrays

    def store(
        self, key: str, arrays: Mapping[str, np.ndarray], names: Sequence[str] | None = None
    ) -> Path | None:
        """Write the arrays ``names`` (default: all) under ``key`` atomically; ``None`` when the
        cache is off. A folder that cannot be written gives a warning (no file, no error)."""
        folder = self.folder()
        if folder is None:
            return None
        names = tuple(arrays) if names is None else tuple(names)
        clash = [n for n in names if n in _RESERVED]
        if clash:
            raise ValueError(f"array names {clash} are reserved in a cache file")
        buf = io.BytesIO()
        save = np.savez_compressed if self.compress else np.savez
        save(
            buf,
            key=np.array(key),
            digest=np.array(arrays_digest(arrays, names)),
            **{name: np.ascontiguousarray(arrays[name]) for name in names},
        )
        try:
            return atomic_write(folder / f"{key}.npz", buf.getvalue())
        except OSError as err:
            warnings.warn(
                f"cannot write the {self.what} cache in {folder} ({err}); set {ENV_VAR} to a "
                "writable folder, or to 'off'",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
