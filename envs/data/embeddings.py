"""Sentence embeddings of texts with an on-disk cache.

``embed_texts(texts, encoder="numpy", cache_dir=None)`` returns float32 ``(n, 384)`` unit-norm
all-MiniLM-L6-v2 embeddings. ``encoder`` is ``"numpy"`` (the torch-free forward pass of
:mod:`.minilm`), ``"sentence-transformers"`` (the same model run by sentence-transformers and
torch; the two agree to about 1e-6) or any object with ``model_id`` and ``encode(texts,
batch_size)``.

The cache keeps one ``.npz`` file per call that computed something, under
``<cache_dir>/<model id with / as __>/``, holding the sha256 of each text (utf-8) and its
embedding; a later call only encodes the texts whose hash is in no file. Each file is named by
the sha256 of its own bytes and written atomically (temporary file + rename). On load a file is
verified (digest, shapes, finite values); one that fails (truncated, emptied, tampered with, of
the wrong width or length, or from an older version of this cache) is removed with a warning
and its texts are encoded and stored again. An encoder's output is checked (finite, ``(n,
384)``) before it is used or stored.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .atomic import atomic_write
from .minilm import EMBEDDING_DIM, MODEL_ID, MiniLMEncoder
from .preprocess import design_matrix

ENCODERS: tuple[str, ...] = ("numpy", "sentence-transformers")
# all-MiniLM-L6-v2 has three dead output dimensions, 127, 223 and 319: their final LayerNorm gain
# and bias are below 1e-7, so they hold rounding noise (|value| < 1e-7). Columns whose range is
# below this are treated as constant.
DEAD_SPREAD = 1e-6


class TextEncoder(Protocol):
    model_id: str

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray: ...


class SentenceTransformersEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers (torch), from the packaged weights."""

    model_id = MODEL_ID

    def __init__(self) -> None:
        from .minilm import model_dir

        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "encoder='sentence-transformers' needs sentence-transformers and torch; "
                "encoder='numpy' needs neither"
            ) from exc
        self.model = SentenceTransformer(str(model_dir()), device="cpu")

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        out = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), EMBEDDING_DIM)


@functools.lru_cache(maxsize=len(ENCODERS))
def get_encoder(name: str) -> TextEncoder:
    """The encoder called ``name`` (one of :data:`ENCODERS`), built once per process."""
    if name == "numpy":
        return MiniLMEncoder()
    if name == "sentence-transformers":
        return SentenceTransformersEncoder()
    raise ValueError(f"encoder must be one of {ENCODERS}, got {name!r}")


def embedding_features(E: np.ndarray, intercept: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    """Embedding columns standardised to mean 0, std 1 (+ a constant column), and their names.

    Columns whose range is below ``DEAD_SPREAD`` (the model's dead dimensions) become 0, so
    float16 and float32 copies of the same embeddings give the same features.
    """
    E = np.array(E, dtype=np.float64)
    E[:, np.ptp(E, axis=0) < DEAD_SPREAD] = 0.0
    names = tuple(f"minilm_{j}" for j in range(E.shape[1]))
    return design_matrix(E, names, intercept)


def text_hash(text: str) -> str:
    """Hex sha256 of the utf-8 bytes of ``text`` (the cache key within one model)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeddings on disk keyed by (model id, text hash); see the module docstring."""

    def __init__(self, cache_dir: str | os.PathLike, model_id: str) -> None:
        self.folder = Path(cache_dir).expanduser() / model_id.replace("/", "__")

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(found, E)``: which ``keys`` are cached (bool (n,)) and their embeddings (n, 384).

        A file that fails :meth:`read` is removed with a warning; its texts count as not found,
        so the caller encodes and stores them again.
        """
        wanted = np.asarray(keys, dtype="S64")
        found = np.zeros(len(keys), dtype=bool)
        E = np.zeros((len(keys), EMBEDDING_DIM), dtype=np.float32)
        if not self.folder.is_dir() or not len(keys):
            return found, E
        for path in sorted(self.folder.glob("*.npz")):
            try:
                stored, embeddings = self.read(path)
            except ValueError as exc:
                warnings.warn(
                    f"embedding cache file {path} {exc}; removed, its texts will be encoded again",
                    stacklevel=3,
                )
                path.unlink(missing_ok=True)
                continue
            order = np.argsort(stored)
            pos = np.minimum(np.searchsorted(stored, wanted, sorter=order), len(stored) - 1)
            hit = stored[order[pos]] == wanted
            E[hit] = embeddings[order[pos[hit]]]
            found |= hit
        return found, E

    @staticmethod
    def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, embeddings)`` of one cache file, verified: its name is the sha256 of its
        bytes, ``keys`` is ``(n,)`` ``S64`` and ``embeddings`` finite float32 ``(n, 384)``;
        otherwise ValueError saying what is wrong."""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != path.stem:
            raise ValueError("does not match its sha256 (truncated, corrupted or an old format)")
        try:
            with np.load(path, allow_pickle=False) as chunk:
                keys, embeddings = chunk["keys"], chunk["embeddings"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"is unreadable ({type(exc).__name__})") from None
        if keys.dtype != np.dtype("S64") or keys.ndim != 1 or not len(keys):
            raise ValueError("holds no valid text hashes")
        if embeddings.dtype != np.float32 or embeddings.shape != (len(keys), EMBEDDING_DIM):
            raise ValueError(
                f"holds embeddings of shape {embeddings.shape}, expected ({len(keys)}, "
                f"{EMBEDDING_DIM}) float32"
            )
        if not np.isfinite(embeddings).all():
            raise ValueError("holds non-finite embeddings")
        return keys, embeddings

    def store(self, keys: Sequence[str], E: np.ndarray) -> Path:
        """Write one chunk with ``keys`` and their embeddings ``E`` (atomically), named by the
        sha256 of its bytes."""
        buf = io.BytesIO()
        np.savez(buf, keys=np.asarray(keys, dtype="S64"), embeddings=E.astype(np.float32))
        data = buf.getvalue()
        return atomic_write(self.folder / f"{hashlib.sha256(data).hexdigest()}.npz", data)


def _encode(model: TextEncoder, texts: list[str], batch_size: int) -> np.ndarray:
    """``model.encode(texts)`` checked: finite float32 ``(len(texts), 384)``, else ValueError."""
    E = np.asarray(model.encode(texts, batch_size=batch_size))
    if E.shape != (len(texts), EMBEDDING_DIM) or not np.isfinite(E).all():
        raise ValueError(
            f"encoder {getattr(model, 'model_id', model)!r} returned an array of shape {E.shape} "
            f"(finite: {bool(np.isfinite(E).all())}); expected finite ({len(texts)}, "
            f"{EMBEDDING_DIM})"
        )
    return E.astype(np.float32, copy=False)


def embed_texts(
    texts: Sequence[str],
    encoder: str | TextEncoder = "numpy",
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """float32 ``(len(texts), 384)`` unit-norm embeddings; cached texts are not encoded again."""
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must all be strings")
    model = get_encoder(encoder) if isinstance(encoder, str) else encoder
    if cache_dir is None:
        return _encode(model, texts, batch_size)
    cache = EmbeddingCache(cache_dir, model.model_id)
    keys = [text_hash(t) for t in texts]
    found, E = cache.lookup(keys)
    if not found.all():
        todo: dict[str, int] = {}
        for i in np.flatnonzero(~found):
            todo.setdefault(keys[i], int(i))
        first = list(todo.values())
        new = _encode(model, [texts[i] for i in first], batch_size)
        cache.store(list(todo), new)
        rows = {k: j for j, k in enumerate(todo)}
        missing = np.flatnonzero(~found)
        E[missing] = new[[rows[keys[i]] for i in missing]]
    return E
