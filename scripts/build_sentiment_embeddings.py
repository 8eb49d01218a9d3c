"""Rebuild the shipped UCI sentiment files from the raw UCI "Sentiment Labelled Sentences".

    python scripts/build_sentiment_embeddings.py RAW_DIR [--encoder numpy] [--out-dir DIR]
    python scripts/build_sentiment_embeddings.py RAW_DIR --compare [--limit N]  # time both

RAW_DIR holds amazon_cells_labelled.txt, imdb_labelled.txt and yelp_labelled.txt. Writes
uci_sentiment_sentences.tsv.gz and uci_sentiment_minilm.npy.gz (float16 all-MiniLM-L6-v2
embeddings) into --out-dir (default: the package's data folder), atomically. Prints the encoding
speed in sentences/s. --compare encodes with both encoders, prints both speeds and the largest
difference, and writes nothing.
"""

from __future__ import annotations

import argparse
import time
from importlib.resources import files
from pathlib import Path

import numpy as np

from choicemarket.envs.data.atomic import atomic_write
from choicemarket.envs.data.embeddings import ENCODERS, get_encoder
from choicemarket.envs.data.uci_sentiment import (
    EMBEDDINGS_FILE,
    SENTENCES_FILE,
    embeddings_npy,
    read_raw_sentences,
    sentences_tsv,
)


def timed_encode(name: str, sentences: list[str], batch_size: int) -> np.ndarray:
    """Encode ``sentences`` with encoder ``name``; print sentences/s (model loading excluded)."""
    encoder = get_encoder(name)
    start = time.perf_counter()
    E = encoder.encode(sentences, batch_size=batch_size)
    seconds = time.perf_counter() - start
    print(
        f"{name}: {len(sentences)} sentences in {seconds:.1f} s = {len(sentences) / seconds:.0f}/s"
    )
    return E


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("--encoder", choices=ENCODERS, default="numpy")
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="with --compare: N sentences only")
    args = parser.parse_args(argv)
    sources, labels, sentences = read_raw_sentences(args.raw_dir)
    if args.compare:
        if args.limit:  # an even spread over the three sites
            sentences = sentences[:: max(1, len(sentences) // args.limit)][: args.limit]
        E = {name: timed_encode(name, sentences, args.batch_size) for name in ENCODERS}
        diff = np.abs(E[ENCODERS[0]] - E[ENCODERS[1]]).max()
        print(f"max |numpy - sentence-transformers| = {diff:.2e}")
        return
    E = timed_encode(args.encoder, sentences, args.batch_size)
    out = args.out_dir or Path(str(files("choicemarket.envs.data") / "files"))
    for name, data in (
        (SENTENCES_FILE, sentences_tsv(sources, labels, sentences)),
        (EMBEDDINGS_FILE, embeddings_npy(E)),
    ):
        path = atomic_write(out / name, data)
        print(f"wrote {path} ({len(data) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
