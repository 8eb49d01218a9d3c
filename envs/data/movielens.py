"""``movielens``: MovieLens ratings you supply, as a masked multi-output population.

The file is read offline from ``path`` (or the directory in the environment variable
``CHOICEMARKET_MOVIELENS``): either

- ``ratings.dat`` of ml-10M / ml-1M, one ``UserID::MovieID::Rating::Timestamp`` per line, or
- ``ratings.csv`` of ml-latest / ml-25M / ml-20M, header ``userId,movieId,rating,timestamp``.

``path`` may name the file or a directory holding one of them. The ``n_items`` most-rated
movies are kept (ties: lower movie id first), columns in increasing movie id; every user with
at least one rating among them is a user (the paper reports 69,474 users for ml-10M and 200
movies). Targets are the ratings as ``n_items`` masked outputs (the masked multi-output squared
loss, normalised by ``n_items`` or by the number rated: ``normalise``). Covariates are the
user factors of a rank-``rank`` biased factorisation of the kept ratings, fitted by
alternating least squares (:mod:`.ratings` says how this differs from the Surprise SVD the
published experiments used). No intercept unless ``intercept=True``.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np

from .datafile import DataFileError, numbered_text_lines, read_text_lines
from .preprocess import MissingDataFile
from .ratings import check_factorisation, check_int, ratings_dataset
from .registry import Dataset, register_dataset

ENV_VAR = "CHOICEMARKET_MOVIELENS"
FILE_NAMES: tuple[str, ...] = ("ratings.dat", "ratings.csv")
CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
RATING_RANGE = (0.5, 5.0)  # MovieLens stars (ml-1M/10M: 1-5 or halves, ml-latest: 0.5-5)
MAX_ID = 2**31 - 1
SNIFF_BYTES = 4096  # the format is decided from at most this many bytes of the first line
DOWNLOAD = (
    "Download MovieLens from https://grouplens.org/datasets/movielens/ (e.g. ml-10m.zip, "
    "which holds ml-10M100K/ratings.dat, or ml-latest.zip with ratings.csv), unzip it and "
    f"pass dataset_options={{'path': '<folder or file>'}} or set {ENV_VAR}."
)


def resolve_path(path: str | os.PathLike | None) -> Path:
    """The ratings file named by ``path`` (a file or a folder) or by ``$CHOICEMARKET_MOVIELENS``.

    Raises ``MissingDataFile`` (a ``FileNotFoundError`` and a ``ValueError``) naming every
    place looked at and how to get the data.
    """
    if path is None:
        path = os.environ.get(ENV_VAR)
        if not path:
            raise MissingDataFile(
                f"movielens needs a ratings file: no 'path' dataset option and {ENV_VAR} is "
                f"not set. {DOWNLOAD}"
            )
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file or folder path, got {path!r}")
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        for name in FILE_NAMES:
            if (p / name).is_file():
                return p / name
        tried = ", ".join(str(p / n) for n in FILE_NAMES)
        raise MissingDataFile(f"movielens: no ratings file at {tried}. {DOWNLOAD}")
    raise MissingDataFile(f"movielens: {p} does not exist. {DOWNLOAD}")


@functools.lru_cache(maxsize=4)
def read_ratings(path: str) -> np.ndarray:
    """``(n, 3)`` float array of (user id, movie id, rating) from a ratings.dat/.csv file.

    The format is decided from the first line, read with a bounded read (``SNIFF_BYTES``), and
    the file is then streamed line by line. Errors name the file and line and never echo its
    content: a line that does not parse, an id that is not an integer in ``[0, MAX_ID]``, a
    rating outside ``RATING_RANGE`` (MovieLens' 0.5-5 stars).
    """
    p = Path(path)
    lines = read_text_lines(p)
    sep, skip = _sniff(p)
    try:
        rows = (line.replace("::", ",") for line in lines) if sep == "::" else lines
        if skip:
            next(rows, None)
        with warnings.catch_warnings():  # an empty file is reported below, as an error
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(rows, delimiter=",", usecols=(0, 1, 2), ndmin=2, dtype=np.float64)
    except ValueError as exc:
        if isinstance(exc, DataFileError):
            raise
        line = _first_bad_line(p, sep, skip)
        raise DataFileError(
            f"{p}, line {line}: malformed, expected numbers "
            f"'user{sep}movie{sep}rating{sep}timestamp'"
        ) from None
    if not len(table):
        raise DataFileError(f"{p}: holds no ratings")
    low, high = RATING_RANGE
    bad_rating = ~((table[:, 2] >= low) & (table[:, 2] <= high))
    ids = table[:, :2]
    bad_id = ~((ids >= 0) & (ids <= MAX_ID) & (ids == np.floor(ids))).all(axis=1)
    if bad_rating.any() or bad_id.any():
        k = int(np.flatnonzero(bad_rating | bad_id)[0])
        what = (
            f"user and movie ids must be integers in [0, {MAX_ID}]"
            if bad_id[k]
            else f"rating must be in [{low}, {high}]"
        )
        raise DataFileError(f"{p}, line {_data_line(p, k, skip)}: {what}")
    table.flags.writeable = False
    return table


def _sniff(p: Path) -> tuple[str, int]:
    """``(separator, header lines)`` from the first line of ``p`` (at most ``SNIFF_BYTES``)."""
    try:
        with open(p, "rb") as f:
            first = f.readline(SNIFF_BYTES).strip()
    except OSError as exc:  # the one-line error of the readers (datafile.read_lines)
        raise DataFileError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if b"::" in first:
        return "::", 0
    if tuple(c.strip() for c in first.split(b",")) == tuple(h.encode() for h in CSV_HEADER):
        return ",", 1
    raise DataFileError(
        f"movielens: {p} is neither 'u::i::r::t' lines (ratings.dat) nor a CSV with header "
        f"{','.join(CSV_HEADER)} (ratings.csv)"
    )


def _first_bad_line(p: Path, sep: str, skip: int) -> int:
    """Number of the first data line of ``p`` without 4 numeric fields (error path only)."""
    for number, line in numbered_text_lines(p):
        if number <= skip or not line.strip():
            continue
        fields = line.strip().split(sep)
        try:
            if len(fields) < 3:
                return number
            [float(c) for c in fields[:3]]
        except ValueError:
            return number
    return number


def _data_line(p: Path, k: int, skip: int) -> int:
    """Line number of data row ``k`` (0-based; blank lines are not rows) of ``p``."""
    seen = -1
    for number, line in numbered_text_lines(p):
        if number > skip and line.strip():
            seen += 1
            if seen == k:
                return number
    return -1


def rating_matrix(table: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users x top-``n_items`` movies: ratings (NaN unrated), user ids, movie ids."""
    users, movies, ratings = table[:, 0], table[:, 1], table[:, 2]
    movie_ids, counts = np.unique(movies, return_counts=True)
    if len(movie_ids) < n_items:
        raise ValueError(
            f"n_items must be <= the number of movies in the file ({len(movie_ids)}), got {n_items}"
        )
    top = np.sort(movie_ids[np.argsort(-counts, kind="stable")[:n_items]])
    keep = np.isin(movies, top)
    user_ids, row = np.unique(users[keep], return_inverse=True)
    col = np.searchsorted(top, movies[keep])
    R = np.full((len(user_ids), n_items), np.nan)
    R[row, col] = ratings[keep]  # a repeated (user, movie) pair keeps its last rating
    return R, user_ids.astype(np.int64), top.astype(np.int64)


def load_movielens(
    path: str | None = None,
    n_items: int = 200,
    rank: int = 5,
    normalise: str = "items",
    intercept: bool = False,
    mf_reg: float = 0.02,
    mf_iterations: int = 20,
    seed: int = 0,
) -> Dataset:
    """MovieLens ratings from ``path`` as ``n_items`` masked outputs, rank-``rank`` user factors."""
    n_items = check_int("n_items", n_items, 1)
    rank, normalise, mf_reg, mf_iterations, seed = check_factorisation(
        rank, normalise, mf_reg, mf_iterations, seed
    )
    file = resolve_path(path)
    R, user_ids, movie_ids = rating_matrix(read_ratings(str(file.resolve())), n_items)
    if len(user_ids) < 2:
        raise ValueError(f"movielens: {file} has fewer than 2 users who rated the top movies")
    return ratings_dataset(
        "movielens",
        R,
        rank,
        normalise,
        intercept,
        mf_reg,
        mf_iterations,
        seed,
        description=(
            f"MovieLens ratings from {file.name}: {len(user_ids)} users x the {n_items} most-rated "
            f"movies; rank-{rank} user factors (biased ALS) as covariates."
        ),
        item_ids=movie_ids,
        extra={"user_ids": user_ids, "file": str(file)},
    )


register_dataset("movielens", load_movielens)
