"""Bad or hostile data files give a one-line ValueError naming the file (and line/column)."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from choicemarket.envs.data import acs, amazon_reviews, datafile, embeddings, load_dataset
from choicemarket.envs.data.folktables_acs import TASKS, pums_path
from choicemarket.envs.data.minilm import EMBEDDING_DIM

# ---------------------------------------------------------------- ACS PUMS (both readers)

FOLK_COLUMNS = TASKS["acs-employment"].columns


def _folk_text(n: int = 6) -> str:
    rows = [",".join(FOLK_COLUMNS)]
    for i in range(n):
        rows.append(",".join(str(20 + i) if c == "AGEP" else str(1 + i % 2) for c in FOLK_COLUMNS))
    return "\n".join(rows) + "\n"


def _acs_text(n: int = 6) -> str:
    columns = acs._COLUMNS
    rows = [",".join(columns)]
    for i in range(n):
        cells = {c: str(1 + i % 2) for c in columns}
        cells.update(AGEP=str(20 + i), PINCP=str(30000 + 10000 * i), MSP="N", PUMA="01-01301")
        rows.append(",".join(cells[c] for c in columns))
    return "\n".join(rows) + "\n"


def _folk_file(tmp_path, data: bytes):
    path = pums_path(tmp_path, "AL", 2018)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _load_folk(tmp_path):
    return load_dataset("acs-employment", root=str(tmp_path), state="AL", year=2018)


def _set_cell(text: str, line: int, column: str, value: str, columns) -> str:
    lines = text.split("\n")
    cells = lines[line - 1].split(",")
    cells[list(columns).index(column)] = value
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_good_files_still_load(tmp_path):
    data = _load_folk(_folk_file(tmp_path, _folk_text().encode()).parents[2])
    assert data.X.shape == (6, 16)
    (tmp_path / "acs.csv").write_text(_acs_text())
    table = acs.read_table_file(tmp_path / "acs.csv")
    assert np.isnan(table["MSP"]).all() and table["PUMA"][0] == "01-01301"


BROKEN = {
    "short row": (lambda t: t.replace("\n21,", "\n21\n", 1), "line 3"),
    "cut mid-row": (lambda t: t[: t.rindex("\n", 0, -1) + 9], "line 7"),
    "NUL bytes": (lambda t: t.replace("\n22,", "\n22\0,", 1), "line 4.*NUL"),
    "letters": (lambda t: t.replace("\n23,", "\nabc,", 1), "line 5, column AGEP"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_folktables_broken_file_names_path_and_line(tmp_path, case):
    edit, match = BROKEN[case]
    path = _folk_file(tmp_path, edit(_folk_text()).encode())
    with pytest.raises(ValueError, match=match) as exc:
        _load_folk(tmp_path)
    assert str(path) in _one_line(exc)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_acs_broken_file_names_path_and_line(tmp_path, case):
    edit, match = BROKEN[case]
    path = tmp_path / "acs.csv"
    path.write_bytes(edit(_acs_text()).encode())
    with pytest.raises(ValueError, match=match) as exc:
        acs.read_table_file(path)
    assert str(path) in _one_line(exc)


def test_folktables_not_utf8(tmp_path):
    path = _folk_file(tmp_path, _folk_text().encode().replace(b"\n21,", b"\n2\xff1,", 1))
    with pytest.raises(ValueError, match="line 3: not UTF-8") as exc:
        _load_folk(tmp_path)
    assert str(path) in _one_line(exc)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e308", "1e10"])
def test_folktables_rejects_non_finite_or_absurd_cells(tmp_path, value):
    """Before: inf or 1e308 silently made that feature's standardised column all 0."""
    text = _set_cell(_folk_text(), 4, "SCHL", value, FOLK_COLUMNS)
    path = _folk_file(tmp_path, text.encode())
    with pytest.raises(ValueError, match="line 4, column SCHL.*not a finite number") as exc:
        _load_folk(tmp_path)
    assert str(path) in _one_line(exc)


@pytest.mark.parametrize("value", ["inf", "1e308"])
def test_acs_rejects_non_finite_or_absurd_cells(tmp_path, value):
    path = tmp_path / "acs.csv"
    path.write_text(_set_cell(_acs_text(), 3, "DENSITY", value, acs._COLUMNS))
    with pytest.raises(ValueError, match="line 3, column DENSITY") as exc:
        acs.read_table_file(path)
    assert str(path) in _one_line(exc)


def test_acs_truncated_gzip(tmp_path):
    path = tmp_path / "acs.csv.gz"
    whole = gzip.compress(_acs_text(200).encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="truncated gzip") as exc:
        acs.read_table_file(path)
    assert str(path) in _one_line(exc)


def test_packaged_acs_tables_unchanged():
    table = acs.read_table("ma", 2019)
    assert len(table["AGEP"]) > 5000 and np.isfinite(table["AGEP"]).all()


# ---------------------------------------------------------------- MovieLens


def _ratings_csv(tmp_path, rows: list[str]):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    return path


def _some_ratings() -> list[str]:
    return [f"{u},{m},{1 + (u + m) % 5}.0,9" for u in range(1, 6) for m in range(1, 5)]


@pytest.mark.parametrize("rating", ["1e200", "inf", "7", "-1"])
def test_movielens_rating_out_of_range_names_path(tmp_path, rating):
    """Before: 1e200 gave 'X contains NaN or inf' with no path."""
    rows = _some_ratings()
    rows[5] = f"2,2,{rating},9"
    path = _ratings_csv(tmp_path, rows)
    with pytest.raises(ValueError, match="line 7.*rating") as exc:
        load_dataset("movielens", path=str(path), n_items=3, rank=2)
    assert str(path) in _one_line(exc)


def test_movielens_does_not_echo_file_content(tmp_path):
    secret = "password=hunter2"
    path = tmp_path / "ratings.csv"
    path.write_text(secret + "\n" + "x" * 100 + "\n")
    with pytest.raises(ValueError) as exc:
        load_dataset("movielens", path=str(path))
    message = _one_line(exc)
    assert str(path) in message and "hunter2" not in message


def test_movielens_sniffs_the_format_from_a_bounded_read(tmp_path, monkeypatch):
    """A huge file that is not ratings is rejected after reading its first bytes only."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"\x89PNG" + b"\0" * (8 << 20))
    from choicemarket.envs.data import movielens

    movielens.read_ratings.cache_clear()
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="neither") as exc:
            movielens.read_ratings(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in _one_line(exc)
    assert peak < 1 << 20


@pytest.mark.parametrize(
    "line, match",
    [("2,2", "line 3"), ("2,x,3,9", "line 3"), ("2.5,2,3,9", "line 3.*user")],
)
def test_movielens_malformed_rows_name_the_line(tmp_path, line, match):
    rows = _some_ratings()
    rows[1] = line
    path = _ratings_csv(tmp_path, rows)
    with pytest.raises(ValueError, match=match) as exc:
        load_dataset("movielens", path=str(path), n_items=3, rank=2)
    assert str(path) in _one_line(exc)


def test_movielens_dat_format_still_loads(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("\n".join(r.replace(",", "::") for r in _some_ratings()) + "\n")
    data = load_dataset("movielens", path=str(path), n_items=3, rank=2)
    assert data.y.shape == (5, 3)


# ---------------------------------------------------------------- Amazon reviews


def _reviews(n: int) -> bytes:
    return b"".join(
        json.dumps({"rating": 1 + i % 5, "text": f"review number {i}"}).encode() + b"\n"
        for i in range(n)
    )


def test_amazon_truncated_gzip_names_path(tmp_path):
    """Before: EOFError with no path."""
    whole = gzip.compress(_reviews(2000))
    path = tmp_path / "Books.jsonl.gz"
    path.write_bytes(whole[: len(whole) - 50])
    with pytest.raises(ValueError, match="truncated gzip") as exc:
        amazon_reviews.sample_reviews(path, 10, np.random.default_rng(0))
    assert str(path) in _one_line(exc)


def test_amazon_huge_line_is_rejected_with_bounded_memory(tmp_path):
    """Before: a small .gz holding one huge line was read whole into memory."""
    huge = b'{"rating": 5, "text": "' + b"a" * (8 * datafile.DEFAULT_MAX_LINE_BYTES) + b'"}\n'
    path = tmp_path / "Books.jsonl.gz"
    path.write_bytes(gzip.compress(_reviews(3) + huge + _reviews(3)))
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="line 4: line longer than") as exc:
            amazon_reviews.sample_reviews(path, 2, np.random.default_rng(0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in _one_line(exc)
    assert peak < 3 * datafile.DEFAULT_MAX_LINE_BYTES  # the line is 8 times the limit


@pytest.mark.parametrize("bad", [b"\xff\xfe not utf-8", b'{"rating": 5, "te\0xt": "a"}'])
def test_amazon_binary_lines_name_path(tmp_path, bad):
    path = tmp_path / "Books.jsonl"
    path.write_bytes(_reviews(2) + bad + b"\n")
    with pytest.raises(ValueError, match="line 3") as exc:
        amazon_reviews.sample_reviews(path, 3, np.random.default_rng(0))
    assert str(path) in _one_line(exc)


# ---------------------------------------------------------------- embeddings cache


class FakeEncoder:
    """Deterministic unit vectors from the text hash; counts the texts it encodes."""

    model_id = "test/fake-encoder"

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, texts, batch_size=32):
        self.encoded += len(texts)
        out = np.empty((len(texts), EMBEDDING_DIM), np.float32)
        for i, t in enumerate(texts):
            rng = np.random.default_rng(int(embeddings.text_hash(t)[:8], 16))
            v = rng.normal(size=EMBEDDING_DIM)
            out[i] = v / np.linalg.norm(v)
        return out


TEXTS = [f"text {i}" for i in range(20)]


def _cache_files(cache_dir):
    return sorted((cache_dir / FakeEncoder.model_id.replace("/", "__")).glob("*.npz"))


def _fill(cache_dir):
    enc = FakeEncoder()
    first = embeddings.embed_texts(TEXTS, encoder=enc, cache_dir=cache_dir)
    (path,) = _cache_files(cache_dir)
    return first, path


def _tampered_npz(path, **change) -> bytes:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(change)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


CORRUPTIONS = {
    "empty": lambda p: b"",
    "truncated": lambda p: p.read_bytes()[: p.stat().st_size // 2],
    "garbage": lambda p: b"not a zip file at all" * 10,
    "nan": lambda p: _tampered_npz(
        p, embeddings=np.full((len(TEXTS), EMBEDDING_DIM), np.nan, np.float32)
    ),
    "tampered": lambda p: _tampered_npz(p, embeddings=np.roll(np.load(p)["embeddings"], 1, axis=0)),
    "wrong width": lambda p: _tampered_npz(
        p, embeddings=np.load(p)["embeddings"][:, : EMBEDDING_DIM // 2]
    ),
    "too few rows": lambda p: _tampered_npz(p, embeddings=np.load(p)["embeddings"][:-3]),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_broken_cache_file_is_detected_and_rebuilt(tmp_path, case):
    """Before: BadZipFile on every load, or NaN/tampered rows used silently, or shape errors."""
    first, path = _fill(tmp_path)
    path.write_bytes(CORRUPTIONS[case](path))
    enc = FakeEncoder()
    with pytest.warns(UserWarning, match="embedding cache file .* removed"):
        again = embeddings.embed_texts(TEXTS, encoder=enc, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, first)
    assert enc.encoded == len(TEXTS)  # the broken file's texts were encoded again
    enc = FakeEncoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: the next load is clean and encodes nothing
        np.testing.assert_array_equal(
            embeddings.embed_texts(TEXTS, encoder=enc, cache_dir=tmp_path), first
        )
    assert enc.encoded == 0


def test_good_cache_is_reused(tmp_path):
    first, _ = _fill(tmp_path)
    enc = FakeEncoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            embeddings.embed_texts(TEXTS[::-1], encoder=enc, cache_dir=tmp_path), first[::-1]
        )
    assert enc.encoded == 0


@pytest.mark.parametrize(
    "bad", [np.zeros((20, 10), np.float32), np.full((20, EMBEDDING_DIM), np.nan, np.float32)]
)
def test_encoder_output_is_checked_before_caching(tmp_path, bad):
    class Bad(FakeEncoder):
        def encode(self, texts, batch_size=32):
            return bad

    with pytest.raises(ValueError, match="encoder"):
        embeddings.embed_texts(TEXTS, encoder=Bad(), cache_dir=tmp_path)
    assert not _cache_files(tmp_path)


# ---------------------------------------------------------------- MiniLM model files


def _model_copy(tmp_path, broken: dict[str, bytes]):
    """A model folder linking the packaged files, with ``broken`` ones written instead."""
    from choicemarket.envs.data.minilm import model_dir

    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        if name in broken:
            (folder / name).write_bytes(broken[name])
        else:
            (folder / name).symlink_to(model_dir() / name)
    return folder


def _config(**change) -> bytes:
    from choicemarket.envs.data.minilm import model_dir

    config = json.loads((model_dir() / "config.json").read_text())
    config.update(change)
    return json.dumps(config).encode()


MODEL_BREAKAGE = {
    "config garbage": ({"config.json": b"\xff\x00garbage"}, "config.json: not a readable"),
    "config no heads": ({"config.json": b"{}"}, "config.json: not a readable"),
    "config width": ({"config.json": None}, "hidden_size 256"),
    "tokenizer garbage": ({"tokenizer.json": b"{not json"}, "tokenizer.json: unreadable"),
    "weights truncated": ({"model.safetensors": None}, "model.safetensors: unreadable"),
}


@pytest.mark.parametrize("case", sorted(MODEL_BREAKAGE))
def test_broken_model_files_name_the_file(tmp_path, case):
    """Before: JSONDecodeError, KeyError, the tokenizer's or safetensors' own errors."""
    from choicemarket.envs.data.minilm import MiniLMEncoder, model_dir

    broken, match = MODEL_BREAKAGE[case]
    if case == "config width":
        broken = {"config.json": _config(hidden_size=256)}
    if case == "weights truncated":
        with open(model_dir() / "model.safetensors", "rb") as f:
            broken = {"model.safetensors": f.read(5000)}
    folder = _model_copy(tmp_path, broken)
    with pytest.raises(ValueError, match=match) as exc:
        MiniLMEncoder(folder)
    assert str(folder) in _one_line(exc)


def test_model_weights_of_the_wrong_shape_name_the_weight(tmp_path):
    from safetensors.numpy import load_file, save_file

    from choicemarket.envs.data.minilm import MiniLMEncoder, model_dir

    weights = load_file(str(model_dir() / "model.safetensors"))
    weights["encoder.layer.3.attention.self.query.weight"] = np.zeros((384, 100), np.float32)
    folder = _model_copy(tmp_path, {})
    (folder / "model.safetensors").unlink()
    save_file(weights, str(folder / "model.safetensors"))
    del weights
    with pytest.raises(ValueError, match="layer.3.attention.self.query.weight has shape"):
        MiniLMEncoder(folder)


def test_uci_raw_file_not_utf8_names_path_and_line(tmp_path):
    from choicemarket.envs.data.uci_sentiment import RAW_FILES, read_raw_sentences

    for name in RAW_FILES.values():
        (tmp_path / name).write_bytes(b"Good phone.\t1\nBad \xff phone.\t0\n")
    with pytest.raises(ValueError, match="line 2: not UTF-8") as exc:
        read_raw_sentences(tmp_path)
    assert str(tmp_path / RAW_FILES["amazon"]) in _one_line(exc)


# ---------------------------------------------------------------- any bytes at all

_ANY = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _mangled(base: bytes):
    """Arbitrary bytes, or ``base`` cut short, with bytes spliced in, or gzipped and cut."""
    cut = st.integers(0, len(base)).map(lambda k: base[:k])
    spliced = st.tuples(st.integers(0, len(base)), st.binary(max_size=12)).map(
        lambda a: base[: a[0]] + a[1] + base[a[0] :]
    )
    return st.one_of(st.binary(max_size=300), cut, spliced)


@_ANY
@given(data=_mangled(_folk_text(8).encode()))
def test_any_pums_bytes_load_or_name_the_file(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("pums")
    path = _folk_file(root, data)
    from choicemarket.envs.data.folktables_acs import read_pums

    read_pums.cache_clear()
    try:
        _load_folk(root)
    except ValueError as exc:
        assert str(path) in str(exc) or "fewer than 2 persons" in str(exc)


@_ANY
@given(data=_mangled(("userId,movieId,rating,timestamp\n" + "\n".join(_some_ratings())).encode()))
def test_any_ratings_bytes_load_or_name_the_file(tmp_path_factory, data):
    from choicemarket.envs.data import movielens

    path = tmp_path_factory.mktemp("ml") / "ratings.csv"
    path.write_bytes(data)
    movielens.read_ratings.cache_clear()
    try:
        movielens.read_ratings(str(path))
    except ValueError as exc:
        assert str(path) in str(exc)


@_ANY
@given(data=_mangled(gzip.compress(_reviews(6), mtime=0)), gz=st.booleans())
def test_any_review_bytes_load_or_name_the_file(tmp_path_factory, data, gz):
    path = tmp_path_factory.mktemp("az") / ("Books.jsonl.gz" if gz else "Books.jsonl")
    path.write_bytes(data)
    try:
        amazon_reviews.sample_reviews(path, 3, np.random.default_rng(0))
    except ValueError as exc:
        assert str(path) in str(exc)
