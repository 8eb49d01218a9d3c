"""Embedded text market: the UCI "Sentiment Labelled Sentences" with precomputed embeddings.

3 x 1,000 review sentences (Kotzias, Denil, de Freitas, Smyth, KDD 2015; UCI dataset 331,
CC BY 4.0) from three sites, one learner each: ``amazon`` (0, cell phones), ``imdb`` (1, movies),
``yelp`` (2, restaurants); 500 positive and 500 negative per site. ``y = 1`` positive.

Features: the all-MiniLM-L6-v2 sentence embedding (384-d, unit norm) of each sentence, shipped
precomputed as float16 in ``files/uci_sentiment_minilm.npy.gz`` (row i belongs to row i of
``files/uci_sentiment_sentences.tsv.gz``), so loading needs neither torch nor the model. Each
embedding column is standardised to mean 0, std 1 and ``intercept=True`` (the default) appends a
constant 1.0 column. ``groups`` is the site index, so ``preferences="category"`` gives each site
its own preferred learner. ``scripts/build_sentiment_embeddings.py`` rebuilds both files from the
raw UCI text files.
"""

from __future__ import annotations

import functools
import gzip
import io
from importlib.resources import files
from pathlib import Path

import numpy as np

from .datafile import DataFileError
from .embeddings import embedding_features
from .minilm import EMBEDDING_DIM, MODEL_ID
from .preprocess import check_bool
from .registry import Dataset, register_dataset

SOURCES: tuple[str, ...] = ("amazon", "imdb", "yelp")
RAW_FILES: dict[str, str] = {
    "amazon": "amazon_cells_labelled.txt",
    "imdb": "imdb_labelled.txt",
    "yelp": "yelp_labelled.txt",
}
SENTENCES_FILE = "uci_sentiment_sentences.tsv.gz"
EMBEDDINGS_FILE = "uci_sentiment_minilm.npy.gz"
HEADER = ("source", "label", "sentence")
CITATION = (
    "Kotzias, Denil, de Freitas, Smyth, 'From Group to Individual Labels using Deep Features', "
    "KDD 2015; UCI Machine Learning Repository dataset 331 (CC BY 4.0)."
)
_DATA_PACKAGE = "choicemarket.envs.data"


def read_raw_sentences(folder: str | Path) -> tuple[list[str], list[int], list[str]]:
    """Sources, labels and sentences of the three raw UCI files in ``folder``, in SOURCES order.

    Each line is ``sentence<TAB>score`` (score 0 or 1); a first line ``sentence<TAB>score`` is
    skipped. Lines are split on ``\\n`` only (the IMDB file contains U+0085); sentences are
    stripped of surrounding spaces.
    """
    sources: list[str] = []
    labels: list[int] = []
    sentences: list[str] = []
    for source in SOURCES:
        path = Path(folder) / RAW_FILES[source]
        if not path.is_file():
            raise ValueError(f"missing UCI sentiment file {path}")
        raw = path.read_bytes()
        try:
            lines = raw.decode("utf-8").split("\n")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise DataFileError(f"{path}, line {line}: not UTF-8 text") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip() or (number == 1 and line.strip() == "sentence\tscore"):
                continue
            text, sep, score = line.rpartition("\t")
            if not sep or score.strip() not in ("0", "1"):
                raise ValueError(f"{path}:{number}: expected 'sentence<TAB>0|1', got {line!r}")
            sources.append(source)
            labels.append(int(score))
            sentences.append(text.strip())
    return sources, labels, sentences


def sentences_tsv(sources: list[str], labels: list[int], sentences: list[str]) -> bytes:
    """The shipped sentence table as gzip bytes (fixed mtime, so rebuilds are byte-identical)."""
    rows = ["\t".join(HEADER)] + [
        f"{s}\t{y}\t{t}" for s, y, t in zip(sources, labels, sentences, strict=True)
    ]
    return gzip.compress(("\n".join(rows) + "\n").encode("utf-8"), mtime=0)


def embeddings_npy(E: np.ndarray) -> bytes:
    """The shipped embeddings as gzip bytes of a float16 ``.npy`` (fixed mtime)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(E, dtype=np.float16), allow_pickle=False)
    return gzip.compress(buf.getvalue(), mtime=0)


@functools.lru_cache(maxsize=1)
def read_shipped() -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """``(sentences, labels, groups, embeddings float16)`` from the packaged files, cached."""
    folder = files(_DATA_PACKAGE) / "files"
    with (folder / SENTENCES_FILE).open("rb") as raw:
        lines = gzip.decompress(raw.read()).decode("utf-8").split("\n")
    if tuple(lines[0].split("\t")) != HEADER:
        raise RuntimeError(f"{SENTENCES_FILE}: malformed header {lines[0]!r}")
    rows = [line.split("\t", 2) for line in lines[1:] if line]
    with (folder / EMBEDDINGS_FILE).open("rb") as raw:
        E = np.load(io.BytesIO(gzip.decompress(raw.read())), allow_pickle=False)
    if E.shape != (len(rows), EMBEDDING_DIM) or any(len(r) != 3 for r in rows):
        raise RuntimeError(f"{EMBEDDINGS_FILE} does not match {SENTENCES_FILE}")
    groups = np.array([SOURCES.index(r[0]) for r in rows], dtype=np.int64)
    labels = np.array([int(r[1]) for r in rows], dtype=np.int64)
    for a in (groups, labels, E):
        a.flags.writeable = False
    return tuple(r[2] for r in rows), labels, groups, E


def load_uci_sentiment(intercept: bool = True) -> Dataset:
    """3,000 UCI review sentences: standardised MiniLM embeddings, y = positive, group = site."""
    intercept = check_bool("intercept", intercept)
    sentences, labels, groups, E = read_shipped()
    X, names = embedding_features(E, intercept)
    return Dataset(
        name="uci-sentiment",
        X=X,
        y=labels,
        task="binary",
        groups=groups,
        feature_names=names,
        description=(
            "UCI sentiment labelled sentences, 1,000 each from Amazon, IMDB and Yelp reviews "
            "(group = site); standardised all-MiniLM-L6-v2 embeddings; y = 1 positive. "
            f"Source: {CITATION}"
        ),
        extra={
            "source": "UCI sentiment labelled sentences",
            "categories": SOURCES,
            "model": MODEL_ID,
            "texts": sentences,
        },
    )


register_dataset("uci-sentiment", load_uci_sentiment)
