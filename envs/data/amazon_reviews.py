"""Amazon Reviews 2023 (McAuley Lab): a sentiment market with one learner per product category.

The data are user-supplied: the published per-category review files ``<Category>.jsonl`` (or
``.jsonl.gz``), e.g. ``All_Beauty.jsonl``, one JSON object per line with the fields ``rating``
(1-5), ``title``, ``text``, ``images``, ``asin``, ``parent_asin``, ``user_id``, ``timestamp``,
``helpful_vote`` and ``verified_purchase``. Only ``rating`` and ``text`` (and ``title`` with
``include_title=True``) are read.

Per category, ``reviews_per_category`` non-blank lines (default 3,333, all of them if the file has
fewer) are drawn uniformly without replacement by a generator seeded with ``seed`` and the
category name, so a category's sample does not depend on which other categories are loaded.
Lines are read with a length limit (``MAX_LINE_BYTES``, 4 MiB): a longer line, a NUL byte, text
that is not UTF-8 or a truncated ``.gz`` raises ValueError naming the file and line.
``y = 1`` iff ``rating >= 4``; ``groups`` is the category's index in ``categories`` (the
category preference rule gives each category its own learner). Features: the 384-d
all-MiniLM-L6-v2 embedding of the review text, each column standardised, plus a constant column
with ``intercept=True`` (the published setting; 9 categories x 3,333 reviews). Embeddings are
computed by ``encoder`` (``"numpy"``: no torch needed, or ``"sentence-transformers"``) and cached
under ``cache_dir`` if given (see :mod:`.embeddings`); both need the ``text`` extra.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .datafile import DEFAULT_MAX_LINE_BYTES, read_lines
from .embeddings import ENCODERS, embed_texts, embedding_features
from .minilm import MODEL_ID
from .preprocess import check_bool
from .registry import Dataset, register_dataset

SUFFIXES: tuple[str, ...] = (".jsonl", ".jsonl.gz")
POSITIVE_RATING = 4.0
# Longest review line read (the longest published review is a few tens of KB): a longer line,
# e.g. a small .gz expanding to one huge line, is an error, and no more than this is held.
MAX_LINE_BYTES = DEFAULT_MAX_LINE_BYTES
DEFAULT_REVIEWS_PER_CATEGORY = 3333
CITATION = (
    "Hou, Li, He, Yan, Chen, McAuley, 'Bridging Language and Items for Retrieval and "
    "Recommendation' (Amazon Reviews 2023), arXiv:2403.03952, 2024."
)


def category_files(root: str | os.PathLike, categories: Sequence[str] | None) -> dict:
    """``{category: path}``: the named categories, or every ``*.jsonl[.gz]`` file, sorted."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise ValueError(f"root must be a folder of <Category>.jsonl files, got {folder}")
    if categories is None:
        found = {}
        for path in sorted(folder.iterdir()):
            for suffix in SUFFIXES:
                if path.is_file() and path.name.endswith(suffix):
                    found[path.name[: -len(suffix)]] = path
        if not found:
            raise ValueError(f"root {folder} holds no <Category>.jsonl files")
        return dict(sorted(found.items()))
    if isinstance(categories, str) or not all(isinstance(c, str) and c for c in categories):
        raise ValueError(f"categories must be a list of category names, got {categories!r}")
    if not categories or len(set(categories)) != len(categories):
        raise ValueError(f"categories must be a non-empty list of distinct names: {categories!r}")
    out = {}
    for name in categories:
        paths = [folder / f"{name}{s}" for s in SUFFIXES if (folder / f"{name}{s}").is_file()]
        if not paths:
            raise ValueError(f"categories: no file {folder / (name + SUFFIXES[0])} (or .gz)")
        out[name] = paths[0]
    return out


def _lines(path: Path) -> Iterator[bytes]:
    """Raw lines of ``path``, at most ``MAX_LINE_BYTES`` each (see :func:`.datafile.read_lines`)."""
    for _, line in read_lines(path, MAX_LINE_BYTES):
        yield line


def category_rng(seed: int, category: str) -> np.random.Generator:
    """The generator that samples ``category``: seeded by ``seed`` and the category name."""
    tag = int.from_bytes(hashlib.sha256(category.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, tag])


def sample_reviews(
    path: Path, n: int, rng: np.random.Generator, include_title: bool = False
) -> tuple[list[str], np.ndarray]:
    """Texts and ratings of ``n`` uniformly drawn non-blank lines of ``path`` (file order).

    Two passes: count the lines, then parse only the drawn ones. A drawn line that is not a JSON
    object, or lacks a numeric ``rating`` in [1, 5] or a string ``text`` (``title``), raises
    ValueError naming the file, the line and the field.
    """
    total = sum(1 for line in _lines(path) if line.strip())
    if total == 0:
        raise ValueError(f"{path}: no reviews")
    chosen = np.sort(rng.choice(total, size=min(n, total), replace=False))
    texts: list[str] = []
    ratings = np.empty(len(chosen), dtype=np.float64)
    k = -1  # index of the current non-blank line
    for number, line in enumerate(_lines(path), start=1):
        if len(texts) == len(chosen):
            break
        if not line.strip():
            continue
        k += 1
        if k != chosen[len(texts)]:
            continue
        ratings[len(texts)], text = _parse_review(path, number, line, include_title)
        texts.append(text)
    return texts, ratings


def _parse_review(path: Path, number: int, line: bytes, include_title: bool) -> tuple[float, str]:
    """``(rating, text)`` of one JSONL line, or ValueError naming the file, line and field."""
    where = f"{path}, line {number}"
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    rating = record.get("rating")
    if (
        isinstance(rating, bool)
        or not isinstance(rating, numbers.Real)
        or not 1.0 <= float(rating) <= 5.0
    ):
        raise ValueError(f"{where}: field 'rating' must be a number in [1, 5], got {rating!r}")
    fields = ("title", "text") if include_title else ("text",)
    for name in fields:
        if not isinstance(record.get(name), str):
            raise ValueError(f"{where}: field {name!r} must be a string, got {record.get(name)!r}")
    text = record["text"]
    if include_title and record["title"]:
        text = f"{record['title']}. {text}"
    return float(rating), text


def load_amazon_reviews(
    root: str | os.PathLike | None = None,
    categories: Sequence[str] | None = None,
    reviews_per_category: int = DEFAULT_REVIEWS_PER_CATEGORY,
    seed: int = 0,
    encoder: str = "numpy",
    cache_dir: str | os.PathLike | None = None,
    include_title: bool = False,
    intercept: bool = True,
) -> Dataset:
    """Sampled Amazon Reviews 2023: MiniLM embeddings, y = rating >= 4, group = category."""
    if root is None:
        raise ValueError("root is required: a folder of Amazon Reviews 2023 <Category>.jsonl files")
    if (
        isinstance(reviews_per_category, bool)
        or not isinstance(reviews_per_category, numbers.Integral)
        or reviews_per_category < 1
    ):
        raise ValueError(
            f"reviews_per_category must be an integer >= 1, got {reviews_per_category!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
    include_title = check_bool("include_title", include_title)
    intercept = check_bool("intercept", intercept)
    paths = category_files(root, categories)
    texts: list[str] = []
    ratings, groups, counts = [], [], {}
    for g, (name, path) in enumerate(paths.items()):
        rng = category_rng(int(seed), name)
        t, r = sample_reviews(path, int(reviews_per_category), rng, include_title)
        texts += t
        ratings.append(r)
        groups.append(np.full(len(t), g, dtype=np.int64))
        counts[name] = len(t)
    rating = np.concatenate(ratings)
    E = embed_texts(texts, encoder=encoder, cache_dir=cache_dir)
    X, names = embedding_features(E, intercept)
    return Dataset(
        name="amazon-reviews",
        X=X,
        y=(rating >= POSITIVE_RATING).astype(np.int64),
        task="binary",
        groups=np.concatenate(groups),
        feature_names=names,
        description=(
            f"Amazon Reviews 2023, {len(paths)} categories (group = category), up to "
            f"{reviews_per_category} sampled reviews each; standardised all-MiniLM-L6-v2 "
            f"embeddings of the review text; y = 1 iff rating >= 4. Source: {CITATION}"
        ),
        extra={
            "source": "Amazon Reviews 2023",
            "categories": tuple(paths),
            "reviews_per_category": counts,
            "rating": rating,
            "model": MODEL_ID,
            "texts": tuple(texts),
        },
    )


register_dataset("amazon-reviews", load_amazon_reviews)
